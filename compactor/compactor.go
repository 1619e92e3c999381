package compactor

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"golang.org/x/sync/errgroup"

	"github.com/atoll-metrics/atoll/block"
	"github.com/atoll-metrics/atoll/bucket"
	"github.com/atoll-metrics/atoll/compactor/downsample"
)

// partialMinAge is the least time a partial block must have been left
// untouched before it is deleted, whatever DeleteDelay says: a receiver may
// be uploading it slowly.
const partialMinAge = time.Hour

// Compactor keeps one bucket in order. See the package documentation.
type Compactor struct {
	bkt     bucket.Bucket
	opts    Options
	logger  *slog.Logger
	fetcher *block.Fetcher
	ranges  []int64
	pool    chunkenc.Pool
	tsdbm   *tsdb.CompactorMetrics
	m       *metrics

	running atomic.Bool
	ready   atomic.Bool
	lease   *lease
}

// New returns a Compactor for bkt. Metrics (atoll_compactor_*) are
// registered on reg, which may be nil.
func New(bkt bucket.Bucket, opts Options, logger *slog.Logger, reg prometheus.Registerer) (*Compactor, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	return &Compactor{
		bkt:     bkt,
		opts:    opts,
		logger:  logger,
		fetcher: block.NewFetcher(bkt, logger),
		ranges:  opts.rangesMillis(),
		pool:    chunkenc.NewPool(),
		tsdbm:   tsdb.NewCompactorMetrics(nil),
		m:       m,
	}, nil
}

// Ready reports whether the compactor holds the bucket's lease and works.
func (c *Compactor) Ready() bool { return c.ready.Load() }

// Run takes the bucket's lease, keeps it renewed, and makes a pass over the
// bucket; with Options.Interval > 0 it makes another pass every Interval
// until ctx ends, and then returns nil. With Interval 0 it returns after the
// one pass: nil when the bucket is in order, else the pass's errors. Blocks
// the compactor cannot read are marked no-compact and do not fail a pass.
//
// If another compactor holds the lease, Run returns at once with a
// *LeaseHeldError (matching ErrLeaseHeld). If the lease is lost while
// running, Run stops writing and returns an error matching ErrLeaseLost.
// The lease is released when Run returns.
func (c *Compactor) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("compactor: Run called twice")
	}
	defer c.running.Store(false)

	l := newLease(c.bkt, c.opts.LeaseHolder, c.opts.LeaseDuration, c.opts.Now, c.logger)
	if err := l.acquire(ctx); err != nil {
		return err
	}
	c.lease = l
	c.m.leaseHeld.Set(1)
	c.ready.Store(true)
	c.logger.Info("holding the bucket lease", "bucket", c.bkt.Name(), "holder", c.opts.LeaseHolder, "duration", c.opts.LeaseDuration)

	work, cancel := context.WithCancelCause(ctx)
	kept := make(chan struct{})
	go func() {
		defer close(kept)
		if err := l.keep(work); err != nil {
			c.logger.Error("lost the bucket lease; stopping", "err", err)
			cancel(err)
		}
	}()
	defer func() {
		c.ready.Store(false)
		c.m.leaseHeld.Set(0)
		cancel(nil)
		<-kept
		if l.check() == nil {
			rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer rcancel()
			if err := l.release(rctx); err != nil {
				c.logger.Warn("cannot release the bucket lease; it expires by itself", "err", err)
			}
		}
	}()

	for {
		err := c.Pass(work)
		if cause := context.Cause(work); errors.Is(cause, ErrLeaseLost) {
			return cause
		}
		if ctx.Err() != nil {
			return nil
		}
		if c.opts.Interval <= 0 {
			return err
		}
		if err != nil {
			c.logger.Error("pass failed; retrying after the interval", "err", err)
		}
		t := time.NewTimer(c.opts.Interval)
		select {
		case <-work.Done():
			t.Stop()
			if cause := context.Cause(work); errors.Is(cause, ErrLeaseLost) {
				return cause
			}
			return nil
		case <-t.C:
		}
	}
}

// Pass makes one pass over the bucket: it finishes interrupted deletions,
// marks blocks superseded by compacted ones, compacts and downsamples until
// nothing is left to do, applies retention, and deletes blocks whose
// deletion marks are older than DeleteDelay. It must run under Run's lease;
// Run calls it.
func (c *Compactor) Pass(ctx context.Context) (err error) {
	if c.lease == nil {
		return errors.New("compactor: Pass outside Run")
	}
	start := time.Now()
	c.m.passes.Inc()
	var newestMaxTime int64
	defer func() {
		if err != nil {
			c.m.passFailures.Inc()
			return
		}
		c.m.lastSuccess.SetToCurrentTime()
		if newestMaxTime > 0 {
			c.m.newestBlock.Set(float64(newestMaxTime) / 1000)
		}
		c.logger.Info("pass done", "duration", time.Since(start))
	}()
	for _, d := range []string{"compact", "downsample"} {
		if err := os.RemoveAll(filepath.Join(c.opts.DataDir, d)); err != nil {
			return err
		}
	}
	set, err := c.fetcher.Fetch(ctx)
	if err != nil {
		return err
	}
	for id, err := range set.Unreadable {
		c.logger.Warn("ignoring block with unreadable meta.json", "block", id, "err", err)
	}
	st := c.newPassState(set)
	noCompact := 0
	for _, b := range set.Blocks {
		newestMaxTime = max(newestMaxTime, b.Meta.MaxTime)
		if b.NoCompact != nil && b.Deletion == nil {
			noCompact++
		}
	}
	c.m.groups.Set(float64(len(st.groups)))
	c.m.noCompactBlocks.Set(float64(noCompact))

	var errs []error
	keep := func(err error) bool {
		if err == nil {
			return true
		}
		errs = append(errs, err)
		return ctx.Err() == nil && !errors.Is(err, ErrLeaseLost)
	}
	if !keep(c.cleanPartials(ctx, set)) || !keep(c.markSuperseded(ctx, st)) {
		return errors.Join(errs...)
	}
	for {
		compacted, err := c.compactAll(ctx, st)
		if !keep(err) {
			return errors.Join(errs...)
		}
		downsampled, err := c.downsampleAll(ctx, st)
		if !keep(err) {
			return errors.Join(errs...)
		}
		// A block downsampled from a longer raw block supersedes the ones
		// made from its parts: retire them rather than merge them.
		if downsampled > 0 && !keep(c.markSuperseded(ctx, st)) {
			return errors.Join(errs...)
		}
		if compacted+downsampled == 0 || err != nil {
			break
		}
	}
	if !keep(c.applyRetention(ctx, st)) {
		return errors.Join(errs...)
	}
	keep(c.deleteMarked(ctx, st))
	return errors.Join(errs...)
}

// passState is the compactor's view of the bucket during a pass, updated as
// it writes.
type passState struct {
	mu     sync.Mutex
	all    map[ulid.ULID]*block.Block // every block with meta.json
	groups map[string]*groupState
}

type groupState struct {
	group group
	// live are the group's blocks readers read, no-compact ones included.
	live []*block.Block
}

func (c *Compactor) newPassState(set *block.Set) *passState {
	st := &passState{all: map[ulid.ULID]*block.Block{}, groups: map[string]*groupState{}}
	for id, b := range set.Blocks {
		st.all[id] = b
	}
	for _, b := range set.Visible(block.UnlessDeletionMarked(c.opts.Now(), 0)) {
		gs := st.groupLocked(groupOf(b, c.opts.ReplicaLabels))
		gs.live = append(gs.live, b)
	}
	return st
}

func (st *passState) groupLocked(g group) *groupState {
	gs, ok := st.groups[g.Key()]
	if !ok {
		gs = &groupState{group: g}
		st.groups[g.Key()] = gs
	}
	return gs
}

// sortedGroups returns the groups in key order.
func (st *passState) sortedGroups(res int64) []*groupState {
	st.mu.Lock()
	defer st.mu.Unlock()
	var out []*groupState
	for _, gs := range st.groups {
		if gs.group.Resolution == res {
			out = append(out, gs)
		}
	}
	slices.SortFunc(out, func(a, b *groupState) int { return cmp.Compare(a.group.Key(), b.group.Key()) })
	return out
}

// compactAll compacts every group until its plan is empty and returns how
// many compactions it ran.
func (c *Compactor) compactAll(ctx context.Context, st *passState) (int, error) {
	var (
		total atomic.Int64
		mu    sync.Mutex
		errs  []error
	)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.opts.Concurrency)
	for _, res := range []int64{block.ResolutionRaw, block.Resolution5m, block.Resolution1h} {
		for _, gs := range st.sortedGroups(res) {
			g.Go(func() error {
				n, err := c.compactGroup(gctx, st, gs)
				total.Add(int64(n))
				if err != nil {
					c.logger.Error("compaction of group failed", "group", gs.group.Key(), "err", err)
					mu.Lock()
					errs = append(errs, fmt.Errorf("group %s: %w", gs.group.Key(), err))
					mu.Unlock()
					if errors.Is(err, ErrLeaseLost) {
						return err
					}
				}
				return nil
			})
		}
	}
	_ = g.Wait()
	return int(total.Load()), errors.Join(errs...)
}

func (c *Compactor) compactGroup(ctx context.Context, st *passState, gs *groupState) (int, error) {
	n := 0
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		st.mu.Lock()
		var candidates []*block.Block
		for _, b := range gs.live {
			if b.NoCompact == nil {
				candidates = append(candidates, b)
			}
		}
		st.mu.Unlock()
		job := plan(candidates, c.ranges)
		if job == nil {
			return n, nil
		}
		err := c.compact(ctx, st, gs, job)
		var be *blockError
		if errors.As(err, &be) && slices.ContainsFunc(job, func(b *block.Block) bool { return b.ID() == be.ID }) {
			if err := c.markNoCompact(ctx, st, be); err != nil {
				return n, err
			}
			continue
		}
		if err != nil {
			c.m.compactionFailures.Inc()
			return n, err
		}
		n++
	}
}

// compact merges job's blocks into one new block, uploads it, and marks the
// inputs for deletion.
func (c *Compactor) compact(ctx context.Context, st *passState, gs *groupState, job []*block.Block) error {
	start := time.Now()
	dir := filepath.Join(c.opts.DataDir, "compact", gs.group.dirName())
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	var (
		dirs    []string
		opened  []*tsdb.Block
		inputs  = map[ulid.ULID]input{}
		samples uint64
	)
	closeOpened := func() {
		for _, b := range opened {
			_ = b.Close()
		}
		opened = nil
	}
	defer closeOpened()
	byAge := slices.Clone(job)
	slices.SortFunc(byAge, func(a, b *block.Block) int { return a.ID().Compare(b.ID()) })
	for rank, b := range byAge {
		bdir, err := block.Download(ctx, c.bkt, b.ID(), dir)
		if errors.Is(err, block.ErrIncomplete) {
			return &blockError{ID: b.ID(), Reason: block.NoCompactReasonUnreadable, Err: err}
		}
		if err != nil {
			return err
		}
		ob, err := tsdb.OpenBlock(nil, bdir, c.pool, nil)
		if err != nil {
			return &blockError{ID: b.ID(), Reason: block.NoCompactReasonUnreadable, Err: err}
		}
		opened = append(opened, ob)
		dirs = append(dirs, bdir)
		inputs[b.ID()] = input{replica: replicaKey(b.Meta.Thanos.Labels, c.opts.ReplicaLabels), rank: rank}
		samples += b.Meta.Stats.NumSamples
	}
	lc, err := tsdb.NewLeveledCompactorWithOptions(ctx, nil, nil, c.ranges, c.pool, tsdb.LeveledCompactorOptions{
		Metrics:                     c.tsdbm,
		EnableOverlappingCompaction: true,
	})
	if err != nil {
		return err
	}
	ids, err := lc.CompactWithBlockPopulator(dir, dirs, opened, &populator{
		downsampled: gs.group.Resolution > 0,
		inputs:      inputs,
	})
	if err != nil {
		return err
	}
	closeOpened()

	var out *block.Block
	details := "compacted into an empty block"
	if len(ids) > 0 {
		newDir := filepath.Join(dir, ids[0].String())
		meta, err := block.ReadMetaFromDir(newDir)
		if err != nil {
			return err
		}
		meta.Thanos = block.ThanosMeta{
			Labels:     gs.group.Labels.Map(),
			Downsample: block.Downsample{Resolution: gs.group.Resolution},
			Source:     block.SourceCompactor,
		}
		uploaded, err := block.Upload(ctx, c.bkt, newDir, meta, c.lease.check)
		if err != nil {
			return err
		}
		c.fetcher.Remember(uploaded)
		out = &block.Block{Meta: uploaded}
		details = "compacted into " + uploaded.ULID.String()
	}
	if err := c.markDeleted(ctx, st, job, details); err != nil {
		return err
	}

	st.mu.Lock()
	gs.live = slices.DeleteFunc(gs.live, func(b *block.Block) bool { return slices.Contains(job, b) })
	if out != nil {
		gs.live = append(gs.live, out)
		st.all[out.ID()] = out
	}
	st.mu.Unlock()

	kind := "horizontal"
	if overlapping(job) {
		kind = "vertical"
	}
	c.m.compactions.WithLabelValues(kind, resolutionName(gs.group.Resolution)).Inc()
	c.m.samplesCompacted.WithLabelValues(resolutionName(gs.group.Resolution)).Add(float64(samples))
	attrs := []any{"group", gs.group.Key(), "kind", kind, "inputs", len(job), "samples", samples, "duration", time.Since(start)}
	if out != nil {
		attrs = append(attrs, "block", out.ID(), "mint", out.Meta.MinTime, "maxt", out.Meta.MaxTime)
	}
	c.logger.Info("compacted blocks", attrs...)
	return nil
}

func overlapping(bs []*block.Block) bool {
	s := slices.Clone(bs)
	slices.SortFunc(s, func(a, b *block.Block) int { return cmp.Compare(a.Meta.MinTime, b.Meta.MinTime) })
	for i := 1; i < len(s); i++ {
		if s[i].Meta.MinTime < s[i-1].Meta.MaxTime {
			return true
		}
	}
	return false
}

func resolutionName(res int64) string {
	switch res {
	case block.ResolutionRaw:
		return "raw"
	case block.Resolution5m:
		return "5m"
	case block.Resolution1h:
		return "1h"
	}
	return strconv.FormatInt(res, 10)
}

// markDeleted writes deletion marks for bs and records them in the state.
func (c *Compactor) markDeleted(ctx context.Context, st *passState, bs []*block.Block, details string) error {
	for _, b := range bs {
		if b.Deletion != nil {
			continue
		}
		if err := c.lease.check(); err != nil {
			return err
		}
		mark, err := block.WriteDeletionMark(ctx, c.bkt, b.ID(), details, c.opts.Now())
		if err != nil {
			return err
		}
		st.mu.Lock()
		marked := *b
		marked.Deletion = mark
		st.all[b.ID()] = &marked
		for _, gs := range st.groups {
			gs.live = slices.DeleteFunc(gs.live, func(x *block.Block) bool { return x.ID() == b.ID() })
		}
		st.mu.Unlock()
		c.m.markedForDeletion.WithLabelValues(reasonOf(details)).Inc()
	}
	return nil
}

func reasonOf(details string) string {
	switch {
	case details == "retention":
		return "retention"
	case len(details) > 10 && details[:10] == "superseded":
		return "superseded"
	default:
		return "compacted"
	}
}

func (c *Compactor) markNoCompact(ctx context.Context, st *passState, be *blockError) error {
	if err := c.lease.check(); err != nil {
		return err
	}
	c.logger.Warn("marking block no-compact; it stays readable and the rest of its group goes on", "block", be.ID, "reason", be.Reason, "err", be.Err)
	mark, err := block.WriteNoCompactMark(ctx, c.bkt, be.ID, be.Reason, be.Err.Error(), c.opts.Now())
	if err != nil {
		return err
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, gs := range st.groups {
		for i, b := range gs.live {
			if b.ID() == be.ID {
				marked := *b
				marked.NoCompact = mark
				gs.live[i] = &marked
				st.all[be.ID] = &marked
			}
		}
	}
	c.m.markedNoCompact.Inc()
	return nil
}

// markSuperseded marks blocks superseded by others (a crash came between a
// compacted block's upload and the marking of its inputs).
func (c *Compactor) markSuperseded(ctx context.Context, st *passState) error {
	st.mu.Lock()
	all := make([]*block.Block, 0, len(st.all))
	for _, b := range st.all {
		all = append(all, b)
	}
	st.mu.Unlock()
	var todo []*block.Block
	metas := make([]*block.Meta, len(all))
	for i, b := range all {
		metas[i] = b.Meta
	}
	sup := block.Superseded(metas)
	for _, b := range all {
		if by, ok := sup[b.ID()]; ok && b.Deletion == nil {
			todo = append(todo, b)
			if err := c.markDeleted(ctx, st, []*block.Block{b}, "superseded by "+by.String()); err != nil {
				return err
			}
		}
	}
	if len(todo) > 0 {
		c.logger.Info("marked superseded blocks for deletion", "blocks", len(todo))
	}
	return nil
}

// downsampleAll downsamples every live block long enough and not yet
// downsampled, raw to 5m and 5m to 1h, and returns how many it made.
func (c *Compactor) downsampleAll(ctx context.Context, st *passState) (int, error) {
	if c.opts.DisableDownsampling {
		return 0, nil
	}
	type job struct {
		b     *block.Block
		group group
		res   int64
	}
	var jobs []job
	st.mu.Lock()
	covered := func(b *block.Block, res int64) bool {
		for _, x := range st.all {
			if x.Resolution() == res && x.Meta.ContainsSources(b.Meta) {
				return true
			}
		}
		return false
	}
	for _, gs := range st.groups {
		var res int64
		var minSpan time.Duration
		switch gs.group.Resolution {
		case block.ResolutionRaw:
			res, minSpan = block.Resolution5m, c.opts.DownsampleRawMinSpan
		case block.Resolution5m:
			res, minSpan = block.Resolution1h, c.opts.Downsample5mMinSpan
		default:
			continue
		}
		for _, b := range gs.live {
			if b.NoCompact != nil || b.Meta.MaxTime-b.Meta.MinTime < minSpan.Milliseconds() || covered(b, res) {
				continue
			}
			jobs = append(jobs, job{b: b, group: group{Labels: gs.group.Labels, Resolution: res}, res: res})
		}
	}
	st.mu.Unlock()
	slices.SortFunc(jobs, func(a, b job) int {
		return cmp.Or(cmp.Compare(a.res, b.res), a.b.ID().Compare(b.b.ID()))
	})

	var (
		done atomic.Int64
		mu   sync.Mutex
		errs []error
	)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.opts.Concurrency)
	for _, j := range jobs {
		g.Go(func() error {
			err := c.downsample(gctx, st, j.b, j.group)
			var be *blockError
			if errors.As(err, &be) {
				err = c.markNoCompact(gctx, st, be)
			} else if err == nil {
				done.Add(1)
			}
			if err != nil {
				c.logger.Error("downsampling failed", "block", j.b.ID(), "err", err)
				mu.Lock()
				errs = append(errs, fmt.Errorf("downsample block %s: %w", j.b.ID(), err))
				mu.Unlock()
				if errors.Is(err, ErrLeaseLost) {
					return err
				}
			}
			return nil
		})
	}
	_ = g.Wait()
	return int(done.Load()), errors.Join(errs...)
}

func (c *Compactor) downsample(ctx context.Context, st *passState, b *block.Block, g group) error {
	start := time.Now()
	dir := filepath.Join(c.opts.DataDir, "downsample", b.ID().String())
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bdir, err := block.Download(ctx, c.bkt, b.ID(), dir)
	if errors.Is(err, block.ErrIncomplete) {
		return &blockError{ID: b.ID(), Reason: block.NoCompactReasonUnreadable, Err: err}
	}
	if err != nil {
		return err
	}
	out := filepath.Join(dir, "out")
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	meta, stats, err := downsample.Block(ctx, bdir, out, g.Resolution)
	if errors.Is(err, downsample.ErrInput) {
		return &blockError{ID: b.ID(), Reason: block.NoCompactReasonUnreadable, Err: err}
	}
	if err != nil {
		return err
	}
	newDir := filepath.Join(out, meta.ULID.String())
	meta.Thanos.Labels = g.Labels.Map()
	uploaded, err := block.Upload(ctx, c.bkt, newDir, meta, c.lease.check)
	if err != nil {
		return err
	}
	c.fetcher.Remember(uploaded)
	nb := &block.Block{Meta: uploaded}
	st.mu.Lock()
	st.all[nb.ID()] = nb
	gs := st.groupLocked(g)
	gs.live = append(gs.live, nb)
	st.mu.Unlock()
	c.m.downsamples.WithLabelValues(resolutionName(g.Resolution)).Inc()
	c.m.samplesDownsampled.WithLabelValues(resolutionName(b.Resolution())).Add(float64(stats.InputSamples))
	if stats.DroppedHistograms > 0 {
		c.logger.Warn("histogram samples with incompatible bucket layouts left out of aggregates", "block", b.ID(), "samples", stats.DroppedHistograms)
	}
	c.logger.Info("downsampled block", "block", b.ID(), "resolution", resolutionName(g.Resolution), "new", nb.ID(),
		"samples", stats.InputSamples, "duration", time.Since(start))
	return nil
}

// applyRetention marks blocks whose whole time range is older than their
// resolution's retention.
func (c *Compactor) applyRetention(ctx context.Context, st *passState) error {
	now := c.opts.Now()
	st.mu.Lock()
	var expired []*block.Block
	for _, gs := range st.groups {
		ret := map[int64]time.Duration{
			block.ResolutionRaw: c.opts.RetentionRaw,
			block.Resolution5m:  c.opts.Retention5m,
			block.Resolution1h:  c.opts.Retention1h,
		}[gs.group.Resolution]
		if ret <= 0 {
			continue
		}
		cutoff := now.Add(-ret).UnixMilli()
		for _, b := range gs.live {
			if b.Meta.MaxTime <= cutoff {
				expired = append(expired, b)
			}
		}
	}
	st.mu.Unlock()
	if len(expired) > 0 {
		c.logger.Info("marking blocks past retention for deletion", "blocks", len(expired))
	}
	return c.markDeleted(ctx, st, expired, "retention")
}

// deleteMarked deletes blocks whose deletion marks are DeleteDelay old.
func (c *Compactor) deleteMarked(ctx context.Context, st *passState) error {
	now := c.opts.Now()
	st.mu.Lock()
	var due []*block.Block
	for _, b := range st.all {
		if b.Deletion != nil && now.Sub(b.Deletion.Time()) >= c.opts.DeleteDelay {
			due = append(due, b)
		}
	}
	st.mu.Unlock()
	slices.SortFunc(due, func(a, b *block.Block) int { return a.ID().Compare(b.ID()) })
	for _, b := range due {
		if err := c.lease.check(); err != nil {
			return err
		}
		if err := block.Delete(ctx, c.bkt, b.ID()); err != nil {
			return err
		}
		st.mu.Lock()
		delete(st.all, b.ID())
		st.mu.Unlock()
		c.m.deleted.Inc()
	}
	if len(due) > 0 {
		c.logger.Info("deleted blocks", "blocks", len(due))
	}
	return nil
}

// cleanPartials finishes deletions a crash interrupted and removes uploads
// abandoned long enough ago.
func (c *Compactor) cleanPartials(ctx context.Context, set *block.Set) error {
	now := c.opts.Now()
	minAge := max(c.opts.DeleteDelay, partialMinAge)
	for _, p := range set.Partial {
		if !p.Deleting {
			idle, err := c.idleSince(ctx, p)
			if err != nil {
				return err
			}
			if now.Sub(idle) < minAge {
				continue
			}
		}
		if err := c.lease.check(); err != nil {
			return err
		}
		c.logger.Info("deleting partial block", "block", p.ID, "mid_deletion", p.Deleting)
		if err := block.Delete(ctx, c.bkt, p.ID); err != nil {
			return err
		}
		c.m.partialDeleted.Inc()
	}
	return nil
}

// idleSince returns the newest modification time of a partial block's
// objects.
func (c *Compactor) idleSince(ctx context.Context, p *block.Partial) (time.Time, error) {
	var newest time.Time
	for _, name := range p.Objects {
		a, err := c.bkt.Attributes(ctx, name)
		if bucket.IsNotFound(err) {
			continue
		}
		if err != nil {
			return newest, err
		}
		if a.LastModified.After(newest) {
			newest = a.LastModified
		}
	}
	return newest, nil
}
