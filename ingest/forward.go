package ingest

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	grpcpeer "google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/atoll-metrics/atoll/ingest/writepb"
	"github.com/atoll-metrics/atoll/ring"
	"github.com/atoll-metrics/atoll/tenant"
)

// peerPool keeps one gRPC connection per peer receiver, created on first
// use. gRPC multiplexes concurrent writes over it and reconnects by itself;
// an unused connection goes idle and releases its transport.
type peerPool struct {
	maxInFlight int
	dialOpts    []grpc.DialOption
	logger      *slog.Logger

	mtx   sync.Mutex
	peers map[string]*peer
}

type peer struct {
	conn     *grpc.ClientConn
	client   writepb.WriterClient
	inFlight chan struct{}
}

func newPeerPool(maxInFlight int, dialOpts []grpc.DialOption, logger *slog.Logger) *peerPool {
	return &peerPool{maxInFlight: maxInFlight, dialOpts: dialOpts, logger: logger, peers: map[string]*peer{}}
}

func (p *peerPool) get(addr string) (*peer, error) {
	p.mtx.Lock()
	defer p.mtx.Unlock()
	if pe, ok := p.peers[addr]; ok {
		return pe, nil
	}
	opts := append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20), grpc.MaxCallSendMsgSize(64<<20)),
	}, p.dialOpts...)
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return nil, err
	}
	pe := &peer{conn: conn, client: writepb.NewWriterClient(conn), inFlight: make(chan struct{}, p.maxInFlight)}
	p.peers[addr] = pe
	return pe, nil
}

func (p *peerPool) write(ctx context.Context, addr, tenant string, body []byte) (*writepb.WriteResponse, error) {
	pe, err := p.get(addr)
	if err != nil {
		return nil, err
	}
	select {
	case pe.inFlight <- struct{}{}:
	default:
		return nil, errPeerBusy
	}
	defer func() { <-pe.inFlight }()
	return pe.client.Write(ctx, &writepb.WriteRequest{Tenant: tenant, WriteRequest: body})
}

func (p *peerPool) close() {
	p.mtx.Lock()
	defer p.mtx.Unlock()
	for addr, pe := range p.peers {
		_ = pe.conn.Close()
		delete(p.peers, addr)
	}
}

// writeServer receives the writes peers forward.
type writeServer struct {
	writepb.UnimplementedWriterServer
	router func() *Router
	ready  func() bool
	pool   sync.Pool // of *writeRequest
}

// RegisterWriteServer serves the forwarding API on s, storing what arrives
// through the local writer of the router that router returns; it answers
// Unavailable while that is nil or ready is false, as during WAL replay.
//
// A forwarded write is stored under the tenant it names, past the HTTP
// edge's authentication and limits, so it is taken only from a ring peer:
// the caller's address must be a receiver's in the ring (its gossip
// address, which memberlist talks to, or its gRPC address), and with
// mutual TLS on s its certificate must be one the cluster's CA signed.
// Joining the ring needs the gossip key, and a connection from an address
// needs that address: someone on the network without the key can neither
// appear as a receiver nor borrow one's address for a TCP connection.
// Others get PermissionDenied.
func RegisterWriteServer(s *grpc.Server, router func() *Router, ready func() bool) {
	if ready == nil {
		ready = func() bool { return true }
	}
	writepb.RegisterWriterServer(s, &writeServer{router: router, ready: ready})
}

func (w *writeServer) Write(ctx context.Context, req *writepb.WriteRequest) (*writepb.WriteResponse, error) {
	router := w.router()
	if router == nil || !w.ready() {
		return nil, status.Error(codes.Unavailable, "receiver is starting or stopping")
	}
	if err := router.checkForwarder(ctx); err != nil {
		return nil, err
	}
	if err := tenant.Validate(req.Tenant); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	wr, _ := w.pool.Get().(*writeRequest)
	if wr == nil {
		wr = &writeRequest{}
	}
	defer w.pool.Put(wr)
	if err := wr.Decode(req.WriteRequest); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	res, err := router.writeLocal(ctx, req.Tenant, wr)
	if err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	return &writepb.WriteResponse{Conflicts: res.conflicts, Invalid: res.invalid, Limited: res.limited, Message: res.message}, nil
}

// forwarders are the addresses ring peers forward from, for one view of
// the ring.
type forwarders struct {
	view  <-chan struct{} // the snapshot's Changed: a new view, a new set
	addrs map[netip.Addr]bool
}

// checkForwarder refuses a forwarded write whose caller is not a receiver
// of the ring.
func (r *Router) checkForwarder(ctx context.Context) error {
	if r.opts.AnyForwarder || r.ring == nil {
		return nil
	}
	p, ok := grpcpeer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return status.Error(codes.PermissionDenied, "forwarded writes are taken from ring peers only; the caller's address is unknown")
	}
	ap, err := netip.ParseAddrPort(p.Addr.String())
	if err != nil {
		return status.Errorf(codes.PermissionDenied, "forwarded writes are taken from ring peers only; cannot read the caller's address %s", p.Addr)
	}
	if !r.forwarderAddrs()[ap.Addr().Unmap()] {
		r.forwardRefused.Inc()
		return status.Errorf(codes.PermissionDenied, "forwarded writes are taken from ring peers only; %s is no receiver's address in the ring", ap.Addr())
	}
	return nil
}

// forwarderAddrs returns the IPs of the ring's receivers, computed once
// per view of the ring.
func (r *Router) forwarderAddrs() map[netip.Addr]bool {
	snap := r.ring.Snapshot()
	if f := r.fwd.Load(); f != nil && f.view == snap.Changed() {
		return f.addrs
	}
	addrs := map[netip.Addr]bool{}
	for _, m := range snap.Members() {
		if m.Role != ring.RoleReceiver {
			continue
		}
		for _, a := range []string{m.GossipAddr, m.GRPCAddr} {
			host, _, err := net.SplitHostPort(a)
			if err != nil {
				continue
			}
			if ip, err := netip.ParseAddr(host); err == nil {
				addrs[ip.Unmap()] = true
			}
		}
	}
	r.fwd.Store(&forwarders{view: snap.Changed(), addrs: addrs})
	return addrs
}
