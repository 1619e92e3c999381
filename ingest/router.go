package ingest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"google.golang.org/grpc"

	"github.com/atoll-metrics/atoll/ring"
	"github.com/atoll-metrics/atoll/tsdbshard"
)

// RingView is what the router reads from the ring: the current snapshot.
type RingView interface {
	Snapshot() *ring.Snapshot
}

// RouterOptions configure a Router.
type RouterOptions struct {
	// ReplicationFactor is how many receivers store each series. A series
	// is stored when floor(RF/2)+1 of them accepted it.
	ReplicationFactor int
	// ForwardTimeout bounds a write forwarded to a peer. A peer that does
	// not answer in time counts as a failed replica.
	ForwardTimeout time.Duration
	// MaxInFlightPerPeer bounds the forwarded writes waiting on one peer; a
	// hung peer then costs a fast failure, not a pile of goroutines.
	MaxInFlightPerPeer int
	// Limits bound what tenants may store on this receiver.
	Limits LimitsConfig
	// RejectOutOfOrder refuses out-of-order samples in client writes even
	// when the TSDB accepts them for replicas (its window is set for
	// forwarded copies that newer writes overtook on the way).
	RejectOutOfOrder bool
	// ReservedLabels are label names Atoll sets itself as external labels
	// of the TSDBs (the tenant label, the receive replica label): a series
	// carrying one is refused as invalid rather than silently shadowed by
	// the external label.
	ReservedLabels []string
	// DialOptions reach peer receivers, e.g. their TLS credentials; the
	// default is plaintext.
	DialOptions []grpc.DialOption
	// AnyForwarder accepts forwarded writes from any address. By default
	// only the addresses of the ring's receivers may forward (see
	// RegisterWriteServer); turn the check off only where a proxy hides
	// peers' addresses, and rely on mutual TLS then.
	AnyForwarder bool
}

// defaultRouterOptions are the defaults of `atoll receive`.
func defaultRouterOptions() RouterOptions {
	return RouterOptions{ReplicationFactor: 3, ForwardTimeout: 5 * time.Second, MaxInFlightPerPeer: 64}
}

// Router sends every series of a write to the receivers that own it,
// appends this receiver's share locally, and reduces the replicas' answers
// to one result with a per-series quorum.
type Router struct {
	opts   RouterOptions
	local  *localWriter
	ring   RingView
	peers  *peerPool
	logger *slog.Logger

	forwarded       *prometheus.CounterVec
	forwardRefused  prometheus.Counter
	forwardDuration prometheus.Histogram
	quorum          *prometheus.CounterVec

	// forwards owns the writes to peers still in flight: a request returns
	// at quorum while the slower replicas' writes continue, bounded by
	// ForwardTimeout, and Close waits for them before closing their
	// connections. closeMtx orders starting a forward before Close begins
	// to wait, and refuses forwards once it has.
	forwards sync.WaitGroup
	closeMtx sync.RWMutex
	closed   bool

	fwd atomic.Pointer[forwarders]
}

// NewRouter returns a Router appending to shards. With a nil ring every
// series is stored here alone, as `atoll all` does.
func NewRouter(shards *tsdbshard.MultiTSDB, rv RingView, opts RouterOptions, logger *slog.Logger, reg prometheus.Registerer) *Router {
	def := defaultRouterOptions()
	if opts.ReplicationFactor <= 0 {
		opts.ReplicationFactor = 1
	}
	if opts.ForwardTimeout <= 0 {
		opts.ForwardTimeout = def.ForwardTimeout
	}
	if opts.MaxInFlightPerPeer <= 0 {
		opts.MaxInFlightPerPeer = def.MaxInFlightPerPeer
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	f := promauto.With(reg)
	r := &Router{
		opts:   opts,
		local:  newLocalWriter(shards, opts.Limits, opts.ReservedLabels),
		ring:   rv,
		logger: logger,
		forwarded: f.NewCounterVec(prometheus.CounterOpts{
			Name: "atoll_ingest_forward_requests_total",
			Help: "Writes forwarded to peer receivers, by outcome.",
		}, []string{"outcome"}),
		forwardRefused: f.NewCounter(prometheus.CounterOpts{
			Name: "atoll_ingest_forwarded_writes_refused_total",
			Help: "Forwarded writes refused because the caller's address is no receiver's in the ring.",
		}),
		forwardDuration: f.NewHistogram(prometheus.HistogramOpts{
			Name:                        "atoll_ingest_forward_duration_seconds",
			Help:                        "Time peer receivers took to store a forwarded write, or to fail it.",
			Buckets:                     prometheus.DefBuckets,
			NativeHistogramBucketFactor: 1.1,
		}),
		quorum: f.NewCounterVec(prometheus.CounterOpts{
			Name: "atoll_ingest_series_quorum_total",
			Help: "Series of remote-write requests by replication outcome: stored (quorum reached) or the reason it was not.",
		}, []string{"outcome"}),
	}
	if rv != nil {
		r.peers = newPeerPool(opts.MaxInFlightPerPeer, opts.DialOptions, logger)
	}
	return r
}

// Close waits for the writes still forwarded to peers (at most
// ForwardTimeout) and then releases the connections to them. Writes that
// come after Close fail as unavailable. A second Close does nothing more.
func (r *Router) Close() error {
	r.closeMtx.Lock()
	r.closed = true
	r.closeMtx.Unlock()
	r.forwards.Wait()
	if r.peers != nil {
		r.peers.close()
	}
	return nil
}

// startForwards reserves n forwards, which must each call r.forwards.Done,
// or reports that the router is closed.
func (r *Router) startForwards(n int) error {
	r.closeMtx.RLock()
	defer r.closeMtx.RUnlock()
	if r.closed {
		return fmt.Errorf("%w: receiver is stopping", errUnavailable)
	}
	r.forwards.Add(n)
	return nil
}

// write stores the series of wr for tenant. An error means nothing can be
// said to be stored; otherwise the result tells series by series.
func (r *Router) write(ctx context.Context, tenant string, wr *writeRequest) (seriesResult, error) {
	if r.ring == nil {
		return r.local.write(ctx, tenant, wr, nil, r.opts.RejectOutOfOrder)
	}
	return r.replicate(ctx, tenant, wr)
}

// writeLocal stores a write another receiver forwarded: it is never
// forwarded again. A quorum answered the client already, so the next write
// of a series can overtake this copy; the TSDB's out-of-order window takes
// it then, rather than leave this replica without the sample.
func (r *Router) writeLocal(ctx context.Context, tenant string, wr *writeRequest) (seriesResult, error) {
	return r.local.write(ctx, tenant, wr, nil, false)
}

// seriesTally counts the replicas' answers for one series.
type seriesTally struct {
	ok, conflict, invalid, limited, pending uint8
	done                                    bool
}

// replicaBatch is the share of a request one replica owns.
type replicaBatch struct {
	member int
	series []uint32
}

// replicaAnswer is what one replica said about its batch.
type replicaAnswer struct {
	batch     *replicaBatch
	err       error // the whole batch failed
	conflicts []uint32
	invalid   []uint32
	limited   []uint32
	message   string
	local     bool
}

func (r *Router) replicate(ctx context.Context, tenant string, wr *writeRequest) (seriesResult, error) {
	var res seriesResult
	snap := r.ring.Snapshot()
	members := snap.Members()
	rf := r.opts.ReplicationFactor
	quorum := ring.Quorum(rf)

	tallies := make([]seriesTally, len(wr.Timeseries))
	batches := make(map[int]*replicaBatch)
	owners := make([]int, 0, rf)
	tenantHash := ring.TenantHash(tenant)
	for i := range wr.Timeseries {
		ts := &wr.Timeseries[i]
		// The receiving replica validates too, but refusing here keeps a
		// malformed series from costing a round trip to every replica.
		err := validateSeries(ts)
		if err == nil {
			err = r.local.reserved.check(ts)
		}
		if err != nil {
			tallies[i].done = true
			res.refuse(outcomeInvalid, uint32(i), len(ts.Samples)+len(ts.Histograms), err.Error())
			continue
		}
		owners = snap.Owners(ring.KeyForTenant(tenantHash, ts.LabelsHash), owners)
		// With fewer healthy owners than the quorum the series is refused
		// at once (decide below), but the owners there are still written,
		// so a retry finds more copies.
		tallies[i].pending = uint8(len(owners))
		for _, m := range owners {
			b := batches[m]
			if b == nil {
				b = &replicaBatch{member: m}
				batches[m] = b
			}
			b.series = append(b.series, uint32(i))
		}
	}

	peers := len(batches)
	if _, ok := batches[snap.Self()]; ok {
		peers--
	}
	if err := r.startForwards(peers); err != nil {
		return res, err
	}
	answers := make(chan replicaAnswer, len(batches))
	localDone := make(chan struct{})
	localStarted := false
	for _, b := range batches {
		if b.member == snap.Self() {
			localStarted = true
			go func() {
				defer close(localDone)
				lr, err := r.local.write(ctx, tenant, wr, b.series, r.opts.RejectOutOfOrder)
				answers <- replicaAnswer{batch: b, err: err, conflicts: lr.conflicts, invalid: lr.invalid, limited: lr.limited, message: lr.message, local: true}
			}()
			continue
		}
		m := members[b.member]
		body := forwardBody(wr, b.series)
		go func() {
			defer r.forwards.Done()
			answers <- r.forward(ctx, m, tenant, body, b)
		}()
	}
	if !localStarted {
		close(localDone)
	}
	// The request's buffers back the local write: it must finish before
	// the handler releases them, even when quorum is reached without it.
	defer func() { <-localDone }()

	undecided := 0
	for i := range tallies {
		if !tallies[i].done {
			undecided++
			r.decide(&tallies[i], quorum, &res, uint32(i), wr)
			if tallies[i].done {
				undecided--
			}
		}
	}
	for received := 0; undecided > 0 && received < len(batches); received++ {
		a := <-answers
		undecided -= r.apply(a, tallies, quorum, &res, wr)
	}
	if undecided > 0 {
		// Every replica answered; whatever is still open failed.
		for i := range tallies {
			if !tallies[i].done {
				tallies[i].pending = 0
				r.decide(&tallies[i], quorum, &res, uint32(i), wr)
			}
		}
	}
	return res, nil
}

// apply records one replica's answer and returns how many series it
// decided.
func (r *Router) apply(a replicaAnswer, tallies []seriesTally, quorum int, res *seriesResult, wr *writeRequest) int {
	if a.err != nil && !a.local {
		r.logger.Debug("replica failed", "err", a.err)
	}
	conflict := indexSet(a.conflicts)
	invalid := indexSet(a.invalid)
	limited := indexSet(a.limited)
	decided := 0
	for _, i := range a.batch.series {
		t := &tallies[i]
		t.pending--
		switch {
		case a.err != nil:
			// A failed replica only takes away what it could have added.
		case conflict[i]:
			t.conflict++
		case invalid[i]:
			t.invalid++
		case limited[i]:
			t.limited++
		default:
			t.ok++
		}
		if t.done {
			continue
		}
		if a.err == nil && (conflict[i] || invalid[i] || limited[i]) && res.message == "" {
			res.message = a.message
		}
		r.decide(t, quorum, res, i, wr)
		if t.done {
			decided++
		}
	}
	return decided
}

// decide closes a series once its outcome is certain: stored at quorum,
// or refused once quorum can no longer be reached. A series refused by
// replicas as a conflict (or invalid) is not retryable; one that lacked
// replicas is.
func (r *Router) decide(t *seriesTally, quorum int, res *seriesResult, idx uint32, wr *writeRequest) {
	ts := &wr.Timeseries[idx]
	n := len(ts.Samples) + len(ts.Histograms)
	switch {
	case int(t.ok) >= quorum:
		t.done = true
		res.stored += n
		r.quorum.WithLabelValues("stored").Inc()
	case int(t.ok)+int(t.pending) < quorum:
		t.done = true
		o := outcomeUnavailable
		msg := fmt.Sprintf("series %s: only %d of %d replicas stored it, %d needed", labelsString(ts.Labels), t.ok, r.opts.ReplicationFactor, quorum)
		if int(t.ok+t.conflict+t.invalid+t.limited) >= quorum {
			// Enough replicas answered; they refused. The most retryable
			// reason wins, as for a whole request.
			switch {
			case t.limited > 0:
				o = outcomeLimited
			case t.invalid > 0:
				o = outcomeInvalid
			default:
				o = outcomeConflict
			}
			msg = ""
		}
		r.quorum.WithLabelValues(o.String()).Inc()
		if msg == "" {
			msg = res.message
			if msg == "" {
				msg = fmt.Sprintf("series %s: refused by replicas", labelsString(ts.Labels))
			}
		}
		res.refuse(o, idx, n, msg)
	}
}

func indexSet(idx []uint32) map[uint32]bool {
	if len(idx) == 0 {
		return nil
	}
	m := make(map[uint32]bool, len(idx))
	for _, i := range idx {
		m[i] = true
	}
	return m
}

// forward sends a batch to a peer and translates its answer back to the
// indexes of the original request.
func (r *Router) forward(ctx context.Context, m ring.Member, tenant string, body []byte, b *replicaBatch) replicaAnswer {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.opts.ForwardTimeout)
	defer cancel()
	start := time.Now()
	resp, err := r.peers.write(ctx, m.GRPCAddr, tenant, body)
	r.forwardDuration.Observe(time.Since(start).Seconds())
	if err != nil {
		r.forwarded.WithLabelValues("failure").Inc()
		return replicaAnswer{batch: b, err: fmt.Errorf("forward to %s (%s): %w", m.ID, m.GRPCAddr, err)}
	}
	r.forwarded.WithLabelValues("success").Inc()
	a := replicaAnswer{batch: b, message: resp.Message}
	for _, j := range resp.Conflicts {
		if int(j) < len(b.series) {
			a.conflicts = append(a.conflicts, b.series[j])
		}
	}
	for _, j := range resp.Invalid {
		if int(j) < len(b.series) {
			a.invalid = append(a.invalid, b.series[j])
		}
	}
	for _, j := range resp.Limited {
		if int(j) < len(b.series) {
			a.limited = append(a.limited, b.series[j])
		}
	}
	return a
}

// forwardBody builds an encoded prompb.WriteRequest holding the listed
// series, copying each series' bytes as they arrived: no re-encoding.
func forwardBody(wr *writeRequest, series []uint32) []byte {
	n := 0
	for _, i := range series {
		n += 1 + binary.MaxVarintLen64 + len(wr.Timeseries[i].Raw)
	}
	b := make([]byte, 0, n)
	for _, i := range series {
		raw := wr.Timeseries[i].Raw
		b = append(b, 0x0a)
		b = binary.AppendUvarint(b, uint64(len(raw)))
		b = append(b, raw...)
	}
	return b
}

// errPeerBusy is a replica refused locally because too many writes already
// wait on it.
var errPeerBusy = errors.New("too many writes in flight to this peer")
