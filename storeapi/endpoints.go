package storeapi

import (
	"context"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Endpoints keeps a Remote per Store API address and checks each one
// with Info in the background. Queries use only the endpoints that answered
// their last check: a receiver that died drops out of queries within one
// check, and its replicas answer for it.
type Endpoints struct {
	logger   *slog.Logger
	timeout  time.Duration
	dialOpts []grpc.DialOption

	mtx       sync.RWMutex
	endpoints map[string]*endpoint
	closed    bool // Run has closed every connection; Set adds none

	healthyGauge prometheus.Gauge
	checks       *prometheus.CounterVec
}

type endpoint struct {
	conn      *grpc.ClientConn
	store     *Remote
	healthy   bool
	static    bool
	lastCheck time.Time
	lastErr   error
}

// NewEndpoints returns an empty set; Set fills it. Connections to stores
// are plaintext unless dialOpts give transport credentials.
func NewEndpoints(logger *slog.Logger, reg prometheus.Registerer, dialOpts ...grpc.DialOption) *Endpoints {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	f := promauto.With(reg)
	return &Endpoints{
		logger:    logger,
		timeout:   5 * time.Second,
		dialOpts:  dialOpts,
		endpoints: map[string]*endpoint{},
		healthyGauge: f.NewGauge(prometheus.GaugeOpts{
			Name: "atoll_querier_endpoints_healthy",
			Help: "Store API endpoints that answered their last check.",
		}),
		checks: f.NewCounterVec(prometheus.CounterOpts{
			Name: "atoll_querier_endpoint_checks_total",
			Help: "Info checks of Store API endpoints, by outcome.",
		}, []string{"outcome"}),
	}
}

// Set makes addrs the endpoints: new ones are connected and checked at
// once, missing ones closed. Static addresses (from --store) are never
// removed by a later Set of dynamic ones.
func (e *Endpoints) Set(ctx context.Context, addrs []string, static bool) {
	want := map[string]bool{}
	for _, a := range addrs {
		want[a] = true
	}
	var added []*endpoint
	e.mtx.Lock()
	if e.closed {
		e.mtx.Unlock()
		return
	}
	for addr, ep := range e.endpoints {
		if !want[addr] && ep.static == static {
			_ = ep.conn.Close()
			delete(e.endpoints, addr)
			e.logger.Info("store endpoint removed", "address", addr)
		}
	}
	for addr := range want {
		if _, ok := e.endpoints[addr]; ok {
			continue
		}
		opts := append([]grpc.DialOption{
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(256 << 20)),
		}, e.dialOpts...)
		conn, err := grpc.NewClient(addr, opts...)
		if err != nil {
			e.logger.Warn("cannot connect to store endpoint", "address", addr, "err", err)
			continue
		}
		ep := &endpoint{conn: conn, store: NewRemote(addr, conn), static: static}
		e.endpoints[addr] = ep
		added = append(added, ep)
		e.logger.Info("store endpoint added", "address", addr)
	}
	e.mtx.Unlock()
	for _, ep := range added {
		e.check(ctx, ep)
	}
}

// EndpointStatus is what the last check of an endpoint found.
type EndpointStatus struct {
	Name string
	// Static endpoints were given on the command line; the others were
	// found in the ring.
	Static    bool
	Healthy   bool
	LastCheck time.Time
	LastError error
	// Info is the endpoint's last answer; zero if it never answered.
	Info Info
}

// Status reports every endpoint, healthy or not, sorted by name.
func (e *Endpoints) Status(ctx context.Context) []EndpointStatus {
	e.mtx.RLock()
	out := make([]EndpointStatus, 0, len(e.endpoints))
	stores := make([]*Remote, 0, len(e.endpoints))
	for _, ep := range e.endpoints {
		out = append(out, EndpointStatus{Name: ep.store.Name(), Static: ep.static, Healthy: ep.healthy, LastCheck: ep.lastCheck, LastError: ep.lastErr})
		stores = append(stores, ep.store)
	}
	e.mtx.RUnlock()
	for i, s := range stores {
		if !out[i].LastCheck.IsZero() {
			out[i].Info, _ = s.Info(ctx)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Stores lists the endpoints that answered their last check.
func (e *Endpoints) Stores() []Store {
	e.mtx.RLock()
	defer e.mtx.RUnlock()
	out := make([]Store, 0, len(e.endpoints))
	for _, ep := range e.endpoints {
		if ep.healthy {
			out = append(out, ep.store)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out
}

// CheckAll checks every endpoint once, concurrently.
func (e *Endpoints) CheckAll(ctx context.Context) {
	e.mtx.RLock()
	eps := make([]*endpoint, 0, len(e.endpoints))
	for _, ep := range e.endpoints {
		eps = append(eps, ep)
	}
	e.mtx.RUnlock()
	var wg sync.WaitGroup
	for _, ep := range eps {
		wg.Go(func() { e.check(ctx, ep) })
	}
	wg.Wait()
	healthy := 0
	e.mtx.RLock()
	for _, ep := range e.endpoints {
		if ep.healthy {
			healthy++
		}
	}
	e.mtx.RUnlock()
	e.healthyGauge.Set(float64(healthy))
}

func (e *Endpoints) check(ctx context.Context, ep *endpoint) {
	ctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	err := ep.store.RefreshInfo(ctx)
	e.mtx.Lock()
	was := ep.healthy
	ep.healthy = err == nil
	ep.lastCheck, ep.lastErr = time.Now(), err
	e.mtx.Unlock()
	if err != nil {
		e.checks.WithLabelValues("failure").Inc()
		if was {
			e.logger.Warn("store endpoint unhealthy, left out of queries", "address", ep.store.Name(), "err", err)
		}
		return
	}
	e.checks.WithLabelValues("success").Inc()
	if !was {
		e.logger.Info("store endpoint healthy", "address", ep.store.Name())
	}
}

// Run checks every endpoint each interval until ctx ends, then closes the
// connections; a Set after that adds none.
func (e *Endpoints) Run(ctx context.Context, interval time.Duration) error {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			e.mtx.Lock()
			e.closed = true
			for addr, ep := range e.endpoints {
				_ = ep.conn.Close()
				delete(e.endpoints, addr)
			}
			e.mtx.Unlock()
			return nil
		case <-tick.C:
			e.CheckAll(ctx)
		}
	}
}
