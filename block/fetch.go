package block

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
	"golang.org/x/sync/errgroup"

	"github.com/atoll-metrics/atoll/bucket"
)

// Block is one block of a bucket: its meta.json and its marks.
type Block struct {
	Meta *Meta
	// Deletion is set when the block is marked for deletion.
	Deletion *DeletionMark
	// NoCompact is set when the block is excluded from compaction.
	NoCompact *NoCompactMark
}

// ID returns the block's ULID.
func (b *Block) ID() ulid.ULID { return b.Meta.ULID }

// Resolution returns the block's downsampling resolution in milliseconds.
func (b *Block) Resolution() int64 { return b.Meta.Thanos.Downsample.Resolution }

// Partial is a block directory without meta.json: an upload in progress, one
// a crash interrupted, or a deletion under way. Readers ignore it.
type Partial struct {
	ID ulid.ULID
	// Objects are the full names of the objects under the directory.
	Objects []string
	// Deleting is true when the directory still holds a deletion mark: the
	// compactor deleted meta.json first and was interrupted.
	Deleting bool
}

// Set is a snapshot of a bucket's blocks.
type Set struct {
	// Blocks holds every block with a readable meta.json.
	Blocks map[ulid.ULID]*Block
	// Partial holds block directories without meta.json.
	Partial map[ulid.ULID]*Partial
	// Unreadable holds blocks whose meta.json exists but does not decode.
	// Readers and the compactor leave them alone.
	Unreadable map[ulid.ULID]error
}

// Sorted returns every block of the set in ULID order.
func (s *Set) Sorted() []*Block {
	out := make([]*Block, 0, len(s.Blocks))
	for _, b := range s.Blocks {
		out = append(out, b)
	}
	slices.SortFunc(out, func(a, b *Block) int { return a.ID().Compare(b.ID()) })
	return out
}

// A Filter keeps (true) or drops a block from what a reader reads.
type Filter func(b *Block) bool

// UnlessDeletionMarked drops blocks marked for deletion at least grace
// before now; with grace 0, every marked block. The compactor reads with
// grace 0. Other readers keep reading a marked block for a while, which
// covers a sync that saw the mark before the block replacing the marked
// one: the grace must be shorter than the compactor's delete delay.
func UnlessDeletionMarked(now time.Time, grace time.Duration) Filter {
	return func(b *Block) bool {
		return b.Deletion == nil || (grace > 0 && now.Sub(b.Deletion.Time()) < grace)
	}
}

// InTimeRange keeps blocks with data in [mint, maxt], in milliseconds.
func InTimeRange(mint, maxt int64) Filter {
	return func(b *Block) bool { return b.Meta.MaxTime > mint && b.Meta.MinTime <= maxt }
}

// Visible returns, in ULID order, the blocks a reader reads: those that
// pass every filter and that no block of the set supersedes (Superseded).
// Supersession is judged over every block with a meta.json, so that the
// gateways, the compactor and the bucket tools agree on what the bucket
// holds whatever else they filter.
func (s *Set) Visible(filters ...Filter) []*Block {
	all := s.Sorted()
	metas := make([]*Meta, len(all))
	for i, b := range all {
		metas[i] = b.Meta
	}
	sup := Superseded(metas)
	out := make([]*Block, 0, len(all))
blocks:
	for _, b := range all {
		if _, ok := sup[b.ID()]; ok {
			continue
		}
		for _, keep := range filters {
			if !keep(b) {
				continue blocks
			}
		}
		out = append(out, b)
	}
	return out
}

// Fetcher reads a bucket's blocks, for every reader alike. Block metas and
// marks never change once written, so it keeps them and reads each only
// once; a Fetcher is meant to live as long as its user and be asked again
// on every sync. It lists the bucket recursively, which tells in one pass
// which blocks have meta.json and marks, rather than asking per block.
type Fetcher struct {
	bkt         bucket.Bucket
	logger      *slog.Logger
	concurrency int

	mu        sync.Mutex
	metas     map[ulid.ULID]*Meta
	deletion  map[ulid.ULID]*DeletionMark
	noCompact map[ulid.ULID]*NoCompactMark
}

// NewFetcher returns a Fetcher for bkt. logger may be nil.
func NewFetcher(bkt bucket.Bucket, logger *slog.Logger) *Fetcher {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Fetcher{
		bkt:         bkt,
		logger:      logger,
		concurrency: 16,
		metas:       map[ulid.ULID]*Meta{},
		deletion:    map[ulid.ULID]*DeletionMark{},
		noCompact:   map[ulid.ULID]*NoCompactMark{},
	}
}

// Fetch lists the bucket once and returns its blocks. Objects outside block
// directories (such as the compactor's lease) are ignored. An error means
// the bucket could not be read; a block whose meta.json does not decode is
// in Set.Unreadable instead.
func (f *Fetcher) Fetch(ctx context.Context) (*Set, error) {
	objects := map[ulid.ULID][]string{}
	err := f.bkt.Iter(ctx, "", func(name string) error {
		dir, _, ok := strings.Cut(name, "/")
		if !ok {
			return nil
		}
		id, err := ulid.ParseStrict(dir)
		if err != nil {
			return nil
		}
		objects[id] = append(objects[id], name)
		return nil
	}, true)
	if err != nil {
		return nil, fmt.Errorf("list bucket %s: %w", f.bkt.Name(), err)
	}

	set := &Set{
		Blocks:     map[ulid.ULID]*Block{},
		Partial:    map[ulid.ULID]*Partial{},
		Unreadable: map[ulid.ULID]error{},
	}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(f.concurrency)
	for id, names := range objects {
		has := func(file string) bool { return slices.Contains(names, path.Join(id.String(), file)) }
		if !has(MetaFilename) {
			set.Partial[id] = &Partial{ID: id, Objects: names, Deleting: has(DeletionMarkFilename)}
			continue
		}
		hasDeletion, hasNoCompact := has(DeletionMarkFilename), has(noCompactMarkFilename)
		g.Go(func() error {
			b, err := f.block(gctx, id, hasDeletion, hasNoCompact)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				set.Blocks[id] = b
			case bucket.IsNotFound(err):
				// Deleted since the listing: as if never listed.
			case gctx.Err() != nil:
				return gctx.Err()
			case errors.Is(err, errMalformedMeta) || errors.Is(err, errUnsupportedMeta):
				set.Unreadable[id] = err
			default:
				return err
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	f.forget(objects)
	return set, nil
}

func (f *Fetcher) block(ctx context.Context, id ulid.ULID, hasDeletion, hasNoCompact bool) (*Block, error) {
	f.mu.Lock()
	meta, dm, nm := f.metas[id], f.deletion[id], f.noCompact[id]
	f.mu.Unlock()

	if meta == nil {
		m, err := readMeta(ctx, f.bkt, id)
		if err != nil {
			return nil, err
		}
		meta = m
	}
	if hasDeletion && dm == nil {
		m, err := readDeletionMark(ctx, f.bkt, id)
		switch {
		case errors.Is(err, errMalformedMark):
			// The block is going away whatever the mark says.
			f.logger.Warn("unreadable deletion mark; treating the block as marked long ago", "block", id, "err", err)
			dm = &DeletionMark{ID: id, Version: markVersion, Details: err.Error()}
		case bucket.IsNotFound(err):
		case err != nil:
			return nil, fmt.Errorf("block %s: %w", id, err)
		default:
			dm = m
		}
	}
	if hasNoCompact && nm == nil {
		m, err := readNoCompactMark(ctx, f.bkt, id)
		switch {
		case errors.Is(err, errMalformedMark):
			// Someone meant to keep the compactor away from the block.
			f.logger.Warn("unreadable no-compact mark; not compacting the block", "block", id, "err", err)
			nm = &NoCompactMark{ID: id, Version: markVersion, Details: err.Error()}
		case bucket.IsNotFound(err):
		case err != nil:
			return nil, fmt.Errorf("block %s: %w", id, err)
		default:
			nm = m
		}
	}
	f.mu.Lock()
	f.metas[id] = meta
	if dm != nil {
		f.deletion[id] = dm
	}
	if nm != nil {
		f.noCompact[id] = nm
	}
	f.mu.Unlock()
	return &Block{Meta: meta, Deletion: dm, NoCompact: nm}, nil
}

// forget drops cached entries of blocks no longer in the bucket.
func (f *Fetcher) forget(present map[ulid.ULID][]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for id := range f.metas {
		if _, ok := present[id]; !ok {
			delete(f.metas, id)
			delete(f.deletion, id)
			delete(f.noCompact, id)
		}
	}
}

// Remember records a block the caller has just written, so the next Fetch
// need not read its meta back.
func (f *Fetcher) Remember(m *Meta) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.metas[m.ULID] = m
}
