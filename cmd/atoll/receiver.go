package main

import (
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"

	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/atoll-metrics/atoll/ingest"
	"github.com/atoll-metrics/atoll/storeapi"
	"github.com/atoll-metrics/atoll/tsdbshard"
)

// receiverCore is what `atoll all` and `atoll receive` share: the
// remote-write listener, the tenant TSDBs opened in the background (probes
// and the Store API answer during the WAL replay), and the Store API over
// whatever TSDBs are open.
type receiverCore struct {
	shards atomic.Pointer[tsdbshard.MultiTSDB]
	writes lateHandler
	store  *storeapi.Local
	opened chan struct{}
}

func newReceiverCore(component string) *receiverCore {
	c := &receiverCore{opened: make(chan struct{})}
	c.store = storeapi.NewLocal("local", component, func() []storeapi.TSDB {
		if s := c.shards.Load(); s != nil {
			return tenantsAsTSDBs(s)
		}
		return nil
	})
	return c
}

// listen serves remote write at both paths Prometheus users know; writes
// get 503 until serveWrites is called.
func (c *receiverCore) listen(g *run.Group, logger *slog.Logger, reg prometheus.Registerer, addr string, hc *httpConfig) (net.Addr, error) {
	mux := http.NewServeMux()
	mux.Handle("/api/v1/receive", &c.writes)
	mux.Handle("/api/v1/write", &c.writes)
	return hc.serve(g, logger, reg, "remote-write", addr, mux)
}

// open opens the tenant TSDBs, replaying their WALs. Call it once, from an
// actor; close waits for it.
func (c *receiverCore) open(opts tsdbshard.Options, logger *slog.Logger, reg prometheus.Registerer) (*tsdbshard.MultiTSDB, error) {
	defer close(c.opened)
	shards, err := tsdbshard.Open(opts, logger.With("subsystem", "tsdb"), reg)
	if err != nil {
		return nil, err
	}
	c.shards.Store(shards)
	return shards, nil
}

// serveWrites starts taking remote writes through router.
func (c *receiverCore) serveWrites(router *ingest.Router, cfg *ingestConfig, limits ingest.LimitsConfig, ready *readiness, logger *slog.Logger, reg prometheus.Registerer) {
	c.writes.set(ingest.NewHandler(router, ingest.HandlerOptions{
		DefaultTenant: cfg.defaultTenant,
		Body:          cfg.bodyLimits(),
		Ready:         ready.isReady,
		Limits:        limits,
	}, logger.With("subsystem", "ingest"), reg))
}

// close runs after every actor has stopped: with flush, heads are cut into
// blocks and shipped first, then the TSDBs close.
func (c *receiverCore) close(logger *slog.Logger, flush bool) {
	<-c.opened
	shards := c.shards.Load()
	if shards == nil {
		return
	}
	if flush {
		flushAndShip(logger, shards)
	}
	if err := shards.Close(); err != nil {
		logger.Error("closing TSDBs", "err", err)
	}
}
