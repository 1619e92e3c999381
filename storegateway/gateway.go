package storegateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"

	"github.com/atoll-metrics/atoll/block"
	"github.com/atoll-metrics/atoll/bucket"
	"github.com/atoll-metrics/atoll/storeapi"
)

// Options configure a Gateway. Start from DefaultOptions.
type Options struct {
	// Dir holds one index header per block. It is a cache: deleting it
	// while the gateway is stopped costs a rebuild from the bucket.
	Dir string
	// SyncInterval is how often the block list is synced with the bucket.
	SyncInterval time.Duration
	// SyncConcurrency bounds the blocks whose index header is built at
	// once.
	SyncConcurrency int
	// IndexCacheBytes caps the postings lists and series entries kept in
	// memory. Zero disables the cache.
	IndexCacheBytes int64
	// MinTime and MaxTime bound the blocks served: only blocks that
	// overlap the window are loaded. Zero bounds leave the window open.
	MinTime, MaxTime TimeBound
	// DeletionMarkDelay is how long a block stays served after the
	// compactor marked it for deletion, so that the block replacing it is
	// loaded everywhere first. It must be shorter than the compactor's
	// delay before deleting marked blocks.
	DeletionMarkDelay time.Duration
	// QueryConcurrency bounds the blocks one request reads at once.
	QueryConcurrency int
	// FetchConcurrency bounds the range reads one block issues at once.
	FetchConcurrency int
	// SeriesBatchSize is how many series of a block are read, decoded and
	// returned together; with QueryConcurrency it bounds the memory a
	// request holds.
	SeriesBatchSize int
	// MaxRangeGap merges reads of one object whose gap is at most this
	// many bytes: fewer requests for a few wasted bytes.
	MaxRangeGap int64
	// Now is the clock for the time window and deletion marks; nil means
	// time.Now.
	Now func() time.Time
}

// DefaultOptions suit a gateway in front of S3.
func DefaultOptions() Options {
	return Options{
		SyncInterval:      3 * time.Minute,
		SyncConcurrency:   8,
		IndexCacheBytes:   256 << 20,
		DeletionMarkDelay: 24 * time.Hour,
		QueryConcurrency:  4,
		FetchConcurrency:  4,
		SeriesBatchSize:   1024,
		MaxRangeGap:       512 << 10,
	}
}

func (o *Options) withDefaults() error {
	d := DefaultOptions()
	if o.Dir == "" {
		return errors.New("gateway: Dir is required")
	}
	if o.SyncInterval <= 0 {
		o.SyncInterval = d.SyncInterval
	}
	if o.SyncConcurrency <= 0 {
		o.SyncConcurrency = d.SyncConcurrency
	}
	if o.QueryConcurrency <= 0 {
		o.QueryConcurrency = d.QueryConcurrency
	}
	if o.FetchConcurrency <= 0 {
		o.FetchConcurrency = d.FetchConcurrency
	}
	if o.SeriesBatchSize <= 0 {
		o.SeriesBatchSize = d.SeriesBatchSize
	}
	if o.MaxRangeGap < 0 {
		o.MaxRangeGap = 0
	}
	if o.DeletionMarkDelay < 0 {
		o.DeletionMarkDelay = 0
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return nil
}

// Gateway serves the blocks of a bucket as a storeapi.Store.
type Gateway struct {
	bkt    bucket.Bucket
	opts   Options
	logger *slog.Logger
	m      *metrics
	cache  *indexCache
	r      *bucketReader

	mtx    sync.RWMutex
	blocks map[ulid.ULID]*bucketBlock
	closed bool

	syncMtx sync.Mutex
	fetcher *block.Fetcher
	// failed remembers the last load error of each block, so it is
	// logged once rather than at every sync.
	failedMtx sync.Mutex
	failed    map[ulid.ULID]string
	closing   sync.WaitGroup
	synced    atomic.Bool
}

var _ storeapi.Store = (*Gateway)(nil)

// New returns a Gateway over bkt with no blocks loaded: call Sync for the
// first block list, then Run to keep it current.
func New(bkt bucket.Bucket, opts Options, logger *slog.Logger, reg prometheus.Registerer) (*Gateway, error) {
	if err := opts.withDefaults(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m := newMetrics(reg)
	g := &Gateway{
		bkt:     bkt,
		opts:    opts,
		logger:  logger,
		m:       m,
		cache:   newIndexCache(opts.IndexCacheBytes, reg),
		r:       &bucketReader{bkt: bkt, bytes: m.fetchedBytes, reads: m.fetches},
		blocks:  map[ulid.ULID]*bucketBlock{},
		fetcher: block.NewFetcher(bkt, logger),
		failed:  map[ulid.ULID]string{},
	}
	for _, k := range []string{fetchHeader, fetchPostings, fetchSeries, fetchChunks} {
		m.fetchedBytes.WithLabelValues(k)
		m.fetches.WithLabelValues(k)
	}
	return g, nil
}

// Run syncs the block list every SyncInterval until ctx ends. A failed
// sync keeps the blocks already loaded and is retried at the next tick.
func (g *Gateway) Run(ctx context.Context) error {
	t := time.NewTicker(g.opts.SyncInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := g.Sync(ctx); err != nil && ctx.Err() == nil {
				g.logger.Warn("block sync failed; serving the blocks loaded before", "err", err)
			}
		}
	}
}

// Synced reports whether a sync has succeeded since New.
func (g *Gateway) Synced() bool { return g.synced.Load() }

// Close releases every block, waiting for the queries using them.
func (g *Gateway) Close() error {
	g.mtx.Lock()
	blocks := g.blocks
	g.blocks = map[ulid.ULID]*bucketBlock{}
	already := g.closed
	g.closed = true
	g.mtx.Unlock()
	if already {
		return nil
	}
	var errs []error
	for _, b := range blocks {
		errs = append(errs, b.close())
	}
	g.closing.Wait()
	g.m.blocksLoaded.Set(0)
	return errors.Join(errs...)
}

// Name implements storeapi.Store.
func (g *Gateway) Name() string { return "bucket " + g.bkt.Name() }

// Info implements storeapi.Store: the external label sets and time range of
// the loaded blocks.
func (g *Gateway) Info(context.Context) (storeapi.Info, error) {
	info := storeapi.Info{MinTime: math.MaxInt64, MaxTime: math.MinInt64, Component: storeapi.ComponentStore}
	seen := map[string]bool{}
	g.mtx.RLock()
	defer g.mtx.RUnlock()
	for _, b := range g.blocks {
		info.MinTime = min(info.MinTime, b.meta.MinTime)
		info.MaxTime = max(info.MaxTime, b.meta.MaxTime-1)
		if !seen[b.extKey] {
			seen[b.extKey] = true
			info.LabelSets = append(info.LabelSets, b.ext)
		}
	}
	return info, nil
}

// acquire returns the loaded blocks that overlap [mint, maxt], each held
// for reading until release is called.
func (g *Gateway) acquire(mint, maxt int64) (blocks []*bucketBlock, release func()) {
	g.mtx.RLock()
	for _, b := range g.blocks {
		if b.meta.MinTime <= maxt && mint < b.meta.MaxTime {
			b.mtx.RLock()
			blocks = append(blocks, b)
		}
	}
	g.mtx.RUnlock()
	return blocks, func() {
		for _, b := range blocks {
			b.mtx.RUnlock()
		}
	}
}

// Exemplars implements storeapi.Store: blocks in a bucket hold none.
func (g *Gateway) Exemplars(context.Context, int64, int64, [][]*labels.Matcher) ([]exemplar.QueryResult, error) {
	return nil, nil
}

// Metadata implements storeapi.Store: blocks in a bucket hold none.
func (g *Gateway) Metadata(context.Context, *storeapi.MetadataRequest) (map[string][]metadata.Metadata, error) {
	return map[string][]metadata.Metadata{}, nil
}

func (g *Gateway) observe(request string, start time.Time) {
	g.m.requestDuration.WithLabelValues(request).Observe(time.Since(start).Seconds())
}

// blockError names the block an error came from.
func blockError(b *bucketBlock, err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("block %s: %w", b.id, err)
}
