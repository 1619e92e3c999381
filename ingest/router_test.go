package ingest

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/grpc"

	"github.com/atoll-metrics/atoll/ring"
	"github.com/atoll-metrics/atoll/tenant"
)

// receiverRing starts a ring member on loopback whose Store and forwarding
// address is grpcAddr, and stops it when the test ends.
func receiverRing(t *testing.T, id, grpcAddr string, join ...string) *ring.Ring {
	t.Helper()
	cfg := ring.DefaultConfig()
	cfg.InstanceID = id
	cfg.ListenAddress = "127.0.0.1:0"
	cfg.Join = join
	cfg.GRPCAddress = grpcAddr
	cfg.HeartbeatPeriod = 100 * time.Millisecond
	cfg.HeartbeatTimeout = 5 * time.Second
	cfg.Gossip.ProbeInterval = 200 * time.Millisecond
	cfg.Gossip.GossipInterval = 30 * time.Millisecond
	cfg.Gossip.PushPullInterval = 500 * time.Millisecond
	cfg.Gossip.JoinBackoffMin = 50 * time.Millisecond
	cfg.Gossip.JoinBackoffMax = 500 * time.Millisecond
	cfg.Gossip.LeaveTimeout = time.Second
	r, err := ring.New(cfg, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ring %s: %v", id, err)
		}
	})
	r.SetState(ring.StateActive)
	return r
}

// peerReceiver serves the forwarding API over its own TSDBs on loopback;
// every forwarded write first waits for hold to return.
func peerReceiver(t *testing.T, hold func()) string {
	t.Helper()
	local := NewRouter(openShards(t), nil, RouterOptions{}, nil, prometheus.NewRegistry())
	srv := grpc.NewServer()
	RegisterWriteServer(srv, func() *Router { return local }, func() bool { hold(); return true })
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(l)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-served
	})
	return l.Addr().String()
}

// TestCloseWaitsForForwardsInFlight has a write answered at quorum while
// one replica still holds its forwarded copy: Close must wait for that
// forward rather than close the connection under it, and later writes must
// be refused as unavailable.
func TestCloseWaitsForForwardsInFlight(t *testing.T) {
	release := make(chan struct{})
	held := make(chan struct{}, 16)
	fastAddr := peerReceiver(t, func() {})
	slowAddr := peerReceiver(t, func() {
		held <- struct{}{}
		<-release
	})
	self := receiverRing(t, "a", "127.0.0.1:1")
	receiverRing(t, "b", fastAddr, self.GossipAddr())
	receiverRing(t, "c", slowAddr, self.GossipAddr())
	deadline := time.Now().Add(20 * time.Second)
	for healthy := 0; healthy < 3; {
		if time.Now().After(deadline) {
			t.Fatalf("ring members healthy: %d of 3", healthy)
		}
		time.Sleep(20 * time.Millisecond)
		healthy = 0
		snap := self.Snapshot()
		for _, m := range snap.Members() {
			if snap.Healthy(m.ID) {
				healthy++
			}
		}
	}

	router := NewRouter(openShards(t), self, RouterOptions{ReplicationFactor: 3, ForwardTimeout: 20 * time.Second}, nil, prometheus.NewRegistry())
	wr := decodeRequest(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series("up", 1000, 1, "job", "a")}})
	res, err := router.write(t.Context(), tenant.Default, wr)
	if err != nil || res.stored != 1 {
		t.Fatalf("write: stored %d, err %v; want 1 stored at quorum", res.stored, err)
	}
	select {
	case <-held:
	case <-time.After(10 * time.Second):
		t.Fatal("the slow replica never got its copy")
	}

	closed := make(chan struct{})
	go func() {
		_ = router.Close()
		close(closed)
	}()
	select {
	case <-closed:
		t.Fatal("Close returned while a forward was in flight")
	case <-time.After(300 * time.Millisecond):
	}
	close(release)
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return after the forward finished")
	}
	if got := testutil.ToFloat64(router.forwarded.WithLabelValues("success")); got != 2 {
		t.Errorf("successful forwards = %v, want 2: the held one completed", got)
	}

	_, err = router.write(t.Context(), tenant.Default, wr)
	if !errors.Is(err, errUnavailable) {
		t.Errorf("write after Close: %v, want unavailable", err)
	}
}

func decodeRequest(t *testing.T, req *prompb.WriteRequest) *writeRequest {
	t.Helper()
	raw, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var wr writeRequest
	if err := wr.Decode(raw); err != nil {
		t.Fatal(err)
	}
	return &wr
}
