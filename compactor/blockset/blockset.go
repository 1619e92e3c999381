package blockset

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
	"github.com/atoll-metrics/atoll/ship"
)

// Block is one block of a bucket: its meta.json and its marks.
type Block struct {
	Meta *ship.Meta
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
// a crash interrupted, or a deletion under way.
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
	// Unreadable holds blocks whose meta.json exists but cannot be decoded.
	// Readers and the compactor leave them alone.
	Unreadable map[ulid.ULID]error
}

// Sorted returns the blocks in ULID order.
func (s *Set) Sorted() []*Block {
	out := make([]*Block, 0, len(s.Blocks))
	for _, b := range s.Blocks {
		out = append(out, b)
	}
	slices.SortFunc(out, func(a, b *Block) int { return a.ID().Compare(b.ID()) })
	return out
}

// Fetcher reads a bucket's blocks. Block metas and marks never change once
// written, so it keeps them and reads each only once; a Fetcher is meant to
// live as long as its user and be asked again on every sync.
type Fetcher struct {
	bkt         bucket.Bucket
	logger      *slog.Logger
	concurrency int

	mu        sync.Mutex
	metas     map[ulid.ULID]*ship.Meta
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
		metas:       map[ulid.ULID]*ship.Meta{},
		deletion:    map[ulid.ULID]*DeletionMark{},
		noCompact:   map[ulid.ULID]*NoCompactMark{},
	}
}

// Fetch lists the bucket once and returns its blocks. Objects outside block
// directories (such as the compactor's lease) are ignored.
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
		if !has(ship.MetaFilename) {
			set.Partial[id] = &Partial{ID: id, Objects: names, Deleting: has(DeletionMarkFilename)}
			continue
		}
		hasDeletion, hasNoCompact := has(DeletionMarkFilename), has(NoCompactMarkFilename)
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
			case errors.Is(err, errBadObject):
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

// errBadObject wraps decoding failures, to tell a broken object from a
// bucket that cannot be reached.
var errBadObject = errors.New("undecodable object")

func (f *Fetcher) block(ctx context.Context, id ulid.ULID, hasDeletion, hasNoCompact bool) (*Block, error) {
	f.mu.Lock()
	meta, dm, nm := f.metas[id], f.deletion[id], f.noCompact[id]
	f.mu.Unlock()

	if meta == nil {
		m, err := ship.ReadMetaFromBucket(ctx, f.bkt, id)
		if err != nil {
			if bucket.IsNotFound(err) || ctx.Err() != nil || !isDecodeError(err) {
				return nil, err
			}
			return nil, fmt.Errorf("%w: %w", errBadObject, err)
		}
		meta = m
	}
	if hasDeletion && dm == nil {
		m, err := ship.ReadDeletionMark(ctx, f.bkt, id)
		if err != nil {
			if !bucket.IsNotFound(err) {
				return nil, fmt.Errorf("block %s: %w", id, err)
			}
		} else {
			dm = m
		}
	}
	if hasNoCompact && nm == nil {
		var m NoCompactMark
		if err := readJSON(ctx, f.bkt, path.Join(id.String(), NoCompactMarkFilename), &m); err != nil {
			if !bucket.IsNotFound(err) {
				return nil, fmt.Errorf("block %s: %w", id, err)
			}
		} else {
			nm = &m
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

// isDecodeError reports whether err came from decoding rather than from the
// bucket. ship wraps decoding failures with the block id and "decode" or the
// unsupported-version sentinel.
func isDecodeError(err error) bool {
	return errors.Is(err, ship.ErrUnsupportedMeta) || strings.Contains(err.Error(), "decode ")
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
func (f *Fetcher) Remember(m *ship.Meta) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.metas[m.ULID] = m
}

// Superseded applies ship.Superseded, the rule every reader follows, to
// blocks.
func Superseded(blocks []*Block) map[ulid.ULID]ulid.ULID {
	metas := make([]*ship.Meta, len(blocks))
	for i, b := range blocks {
		metas[i] = b.Meta
	}
	return ship.Superseded(metas)
}

// Live returns, in ULID order, the blocks a reader should read: those not
// superseded and not marked for deletion. A reader other than the compactor
// passes keepMarkedFor > 0 to keep reading a marked block until its mark is
// that old, which covers a sync that saw a mark before the block replacing
// the marked one (see the package documentation); the compactor passes 0.
func (s *Set) Live(now time.Time, keepMarkedFor time.Duration) []*Block {
	all := s.Sorted()
	sup := Superseded(all)
	out := make([]*Block, 0, len(all))
	for _, b := range all {
		if _, ok := sup[b.ID()]; ok {
			continue
		}
		if b.Deletion != nil && (keepMarkedFor <= 0 || now.Sub(b.Deletion.Time()) >= keepMarkedFor) {
			continue
		}
		out = append(out, b)
	}
	return out
}
