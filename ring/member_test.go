package ring

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// bareRing is a Ring without memberlist, for exercising the merge rules
// directly at a fixed time.
func bareRing(t *testing.T, selfID string, now time.Time) *Ring {
	t.Helper()
	cfg := DefaultConfig()
	cfg.InstanceID = selfID
	r := &Ring{
		cfg:       cfg,
		logger:    slog.New(slog.DiscardHandler),
		now:       func() time.Time { return now },
		metrics:   newRingMetrics(),
		records:   map[string]*record{},
		deadNodes: map[string]bool{},
		warned:    map[string]bool{},
		queue:     &memberlist.TransmitLimitedQueue{NumNodes: func() int { return 3 }, RetransmitMult: 4},
	}
	r.mu.Lock()
	r.publishLocked(now)
	r.mu.Unlock()
	return r
}

func testRecord(id string, state State, heartbeat time.Time) *record {
	r := &record{
		id: id, nodeName: id + "-node", role: RoleReceiver, state: state, heartbeat: heartbeat.UnixNano(),
		zone: "z", grpcAddr: id + ":10901", httpAddr: id + ":10902", gossipAddr: id + ":7946",
		tokens: tokensFor(id, 8),
	}
	r.computeDigest()
	return r
}

// view is what a member's records converge to: per id, the kept version.
func view(r *Ring) map[string][3]int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	v := map[string][3]int64{}
	for id, rec := range r.records {
		v[id] = [3]int64{rec.heartbeat, int64(rec.state), int64(rec.digest)}
	}
	return v
}

func TestMergeIsOrderIndependentAndIdempotent(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	rng := rand.New(rand.NewPCG(1, 2))
	var updates []*record
	for _, id := range []string{"a", "b", "c"} {
		for i := range 6 {
			// Equal heartbeats on purpose: ties must resolve the same way
			// on every member.
			hb := now.Add(-time.Duration(rng.IntN(3)) * time.Second)
			st := State(1 + rng.IntN(4))
			rec := testRecord(id, st, hb)
			if i%3 == 0 {
				rec.grpcAddr = "restarted:1"
				rec.computeDigest()
			}
			if st == stateLeft {
				rec = rec.tombstone(rec.heartbeat)
			}
			updates = append(updates, rec)
		}
	}

	apply := func(order []*record, twice bool) map[string][3]int64 {
		r := bareRing(t, "self", now)
		r.mu.Lock()
		for _, u := range order {
			cp := *u
			r.mergeLocked(&cp, now)
			if twice {
				cp2 := *u
				r.mergeLocked(&cp2, now)
			}
		}
		r.mu.Unlock()
		return view(r)
	}
	want := apply(updates, false)
	if len(want) != 3 {
		t.Fatalf("want 3 records, got %v", want)
	}
	for i := range 50 {
		order := slices.Clone(updates)
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		if got := apply(order, i%2 == 1); !mapsEqual(got, want) {
			t.Fatalf("order %d converged to %v, want %v", i, got, want)
		}
	}
	// Associativity, as members see it: merging a peer's merged state
	// equals merging the peer's inputs.
	left, right := bareRing(t, "self", now), bareRing(t, "self", now)
	left.mu.Lock()
	for _, u := range updates[:9] {
		cp := *u
		left.mergeLocked(&cp, now)
	}
	left.mu.Unlock()
	right.mu.Lock()
	for _, u := range updates[9:] {
		cp := *u
		right.mergeLocked(&cp, now)
	}
	right.mu.Unlock()
	gossipDelegate{left}.MergeRemoteState(gossipDelegate{right}.LocalState(false), false)
	if got := view(left); !mapsEqual(got, want) {
		t.Fatalf("push/pull of partial states converged to %v, want %v", got, want)
	}
}

func mapsEqual(a, b map[string][3]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestMergeRules(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	cfg := DefaultConfig()
	cases := []struct {
		name    string
		have    *record
		in      *record
		result  string
		visible bool // is the member in the snapshot afterwards
	}{
		{"new member", nil, testRecord("m", StateActive, now), updateApplied, true},
		{"newer heartbeat", testRecord("m", StateActive, now.Add(-time.Second)), testRecord("m", StateActive, now), updateApplied, true},
		{"older heartbeat", testRecord("m", StateActive, now), testRecord("m", StateActive, now.Add(-time.Second)), updateStale, true},
		{"same version twice", testRecord("m", StateActive, now), testRecord("m", StateActive, now), updateStale, true},
		{"tombstone outranks older record", testRecord("m", StateActive, now.Add(-time.Second)), testRecord("m", StateActive, now).tombstone(now.UnixNano()), updateApplied, false},
		{"tombstone outranks same heartbeat", testRecord("m", StateLeaving, now), testRecord("m", StateLeaving, now).tombstone(now.UnixNano()), updateApplied, false},
		{"tombstone keeps out older records", testRecord("m", StateActive, now).tombstone(now.UnixNano()), testRecord("m", StateActive, now.Add(-time.Second)), updateStale, false},
		{"restart after tombstone", testRecord("m", StateActive, now.Add(-time.Second)).tombstone(now.Add(-time.Second).UnixNano()), testRecord("m", StateJoining, now), updateApplied, true},
		{"silent past forget-after", nil, testRecord("m", StateActive, now.Add(-cfg.ForgetAfter-time.Second)), updateExpired, false},
		{"far in the future", nil, testRecord("m", StateActive, now.Add(cfg.ForgetAfter+time.Second)), updateExpired, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := bareRing(t, "self", now)
			r.mu.Lock()
			if tc.have != nil {
				r.records[tc.have.id] = tc.have
			}
			result, _ := r.mergeLocked(tc.in, now)
			r.publishLocked(now)
			r.mu.Unlock()
			if result != tc.result {
				t.Errorf("result %q, want %q", result, tc.result)
			}
			if _, ok := r.Snapshot().index("m"); ok != tc.visible {
				t.Errorf("visible %v, want %v", ok, tc.visible)
			}
		})
	}
}

func TestBeatsApplyOnlyToAKnownRecord(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	r := bareRing(t, "self", now)
	d := gossipDelegate{r}
	old := testRecord("m", StateJoining, now.Add(-2*time.Second))
	next := *old
	next.state, next.heartbeat = StateActive, now.UnixNano()

	d.NotifyMsg(encodeBeat(&next))
	if len(r.Snapshot().Members()) != 0 {
		t.Fatal("a beat for an unknown record must not create a member")
	}
	d.NotifyMsg(encodeFull(old))
	d.NotifyMsg(encodeBeat(&next))
	s := r.Snapshot()
	if len(s.Members()) != 1 || s.Members()[0].State != StateActive || !s.Healthy("m") {
		t.Fatalf("beat not applied: %+v", s.Members())
	}
	if got := s.Members()[0].Tokens; !slices.Equal(got, old.tokens) {
		t.Fatal("beat lost the tokens")
	}
	// A beat from a restarted process (other digest) waits for its full record.
	restarted := testRecord("m", StateActive, now.Add(time.Second))
	restarted.nodeName = "m-other"
	restarted.computeDigest()
	d.NotifyMsg(encodeBeat(restarted))
	if got := r.Snapshot().Members()[0].Heartbeat; !got.Equal(time.Unix(0, next.heartbeat)) {
		t.Fatalf("beat with a foreign digest was applied: heartbeat %v", got)
	}
	// Applied news is passed on, stale news is not.
	if n := r.queue.NumQueued(); n != 2 {
		t.Fatalf("queued %d rebroadcasts, want 2 (the full record and the applicable beat)", n)
	}
	d.NotifyMsg([]byte{0xff, 1, 2})
	d.NotifyMsg(nil)
}

func TestOwnRecordIsDefended(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	r := bareRing(t, "self", now)
	self := testRecord("self", StateActive, now)
	r.mu.Lock()
	r.self, r.records["self"] = self, self
	impostor := testRecord("self", StateLeaving, now.Add(time.Minute))
	impostor.nodeName = "someone-else"
	impostor.computeDigest()
	r.mergeLocked(impostor, now)
	got := r.records["self"]
	r.mu.Unlock()
	if got.nodeName != self.nodeName || got.state != StateActive || got.heartbeat <= impostor.heartbeat {
		t.Fatalf("own record not defended: %+v", got)
	}
}

func TestHealth(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	cfg := DefaultConfig()
	cases := []struct {
		name    string
		rec     *record
		dead    bool
		healthy bool
	}{
		{"active and fresh", testRecord("m", StateActive, now.Add(-cfg.HeartbeatPeriod)), false, true},
		{"joining", testRecord("m", StateJoining, now), false, false},
		{"leaving", testRecord("m", StateLeaving, now), false, false},
		{"heartbeat too old", testRecord("m", StateActive, now.Add(-cfg.HeartbeatTimeout-time.Second)), false, false},
		{"declared dead by memberlist", testRecord("m", StateActive, now), true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := bareRing(t, "self", now)
			r.mu.Lock()
			r.records["m"] = tc.rec
			r.deadNodes[tc.rec.nodeName] = tc.dead
			r.publishLocked(now)
			r.mu.Unlock()
			s := r.Snapshot()
			if got := s.Healthy("m"); got != tc.healthy {
				t.Fatalf("healthy %v, want %v", got, tc.healthy)
			}
			if owners := s.Owners(12345, nil); (len(owners) == 1) != tc.healthy {
				t.Fatalf("owners %v with healthy=%v", owners, tc.healthy)
			}
		})
	}
}

func TestForgetDropsSilentMembersAndTombstones(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	r := bareRing(t, "self", now)
	cfg := r.cfg
	r.mu.Lock()
	r.records["silent"] = testRecord("silent", StateActive, now.Add(-cfg.ForgetAfter-time.Second))
	r.records["gone"] = testRecord("gone", StateActive, now.Add(-cfg.ForgetAfter-time.Second)).tombstone(now.Add(-cfg.ForgetAfter - time.Second).UnixNano())
	r.records["alive"] = testRecord("alive", StateActive, now)
	r.deadNodes["silent-node"] = true
	r.deadNodes["alive-node"] = true
	r.forgetLocked(now)
	ids := slices.Sorted(func(yield func(string) bool) {
		for id := range r.records {
			if !yield(id) {
				return
			}
		}
	})
	dead := len(r.deadNodes)
	r.mu.Unlock()
	if !slices.Equal(ids, []string{"alive"}) {
		t.Fatalf("records after forgetting: %v", ids)
	}
	if dead != 1 {
		t.Fatalf("dead node names of forgotten members must go too, have %d", dead)
	}
}

func TestCodecRoundTrip(t *testing.T) {
	now := time.Unix(1_700_000_000, 123)
	rec := testRecord("member-1", StateLeaving, now)
	rec.tokens = tokensFor("member-1", 128)
	rec.computeDigest()

	kind, payload, err := decodeHeader(encodeFull(rec))
	if err != nil || kind != kindFull {
		t.Fatalf("header: %v %v", kind, err)
	}
	got, err := decodeFull(payload)
	if err != nil {
		t.Fatal(err)
	}
	if got.digest != rec.digest || got.heartbeat != rec.heartbeat || got.state != rec.state || !slices.Equal(got.tokens, rec.tokens) {
		t.Fatalf("full record changed in transit: %+v", got)
	}
	if n := len(encodeFull(rec)); n > maxPacketRecord {
		t.Errorf("a 128-token record takes %d bytes, more than one gossip packet", n)
	}

	_, payload, _ = decodeHeader(encodeBeat(rec))
	b, err := decodeBeat(payload)
	if err != nil || b != (beat{id: rec.id, state: rec.state, heartbeat: rec.heartbeat, digest: rec.digest}) {
		t.Fatalf("beat: %+v %v", b, err)
	}

	other := testRecord("member-2", StateActive, now)
	_, payload, _ = decodeHeader(encodeState([]*record{rec, other, rec.tombstone(rec.heartbeat + 1)}))
	recs, err := decodeState(payload)
	if err != nil || len(recs) != 3 || recs[1].digest != other.digest || recs[2].state != stateLeft {
		t.Fatalf("state: %v %v", recs, err)
	}
}

func TestCodecRejectsGarbage(t *testing.T) {
	rec := testRecord("member-1", StateActive, time.Unix(1_700_000_000, 0))
	for _, msg := range [][]byte{encodeFull(rec), encodeBeat(rec), encodeState([]*record{rec, rec})} {
		kind, payload, _ := decodeHeader(msg)
		decode := func(p []byte) error {
			var err error
			switch kind {
			case kindFull:
				_, err = decodeFull(p)
			case kindBeat:
				_, err = decodeBeat(p)
			case kindState:
				_, err = decodeState(p)
			}
			return err
		}
		for i := range len(payload) {
			if decode(payload[:i]) == nil {
				t.Fatalf("kind %d: truncated payload of %d/%d bytes accepted", kind, i, len(payload))
			}
		}
		rng := rand.New(rand.NewPCG(3, 4))
		for range 2000 { // must not panic
			p := slices.Clone(payload)
			p[rng.IntN(len(p))] = byte(rng.UintN(256))
			_ = decode(p)
		}
	}
	if _, _, err := decodeHeader([]byte{codecVersion + 1, kindFull}); err == nil {
		t.Fatal("unknown format version accepted")
	}
}

func TestTokensAreDeterministic(t *testing.T) {
	a := tokensFor("receiver-1", 128)
	if !slices.Equal(a, tokensFor("receiver-1", 128)) {
		t.Fatal("tokens differ between runs")
	}
	if len(a) != 128 || !isSortedUnique(a) {
		t.Fatalf("want 128 sorted distinct tokens, got %d", len(a))
	}
	if slices.Equal(a, tokensFor("receiver-2", 128)) {
		t.Fatal("different members got the same tokens")
	}
	if big := tokensFor("receiver-1", maxTokens); len(big) != maxTokens || !isSortedUnique(big) {
		t.Fatalf("want %d sorted distinct tokens, got %d", maxTokens, len(big))
	}
}

func TestKeyFor(t *testing.T) {
	if keyFor("t1", 42) != keyFor("t1", 42) {
		t.Fatal("keyFor is not deterministic")
	}
	if keyFor("t1", 42) == keyFor("t2", 42) {
		t.Fatal("tenant does not change the key")
	}
	if keyFor("t1", 42) == keyFor("t1", 43) {
		t.Fatal("series hash does not change the key")
	}
	if n := testing.AllocsPerRun(100, func() { _ = keyFor("tenant-a", 12345) }); n != 0 {
		t.Fatalf("keyFor allocates %v times", n)
	}
	if Quorum(1) != 1 || Quorum(2) != 2 || Quorum(3) != 2 || Quorum(5) != 3 {
		t.Fatal("quorum")
	}
}

func TestMemberlistLogLevels(t *testing.T) {
	cases := []struct {
		line  string
		level slog.Level
		msg   string
	}{
		{"[DEBUG] memberlist: Stream connection from=127.0.0.1:1234\n", slog.LevelDebug, "Stream connection from=127.0.0.1:1234"},
		{"[INFO] memberlist: Updating address\n", slog.LevelInfo, "Updating address"},
		{"[WARN] memberlist: Refuting a dead message\n", slog.LevelWarn, "Refuting a dead message"},
		{"[ERR] memberlist: Push/Pull failed\n", slog.LevelError, "Push/Pull failed"},
		{"no prefix at all\n", slog.LevelInfo, "no prefix at all"},
	}
	for _, tc := range cases {
		t.Run(tc.msg, func(t *testing.T) {
			var got []slog.Record
			h := recordingHandler{records: &got}
			if _, err := (memberlistLog{slog.New(h)}).Write([]byte(tc.line)); err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0].Level != tc.level || got[0].Message != tc.msg {
				t.Fatalf("got %+v", got)
			}
		})
	}
}

type recordingHandler struct{ records *[]slog.Record }

func (h recordingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h recordingHandler) Handle(_ context.Context, r slog.Record) error {
	*h.records = append(*h.records, r)
	return nil
}
func (h recordingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h recordingHandler) WithGroup(string) slog.Handler      { return h }
