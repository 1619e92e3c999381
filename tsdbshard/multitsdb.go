package tsdbshard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/util/compression"

	"github.com/atoll-metrics/atoll/block"
	"github.com/atoll-metrics/atoll/bucket"
	"github.com/atoll-metrics/atoll/ship"
	"github.com/atoll-metrics/atoll/tenant"
)

var (
	// errClosed is returned once the MultiTSDB is closing: the caller should
	// answer "unavailable" so the client retries elsewhere or later.
	errClosed = errors.New("tsdb is closed")
)

// Options configure every tenant's TSDB. The zero value is not usable; start
// from DefaultOptions.
type Options struct {
	// Dir holds one sub-directory per tenant.
	Dir string
	// BlockDuration is how much time a block covers. Blocks are cut from the
	// head and never compacted locally: the bucket's compactor does that.
	BlockDuration time.Duration
	// Retention is how long local blocks are kept. Zero keeps them forever.
	Retention time.Duration
	// OutOfOrderTimeWindow accepts samples that much older than a series'
	// newest one. Zero refuses them.
	OutOfOrderTimeWindow time.Duration
	// MaxExemplars is the per-tenant exemplar ring buffer size; 0 disables
	// exemplar storage.
	MaxExemplars int64
	// WALCompression compresses WAL records with snappy.
	WALCompression bool
	// ExternalLabels are added to every tenant's external labels, for example
	// the replica label that tells receivers apart.
	ExternalLabels labels.Labels
	// Bucket receives every finished block; nil keeps blocks local only.
	// With a bucket, a block past retention is deleted only once shipped.
	Bucket bucket.Bucket
	// ShipInterval is how often finished blocks are looked for and shipped.
	ShipInterval time.Duration

	// blockReloadInterval overrides how often the TSDB reloads its blocks
	// (and so applies retention); tests shorten it.
	blockReloadInterval time.Duration
}

// DefaultOptions are what `atoll all` runs with unless told otherwise.
func DefaultOptions() Options {
	return Options{
		Dir:            "data",
		BlockDuration:  2 * time.Hour,
		Retention:      15 * 24 * time.Hour,
		MaxExemplars:   100_000,
		WALCompression: true,
		ShipInterval:   30 * time.Second,
	}
}

// MultiTSDB holds one TSDB per tenant, opened on first use.
type MultiTSDB struct {
	opts   Options
	logger *slog.Logger
	reg    prometheus.Registerer

	mtx     sync.RWMutex
	tenants map[string]*Tenant
	opening map[string]*sync.WaitGroup
	closed  bool

	tenantsOpened prometheus.Counter
}

// Open opens every tenant TSDB already present under opts.Dir, replaying
// their WALs so that data written before a restart is queryable at once.
func Open(opts Options, logger *slog.Logger, reg prometheus.Registerer) (*MultiTSDB, error) {
	if opts.BlockDuration <= 0 {
		return nil, fmt.Errorf("block duration must be positive, got %s", opts.BlockDuration)
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m := &MultiTSDB{
		opts:    opts,
		logger:  logger,
		reg:     reg,
		tenants: map[string]*Tenant{},
		opening: map[string]*sync.WaitGroup{},
		tenantsOpened: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "atoll_tsdb_tenants_opened_total",
			Help: "Tenant TSDBs opened since start, on first write or found on disk.",
		}),
	}
	reg.MustRegister(m.tenantsOpened, &headCollector{m: m})

	entries, err := os.ReadDir(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("read data dir: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() || tenant.Validate(e.Name()) != nil {
			continue
		}
		if _, err := m.Tenant(e.Name()); err != nil {
			_ = m.Close()
			return nil, err
		}
	}
	return m, nil
}

// Tenant returns the tenant's TSDB, opening (and creating) it on first use.
// Concurrent first writes for one tenant open it once.
func (m *MultiTSDB) Tenant(id string) (*Tenant, error) {
	m.mtx.RLock()
	t, ok := m.tenants[id]
	closed := m.closed
	m.mtx.RUnlock()
	if closed {
		return nil, errClosed
	}
	if ok {
		return t, nil
	}
	if err := tenant.Validate(id); err != nil {
		return nil, err
	}

	m.mtx.Lock()
	if m.closed {
		m.mtx.Unlock()
		return nil, errClosed
	}
	if t, ok := m.tenants[id]; ok {
		m.mtx.Unlock()
		return t, nil
	}
	if wg, ok := m.opening[id]; ok {
		m.mtx.Unlock()
		wg.Wait()
		return m.Tenant(id)
	}
	wg := &sync.WaitGroup{}
	wg.Add(1)
	m.opening[id] = wg
	m.mtx.Unlock()

	t, err := m.openTenant(id)

	m.mtx.Lock()
	delete(m.opening, id)
	if err == nil {
		if m.closed {
			_ = t.close()
			err = errClosed
		} else {
			m.tenants[id] = t
		}
	}
	m.mtx.Unlock()
	wg.Done()
	if err != nil {
		return nil, err
	}
	return t, nil
}

func (m *MultiTSDB) openTenant(id string) (*Tenant, error) {
	start := time.Now()
	dir := filepath.Join(m.opts.Dir, id)
	logger := m.logger.With("tenant", id)

	b := labels.NewBuilder(m.opts.ExternalLabels)
	b.Set(tenant.Label, id)
	t := &Tenant{
		id:        id,
		dir:       dir,
		extLabels: b.Labels(),
		refs:      newSeriesCache(),
		metadata:  newMetadataStore(),
	}

	opts := tsdb.DefaultOptions()
	blockMs := m.opts.BlockDuration.Milliseconds()
	// Equal min and max block durations: the head is cut into blocks of one
	// size and nothing is compacted locally, so every block is shipped as cut
	// and the bucket compactor owns merging, as Thanos Receive does.
	opts.MinBlockDuration = blockMs
	opts.MaxBlockDuration = blockMs
	opts.RetentionDuration = m.opts.Retention.Milliseconds()
	opts.OutOfOrderTimeWindow = m.opts.OutOfOrderTimeWindow.Milliseconds()
	if m.opts.blockReloadInterval > 0 {
		opts.BlockReloadInterval = m.opts.blockReloadInterval
	}
	opts.EnableExemplarStorage = m.opts.MaxExemplars > 0
	opts.MaxExemplars = m.opts.MaxExemplars
	opts.NoLockfile = false
	if m.opts.WALCompression {
		opts.WALCompression = compression.Snappy
	} else {
		opts.WALCompression = compression.None
	}
	reg := prometheus.WrapRegistererWith(prometheus.Labels{"tenant": id}, m.reg)
	// BlocksToDelete is first called from inside tsdb.Open, before the DB
	// is returned: until then nothing is deleted.
	var opened atomic.Pointer[tsdb.DB]
	if m.opts.Bucket != nil {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("create tenant dir: %w", err)
		}
		sh, err := ship.NewShipper(m.opts.Bucket, dir, logger, reg,
			ship.WithExternalLabels(t.extLabels), ship.WithSource(block.SourceReceive))
		if err != nil {
			return nil, fmt.Errorf("shipper of tenant %q: %w", id, err)
		}
		t.shipper = sh
		// Past retention is not enough: a block leaves the disk only once
		// it is safely in the bucket.
		opts.BlocksToDelete = func(blocks []*tsdb.Block) map[ulid.ULID]struct{} {
			db := opened.Load()
			if db == nil {
				return nil
			}
			deletable := tsdb.DefaultBlocksToDelete(db)(blocks)
			for id := range deletable {
				if !sh.IsShipped(id) {
					delete(deletable, id)
				}
			}
			return deletable
		}
	}
	db, err := tsdb.Open(dir, logger, reg, opts, nil)
	if err != nil {
		return nil, fmt.Errorf("open tsdb of tenant %q: %w", id, err)
	}
	opened.Store(db)
	t.db = db
	m.tenantsOpened.Inc()
	logger.Info("tenant tsdb opened", "dir", dir, "series", db.Head().NumSeries(), "duration", time.Since(start).Round(time.Millisecond))
	return t, nil
}

// Tenants returns the open tenants sorted by id.
func (m *MultiTSDB) Tenants() []*Tenant {
	m.mtx.RLock()
	defer m.mtx.RUnlock()
	out := make([]*Tenant, 0, len(m.tenants))
	for _, t := range m.tenants {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// Options returns the options the MultiTSDB was opened with.
func (m *MultiTSDB) Options() Options { return m.opts }

// RotateSeriesCaches drops series-ref cache entries not used since the
// previous rotation, so series that stopped receiving samples do not pin
// memory. Run it about once per block duration.
func (m *MultiTSDB) RotateSeriesCaches() {
	for _, t := range m.Tenants() {
		t.refs.rotate()
	}
}

// Run rotates the series caches once per block duration and, with a
// bucket, ships finished blocks every ShipInterval, until ctx ends.
func (m *MultiTSDB) Run(ctx context.Context) error {
	rotate := time.NewTicker(m.opts.BlockDuration)
	defer rotate.Stop()
	shipEvery := m.opts.ShipInterval
	if shipEvery <= 0 {
		shipEvery = DefaultOptions().ShipInterval
	}
	shipTick := time.NewTicker(shipEvery)
	defer shipTick.Stop()
	// After a failure (a bucket outage, say) shipping backs off
	// exponentially up to maxShipBackoff; unshipped blocks wait on disk.
	var failures int
	var nextShip time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-rotate.C:
			m.RotateSeriesCaches()
		case now := <-shipTick.C:
			if m.opts.Bucket == nil || now.Before(nextShip) {
				continue
			}
			if err := m.Ship(ctx); err != nil {
				failures++
				wait := min(shipEvery<<min(failures, 10), maxShipBackoff)
				nextShip = now.Add(wait)
				m.logger.Warn("shipping failed; backing off", "retry_in", wait, "consecutive_failures", failures)
				continue
			}
			failures, nextShip = 0, time.Time{}
		}
	}
}

// maxShipBackoff bounds the wait between shipping attempts after failures,
// so a bucket that comes back is used again within minutes.
const maxShipBackoff = 5 * time.Minute

// Ship uploads every tenant's finished blocks that are not in the bucket
// yet. A failure is logged and counted by the shipper and retried at the
// next call; nothing is lost meanwhile because unshipped blocks stay on disk.
func (m *MultiTSDB) Ship(ctx context.Context) error {
	var errs []error
	for _, t := range m.Tenants() {
		if t.shipper == nil {
			continue
		}
		if n, err := t.shipper.Sync(ctx); err != nil {
			m.logger.Warn("shipping blocks failed, will retry", "tenant", t.id, "err", err)
			errs = append(errs, fmt.Errorf("tenant %q: %w", t.id, err))
		} else if n > 0 {
			m.logger.Info("shipped blocks", "tenant", t.id, "blocks", n)
		}
	}
	return errors.Join(errs...)
}

// Flush cuts every tenant's head into a block, so that nothing lives only
// in a WAL; with a bucket it then ships the blocks. A receiver leaving the
// cluster for good calls it so scaling down strands no data.
func (m *MultiTSDB) Flush(ctx context.Context) error {
	var errs []error
	for _, t := range m.Tenants() {
		h := t.db.Head()
		if h.NumSeries() == 0 || h.MinTime() > h.MaxTime() {
			continue
		}
		start := time.Now()
		// The range is inclusive of maxt, so the newest sample is in the block.
		if err := t.db.CompactHead(tsdb.NewRangeHead(h, h.MinTime(), h.MaxTime())); err != nil {
			errs = append(errs, fmt.Errorf("flush head of tenant %q: %w", t.id, err))
			continue
		}
		m.logger.Info("head flushed to a block", "tenant", t.id, "duration", time.Since(start).Round(time.Millisecond))
	}
	if m.opts.Bucket != nil {
		if err := m.Ship(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Close closes every tenant TSDB; appends after Close fail with errClosed.
// A second call is harmless.
func (m *MultiTSDB) Close() error {
	m.mtx.Lock()
	if m.closed {
		m.mtx.Unlock()
		return nil
	}
	m.closed = true
	opening := make([]*sync.WaitGroup, 0, len(m.opening))
	for _, wg := range m.opening {
		opening = append(opening, wg)
	}
	m.mtx.Unlock()
	for _, wg := range opening {
		wg.Wait()
	}

	m.mtx.Lock()
	defer m.mtx.Unlock()
	var errs []error
	for id, t := range m.tenants {
		if err := t.close(); err != nil {
			errs = append(errs, fmt.Errorf("close tenant %q: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

// headCollector reports per-tenant head figures at scrape time, so no
// goroutine has to keep gauges current.
type headCollector struct{ m *MultiTSDB }

var (
	headSeriesDesc = prometheus.NewDesc("atoll_tsdb_head_series",
		"Series in the tenant's TSDB head.", []string{"tenant"}, nil)
	headMinTimeDesc = prometheus.NewDesc("atoll_tsdb_head_min_time_seconds",
		"Oldest sample time in the tenant's head.", []string{"tenant"}, nil)
	headMaxTimeDesc = prometheus.NewDesc("atoll_tsdb_head_max_time_seconds",
		"Newest sample time in the tenant's head.", []string{"tenant"}, nil)
	tenantsDesc = prometheus.NewDesc("atoll_tsdb_tenants",
		"Tenant TSDBs open on this process.", nil, nil)
	seriesCacheDesc = prometheus.NewDesc("atoll_tsdb_series_ref_cache_entries",
		"Label sets whose TSDB series ref the write path remembers.", []string{"tenant"}, nil)
)

func (c *headCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- headSeriesDesc
	ch <- headMinTimeDesc
	ch <- headMaxTimeDesc
	ch <- tenantsDesc
	ch <- seriesCacheDesc
}

func (c *headCollector) Collect(ch chan<- prometheus.Metric) {
	tenants := c.m.Tenants()
	ch <- prometheus.MustNewConstMetric(tenantsDesc, prometheus.GaugeValue, float64(len(tenants)))
	for _, t := range tenants {
		h := t.db.Head()
		ch <- prometheus.MustNewConstMetric(headSeriesDesc, prometheus.GaugeValue, float64(h.NumSeries()), t.id)
		if h.NumSeries() > 0 {
			ch <- prometheus.MustNewConstMetric(headMinTimeDesc, prometheus.GaugeValue, float64(h.MinTime())/1000, t.id)
			ch <- prometheus.MustNewConstMetric(headMaxTimeDesc, prometheus.GaugeValue, float64(h.MaxTime())/1000, t.id)
		}
		ch <- prometheus.MustNewConstMetric(seriesCacheDesc, prometheus.GaugeValue, float64(t.refs.len()), t.id)
	}
}
