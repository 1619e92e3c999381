package main

import (
	"context"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/alecthomas/kingpin/v2"
	sockaddr "github.com/hashicorp/go-sockaddr"
	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"google.golang.org/grpc"

	"github.com/atoll-metrics/atoll/ingest"
	"github.com/atoll-metrics/atoll/ring"
	"github.com/atoll-metrics/atoll/storeapi"
	"github.com/atoll-metrics/atoll/tenant"
	"github.com/atoll-metrics/atoll/tsdbshard"
	"github.com/atoll-metrics/atoll/web"
)

// receiveConfig is `atoll receive`: a ring member that takes remote write,
// stores its share of every series and serves the Store API over its heads.
type receiveConfig struct {
	server         serverConfig
	grpcClient     grpcClientConfig
	tsdb           tsdbConfig
	ingest         ingestConfig
	ring           ring.Config
	rf             int
	forwardTimeout model.Duration
	grpcAdvertise  string
	bucket         bucketConfig
	flushOnStop    bool
	replicaOOO     model.Duration
	anyForwarder   bool
}

func registerReceive(app *kingpin.Application, setups map[string]setupFunc) {
	cmd := app.Command("receive", "Run a receiver: remote write in, replicated over the ring, TSDB per tenant, Store API out.")
	c := &receiveConfig{ring: ring.DefaultConfig()}
	c.server.register(cmd, "0.0.0.0", true)
	c.grpcClient.register(cmd)
	c.tsdb.register(cmd)
	c.ingest.register(cmd, "0.0.0.0")
	c.ring.RegisterFlags(cmd)
	c.forwardTimeout = model.Duration(5 * time.Second)
	cmd.Flag("receive.replication-factor", "How many receivers store each series. A write succeeds when floor(RF/2)+1 of them stored every series.").
		Default("3").IntVar(&c.rf)
	cmd.Flag("receive.forward-timeout", "Longest wait for a peer receiver to store a forwarded write.").
		Default("5s").SetValue(&c.forwardTimeout)
	c.replicaOOO = model.Duration(5 * time.Minute)
	cmd.Flag("receive.replica-out-of-order-window", "With replication, a replica's copy of a write can be overtaken by the next write of the same series while it is on its way; the TSDB takes such copies up to this much out of order (client writes keep --tsdb.out-of-order.time-window). 0 refuses them.").
		Default("5m").SetValue(&c.replicaOOO)
	c.bucket.register(cmd, "Without it, blocks stay on local disk.")
	cmd.Flag("receive.flush-on-shutdown", "On SIGTERM, cut the heads into blocks and ship them (with a bucket), so a receiver leaving for good strands no data in its WAL.").
		Default("true").BoolVar(&c.flushOnStop)
	cmd.Flag("receive.forward.any-address", "Take forwarded writes from any address, not only from the ring's receivers. Only behind a proxy that hides peers' addresses (a service mesh); rely on mutual TLS then.").
		BoolVar(&c.anyForwarder)
	cmd.Flag("grpc-advertise-address", "Address (host:port) other members use for this member's gRPC. Derived from --grpc-address and the gossip address if empty.").
		StringVar(&c.grpcAdvertise)
	setups[cmd.FullCommand()] = func(g *run.Group, logger *slog.Logger, reg *prometheus.Registry) (func(), error) {
		return setupReceive(g, logger, reg, c, flagValues(app, cmd))
	}
}

func setupReceive(g *run.Group, logger *slog.Logger, reg *prometheus.Registry, c *receiveConfig, flags map[string]string) (func(), error) {
	limits, err := c.ingest.limits()
	if err != nil {
		return nil, err
	}
	bkt, err := c.bucket.open(logger, reg, "")
	if err != nil {
		return nil, err
	}
	ready := &readiness{}
	if bkt != nil {
		addBucketCheck(g, logger, bkt, ready)
	}
	core := newReceiverCore(storeapi.ComponentReceive)
	mux := newOpsMux(reg, ready, &c.server.http)
	ringPage := &lateHandler{}
	wo := newWebOptions(storeapi.ComponentReceive, c.ring.InstanceID, flags, logger)
	wo.Ring = ringPage
	wo.Tenants = receiverTenants(core, limits, reg)
	web.New(wo).Register(mux)
	httpAddr, err := c.server.http.serve(g, logger, reg, "http", c.server.httpAddress, mux)
	if err != nil {
		return nil, err
	}
	if _, err := core.listen(g, logger, reg, c.ingest.address, &c.server.http); err != nil {
		return nil, err
	}
	grpcServer, err := c.server.grpc.server()
	if err != nil {
		return nil, err
	}
	storeapi.RegisterServer(grpcServer, core.store)
	registerMemberHealth(grpcServer, c.ring.InstanceID)
	// The forwarding service is registered before serving starts and
	// answers Unavailable until the TSDBs are open.
	var routerPtr atomic.Pointer[ingest.Router]
	ingest.RegisterWriteServer(grpcServer, routerPtr.Load, ready.isReady)
	grpcAddr, err := addGRPCServer(g, logger, c.server.grpcAddress, grpcServer, c.server.grpc.describe())
	if err != nil {
		return nil, err
	}

	dial, err := c.grpcClient.dialOption()
	if err != nil {
		return nil, err
	}
	rc := c.ring
	rc.ReplicationFactor = c.rf
	rc.Probe = memberProbe(dial)
	rg, err := joinRing(g, logger, reg, rc, ring.RoleReceiver, httpAddr, grpcAddr, c.grpcAdvertise, ready, ringPage)
	if err != nil {
		return nil, err
	}

	ctx, cancel := context.WithCancel(context.Background())
	g.Add(func() error {
		topts := c.tsdb.options(c.ingest.replicaLabel, rc.InstanceID, bkt)
		if c.rf > 1 {
			topts.OutOfOrderTimeWindow = max(topts.OutOfOrderTimeWindow, time.Duration(c.replicaOOO))
		}
		shards, err := core.open(topts, logger, reg)
		if err != nil {
			return err
		}
		router := ingest.NewRouter(shards, rg, ingest.RouterOptions{
			ReplicationFactor: c.rf,
			ForwardTimeout:    time.Duration(c.forwardTimeout),
			Limits:            limits,
			RejectOutOfOrder:  c.tsdb.oooWindow == 0,
			ReservedLabels:    []string{tenant.Label, c.ingest.replicaLabel},
			DialOptions:       []grpc.DialOption{dial},
			AnyForwarder:      c.anyForwarder,
		}, logger.With("subsystem", "router"), reg)
		routerPtr.Store(router)
		core.serveWrites(router, &c.ingest, limits, ready, logger, reg)
		ready.set(true)
		rg.SetState(ring.StateActive)
		logger.Info("ready", "tenants", len(shards.Tenants()), "instance", rc.InstanceID)
		return shards.Run(ctx)
	}, func(error) {
		ready.set(false)
		cancel()
	})
	return func() {
		core.close(logger, c.flushOnStop && bkt != nil)
		if r := routerPtr.Load(); r != nil {
			_ = r.Close()
		}
		if bkt != nil {
			_ = bkt.Close()
		}
	}, nil
}

// advertiseAddress is the address others reach a listener at: its own
// address when it listens on one host, else the host gossip advertises, else
// the first private IP, as gossip itself does.
func advertiseAddress(listen net.Addr, gossipAdvertise, gossipListen string) string {
	host, port, err := net.SplitHostPort(listen.String())
	if err != nil {
		return listen.String()
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsUnspecified() {
		return listen.String()
	}
	for _, a := range []string{gossipAdvertise, gossipListen} {
		h := a
		if hh, _, err := net.SplitHostPort(a); err == nil {
			h = hh
		}
		if ip := net.ParseIP(h); h != "" && (ip == nil || !ip.IsUnspecified()) {
			return net.JoinHostPort(h, port)
		}
	}
	if ip, err := sockaddr.GetPrivateIP(); err == nil && ip != "" {
		return net.JoinHostPort(ip, port)
	}
	return net.JoinHostPort("127.0.0.1", port)
}

// flushAndShip cuts the heads into blocks and ships them, bounded in time:
// a bucket outage must not keep a stopping process alive forever, and what
// is not shipped stays on disk for the next start.
func flushAndShip(logger *slog.Logger, shards *tsdbshard.MultiTSDB) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	if err := shards.Flush(ctx); err != nil {
		logger.Warn("flushing heads on shutdown incomplete; unshipped blocks stay on disk", "err", err)
		return
	}
	logger.Info("heads flushed and shipped", "duration", time.Since(start).Round(time.Millisecond))
}
