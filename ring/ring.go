package ring

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
)

// fullEvery is how many heartbeats go by between two gossiped copies of the
// full record. Heartbeats carry only a digest of it, so this re-sends the
// rest now and then to members that missed it, ahead of the next push/pull.
const fullEvery = 12

// maxPacketRecord is roughly the largest full record that still fits one
// gossip packet (memberlist's default UDP buffer is 1400 bytes).
const maxPacketRecord = 1200

// Ring is this process's membership in the ring: it announces the local
// member, keeps every member's newest record, and publishes Snapshots.
type Ring struct {
	cfg        Config
	logger     *slog.Logger
	now        func() time.Time
	metrics    *ringMetrics
	nodeName   string
	gossipAddr string

	ml         *memberlist.Memberlist
	keyring    *memberlist.Keyring // nil without encryption
	queue      *memberlist.TransmitLimitedQueue
	aliveNodes atomic.Int64 // memberlist's alive count; read while memberlist holds its own locks

	// mu guards the records. memberlist calls the event delegate with its
	// node lock held, so nothing done under mu may call into memberlist
	// (queueing a broadcast is fine: the queue has its own lock and never
	// takes ours).
	mu        sync.Mutex
	records   map[string]*record     // by member id, tombstones included
	deadNodes map[string]bool        // memberlist node names the failure detector reported gone
	probes    map[string]*probeState // by member id, with Config.Probe
	self      *record
	beats     int
	left      bool // our tombstone is out; our id is no longer ours to defend
	warned    map[string]bool

	snap atomic.Pointer[Snapshot]

	running    atomic.Bool
	gossipMu   sync.Mutex // memberlist panics on Leave after Shutdown
	gossipDown bool
}

// New starts gossiping on cfg.ListenAddress and returns the Ring. The local
// member is JOINING until SetState says otherwise. Call Run to join the
// cluster and heartbeat; if Run is never called, call Close.
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Ring, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	cfg.Join = slices.Clone(cfg.Join)
	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	r := &Ring{
		cfg:     cfg,
		logger:  logger,
		now:     now,
		metrics: newRingMetrics(),
		// A fresh memberlist name per process: memberlist refuses a known
		// name from a new address until the old one is reaped, and a
		// restarted member usually comes back on a new address.
		nodeName:  cfg.InstanceID + "-" + hex.EncodeToString(suffix[:]),
		records:   map[string]*record{},
		deadNodes: map[string]bool{},
		probes:    map[string]*probeState{},
		warned:    map[string]bool{},
	}
	kr, err := cfg.newKeyring()
	if err != nil {
		return nil, err
	}
	r.keyring = kr
	r.queue = &memberlist.TransmitLimitedQueue{
		NumNodes:       func() int { return int(max(1, r.aliveNodes.Load())) },
		RetransmitMult: cfg.Gossip.RetransmitMult,
	}
	r.mu.Lock()
	r.publishLocked(now())
	r.mu.Unlock()

	mlc, err := r.memberlistConfig()
	if err != nil {
		return nil, err
	}
	r.ml, err = memberlist.Create(mlc)
	if err != nil {
		return nil, fmt.Errorf("start gossip on %s: %w", cfg.ListenAddress, err)
	}
	r.gossipAddr = r.ml.LocalNode().Address()
	if host, _, _ := splitListenAddress(cfg.ListenAddress); r.keyring == nil && !isLoopback(host) {
		logger.Warn("gossip is not encrypted: any process that reaches the gossip port can join the ring; set --ring.secret-key-file (docs/security.md)",
			"address", cfg.ListenAddress)
	}

	var tokens []uint32
	if cfg.Role == RoleReceiver {
		tokens = tokensFor(cfg.InstanceID, cfg.NumTokens)
	}
	self := &record{
		id:         cfg.InstanceID,
		nodeName:   r.nodeName,
		role:       cfg.Role,
		state:      StateJoining,
		heartbeat:  now().UnixNano(),
		zone:       cfg.Zone,
		grpcAddr:   cfg.GRPCAddress,
		httpAddr:   cfg.HTTPAddress,
		gossipAddr: r.gossipAddr,
		tokens:     tokens,
	}
	self.computeDigest()
	r.mu.Lock()
	r.self = self
	r.records[self.id] = self
	r.publishLocked(now())
	r.mu.Unlock()

	if n := len(encodeFull(self)); n > maxPacketRecord {
		logger.Info("ring entry is too large for one gossip packet; other members learn it by push/pull only",
			"bytes", n, "tokens", len(tokens))
	}
	if reg != nil {
		for _, c := range append(r.metrics.collectors(), newViewCollector(r)) {
			if err := reg.Register(c); err != nil {
				_ = r.Close()
				return nil, fmt.Errorf("register ring metrics: %w", err)
			}
		}
	}
	return r, nil
}

func (r *Ring) memberlistConfig() (*memberlist.Config, error) {
	host, port, err := splitListenAddress(r.cfg.ListenAddress)
	if err != nil {
		return nil, fmt.Errorf("%w: listen address: %v", errInvalidConfig, err)
	}
	advIP, advPort, err := r.cfg.advertise(port)
	if err != nil {
		return nil, err
	}
	g := r.cfg.Gossip
	c := memberlist.DefaultLANConfig()
	c.Name = r.nodeName
	c.BindAddr, c.BindPort = host, port
	c.AdvertiseAddr, c.AdvertisePort = advIP, advPort
	c.Label = r.cfg.ClusterLabel
	// With a keyring, memberlist encrypts everything and, verifying
	// incoming and outgoing (its defaults), drops what is not encrypted.
	c.Keyring = r.keyring
	c.GossipVerifyIncoming, c.GossipVerifyOutgoing = true, true
	c.ProbeInterval, c.ProbeTimeout = g.ProbeInterval, g.ProbeTimeout
	c.SuspicionMult = g.SuspicionMult
	c.GossipInterval, c.GossipNodes = g.GossipInterval, g.GossipNodes
	c.RetransmitMult = g.RetransmitMult
	c.PushPullInterval = g.PushPullInterval
	c.GossipToTheDeadTime = g.GossipToTheDeadTime
	c.TCPTimeout = g.TCPTimeout
	c.Delegate = gossipDelegate{r}
	c.Events = gossipEvents{r}
	c.Logger = log.New(memberlistLog{r.logger.With("component", "memberlist")}, "", 0)
	return c, nil
}

// GossipAddr is the host:port other members reach this one at, as
// advertised; with a listen port of 0 it has the port actually bound.
func (r *Ring) GossipAddr() string { return r.gossipAddr }

// Snapshot returns the current view. It is cheap: an atomic load.
func (r *Ring) Snapshot() *Snapshot { return r.snap.Load() }

// SetState changes the local member's state and gossips it: a receiver
// goes from JOINING to ACTIVE once its storage is ready, and may go to
// LEAVING ahead of a shutdown so that writes stop arriving before Run's
// context is cancelled. States other than the three exported ones are
// ignored, as is any change after Run has left the ring.
func (r *Ring) SetState(s State) {
	if s < StateJoining || s > StateLeaving {
		r.logger.Warn("ignoring an unknown ring state", "state", s)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.left || r.self.state == s {
		return
	}
	now := r.now()
	rec := r.updateSelfLocked(now, 0, func(n *record) { n.state = s })
	r.queueLocked(kindBeat, rec, nil)
	r.publishLocked(now)
}

// Run joins the cluster (retrying in the background until it succeeds),
// heartbeats, and keeps the view current. When ctx is cancelled it marks
// the local member LEAVING, gossips that, gossips its departure, leaves
// memberlist gracefully and shuts it down; it returns once every goroutine
// it started has stopped. Run may be called once.
func (r *Ring) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return errors.New("ring: Run called more than once")
	}
	if r.closed() {
		return errors.New("ring: Run after Close")
	}
	r.mu.Lock()
	now := r.now()
	rec := r.updateSelfLocked(now, 0, nil)
	r.queueLocked(kindFull, rec, nil)
	r.publishLocked(now)
	r.mu.Unlock()

	joinCtx, stopJoining := context.WithCancel(ctx)
	defer stopJoining()
	var wg sync.WaitGroup
	if len(r.cfg.Join) > 0 {
		wg.Go(func() { r.joinLoop(joinCtx) })
	}
	if r.cfg.Probe != nil {
		wg.Go(func() { r.probeLoop(joinCtx) })
	}
	if r.keyring != nil {
		wg.Go(func() { r.keyReloadLoop(joinCtx.Done()) })
	}

	heartbeat := time.NewTicker(r.cfg.HeartbeatPeriod)
	defer heartbeat.Stop()
	// Health depends on the time as much as on gossip: re-evaluate it often
	// enough that a silent member turns unhealthy soon after its timeout.
	check := time.NewTicker(min(max(r.cfg.HeartbeatTimeout/8, 10*time.Millisecond), time.Second))
	defer check.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-heartbeat.C:
			r.heartbeat()
		case <-check.C:
			r.mu.Lock()
			now := r.now()
			r.forgetLocked(now)
			r.publishLocked(now)
			r.mu.Unlock()
		}
	}
	stopJoining()
	r.leave()
	if err := r.Close(); err != nil {
		r.logger.Warn("stopping gossip failed", "err", err)
	}
	wg.Wait()
	return nil
}

// Close stops gossip without announcing anything. Run calls it when it
// returns; call it yourself only for a Ring whose Run never started. A
// second call does nothing.
func (r *Ring) Close() error {
	r.gossipMu.Lock()
	defer r.gossipMu.Unlock()
	if r.gossipDown {
		return nil
	}
	r.gossipDown = true
	return r.ml.Shutdown()
}

func (r *Ring) closed() bool {
	r.gossipMu.Lock()
	defer r.gossipMu.Unlock()
	return r.gossipDown
}

func (r *Ring) heartbeat() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.beats++
	kind := kindBeat
	if r.beats%fullEvery == 0 {
		kind = kindFull
	}
	r.queueLocked(kind, r.updateSelfLocked(r.now(), 0, nil), nil)
}

// leave announces LEAVING, then the local member's tombstone, each time
// waiting (boundedly) until gossip has passed it on, and then leaves
// memberlist.
func (r *Ring) leave() {
	if r.closed() {
		return
	}
	r.logger.Info("leaving the ring")

	r.mu.Lock()
	var announced chan struct{}
	if r.self.state != StateLeaving {
		now := r.now()
		announced = make(chan struct{}, 1)
		r.queueLocked(kindBeat, r.updateSelfLocked(now, 0, func(n *record) { n.state = StateLeaving }), announced)
		r.publishLocked(now)
	}
	r.mu.Unlock()
	r.awaitBroadcast(announced)

	r.mu.Lock()
	now := r.now()
	tomb := r.self.tombstone(max(now.UnixNano(), r.self.heartbeat+1))
	r.left = true
	r.records[tomb.id] = tomb
	gone := make(chan struct{}, 1)
	r.queueLocked(kindFull, tomb, gone)
	r.publishLocked(now)
	r.mu.Unlock()
	r.awaitBroadcast(gone)

	r.gossipMu.Lock()
	defer r.gossipMu.Unlock()
	if !r.gossipDown {
		if err := r.ml.Leave(r.cfg.Gossip.LeaveTimeout); err != nil {
			r.logger.Warn("leaving gossip gracefully failed; others will detect the departure", "err", err)
		}
	}
}

// awaitBroadcast waits until a queued broadcast has been sent as often as
// gossip sends anything, unless no one is there to send it to.
func (r *Ring) awaitBroadcast(done <-chan struct{}) {
	if done == nil || r.aliveNodes.Load() <= 1 {
		return
	}
	t := time.NewTimer(r.cfg.Gossip.LeaveTimeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

// joinLoop joins the configured members, retrying with backoff while this
// member sees no one else: at start-up (members start in any order) and
// whenever it finds itself alone again later.
func (r *Ring) joinLoop(ctx context.Context) {
	g := r.cfg.Gossip
	delay := g.JoinBackoffMin
	attempts := 0
	for ctx.Err() == nil && !r.closed() {
		wait := g.JoinBackoffMax
		if r.ml.NumMembers() <= 1 {
			attempts++
			n, err := r.ml.Join(r.cfg.Join)
			if err == nil && r.ml.NumMembers() > 1 {
				r.metrics.joinAttempts.WithLabelValues("success").Inc()
				r.logger.Info("joined the ring", "contacted", n, "attempts", attempts)
				attempts, delay = 0, g.JoinBackoffMin
			} else {
				r.metrics.joinAttempts.WithLabelValues("failure").Inc()
				if err == nil {
					err = errors.New("no other member found")
				}
				// Log the 1st, 2nd, 4th, 8th... failure: visible at first,
				// quiet for a member that is deliberately alone.
				if attempts&(attempts-1) == 0 {
					r.logger.Warn("cannot join the ring yet; retrying", "join", r.cfg.Join, "attempts", attempts, "retry_in", delay, "err", err)
				}
				wait = delay
				delay = min(2*delay, g.JoinBackoffMax)
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
}

// updateSelfLocked writes a new version of the local record, with a
// heartbeat above both the previous one and floor.
func (r *Ring) updateSelfLocked(now time.Time, floor int64, change func(*record)) *record {
	next := *r.self
	if change != nil {
		change(&next)
	}
	next.heartbeat = max(now.UnixNano(), r.self.heartbeat+1, floor+1)
	r.self = &next
	if !r.left {
		r.records[next.id] = &next
	}
	return &next
}

func (r *Ring) queueLocked(kind byte, rec *record, done chan struct{}) {
	msg := encodeBeat(rec)
	if kind == kindFull {
		msg = encodeFull(rec)
	}
	r.queue.QueueBroadcast(&broadcast{name: kindLabel(kind) + "/" + rec.id, msg: msg, done: done})
}

func (r *Ring) freshLocked(rec *record, now time.Time) bool {
	return heartbeatAge(now, rec.heartbeat) <= r.cfg.HeartbeatTimeout
}

func (r *Ring) healthyLocked(rec *record, now time.Time) bool {
	return rec.state == StateActive && r.freshLocked(rec, now) && !r.deadNodes[rec.nodeName] && r.answeredLocked(rec)
}

// mergeLocked keeps in if it is the newest version of its member's record
// and reports the result and whether the view changed beyond a heartbeat.
// Records silent for ForgetAfter are refused outright: that is what keeps
// a forgotten member from coming back through a peer that still has its
// old record.
func (r *Ring) mergeLocked(in *record, now time.Time) (result string, significant bool) {
	if in.id == r.cfg.InstanceID {
		r.defendLocked(in, now)
		return updateStale, false
	}
	if age := heartbeatAge(now, in.heartbeat); age > r.cfg.ForgetAfter || age < -r.cfg.ForgetAfter {
		return updateExpired, false
	}
	cur := r.records[in.id]
	if cur != nil && !in.newerThan(cur) {
		return updateStale, false
	}
	if cur != nil && cur.digest == in.digest {
		in.tokens = cur.tokens // one copy per member, however often its record arrives
	}
	r.records[in.id] = in
	if in.state == stateLeft && cur != nil && cur.state != stateLeft {
		r.logger.Info("member left the ring", "member", in.id)
	}
	significant = cur == nil || cur.digest != in.digest || cur.state != in.state ||
		r.freshLocked(cur, now) != r.freshLocked(in, now)
	return updateApplied, significant
}

// defendLocked handles news about the local member from elsewhere. Only we
// write our record, so a newer version than ours means another process
// uses our id, or a previous run of ours had a clock ahead of ours: either
// way we outbid it, so that our record is the one everyone keeps.
func (r *Ring) defendLocked(in *record, now time.Time) {
	if r.self == nil || r.left || !in.newerThan(r.self) {
		return
	}
	if in.nodeName != r.nodeName && !r.warned[in.nodeName] {
		r.warned[in.nodeName] = true
		r.logger.Warn("another gossip node announces this instance id, or an earlier run's clock was ahead; overriding it",
			"instance_id", in.id, "other_node", in.nodeName, "other_state", in.state)
	}
	r.queueLocked(kindFull, r.updateSelfLocked(now, in.heartbeat, nil), nil)
}

// forgetLocked drops records silent for ForgetAfter: tombstones quietly,
// members loudly.
func (r *Ring) forgetLocked(now time.Time) {
	referenced := make(map[string]bool, len(r.records))
	for id, rec := range r.records {
		if id != r.cfg.InstanceID && heartbeatAge(now, rec.heartbeat) > r.cfg.ForgetAfter {
			delete(r.records, id)
			if rec.state != stateLeft {
				r.metrics.forgotten.Inc()
				r.logger.Warn("forgetting a member silent for too long", "member", id, "state", rec.state,
					"last_heartbeat", time.Unix(0, rec.heartbeat), "forget_after", r.cfg.ForgetAfter)
			}
			continue
		}
		referenced[rec.nodeName] = true
	}
	for name := range r.deadNodes {
		if !referenced[name] {
			delete(r.deadNodes, name)
		}
	}
}

// publishLocked replaces the snapshot. When only heartbeats changed, the
// new snapshot shares the old one's write ring and change channel.
func (r *Ring) publishLocked(now time.Time) {
	recs := make([]*record, 0, len(r.records))
	for _, rec := range r.records {
		if rec.state != stateLeft {
			recs = append(recs, rec)
		}
	}
	slices.SortFunc(recs, func(a, b *record) int { return cmp.Compare(a.id, b.id) })
	members := make([]Member, len(recs))
	healthy := make([]bool, len(recs))
	digests := make([]uint64, len(recs))
	for i, rec := range recs {
		members[i] = rec.member()
		healthy[i] = r.healthyLocked(rec, now)
		digests[i] = rec.digest
	}
	s := newSnapshot(members, healthy, digests, r.cfg.InstanceID, r.cfg.ReplicationFactor)
	prev := r.snap.Load()
	if s.sameView(prev) {
		s.tokens, s.owners, s.replicas, s.changed = prev.tokens, prev.owners, prev.replicas, prev.changed
		r.snap.Store(s)
		return
	}
	s.buildWriteRing()
	s.changed = make(chan struct{})
	r.logChangesLocked(prev, s, recs, now)
	r.snap.Store(s)
	if prev != nil {
		r.metrics.viewChanges.Inc()
		close(prev.changed)
	}
}

func (r *Ring) logChangesLocked(prev, s *Snapshot, recs []*record, now time.Time) {
	for i, m := range s.members {
		j, known := -1, false
		if prev != nil {
			j, known = prev.index(m.ID)
		}
		if !known {
			r.logger.Info("member joined the ring", "member", m.ID, "role", m.Role, "state", m.State,
				"zone", m.Zone, "grpc", m.GRPCAddr, "gossip", m.GossipAddr)
			continue
		}
		if was := prev.members[j].State; was != m.State {
			r.logger.Info("member state changed", "member", m.ID, "from", was, "to", m.State)
		}
		if prev.digests[j] != s.digests[i] {
			r.logger.Info("member restarted or changed its entry", "member", m.ID, "grpc", m.GRPCAddr,
				"gossip", m.GossipAddr, "node", recs[i].nodeName)
		}
		switch {
		case prev.healthy[j] == s.healthy[i]:
		case s.healthy[i]:
			r.logger.Info("member is healthy", "member", m.ID)
		case m.State != StateActive:
			// The state change above says why.
		case r.deadNodes[recs[i].nodeName]:
			r.logger.Warn("member is unhealthy: gossip failure detection lost it", "member", m.ID)
		case !r.answeredLocked(recs[i]):
			// probeRound says why.
		default:
			r.logger.Warn("member is unhealthy: heartbeat too old", "member", m.ID,
				"age", heartbeatAge(now, recs[i].heartbeat), "timeout", r.cfg.HeartbeatTimeout)
		}
	}
}

// broadcast is one queued gossip message. Its name makes a newer message
// about the same member replace an older one still in the queue.
type broadcast struct {
	name string
	msg  []byte
	done chan struct{} // optional, buffered: told once the message is no longer sent
}

func (b *broadcast) Invalidates(o memberlist.Broadcast) bool {
	nb, ok := o.(memberlist.NamedBroadcast)
	return ok && nb.Name() == b.name
}
func (b *broadcast) Name() string    { return b.name }
func (b *broadcast) Message() []byte { return b.msg }
func (b *broadcast) Finished() {
	if b.done != nil {
		select {
		case b.done <- struct{}{}:
		default:
		}
	}
}

// gossipDelegate carries the ring's records over memberlist: single records
// by gossip, everything by push/pull.
type gossipDelegate struct{ r *Ring }

// NodeMeta is empty: memberlist repeats it in every alive message and caps
// it at 512 bytes, too small for a receiver's tokens.
func (d gossipDelegate) NodeMeta(int) []byte { return nil }

func (d gossipDelegate) NotifyMsg(b []byte) {
	r := d.r
	kind, payload, err := decodeHeader(b)
	if err == nil && kind != kindFull && kind != kindBeat {
		err = fmt.Errorf("%w: unexpected kind %d", errMalformed, kind)
	}
	if err != nil {
		r.metrics.updates.WithLabelValues(updateInvalid).Inc()
		r.logger.Debug("dropping a gossip message", "err", err)
		return
	}
	r.metrics.messagesReceived.WithLabelValues(kindLabel(kind)).Inc()

	var (
		rec *record
		bt  beat
	)
	if kind == kindFull {
		rec, err = decodeFull(payload)
	} else {
		bt, err = decodeBeat(payload)
	}
	if err != nil {
		r.metrics.updates.WithLabelValues(updateInvalid).Inc()
		r.logger.Debug("dropping a gossip message", "err", err)
		return
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if kind == kindBeat {
		cur := r.records[bt.id]
		if cur == nil || cur.digest != bt.digest || bt.id == r.cfg.InstanceID {
			// We lack the rest of the record (or it is ours): wait for a
			// full copy by gossip or push/pull.
			r.metrics.updates.WithLabelValues(updateUnknownDigest).Inc()
			return
		}
		next := *cur
		next.state, next.heartbeat = bt.state, bt.heartbeat
		rec = &next
	}
	result, significant := r.mergeLocked(rec, now)
	r.metrics.updates.WithLabelValues(result).Inc()
	if result != updateApplied {
		return
	}
	// Pass news on: the writer's own retransmissions reach only a few
	// members, so everyone who learns something new spreads it further.
	r.queue.QueueBroadcast(&broadcast{name: kindLabel(kind) + "/" + rec.id, msg: bytes.Clone(b)})
	// A heartbeat alone shows up at the next health check's snapshot.
	if significant {
		r.publishLocked(now)
	}
}

func (d gossipDelegate) GetBroadcasts(overhead, limit int) [][]byte {
	msgs := d.r.queue.GetBroadcasts(overhead, limit)
	for _, m := range msgs {
		d.r.metrics.messagesSent.WithLabelValues(kindLabel(m[1])).Inc()
	}
	return msgs
}

func (d gossipDelegate) LocalState(bool) []byte {
	r := d.r
	r.mu.Lock()
	recs := make([]*record, 0, len(r.records))
	for _, rec := range r.records {
		recs = append(recs, rec)
	}
	r.mu.Unlock()
	r.metrics.pushPulls.WithLabelValues("sent").Inc()
	return encodeState(recs)
}

func (d gossipDelegate) MergeRemoteState(buf []byte, _ bool) {
	r := d.r
	if len(buf) == 0 {
		return
	}
	kind, payload, err := decodeHeader(buf)
	var recs []*record
	if err == nil {
		if kind != kindState {
			err = fmt.Errorf("%w: unexpected kind %d", errMalformed, kind)
		} else {
			recs, err = decodeState(payload)
		}
	}
	if err != nil {
		r.metrics.updates.WithLabelValues(updateInvalid).Inc()
		r.logger.Warn("dropping remote ring state", "err", err)
		return
	}
	r.metrics.pushPulls.WithLabelValues("received").Inc()

	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	changed := false
	for _, rec := range recs {
		result, significant := r.mergeLocked(rec, now)
		r.metrics.updates.WithLabelValues(result).Inc()
		changed = changed || significant
	}
	if changed {
		r.publishLocked(now)
	}
}

// gossipEvents feeds memberlist's failure detector into member health, so a
// crashed member stops taking writes within a probe cycle or two instead of
// after the heartbeat timeout. memberlist calls it with its node lock held.
type gossipEvents struct{ r *Ring }

func (e gossipEvents) NotifyJoin(n *memberlist.Node) {
	r := e.r
	r.aliveNodes.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.deadNodes[n.Name] {
		delete(r.deadNodes, n.Name)
		r.publishLocked(r.now())
	}
}

func (e gossipEvents) NotifyLeave(n *memberlist.Node) {
	r := e.r
	r.aliveNodes.Add(-1)
	if n.Name == r.nodeName {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.deadNodes[n.Name] = true
	var rec *record
	for _, x := range r.records {
		if x.nodeName == n.Name {
			rec = x
			break
		}
	}
	if rec == nil || rec.state == stateLeft {
		return
	}
	now := r.now()
	if rec.state == StateLeaving {
		// It announced LEAVING and is now gone from gossip: it has left,
		// even if its own tombstone got lost. The tombstone we write has
		// its heartbeat and outranks its LEAVING record, so every member
		// that does the same agrees.
		r.records[rec.id] = rec.tombstone(rec.heartbeat)
		r.logger.Info("member left the ring", "member", rec.id)
	}
	r.publishLocked(now)
}

func (e gossipEvents) NotifyUpdate(*memberlist.Node) {}

// memberlistLog turns memberlist's "[LEVEL] memberlist: message" lines into
// structured log records at the matching level.
type memberlistLog struct{ logger *slog.Logger }

func (w memberlistLog) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	level := slog.LevelInfo
	if rest, ok := strings.CutPrefix(msg, "["); ok {
		if tag, body, ok := strings.Cut(rest, "] "); ok {
			switch tag {
			case "DEBUG":
				level = slog.LevelDebug
			case "WARN":
				level = slog.LevelWarn
			case "ERR", "ERROR":
				level = slog.LevelError
			}
			msg = body
		}
	}
	w.logger.Log(context.Background(), level, strings.TrimPrefix(msg, "memberlist: "))
	return len(p), nil
}
