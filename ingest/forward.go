package ingest

import (
	"context"
	"log/slog"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/atoll-metrics/atoll/ingest/writepb"
	"github.com/atoll-metrics/atoll/tenant"
)

// peerPool keeps one gRPC connection per peer receiver, created on first
// use. gRPC multiplexes concurrent writes over it and reconnects by itself;
// an unused connection goes idle and releases its transport.
type peerPool struct {
	maxInFlight int
	logger      *slog.Logger

	mtx   sync.Mutex
	peers map[string]*peer
}

type peer struct {
	conn     *grpc.ClientConn
	client   writepb.WriterClient
	inFlight chan struct{}
}

func newPeerPool(maxInFlight int, logger *slog.Logger) *peerPool {
	return &peerPool{maxInFlight: maxInFlight, logger: logger, peers: map[string]*peer{}}
}

func (p *peerPool) get(addr string) (*peer, error) {
	p.mtx.Lock()
	defer p.mtx.Unlock()
	if pe, ok := p.peers[addr]; ok {
		return pe, nil
	}
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20), grpc.MaxCallSendMsgSize(64<<20)),
	)
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
