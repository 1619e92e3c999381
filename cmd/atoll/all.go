package main

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"runtime"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	v1 "github.com/prometheus/prometheus/web/api/v1"
	"google.golang.org/grpc"

	"github.com/atoll-metrics/atoll/bucket"
	"github.com/atoll-metrics/atoll/compactor"
	"github.com/atoll-metrics/atoll/ingest"
	"github.com/atoll-metrics/atoll/querier"
	"github.com/atoll-metrics/atoll/storeapi"
	"github.com/atoll-metrics/atoll/storegateway"
	"github.com/atoll-metrics/atoll/tsdbshard"
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
}

func registerAll(app *kingpin.Application, setups map[string]setupFunc) {
	cmd := app.Command("all", "Run everything in one process: remote write in, TSDB, PromQL out. Data under --data-dir.")
	c := &allConfig{}
	c.server.register(cmd)
	c.tsdb.register(cmd)
	c.ingest.register(cmd)
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
	core := newReceiverCore(storeapi.ComponentAll)
	apiHandler := &lateHandler{}

	mux := newOpsMux(reg, ready)
	mux.Handle("/api/v1/", apiHandler)
	mux.Handle("/", uiHandler())
	if _, err := addHTTPServer(g, logger, "http", c.server.httpAddress, mux); err != nil {
		return closeBucket, err
	}
	if err := core.listen(g, logger, c.ingest.address); err != nil {
		return closeBucket, err
	}
	grpcServer := grpc.NewServer(grpcServerOptions()...)
	storeapi.RegisterServer(grpcServer, core.store)
	ctx, cancel := context.WithCancel(context.Background())
	g.Add(func() error {
		if err := gw.Sync(ctx); err != nil {
			logger.Warn("first bucket sync failed; retrying in the background", "err", err)
		}
		return gw.Run(ctx)
	}, func(error) { cancel() })
	if _, err := addGRPCServer(g, logger, c.server.grpcAddress, grpcServer); err != nil {
		return closeBucket, err
	}

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
		router := ingest.NewRouter(shards, nil, ingest.RouterOptions{ReplicationFactor: 1, Limits: limits}, logger, reg)
		core.serveWrites(router, &c.ingest, limits, ready, logger, reg)

		q := querier.New(func() []storeapi.Store { return []storeapi.Store{core.store, gw} }, c.query.options(), logger.With("subsystem", "querier"), reg)
		apiOpts := c.query.apiOptions(flags)
		apiOpts.Ready = ready.isReady
		apiOpts.BuildInfo = buildInfo()
		apiHandler.set(querier.NewAPI(q, apiOpts, logger.With("subsystem", "api"), reg, reg))
		ready.set(true)
		logger.Info("ready", "tenants", len(shards.Tenants()))
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

// flagValues lists a command's flags and their values for
// /api/v1/status/flags.
func flagValues(app *kingpin.Application, cmd *kingpin.CmdClause) map[string]string {
	out := map[string]string{}
	for _, f := range app.Model().Flags {
		out[f.Name] = f.Value.String()
	}
	for _, f := range cmd.Model().Flags {
		out[f.Name] = f.Value.String()
	}
	return out
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
