package ship

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/atoll-metrics/atoll/block"
	"github.com/atoll-metrics/atoll/bucket"
	"github.com/atoll-metrics/atoll/internal/atomicfile"
)

// shipperStateFile records, inside the TSDB directory, which blocks are in
// the bucket. TSDB ignores files whose names are not ULIDs.
const shipperStateFile = "atoll-shipper.json"

// ShipperOption changes a Shipper's defaults.
type ShipperOption func(*shipperOptions)

type shipperOptions struct {
	externalLabels labels.Labels
	source         string
}

// WithExternalLabels sets the labels written to each shipped block's
// meta.json (typically tenant and replica). They identify the block's
// producer to queriers and the compactor. Default: none.
func WithExternalLabels(ls labels.Labels) ShipperOption {
	return func(o *shipperOptions) { o.externalLabels = ls }
}

// WithSource sets the source written to each shipped block's meta.json.
// Default: block.SourceReceive.
func WithSource(source string) ShipperOption {
	return func(o *shipperOptions) { o.source = source }
}

// Shipper uploads the finished blocks of one TSDB directory to a bucket,
// each exactly once. A block's files go first and its meta.json last, so a
// reader that waits for meta.json never sees a partial block. Which blocks
// are shipped is recorded in a small file in the TSDB directory; if that file
// is lost, a block whose meta.json is already in the bucket counts as shipped
// and is not uploaded again.
//
// Only blocks as cut from the head (compaction level 1) with samples are
// shipped: the owner of the TSDB is expected to disable local compaction
// (MinBlockDuration == MaxBlockDuration), which the compactor does on the
// bucket instead. Blocks without samples never appear in Shipped and hold no
// data to lose.
type Shipper struct {
	bkt    bucket.Bucket
	dir    string
	logger *slog.Logger
	opts   shipperOptions

	syncMu sync.Mutex // one Sync at a time, so no block uploads twice

	mu      sync.Mutex // guards shipped and the state file
	shipped map[ulid.ULID]struct{}

	uploads     prometheus.Counter
	failures    prometheus.Counter
	lastSuccess prometheus.Gauge
}

// NewShipper returns a Shipper for the TSDB directory dir. It registers
// atoll_shipper_uploads_total, atoll_shipper_upload_failures_total and
// atoll_shipper_last_successful_upload_time_seconds on reg (which may be
// nil); shippers sharing a registry each need reg wrapped with a distinct
// constant label, e.g. tenant (prometheus.WrapRegistererWith).
//
// The state file is read here; Shipped is meaningful before the first Sync.
func NewShipper(bkt bucket.Bucket, dir string, logger *slog.Logger, reg prometheus.Registerer, opts ...ShipperOption) (*Shipper, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	o := shipperOptions{source: block.SourceReceive}
	for _, opt := range opts {
		opt(&o)
	}
	s := &Shipper{
		bkt:    bkt,
		dir:    dir,
		logger: logger.With("component", "shipper"),
		opts:   o,
		uploads: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "atoll_shipper_uploads_total",
			Help: "Blocks uploaded to the bucket.",
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "atoll_shipper_upload_failures_total",
			Help: "Block uploads that failed and will be retried.",
		}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "atoll_shipper_last_successful_upload_time_seconds",
			Help: "Unix time of the last block uploaded to the bucket.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{s.uploads, s.failures, s.lastSuccess} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("shipper metrics: %w", err)
			}
		}
	}
	s.shipped = s.loadState()
	return s, nil
}

// Shipped returns the blocks known to be in the bucket; the TSDB owner may
// delete these, and only these, locally. The map is a copy.
func (s *Shipper) Shipped() map[ulid.ULID]struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[ulid.ULID]struct{}, len(s.shipped))
	for id := range s.shipped {
		out[id] = struct{}{}
	}
	return out
}

// IsShipped reports whether block id is known to be in the bucket.
func (s *Shipper) IsShipped(id ulid.ULID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.shipped[id]
	return ok
}

// localBlock is a finished block directory awaiting shipping.
type localBlock struct {
	dir  string
	meta *block.Meta
}

// Sync uploads every finished block not yet shipped and returns how many it
// uploaded. It carries on past a failed block and returns the failures
// joined; nothing is lost, as the next Sync retries them.
func (s *Shipper) Sync(ctx context.Context) (uploaded int, err error) {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()

	blocks, err := s.finishedBlocks()
	if err != nil {
		return 0, err
	}
	if err := s.forgetDeleted(blocks); err != nil {
		s.logger.Warn("cannot save shipper state", "err", err)
	}

	var pending []localBlock
	for _, b := range blocks {
		if !s.IsShipped(b.meta.ULID) {
			pending = append(pending, b)
		}
	}

	// Oldest first, one at a time: a block is shipped before the ones cut
	// after it.
	var errs []error
	for _, b := range pending {
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		didUpload, err := s.shipBlock(ctx, b)
		if didUpload {
			uploaded++
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return uploaded, errors.Join(errs...)
}

// finishedBlocks lists the blocks TSDB has finished writing, oldest first.
// TSDB writes a block under "<ulid>.tmp-for-creation" and renames it when
// complete, so only directories named by a bare ULID qualify.
func (s *Shipper) finishedBlocks() ([]localBlock, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("list blocks in %s: %w", s.dir, err)
	}
	var blocks []localBlock
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if _, err := ulid.ParseStrict(e.Name()); err != nil {
			continue
		}
		dir := filepath.Join(s.dir, e.Name())
		m, err := block.ReadMetaFromDir(dir)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue
		case err != nil:
			// A broken block must not hold up the others; it stays local
			// and unshipped for an operator to look at.
			s.logger.Error("skipping block with unreadable meta.json", "block", e.Name(), "err", err)
			continue
		case m.Compaction.Level > 1:
			continue
		case m.Stats.NumSamples == 0:
			continue
		}
		blocks = append(blocks, localBlock{dir: dir, meta: m})
	}
	slices.SortFunc(blocks, func(a, b localBlock) int { return a.meta.ULID.Compare(b.meta.ULID) })
	return blocks, nil
}

// forgetDeleted drops blocks the TSDB owner has deleted locally from the
// state, which would otherwise grow forever.
func (s *Shipper) forgetDeleted(blocks []localBlock) error {
	local := make(map[ulid.ULID]struct{}, len(blocks))
	for _, b := range blocks {
		local[b.meta.ULID] = struct{}{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	changed := false
	for id := range s.shipped {
		if _, ok := local[id]; !ok {
			delete(s.shipped, id)
			changed = true
		}
	}
	if !changed {
		return nil
	}
	return s.saveStateLocked()
}

// shipBlock uploads one block unless the bucket already holds it, and marks
// it shipped.
func (s *Shipper) shipBlock(ctx context.Context, b localBlock) (uploaded bool, err error) {
	id := b.meta.ULID
	start := time.Now()
	defer func() {
		if err != nil && ctx.Err() == nil {
			s.failures.Inc()
			s.logger.Warn("block upload failed; will retry", "block", id, "bucket", s.bkt.Name(), "err", err)
		}
	}()

	// The state file may be lost, or a crash may have come between the
	// meta.json upload and the state write: a block with meta.json in the
	// bucket is complete there.
	exists, err := s.bkt.Exists(ctx, path.Join(id.String(), block.MetaFilename))
	if err != nil {
		return false, fmt.Errorf("block %s: check bucket: %w", id, err)
	}
	if !exists {
		if err := s.upload(ctx, b); err != nil {
			return false, err
		}
		s.uploads.Inc()
		s.lastSuccess.SetToCurrentTime()
		s.logger.Info("uploaded block", "block", id, "mint", b.meta.MinTime, "maxt", b.meta.MaxTime,
			"bucket", s.bkt.Name(), "duration", time.Since(start))
	}
	if err := s.markShipped(id); err != nil {
		// The block is in the bucket; after a restart the existence check
		// above recovers the lost record.
		return !exists, fmt.Errorf("block %s: uploaded, but recording it failed: %w", id, err)
	}
	return !exists, nil
}

// upload copies the block with the thanos section of its meta.json filled
// in. meta.json goes last: until it exists, readers ignore the block, so a
// partial upload is invisible and simply redone.
func (s *Shipper) upload(ctx context.Context, b localBlock) error {
	m := *b.meta
	m.Thanos = block.ThanosMeta{
		Labels:     s.opts.externalLabels.Map(),
		Downsample: b.meta.Thanos.Downsample,
		Source:     s.opts.source,
	}
	_, err := block.Upload(ctx, s.bkt, b.dir, &m, nil)
	return err
}

func (s *Shipper) markShipped(id ulid.ULID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.shipped[id] = struct{}{}
	return s.saveStateLocked()
}

// shipperState is the content of the state file.
type shipperState struct {
	Version int         `json:"version"`
	Shipped []ulid.ULID `json:"shipped"`
}

func (s *Shipper) loadState() map[ulid.ULID]struct{} {
	shipped := map[ulid.ULID]struct{}{}
	data, err := os.ReadFile(filepath.Join(s.dir, shipperStateFile))
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			s.logger.Warn("cannot read shipper state; the bucket will be asked instead", "err", err)
		}
		return shipped
	}
	var st shipperState
	if err := json.Unmarshal(data, &st); err != nil || st.Version != 1 {
		s.logger.Warn("ignoring unreadable shipper state; the bucket will be asked instead", "version", st.Version, "err", err)
		return shipped
	}
	for _, id := range st.Shipped {
		shipped[id] = struct{}{}
	}
	return shipped
}

func (s *Shipper) saveStateLocked() error {
	st := shipperState{Version: 1, Shipped: make([]ulid.ULID, 0, len(s.shipped))}
	for id := range s.shipped {
		st.Shipped = append(st.Shipped, id)
	}
	slices.SortFunc(st.Shipped, ulid.ULID.Compare)
	data, err := json.MarshalIndent(st, "", "\t")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(s.dir, shipperStateFile), data)
}

// Run calls Sync every interval until ctx ends, and returns nil then. After
// a failed Sync it retries sooner, then backs off exponentially (starting at
// the smaller of interval and one second, capped at the larger of interval
// and one minute), so an outage is neither hammered nor waited out longer
// than needed.
func (s *Shipper) Run(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		return fmt.Errorf("shipper: sync interval must be positive, got %v", interval)
	}
	failures := 0
	for {
		_, err := s.Sync(ctx)
		if ctx.Err() != nil {
			return nil
		}
		wait := interval
		if err != nil {
			failures++
			wait = retryDelay(failures, interval)
		} else {
			failures = 0
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// retryDelay is the wait before retry number n (from 1) of a failing Sync,
// with ±20% jitter so shippers of many tenants do not retry in lockstep.
func retryDelay(n int, interval time.Duration) time.Duration {
	base := min(interval, time.Second)
	limit := max(interval, time.Minute)
	d := base
	for i := 1; i < n && d < limit; i++ {
		d *= 2
	}
	d = min(d, limit)
	jitter := time.Duration(rand.Int64N(int64(d)/5+1)) * 2
	return d - d/5 + jitter
}
