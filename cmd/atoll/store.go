package main

import (
	"context"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/alecthomas/units"
	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"

	"github.com/atoll-metrics/atoll/ring"
	"github.com/atoll-metrics/atoll/storeapi"
	"github.com/atoll-metrics/atoll/storegateway"
	"github.com/atoll-metrics/atoll/web"
)

// storeConfig is `atoll store`: a store gateway serving the blocks of a
// bucket through the Store API.
type storeConfig struct {
	server            serverConfig
	bucket            bucketConfig
	ring              ring.Config
	noRing            bool
	grpcAdvertise     string
	dataDir           string
	syncInterval      model.Duration
	indexCacheSize    units.Base2Bytes
	minTime, maxTime  timeBoundValue
	deletionMarkDelay model.Duration
	queryConcurrency  int
	seriesBatchSize   int
}

func registerStore(app *kingpin.Application, setups map[string]setupFunc) {
	cmd := app.Command("store", "Run a store gateway: serve the blocks of a bucket through the Store API, with bounded memory.")
	c := &storeConfig{ring: ring.DefaultConfig()}
	c.server.register(cmd, "0.0.0.0", true)
	c.bucket.register(cmd, "Default: a filesystem bucket in <data-dir>/bucket, where `atoll all` ships its blocks.")
	c.ring.RegisterFlags(cmd)
	c.syncInterval = model.Duration(3 * time.Minute)
	c.deletionMarkDelay = model.Duration(24 * time.Hour)
	cmd.Flag("data-dir", "Directory for local state: index headers under index-headers/ (a cache, rebuilt from the bucket when missing), and the default filesystem bucket.").
		Default("./data").StringVar(&c.dataDir)
	cmd.Flag("sync-block-duration", "How often the block list is synced with the bucket.").
		Default("3m").SetValue(&c.syncInterval)
	cmd.Flag("index-cache-size", "Memory for postings lists and series entries read from block indexes (LRU).").
		Default("256MiB").BytesVar(&c.indexCacheSize)
	cmd.Flag("min-time", "Serve only blocks with data after this time: RFC 3339, or relative to now like -2w or -36h. Empty: no bound.").
		PlaceHolder("<time>").SetValue(&c.minTime)
	cmd.Flag("max-time", "Serve only blocks with data before this time: RFC 3339, or relative to now like -6h. Empty: no bound.").
		PlaceHolder("<time>").SetValue(&c.maxTime)
	cmd.Flag("ignore-deletion-marks-delay", "Keep serving a block this long after the compactor marked it for deletion, so the block replacing it is loaded first. Must be shorter than the compactor's delete delay.").
		Default("24h").SetValue(&c.deletionMarkDelay)
	cmd.Flag("store.query-concurrency", "Blocks one request reads at once.").
		Default("4").IntVar(&c.queryConcurrency)
	cmd.Flag("store.series-batch-size", "Series of one block read and sent together; with the query concurrency it bounds a request's memory.").
		Default("1024").IntVar(&c.seriesBatchSize)
	cmd.Flag("grpc-advertise-address", "Address (host:port) queriers use for this gateway's Store API, announced in the ring. Derived from --grpc-address and the gossip address if empty.").
		StringVar(&c.grpcAdvertise)
	cmd.Flag("ring.disable", "Do not join the gossip ring; queriers then need this gateway in their --store list.").
		BoolVar(&c.noRing)
	setups[cmd.FullCommand()] = func(g *run.Group, logger *slog.Logger, reg *prometheus.Registry) (func(), error) {
		return setupStore(g, logger, reg, c, flagValues(app, cmd))
	}
}

func setupStore(g *run.Group, logger *slog.Logger, reg *prometheus.Registry, c *storeConfig, flags map[string]string) (func(), error) {
	bkt, err := c.bucket.open(logger, reg, filepath.Join(c.dataDir, "bucket"))
	if err != nil {
		return nil, err
	}
	opts := storegateway.DefaultOptions()
	opts.Dir = filepath.Join(c.dataDir, "index-headers")
	opts.SyncInterval = time.Duration(c.syncInterval)
	opts.IndexCacheBytes = int64(c.indexCacheSize)
	opts.MinTime, opts.MaxTime = c.minTime.b, c.maxTime.b
	opts.DeletionMarkDelay = time.Duration(c.deletionMarkDelay)
	opts.QueryConcurrency = c.queryConcurrency
	opts.SeriesBatchSize = c.seriesBatchSize
	gw, err := storegateway.New(bkt, opts, logger.With("subsystem", "gateway"), reg)
	if err != nil {
		_ = bkt.Close()
		return nil, err
	}
	cleanup := func() {
		if err := gw.Close(); err != nil {
			logger.Error("closing gateway", "err", err)
		}
		_ = bkt.Close()
	}

	ready := &readiness{}
	addBucketCheck(g, logger, bkt, ready)
	mux := newOpsMux(reg, ready, &c.server.http)
	ringPage := &lateHandler{}
	wo := newWebOptions(storeapi.ComponentStore, c.ring.InstanceID, flags, logger)
	wo.Blocks = bucketBlocks(bkt, logger)
	if !c.noRing {
		wo.Ring = ringPage
	}
	web.New(wo).Register(mux)
	httpAddr, err := c.server.http.serve(g, logger, reg, "http", c.server.httpAddress, mux)
	if err != nil {
		return cleanup, err
	}
	grpcServer, err := c.server.grpc.server()
	if err != nil {
		return cleanup, err
	}
	storeapi.RegisterServer(grpcServer, gw)
	registerMemberHealth(grpcServer, c.ring.InstanceID)
	grpcAddr, err := addGRPCServer(g, logger, c.server.grpcAddress, grpcServer, c.server.grpc.describe())
	if err != nil {
		return cleanup, err
	}

	var rg *ring.Ring
	if !c.noRing {
		if rg, err = joinRing(g, logger, reg, c.ring, ring.RoleStoreGateway, httpAddr, grpcAddr, c.grpcAdvertise, ready, ringPage); err != nil {
			return cleanup, err
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	g.Add(func() error {
		// Ready only once the first block list is loaded, so queriers never
		// take an empty answer for the bucket's.
		for {
			start := time.Now()
			err := gw.Sync(ctx)
			if err == nil {
				info, _ := gw.Info(ctx)
				logger.Info("ready", "label_sets", len(info.LabelSets), "duration", time.Since(start).Round(time.Millisecond))
				break
			}
			logger.Warn("initial block sync failed, retrying", "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(5 * time.Second):
			}
		}
		ready.set(true)
		if rg != nil {
			rg.SetState(ring.StateActive)
		}
		return gw.Run(ctx)
	}, func(error) {
		ready.set(false)
		cancel()
	})
	return cleanup, nil
}

// timeBoundValue is a kingpin flag holding a storegateway.TimeBound.
type timeBoundValue struct{ b storegateway.TimeBound }

func (v *timeBoundValue) Set(s string) error {
	b, err := storegateway.ParseTimeBound(s)
	if err != nil {
		return err
	}
	v.b = b
	return nil
}

func (v *timeBoundValue) String() string { return v.b.String() }
