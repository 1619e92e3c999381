package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"

	"github.com/atoll-metrics/atoll/compactor"
	"github.com/atoll-metrics/atoll/web"
)

// compactConfig is `atoll compact`: the one compactor of a bucket.
type compactConfig struct {
	bucket        bucketConfig
	httpAddress   string
	http          httpConfig
	dataDir       string
	wait          bool
	waitInterval  model.Duration
	replicaLabels []string
	ranges        string
	concurrency   int
	deleteDelay   model.Duration
	retention     [3]model.Duration
	noDownsample  bool
	downsampleRaw model.Duration
	downsample5m  model.Duration
	leaseHolder   string
	leaseDuration model.Duration
}

func registerCompact(app *kingpin.Application, setups map[string]setupFunc) {
	cmd := app.Command("compact", "Compact, deduplicate, downsample and apply retention to a bucket. One pass by default; --wait keeps running.")
	d := compactor.DefaultOptions()
	c := &compactConfig{
		waitInterval:  model.Duration(5 * time.Minute),
		deleteDelay:   model.Duration(d.DeleteDelay),
		downsampleRaw: model.Duration(d.DownsampleRawMinSpan),
		downsample5m:  model.Duration(d.Downsample5mMinSpan),
		leaseDuration: model.Duration(d.LeaseDuration),
	}
	c.bucket.register(cmd, "Required.")
	cmd.Flag("http-address", "Listen address for the UI (the bucket's blocks), /metrics, /-/healthy and /-/ready (with --wait).").
		Default("0.0.0.0:10912").StringVar(&c.httpAddress)
	c.http.register(cmd)
	cmd.Flag("data-dir", "Scratch space for blocks being compacted; needs room for a group's largest compaction.").
		Default("./data-compact").StringVar(&c.dataDir)
	cmd.Flag("wait", "Keep running: make a pass every --wait-interval, serving metrics and probes.").BoolVar(&c.wait)
	cmd.Flag("wait-interval", "Time between passes with --wait.").Default("5m").SetValue(&c.waitInterval)
	cmd.Flag("deduplication.replica-label", "External label telling replicas apart; blocks differing only in it are merged and deduplicated, and it is removed from compacted blocks. Repeatable.").
		Default(d.ReplicaLabels...).StringsVar(&c.replicaLabels)
	cmd.Flag("compact.ranges", "Spans of the compaction levels, comma-separated, smallest first (the span receivers cut); each a multiple of the one before.").
		Default("2h,8h,2d,14d").StringVar(&c.ranges)
	cmd.Flag("compact.concurrency", "Groups (tenant and resolution) compacted at once.").
		Default("1").IntVar(&c.concurrency)
	cmd.Flag("delete-delay", "How long a block marked for deletion stays, so readers finish with it and see its replacement first. Also how long a partial upload must sit untouched (at least 1h) before it is removed.").
		Default("48h").SetValue(&c.deleteDelay)
	for i, res := range []string{"raw", "5m", "1h"} {
		cmd.Flag("retention.resolution-"+res, "Delete blocks of resolution "+res+" whose data is all older than this. 0 keeps them forever.").
			Default("0s").SetValue(&c.retention[i])
	}
	cmd.Flag("downsampling.disable", "Do not downsample.").BoolVar(&c.noDownsample)
	cmd.Flag("downsample.raw-min-span", "Shortest raw block downsampled to 5m.").Default("40h").SetValue(&c.downsampleRaw)
	cmd.Flag("downsample.5m-min-span", "Shortest 5m block downsampled to 1h.").Default("10d").SetValue(&c.downsample5m)
	cmd.Flag("lease.holder", "Identity in the bucket's lease. A compactor restarted with the same one takes over its lease as soon as the lease's renewals have stopped, without waiting for it to expire; a lease still renewed is never taken. Should differ between compactors. Default: the host name.").
		Default(d.LeaseHolder).StringVar(&c.leaseHolder)
	cmd.Flag("lease.duration", "How long the lease lasts unrenewed, i.e. how long a crashed compactor keeps another one out.").
		Default("5m").SetValue(&c.leaseDuration)
	setups[cmd.FullCommand()] = func(g *run.Group, logger *slog.Logger, reg *prometheus.Registry) (func(), error) {
		return setupCompact(g, logger, reg, c, flagValues(app, cmd))
	}
}

func (c *compactConfig) options() (compactor.Options, error) {
	o := compactor.DefaultOptions()
	o.DataDir = c.dataDir
	o.ReplicaLabels = c.replicaLabels
	o.Ranges = nil
	for _, s := range strings.Split(c.ranges, ",") {
		d, err := model.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			return o, fmt.Errorf("--compact.ranges: %w", err)
		}
		o.Ranges = append(o.Ranges, time.Duration(d))
	}
	o.Concurrency = c.concurrency
	o.DeleteDelay = time.Duration(c.deleteDelay)
	o.RetentionRaw = time.Duration(c.retention[0])
	o.Retention5m = time.Duration(c.retention[1])
	o.Retention1h = time.Duration(c.retention[2])
	o.DisableDownsampling = c.noDownsample
	o.DownsampleRawMinSpan = time.Duration(c.downsampleRaw)
	o.Downsample5mMinSpan = time.Duration(c.downsample5m)
	o.LeaseHolder = c.leaseHolder
	o.LeaseDuration = time.Duration(c.leaseDuration)
	if c.wait {
		o.Interval = time.Duration(c.waitInterval)
		if o.Interval <= 0 {
			return o, errors.New("--wait-interval must be positive")
		}
	}
	return o, nil
}

func setupCompact(g *run.Group, logger *slog.Logger, reg *prometheus.Registry, c *compactConfig, flags map[string]string) (func(), error) {
	if !c.bucket.configured() {
		return nil, errors.New("atoll compact needs a bucket: --objstore.config-file or --objstore.config")
	}
	opts, err := c.options()
	if err != nil {
		return nil, err
	}
	bkt, err := c.bucket.open(logger, reg, "")
	if err != nil {
		return nil, err
	}
	cleanup := func() { _ = bkt.Close() }
	comp, err := compactor.New(bkt, opts, logger.With("subsystem", "compactor"), reg)
	if err != nil {
		return cleanup, err
	}
	if c.wait {
		ready := &readiness{}
		mux := newOpsMux(reg, ready, &c.http)
		wo := newWebOptions("compact", c.leaseHolder, flags, logger)
		wo.Blocks = bucketBlocks(bkt, logger)
		web.New(wo).Register(mux)
		if _, err := c.http.serve(g, logger, reg, "http", c.httpAddress, mux); err != nil {
			return cleanup, err
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		var readyLoop sync.WaitGroup
		readyLoop.Go(func() {
			// Ready while the lease is held.
			t := time.NewTicker(200 * time.Millisecond)
			defer t.Stop()
			for {
				ready.set(comp.Ready())
				select {
				case <-done:
					ready.set(false)
					return
				case <-t.C:
				}
			}
		})
		g.Add(func() error {
			defer readyLoop.Wait()
			defer close(done)
			return compactErr(comp.Run(ctx))
		}, func(error) { cancel() })
		return cleanup, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	g.Add(func() error {
		if err := compactErr(comp.Run(ctx)); err != nil {
			return err
		}
		logger.Info("bucket is in order")
		// Returning stops the other actors (the signal handler).
		return nil
	}, func(error) { cancel() })
	return cleanup, nil
}

// compactErr makes a refused lease read as the operator needs it.
func compactErr(err error) error {
	if errors.Is(err, compactor.ErrLeaseHeld) {
		return fmt.Errorf("another compactor is running on this bucket; refusing to start: %w", err)
	}
	return err
}
