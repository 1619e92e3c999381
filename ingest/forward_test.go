package ingest

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/atoll-metrics/atoll/ingest/writepb"
)

// TestForwardedWritesOnlyFromRingPeers: the forwarding API stores what a
// ring receiver sends and refuses anyone else, here a process on another
// loopback address that is no member of the ring.
func TestForwardedWritesOnlyFromRingPeers(t *testing.T) {
	self := receiverRing(t, "a", "127.0.0.1:1")
	router := NewRouter(openShards(t), self, RouterOptions{ReplicationFactor: 1}, nil, prometheus.NewRegistry())
	t.Cleanup(func() { _ = router.Close() })
	srv := grpc.NewServer()
	RegisterWriteServer(srv, func() *Router { return router }, nil)
	l, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	port := l.Addr().(*net.TCPAddr).Port

	raw, err := (&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series("up", time.Now().UnixMilli(), 1, "job", "a")}}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	forwardFrom := func(src string) error {
		t.Helper()
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		conn, err := grpc.NewClient(net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err = writepb.NewWriterClient(conn).Write(ctx, &writepb.WriteRequest{Tenant: "team-b", WriteRequest: raw})
		return err
	}
	// The member's gossip address is 127.0.0.1: a process there may forward.
	if err := forwardFrom("127.0.0.1"); err != nil {
		t.Fatalf("forward from the ring member's address: %v", err)
	}
	err = forwardFrom("127.0.0.2")
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("forward from a non-member address: %v, want PermissionDenied", err)
	}
	if got := testutil.ToFloat64(router.forwardRefused); got != 1 {
		t.Errorf("refused forwards = %v, want 1", got)
	}
}
