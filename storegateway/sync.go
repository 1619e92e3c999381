package storegateway

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/atoll-metrics/atoll/block"
)

// Sync makes the served blocks match the bucket: it loads the blocks that
// are new, visible (block.Set.Visible) and in the time window, and drops
// those deleted, superseded, marked for deletion longer than
// DeletionMarkDelay, or out of the window. Blocks without meta.json (uploads
// in progress) are not seen; blocks that fail to load are skipped, counted,
// and tried again at the next sync.
func (g *Gateway) Sync(ctx context.Context) error {
	g.syncMtx.Lock()
	defer g.syncMtx.Unlock()
	start := time.Now()
	defer func() { g.m.syncDuration.Observe(time.Since(start).Seconds()) }()
	g.m.syncs.Inc()

	set, err := g.fetcher.Fetch(ctx)
	if err != nil {
		g.m.syncFailures.Inc()
		return err
	}
	for id, err := range set.Unreadable {
		g.loadFailed(id, fmt.Errorf("read %s: %w", block.MetaFilename, err))
	}
	marked := 0
	for _, b := range set.Blocks {
		if b.Deletion != nil {
			marked++
		}
	}
	now := g.opts.Now()
	mint, maxt := g.window(now)
	wanted := map[ulid.ULID]*block.Meta{}
	for _, b := range set.Visible(block.UnlessDeletionMarked(now, g.opts.DeletionMarkDelay), block.InTimeRange(mint, maxt)) {
		wanted[b.ID()] = b.Meta
	}
	partial := len(set.Partial)
	g.m.partialBlocks.Set(float64(partial))
	g.m.markedBlocks.Set(float64(marked))

	g.mtx.RLock()
	var toLoad []*block.Meta
	for id, meta := range wanted {
		if _, ok := g.blocks[id]; !ok {
			toLoad = append(toLoad, meta)
		}
	}
	g.mtx.RUnlock()

	loaded := g.loadBlocks(ctx, toLoad)
	if err := ctx.Err(); err != nil {
		for _, b := range loaded {
			_ = b.close()
		}
		return err
	}

	g.mtx.Lock()
	if g.closed {
		g.mtx.Unlock()
		for _, b := range loaded {
			_ = b.close()
		}
		return errors.New("gateway closed")
	}
	for _, b := range loaded {
		g.blocks[b.id] = b
	}
	var dropped []*bucketBlock
	for id, b := range g.blocks {
		if _, ok := wanted[id]; !ok {
			dropped = append(dropped, b)
			delete(g.blocks, id)
		}
	}
	served := len(g.blocks)
	keep := make(map[string]bool, served)
	for id := range g.blocks {
		keep[id.String()] = true
	}
	g.mtx.Unlock()

	for _, b := range dropped {
		g.closing.Add(1)
		go func() {
			defer g.closing.Done()
			// Waits for the queries still reading the block.
			if err := b.close(); err != nil {
				g.logger.Warn("closing dropped block", "block", b.id, "err", err)
			}
			_ = os.RemoveAll(b.dir)
		}()
	}
	g.m.blockDrops.Add(float64(len(dropped)))
	g.m.blocksLoaded.Set(float64(served))
	g.removeStaleDirs(keep, dropped)

	// Forget the failures of blocks no longer in the bucket.
	g.failedMtx.Lock()
	for id := range g.failed {
		_, listed := set.Blocks[id]
		_, unreadable := set.Unreadable[id]
		if !listed && !unreadable {
			delete(g.failed, id)
		}
	}
	g.failedMtx.Unlock()
	if len(loaded) > 0 || len(dropped) > 0 {
		g.logger.Info("synced blocks", "served", served, "loaded", len(loaded), "dropped", len(dropped),
			"partial", partial, "marked_for_deletion", marked, "duration", time.Since(start).Round(time.Millisecond))
	}
	g.m.lastSync.SetToCurrentTime()
	g.synced.Store(true)
	return nil
}

// window is the time range of blocks to serve at now, in milliseconds.
func (g *Gateway) window(now time.Time) (mint, maxt int64) {
	mint, maxt = math.MinInt64, math.MaxInt64
	if !g.opts.MinTime.IsZero() {
		mint = g.opts.MinTime.Time(now).UnixMilli()
	}
	if !g.opts.MaxTime.IsZero() {
		maxt = g.opts.MaxTime.Time(now).UnixMilli()
	}
	return mint, maxt
}

// loadBlocks loads the blocks of metas, SyncConcurrency at once, and
// returns those that loaded.
func (g *Gateway) loadBlocks(ctx context.Context, metas []*block.Meta) []*bucketBlock {
	var (
		mtx    sync.Mutex
		loaded []*bucketBlock
		wg     sync.WaitGroup
	)
	sem := make(chan struct{}, g.opts.SyncConcurrency)
	for _, meta := range metas {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return loaded
		}
		wg.Go(func() {
			defer func() { <-sem }()
			start := time.Now()
			b, err := loadBlock(ctx, meta, g.opts.Dir, g.r, g.cache, &g.opts)
			if err != nil {
				if ctx.Err() == nil {
					g.loadFailed(meta.ULID, err)
				}
				return
			}
			g.m.blockLoads.Inc()
			g.logger.Debug("loaded block", "block", meta.ULID, "min_time", meta.MinTime, "max_time", meta.MaxTime,
				"resolution", meta.Thanos.Downsample.Resolution, "labels", b.extKey,
				"header_heap_bytes", b.header.heapBytes(), "duration", time.Since(start).Round(time.Millisecond))
			mtx.Lock()
			loaded = append(loaded, b)
			mtx.Unlock()
			g.failedMtx.Lock()
			delete(g.failed, meta.ULID)
			g.failedMtx.Unlock()
		})
	}
	wg.Wait()
	return loaded
}

// loadFailed counts a block that could not be loaded; the same failure is
// logged once, not at every sync.
func (g *Gateway) loadFailed(id ulid.ULID, err error) {
	g.m.blockLoadFailures.Inc()
	g.failedMtx.Lock()
	defer g.failedMtx.Unlock()
	msg := err.Error()
	if g.failed[id] == msg {
		g.logger.Debug("block still fails to load; skipped", "block", id, "err", err)
		return
	}
	g.failed[id] = msg
	g.logger.Warn("skipping block that fails to load", "block", id, "err", err)
}

// removeStaleDirs deletes the index headers of blocks not served, except
// those of dropped blocks, which are removed once their queries end.
func (g *Gateway) removeStaleDirs(keep map[string]bool, dropped []*bucketBlock) {
	for _, b := range dropped {
		keep[b.id.String()] = true
	}
	entries, err := os.ReadDir(g.opts.Dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if _, err := ulid.ParseStrict(e.Name()); err != nil || keep[e.Name()] {
			continue
		}
		_ = os.RemoveAll(filepath.Join(g.opts.Dir, e.Name()))
	}
}
