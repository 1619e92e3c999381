package ring

import (
	"context"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/atoll-metrics/atoll/internal/e2eproc"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const waitTimeout = 15 * time.Second

// testConfig is a member on loopback with timings short enough for tests
// and loose enough for the race detector on a busy machine.
func testConfig(id string, join ...string) Config {
	cfg := DefaultConfig()
	cfg.InstanceID = id
	cfg.ListenAddress = "127.0.0.1:0"
	cfg.Join = join
	cfg.GRPCAddress = id + ".grpc:10901"
	cfg.HTTPAddress = id + ".http:10902"
	cfg.HeartbeatPeriod = 100 * time.Millisecond
	cfg.HeartbeatTimeout = 2 * time.Second
	cfg.ForgetAfter = 4 * time.Second
	cfg.Gossip = GossipConfig{
		ProbeInterval: 500 * time.Millisecond,
		ProbeTimeout:  300 * time.Millisecond,
		// 2 makes memberlist wait a fixed 2 probe intervals before declaring
		// a suspect dead, whatever the cluster size.
		SuspicionMult:       2,
		GossipInterval:      30 * time.Millisecond,
		GossipNodes:         3,
		RetransmitMult:      4,
		PushPullInterval:    500 * time.Millisecond,
		GossipToTheDeadTime: 2 * time.Second,
		TCPTimeout:          2 * time.Second,
		JoinBackoffMin:      50 * time.Millisecond,
		JoinBackoffMax:      500 * time.Millisecond,
		LeaveTimeout:        2 * time.Second,
	}
	return cfg
}

func testLogger() *slog.Logger {
	if !testing.Verbose() {
		return slog.New(slog.DiscardHandler)
	}
	// Not t.Log: memberlist's goroutines may log a moment after a test ends.
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testMember struct {
	t      *testing.T
	r      *Ring
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

// startMember creates and runs a Ring; the test's cleanup stops it and
// checks that Run returned.
func startMember(t *testing.T, cfg Config) *testMember {
	t.Helper()
	reg := prometheus.NewRegistry()
	r, err := New(cfg, testLogger(), reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &testMember{t: t, r: r, reg: reg, cancel: cancel, done: make(chan error, 1)}
	go func() { m.done <- r.Run(ctx) }()
	t.Cleanup(m.stop)
	return m
}

// stop leaves gracefully and waits for Run to return.
func (m *testMember) stop() {
	m.once.Do(func() {
		m.cancel()
		select {
		case err := <-m.done:
			if err != nil {
				m.t.Errorf("Run: %v", err)
			}
		case <-time.After(waitTimeout):
			m.t.Errorf("Run of %s did not return", m.r.cfg.InstanceID)
		}
	})
}

// crash stops gossip the way a killed process does: no LEAVING, no
// memberlist leave.
func (m *testMember) crash() { _ = m.r.Close() }

func (m *testMember) addr() string { return m.r.GossipAddr() }

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func ids(s *Snapshot) []string {
	var out []string
	for _, m := range s.Members() {
		out = append(out, m.ID)
	}
	return out
}

func healthyIDs(s *Snapshot) []string {
	var out []string
	for _, m := range s.Members() {
		if s.Healthy(m.ID) {
			out = append(out, m.ID)
		}
	}
	return out
}

func member(s *Snapshot, id string) (Member, bool) {
	i, ok := s.index(id)
	if !ok {
		return Member{}, false
	}
	return s.Members()[i], true
}

// ownersOf lists owner ids of a sample of keys, to compare views.
func ownersOf(s *Snapshot) [][]string {
	var out [][]string
	var owners []int
	for i := range 2000 {
		owners = s.Owners(keyFor("tenant", uint64(i)), owners)
		var set []string
		for _, o := range owners {
			set = append(set, s.Members()[o].ID)
		}
		out = append(out, set)
	}
	return out
}

// startCluster starts members a, b, c... joining the first one, makes them
// ACTIVE and waits until everyone sees everyone healthy.
func startCluster(t *testing.T, n int, tweak func(i int, cfg *Config)) []*testMember {
	t.Helper()
	var ms []*testMember
	for i := range n {
		var join []string
		if i > 0 {
			join = []string{ms[0].addr()}
		}
		cfg := testConfig(string(rune('a'+i)), join...)
		if tweak != nil {
			tweak(i, &cfg)
		}
		ms = append(ms, startMember(t, cfg))
	}
	for _, m := range ms {
		m.r.SetState(StateActive)
	}
	waitHealthy(t, ms, n)
	return ms
}

func waitHealthy(t *testing.T, ms []*testMember, n int) {
	t.Helper()
	eventually(t, "every member to see every member healthy", func() bool {
		for _, m := range ms {
			if len(healthyIDs(m.r.Snapshot())) != n {
				return false
			}
		}
		return true
	})
}

func TestMembersStartingInAnyOrderConverge(t *testing.T) {
	// a is told to join b, which does not exist yet.
	bAddr := "127.0.0.1:" + strconv.Itoa(e2eproc.Ports(t, 1)[0])
	a := startMember(t, testConfig("a", bAddr))
	eventually(t, "a to fail a join attempt", func() bool {
		return testutil.ToFloat64(a.r.metrics.joinAttempts.WithLabelValues("failure")) >= 2
	})
	bCfg := testConfig("b")
	bCfg.ListenAddress = bAddr
	b := startMember(t, bCfg)
	c := startMember(t, testConfig("c", b.addr()))
	d := startMember(t, testConfig("d", c.addr()))
	ms := []*testMember{a, b, c, d}

	eventually(t, "everyone to see four JOINING members", func() bool {
		for _, m := range ms {
			if len(m.r.Snapshot().Members()) != 4 || len(healthyIDs(m.r.Snapshot())) != 0 {
				return false
			}
		}
		return true
	})
	changed := a.r.Snapshot().Changed()
	for _, m := range ms {
		m.r.SetState(StateActive)
	}
	select {
	case <-changed:
	case <-time.After(waitTimeout):
		t.Fatal("Changed not closed when a member became ACTIVE")
	}
	waitHealthy(t, ms, 4)

	// Views are compared at slightly different moments, so a health flap
	// on a loaded machine may split them for a moment; they must agree.
	eventually(t, "every member to place keys the same way", func() bool {
		want := ownersOf(a.r.Snapshot())
		for _, m := range ms[1:] {
			if got := ownersOf(m.r.Snapshot()); !slices.EqualFunc(got, want, slices.Equal) {
				return false
			}
		}
		return true
	})
	s := b.r.Snapshot()
	ma, _ := member(s, "a")
	if ma.GRPCAddr != "a.grpc:10901" || ma.HTTPAddr != "a.http:10902" || ma.GossipAddr != a.addr() ||
		ma.Role != RoleReceiver || !slices.Equal(ma.Tokens, tokensFor("a", 128)) {
		t.Fatalf("b's view of a: %+v", ma)
	}
	if s.Self() < 0 || s.Members()[s.Self()].ID != "b" {
		t.Fatalf("Self() = %d", s.Self())
	}
	if err := a.r.Run(context.Background()); err == nil {
		t.Fatal("a second Run was accepted")
	}

	for _, name := range []string{"atoll_ring_members", "atoll_ring_member_heartbeat_age_seconds", "atoll_ring_gossip_messages_received_total"} {
		if n, err := testutil.GatherAndCount(a.reg, name); err != nil || n == 0 {
			t.Errorf("metric %s: %d series, %v", name, n, err)
		}
	}
	if got := testutil.ToFloat64(a.r.metrics.messagesReceived.WithLabelValues("beat")); got == 0 {
		t.Error("no heartbeats received")
	}
}

// unhealthyWithout waits until m sees id unhealthy and checks that the same
// snapshot never picks id as an owner.
func unhealthyWithout(t *testing.T, m *testMember, id string) {
	t.Helper()
	var s *Snapshot
	eventually(t, id+" to turn unhealthy", func() bool {
		s = m.r.Snapshot()
		return !s.Healthy(id)
	})
	for _, set := range ownersOf(s) {
		if slices.Contains(set, id) || len(set) == 0 {
			t.Fatalf("owners %v while %s is unhealthy", set, id)
		}
	}
}

func TestFailureDetectorMarksCrashedMemberUnhealthy(t *testing.T) {
	// Heartbeats alone would keep c healthy for a minute: only memberlist's
	// failure detector can flag it within the test's timeout.
	ms := startCluster(t, 3, func(_ int, cfg *Config) {
		cfg.HeartbeatTimeout = time.Minute
		cfg.ForgetAfter = 2 * time.Minute
	})
	a, b, c := ms[0], ms[1], ms[2]
	c.crash()
	unhealthyWithout(t, a, "c")
	unhealthyWithout(t, b, "c")
	if m, ok := member(a.r.Snapshot(), "c"); !ok || m.State != StateActive {
		t.Fatalf("a crashed member stays listed, ACTIVE but unhealthy, until forgotten: %+v", m)
	}
}

func TestSilentMemberIsForgottenForGood(t *testing.T) {
	ms := startCluster(t, 3, nil)
	a, b, c := ms[0], ms[1], ms[2]

	c.r.mu.Lock()
	lastWords := encodeFull(c.r.self)
	lastRecord := c.r.self
	c.r.mu.Unlock()
	c.crash()

	unhealthyWithout(t, a, "c")
	unhealthyWithout(t, b, "c")
	for _, m := range []*testMember{a, b} {
		eventually(t, "c to be forgotten", func() bool {
			_, ok := member(m.r.Snapshot(), "c")
			return !ok
		})
	}
	if got := testutil.ToFloat64(a.r.metrics.forgotten); got != 1 {
		t.Errorf("forgotten counter %v, want 1", got)
	}

	// Stale news about c, as a lagging peer would send it, does not bring
	// it back, by gossip or by push/pull.
	gossipDelegate{a.r}.NotifyMsg(lastWords)
	gossipDelegate{a.r}.MergeRemoteState(encodeState([]*record{lastRecord}), false)
	time.Sleep(3 * c.r.cfg.Gossip.PushPullInterval)
	for _, m := range []*testMember{a, b} {
		if _, ok := member(m.r.Snapshot(), "c"); ok {
			t.Fatalf("%s resurrected c", m.r.cfg.InstanceID)
		}
		m.r.mu.Lock()
		_, kept := m.r.records["c"]
		m.r.mu.Unlock()
		if kept {
			t.Fatalf("%s keeps a record of c", m.r.cfg.InstanceID)
		}
	}
}

func TestGracefulStopShowsLeavingThenGone(t *testing.T) {
	ms := startCluster(t, 3, nil)
	a, b, c := ms[0], ms[1], ms[2]

	// Watch a's view of c through Changed, as a component would.
	seen := make(chan []string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		var states []string
		defer func() { seen <- states }()
		for {
			s := a.r.Snapshot()
			st := "gone"
			if m, ok := member(s, "c"); ok {
				st = m.State.String()
			}
			if len(states) == 0 || states[len(states)-1] != st {
				states = append(states, st)
			}
			if st == "gone" {
				return
			}
			select {
			case <-s.Changed():
			case <-ctx.Done():
				return
			}
		}
	}()

	c.stop()
	states := <-seen
	if !slices.Equal(states, []string{"ACTIVE", "LEAVING", "gone"}) {
		t.Fatalf("a saw c go through %v", states)
	}
	eventually(t, "b to forget c", func() bool {
		_, ok := member(b.r.Snapshot(), "c")
		return !ok
	})
	// Gone for good: nobody brings it back from an older record.
	time.Sleep(3 * a.r.cfg.Gossip.PushPullInterval)
	for _, m := range []*testMember{a, b} {
		if slices.Contains(ids(m.r.Snapshot()), "c") {
			t.Fatalf("%s sees c again", m.r.cfg.InstanceID)
		}
	}
	if got := testutil.ToFloat64(a.r.metrics.forgotten); got != 0 {
		t.Errorf("a member that left was counted as forgotten")
	}
}

func TestRestartKeepsTokens(t *testing.T) {
	ms := startCluster(t, 3, nil)
	a, b, c := ms[0], ms[1], ms[2]
	before, _ := member(a.r.Snapshot(), "c")

	c.stop()
	eventually(t, "c to leave", func() bool { return !slices.Contains(ids(a.r.Snapshot()), "c") })

	// Back with the same id, on another port.
	c2 := startMember(t, testConfig("c", b.addr()))
	c2.r.SetState(StateActive)
	eventually(t, "a to see the restarted c healthy", func() bool {
		m, ok := member(a.r.Snapshot(), "c")
		return ok && a.r.Snapshot().Healthy("c") && m.GossipAddr == c2.addr()
	})
	after, _ := member(a.r.Snapshot(), "c")
	if !slices.Equal(before.Tokens, after.Tokens) || before.GossipAddr == after.GossipAddr {
		t.Fatal("restarted member owns different tokens")
	}

	// Killed and restarted at once: the old process's death, when memberlist
	// notices it, must not count against the new one.
	c2.r.mu.Lock()
	oldNode := c2.r.nodeName
	c2.r.mu.Unlock()
	c2.crash()
	c3 := startMember(t, testConfig("c", a.addr()))
	c3.r.SetState(StateActive)
	eventually(t, "memberlist to declare the old c dead", func() bool {
		return !slices.ContainsFunc(a.r.ml.Members(), func(n *memberlist.Node) bool { return n.Name == oldNode })
	})
	eventually(t, "a to see the new c healthy", func() bool {
		m, ok := member(a.r.Snapshot(), "c")
		return ok && a.r.Snapshot().Healthy("c") && m.GossipAddr == c3.addr()
	})
}

func TestClusterLabelsKeepClustersApart(t *testing.T) {
	blue := func(id string, join ...string) Config {
		cfg := testConfig(id, join...)
		cfg.ClusterLabel = "blue"
		return cfg
	}
	blue1 := startMember(t, blue("blue-1"))
	blue2 := startMember(t, blue("blue-2", blue1.addr()))
	greenCfg := testConfig("green-1", blue1.addr(), blue2.addr())
	greenCfg.ClusterLabel = "green"
	green := startMember(t, greenCfg)

	eventually(t, "the blue members to find each other", func() bool {
		return len(blue1.r.Snapshot().Members()) == 2 && len(blue2.r.Snapshot().Members()) == 2
	})
	eventually(t, "green to fail joining blue a few times", func() bool {
		return testutil.ToFloat64(green.r.metrics.joinAttempts.WithLabelValues("failure")) >= 3
	})
	for _, m := range []*testMember{blue1, blue2} {
		if got := ids(m.r.Snapshot()); !slices.Equal(got, []string{"blue-1", "blue-2"}) {
			t.Fatalf("%s sees %v", m.r.cfg.InstanceID, got)
		}
	}
	if got := ids(green.r.Snapshot()); !slices.Equal(got, []string{"green-1"}) {
		t.Fatalf("green sees %v", got)
	}
}

func TestZonesOverGossip(t *testing.T) {
	zones := []string{"z1", "z1", "z2", "z3"}
	ms := startCluster(t, 4, func(i int, cfg *Config) { cfg.Zone = zones[i] })
	s := ms[3].r.Snapshot()
	var owners []int
	for i := range 10_000 {
		owners = s.Owners(keyFor("t", uint64(i)), owners)
		seen := map[string]bool{}
		for _, o := range owners {
			seen[s.Members()[o].Zone] = true
		}
		if len(owners) != 3 || len(seen) != 3 {
			t.Fatalf("owners %v span zones %v", owners, seen)
		}
	}
}

func TestQuerierOwnsNoTokens(t *testing.T) {
	ms := startCluster(t, 2, func(i int, cfg *Config) {
		if i == 1 {
			cfg.Role = RoleQuerier
		}
	})
	s := ms[1].r.Snapshot()
	q, _ := member(s, "b")
	if q.Role != RoleQuerier || len(q.Tokens) != 0 {
		t.Fatalf("querier entry: %+v", q)
	}
	for _, set := range ownersOf(s) {
		if !slices.Equal(set, []string{"a"}) {
			t.Fatalf("owners %v, want only the receiver", set)
		}
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	cases := map[string]func(*Config){
		"no instance id":           func(c *Config) { c.InstanceID = "" },
		"bad listen address":       func(c *Config) { c.ListenAddress = "localhost" },
		"no tokens":                func(c *Config) { c.NumTokens = 0 },
		"zero replication":         func(c *Config) { c.ReplicationFactor = 0 },
		"timeout below period":     func(c *Config) { c.HeartbeatTimeout = c.HeartbeatPeriod },
		"forget below timeout":     func(c *Config) { c.ForgetAfter = c.HeartbeatTimeout },
		"label too long":           func(c *Config) { c.ClusterLabel = string(make([]byte, 256)) },
		"zero gossip tuning":       func(c *Config) { c.Gossip = GossipConfig{} },
		"unresolvable advertise":   func(c *Config) { c.AdvertiseAddress = "no-such-host.invalid:7946" },
		"bad advertise port":       func(c *Config) { c.AdvertiseAddress = "127.0.0.1:http" },
		"listen port out of range": func(c *Config) { c.ListenAddress = "127.0.0.1:70000" },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig("x")
			mutate(&cfg)
			r, err := New(cfg, nil, nil)
			if err == nil {
				_ = r.Close()
				t.Fatal("accepted")
			}
		})
	}
}

func TestCloseWithoutRun(t *testing.T) {
	cfg := testConfig("x")
	cfg.AdvertiseAddress = "127.0.0.1"
	r, err := New(cfg, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if _, port, _ := net.SplitHostPort(r.GossipAddr()); port == "0" {
		t.Fatalf("gossip address %s lacks the bound port", r.GossipAddr())
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Run(context.Background()); err == nil {
		t.Fatal("Run after Close accepted")
	}
}
