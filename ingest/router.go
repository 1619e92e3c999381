package ingest

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/atoll-metrics/atoll/tsdbshard"
)

// RouterOptions configure a Router.
type RouterOptions struct {
	// ReplicationFactor is how many receivers store each series.
	ReplicationFactor int
}

// Router sends every series of a write to the receivers that own it and
// reduces what they answer to one result.
type Router struct {
	opts   RouterOptions
	local  *localWriter
	logger *slog.Logger
}

// NewRouter returns a Router appending to shards.
func NewRouter(shards *tsdbshard.MultiTSDB, opts RouterOptions, logger *slog.Logger, reg prometheus.Registerer) *Router {
	if opts.ReplicationFactor <= 0 {
		opts.ReplicationFactor = 1
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Router{opts: opts, local: newLocalWriter(shards), logger: logger}
}

// Write stores the series of wr for tenant. An error means nothing can be
// said to be stored; otherwise the result tells series by series.
func (r *Router) Write(ctx context.Context, tenant string, wr *WriteRequest) (seriesResult, error) {
	return r.local.write(ctx, tenant, wr, nil)
}
