package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"runtime"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
	v1 "github.com/prometheus/prometheus/web/api/v1"
	"gopkg.in/yaml.v3"

	"github.com/atoll-metrics/atoll/bucket"
	"github.com/atoll-metrics/atoll/compactor"
	"github.com/atoll-metrics/atoll/ingest"
	"github.com/atoll-metrics/atoll/querier"
	"github.com/atoll-metrics/atoll/storeapi"
	"github.com/atoll-metrics/atoll/storegateway"
	"github.com/atoll-metrics/atoll/tenant"
	"github.com/atoll-metrics/atoll/tsdbshard"
	"github.com/atoll-metrics/atoll/web"
)

// allConfig is `atoll all`: remote write, TSDBs and the query API in one
// process, with defaults that need no flags.
type allConfig struct {
	server      serverConfig
	tsdb        tsdbConfig
	ingest      ingestConfig
	query       queryConfig
	instanceID  string
	bucket      bucketConfig
	flushOnStop bool
	noCompact   bool
	compactWait model.Duration
	frontendOn  bool
	frontend    frontendConfig
}

func registerAll(app *kingpin.Application, setups map[string]setupFunc) {
	cmd := app.Command("all", "Run everything in one process: remote write in, TSDB, PromQL out. Data under --data-dir.")
	c := &allConfig{}
	c.server.register(cmd, "127.0.0.1", true)
	c.tsdb.register(cmd)
	c.ingest.register(cmd, "127.0.0.1")
	c.query.register(cmd)
	c.bucket.register(cmd, "Default: a filesystem bucket in <data-dir>/bucket.")
	cmd.Flag("receive.flush-on-shutdown", "On SIGTERM, cut the heads into blocks and ship them to the bucket, so the bucket alone holds everything.").
		Default("true").BoolVar(&c.flushOnStop)
	cmd.Flag("compact.disable", "Do not run the compactor over the bucket (run `atoll compact` elsewhere instead).").
		BoolVar(&c.noCompact)
	c.compactWait = model.Duration(5 * time.Minute)
	cmd.Flag("compact.interval", "How often the built-in compactor passes over the bucket.").
		Default("5m").SetValue(&c.compactWait)
	cmd.Flag("ring.instance-id", "Name of this process: the value of its replica label, so replicas sharing a bucket stay apart.").
		Default(defaultInstanceID()).StringVar(&c.instanceID)
	cmd.Flag("query-frontend.enabled", "Answer the query API through a query-frontend in this process (splitting, results cache, limits; the query-frontend flags below apply).").
		BoolVar(&c.frontendOn)
	c.frontend.register(cmd)
	setups[cmd.FullCommand()] = func(g *run.Group, logger *slog.Logger, reg *prometheus.Registry) (func(), error) {
		return setupAll(g, logger, reg, c, flagValues(app, cmd))
	}
}

func setupAll(g *run.Group, logger *slog.Logger, reg *prometheus.Registry, c *allConfig, flags map[string]string) (func(), error) {
	limits, err := c.ingest.limits()
	if err != nil {
		return nil, err
	}
	bkt, err := c.bucket.open(logger, reg, filepath.Join(c.tsdb.dataDir, "bucket"))
	if err != nil {
		return nil, err
	}
	running := runningConfig{Command: "all", Flags: flags, Bucket: &c.bucket.resolved}
	if c.ingest.limitsFile != "" {
		running.Limits = &limits
	}
	// The gateway serves what is in the bucket: everything older than the
	// local blocks, and everything after a data dir is lost.
	gwOpts := storegateway.DefaultOptions()
	gwOpts.Dir = filepath.Join(c.tsdb.dataDir, "index-headers")
	gwOpts.SyncInterval = time.Minute
	gw, err := storegateway.New(bkt, gwOpts, logger.With("subsystem", "gateway"), reg)
	if err != nil {
		_ = bkt.Close()
		return nil, err
	}
	closeBucket := func() {
		_ = gw.Close()
		_ = bkt.Close()
	}
	ready := &readiness{}
	addBucketCheck(g, logger, bkt, ready)
	core := newReceiverCore(storeapi.ComponentAll)
	apiHandler := &lateHandler{}

	mux := newOpsMux(reg, ready, &c.server.http)
	if c.frontendOn {
		fe, err := addBuiltinFrontend(logger, reg, &c.frontend, apiHandler)
		if err != nil {
			closeBucket()
			return nil, err
		}
		mux.Handle("/api/v1/", fe)
	} else {
		mux.Handle("/api/v1/", apiHandler)
	}
	wo := c.query.webOptions(newWebOptions(storeapi.ComponentAll, c.instanceID, flags, logger))
	wo.Stores = localStores(core.store, gw)
	wo.Tenants = receiverTenants(core, limits, reg)
	wo.Blocks = bucketBlocks(bkt, logger)
	web.New(wo).Register(mux)
	httpAddr, err := c.server.http.serve(g, logger, reg, "http", c.server.httpAddress, mux)
	if err != nil {
		return closeBucket, err
	}
	writeAddr, err := core.listen(g, logger, reg, c.ingest.address, &c.server.http)
	if err != nil {
		return closeBucket, err
	}
	grpcServer, err := c.server.grpc.server()
	if err != nil {
		return closeBucket, err
	}
	storeapi.RegisterServer(grpcServer, core.store)
	ctx, cancel := context.WithCancel(context.Background())
	g.Add(func() error {
		if err := gw.Sync(ctx); err != nil {
			logger.Warn("first bucket sync failed; retrying in the background", "err", err)
		}
		return gw.Run(ctx)
	}, func(error) { cancel() })
	grpcAddr, err := addGRPCServer(g, logger, c.server.grpcAddress, grpcServer, c.server.grpc.describe())
	if err != nil {
		return closeBucket, err
	}
	tellNewcomer(logger, &c.server.http, httpAddr, writeAddr, grpcAddr)

	if !c.noCompact {
		if err := addBuiltinCompactor(g, logger, reg, bkt, c); err != nil {
			return closeBucket, err
		}
	}

	g.Add(func() error {
		shards, err := core.open(c.tsdb.options(c.ingest.replicaLabel, c.instanceID, bkt), logger, reg)
		if err != nil {
			return err
		}
		router := ingest.NewRouter(shards, nil, ingest.RouterOptions{
			ReplicationFactor: 1,
			Limits:            limits,
			// Atoll's own external labels. Not the querier's replica labels:
			// those are what Prometheus HA pairs send to be deduplicated.
			ReservedLabels: []string{tenant.Label, c.ingest.replicaLabel},
		}, logger, reg)
		core.serveWrites(router, &c.ingest, limits, ready, logger, reg)

		// The local TSDBs and the bucket they ship to are one store, so
		// a block on disk and in the bucket at once is read once.
		stores := []storeapi.Store{storeapi.NewLocalAndBucket(core.store, gw)}
		q := querier.New(func() []storeapi.Store { return stores }, c.query.options(), logger.With("subsystem", "querier"), reg)
		apiOpts, err := c.query.apiOptions(flags)
		if err != nil {
			return err
		}
		apiOpts.Ready = ready.isReady
		apiOpts.BuildInfo = buildInfo()
		apiOpts.Config = running.String()
		apiOpts.HeadStats = core.headStats(reg)
		apiOpts.StorageRetention = storageRetention(c, bkt)
		apiHandler.set(querier.NewAPI(q, apiOpts, logger.With("subsystem", "api"), reg, reg))
		ready.set(true)
		if ready.isReady() {
			logger.Info("ready", "tenants", len(shards.Tenants()))
		} else {
			logger.Info("TSDBs open, but not ready yet", "tenants", len(shards.Tenants()), "waiting_for", ready.why())
		}
		return shards.Run(ctx)
	}, func(error) {
		ready.set(false)
		cancel()
	})
	return func() {
		core.close(logger, c.flushOnStop)
		closeBucket()
	}, nil
}

// tellNewcomer says at start-up where `atoll all` can be reached: by
// default from this host only, which is what trying it on a laptop needs.
func tellNewcomer(logger *slog.Logger, hc *httpConfig, httpAddr, writeAddr, grpcAddr net.Addr) {
	scheme := "http"
	if hc.security.TLS {
		scheme = "https"
	}
	msg := "atoll all is reachable from this host only; to serve other hosts or containers, listen on all interfaces (--http-address=0.0.0.0:10902 --remote-write.address=0.0.0.0:19291) and set --http.config for TLS and authentication"
	if !loopback(httpAddr) || !loopback(writeAddr) {
		msg = "atoll all is reachable from other hosts"
	}
	logger.Info(msg,
		"remote_write_url", fmt.Sprintf("%s://%s/api/v1/receive", scheme, writeAddr),
		"query_api_and_ui", fmt.Sprintf("%s://%s/", scheme, httpAddr),
		"grpc_store_api", grpcAddr.String())
}

// tenantsAsTSDBs lists the open tenant TSDBs for the read path.
func tenantsAsTSDBs(m *tsdbshard.MultiTSDB) []storeapi.TSDB {
	ts := m.Tenants()
	out := make([]storeapi.TSDB, len(ts))
	for i, t := range ts {
		out[i] = t
	}
	return out
}

func buildInfo() v1.PrometheusVersion {
	return v1.PrometheusVersion{
		Version:   buildVersion,
		Revision:  buildRevision,
		Branch:    buildBranch,
		BuildUser: buildUser,
		BuildDate: buildDate,
		GoVersion: runtime.Version(),
	}
}

// storageRetention says how long `atoll all` keeps data, for
// /api/v1/status/runtimeinfo.
func storageRetention(c *allConfig, bkt bucket.Bucket) string {
	local := model.Duration(c.tsdb.options("", "", bkt).Retention)
	if c.noCompact {
		return fmt.Sprintf("%s in the local TSDBs, then in the bucket as long as its compactor keeps it", local)
	}
	return fmt.Sprintf("%s in the local TSDBs, then in the bucket for ever (the built-in compactor applies no retention)", local)
}

// runningConfig is what /api/v1/status/config shows: the command, its
// flags and what the configuration files they name hold, secrets masked.
type runningConfig struct {
	Command string               `yaml:"command"`
	Flags   map[string]string    `yaml:"flags"`
	Bucket  *bucket.Config       `yaml:"bucket,omitempty"`
	Limits  *ingest.LimitsConfig `yaml:"limits,omitempty"`
}

func (c runningConfig) String() string {
	out, err := yaml.Marshal(c)
	if err != nil {
		return "# cannot show the configuration: " + err.Error() + "\n"
	}
	return "# The configuration this atoll process runs with: its flags and the files they name. Secrets show as <secret>.\n" + string(out)
}

// headStats reports a tenant's head for /api/v1/status/tsdb. It never
// opens a TSDB: a tenant that has not written here has none.
func (c *receiverCore) headStats(gatherer prometheus.Gatherer) func(tenant string, limit int) (*tsdb.Stats, int64, error) {
	return func(tenant string, limit int) (*tsdb.Stats, int64, error) {
		shards := c.shards.Load()
		if shards == nil {
			return nil, 0, errors.New("the TSDBs are not open yet")
		}
		for _, t := range shards.Tenants() {
			if t.ID() != tenant {
				continue
			}
			st := t.DB().Head().Stats(labels.MetricName, limit)
			return st, headChunks(gatherer, tenant), nil
		}
		return nil, 0, nil
	}
}

// headChunks reads the chunk count of a tenant's head from its TSDB's own
// gauge, as Prometheus does for its status page; -1 when it cannot.
func headChunks(gatherer prometheus.Gatherer, tenant string) int64 {
	mfs, err := gatherer.Gather()
	if err != nil {
		return -1
	}
	for _, mf := range mfs {
		if mf.GetName() != "prometheus_tsdb_head_chunks" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "tenant" && l.GetValue() == tenant {
					return int64(m.GetGauge().GetValue())
				}
			}
		}
	}
	return -1
}

// addBuiltinCompactor keeps the all-in-one's bucket compacted, deduplicated
// and downsampled. Replicas sharing a bucket take turns through the lease:
// the one that does not hold it waits and tries again.
func addBuiltinCompactor(g *run.Group, logger *slog.Logger, reg prometheus.Registerer, bkt bucket.Bucket, c *allConfig) error {
	o := compactor.DefaultOptions()
	o.DataDir = filepath.Join(c.tsdb.dataDir, "compact")
	o.ReplicaLabels = c.query.replicaLabels
	o.LeaseHolder = c.instanceID
	o.Interval = time.Duration(c.compactWait)
	comp, err := compactor.New(bkt, o, logger.With("subsystem", "compactor"), reg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	g.Add(func() error {
		for {
			err := comp.Run(ctx)
			switch {
			case ctx.Err() != nil:
				return nil
			case errors.Is(err, compactor.ErrLeaseHeld):
				logger.Info("another compactor holds the bucket; trying again later", "err", err)
			case err != nil:
				logger.Error("compactor stopped; restarting later", "err", err)
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(o.Interval):
			}
		}
	}, func(error) { cancel() })
	return nil
}
