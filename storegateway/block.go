package storegateway

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/tsdb/encoding"
	"github.com/prometheus/prometheus/tsdb/index"
	"golang.org/x/sync/errgroup"

	"github.com/atoll-metrics/atoll/block"
	"github.com/atoll-metrics/atoll/bucket"
)

const (
	// chunkHeaderMax is the largest chunk header: data length varint and
	// encoding byte.
	chunkHeaderMax = binary.MaxVarintLen32 + 1
	// chunkEstimate is how many bytes are read for a chunk whose end is
	// not known from the next chunk's reference: enough for any XOR
	// chunk. A longer (histogram) chunk costs one more read.
	chunkEstimate = chunkHeaderMax + chunkenc.MaxBytesPerXORChunk + 4
)

// bucketBlock is one block served from the bucket: its meta, its open
// index header, and range reads of its index and chunks for the rest.
// Queries hold mtx for reading while they use the block; closing takes it
// for writing, so a block dropped by a sync outlives the queries using it.
type bucketBlock struct {
	meta     *block.Meta
	id       ulid.ULID
	ext      labels.Labels
	extKey   string
	header   *indexHeader
	r        *bucketReader
	cache    *indexCache
	opts     *Options
	index    string
	segments []string
	dir      string

	// seriesEstimate is how many bytes are read for a series entry whose
	// length is not known yet.
	seriesEstimate int64

	mtx sync.RWMutex
}

// loadBlock opens the block's index header from dir, building it first
// from the bucket if it is missing or unreadable.
func loadBlock(ctx context.Context, meta *block.Meta, dir string, r *bucketReader, cache *indexCache, opts *Options) (*bucketBlock, error) {
	id := meta.ULID
	b := &bucketBlock{
		meta:  meta,
		id:    id,
		ext:   meta.ExternalLabels(),
		r:     r,
		cache: cache,
		opts:  opts,
		index: path.Join(id.String(), "index"),
		dir:   filepath.Join(dir, id.String()),
	}
	b.extKey = b.ext.String()

	size := fileSize(meta, "index")
	if size <= 0 {
		attrs, err := r.bkt.Attributes(ctx, b.index)
		if err != nil {
			return nil, fmt.Errorf("index: %w", err)
		}
		size = attrs.Size
	}
	headerPath := filepath.Join(b.dir, headerFilename)
	h, err := openIndexHeader(headerPath)
	if err == nil && h.info.indexSize != size {
		// Made for another index of the same block ID: stale.
		_ = h.close()
		err = block.ErrCorrupt
	}
	if err != nil {
		// Missing, torn or stale: build it again.
		if err := buildIndexHeader(ctx, r.as(fetchHeader), b.index, size, headerPath); err != nil {
			return nil, fmt.Errorf("build index header: %w", err)
		}
		if h, err = openIndexHeader(headerPath); err != nil {
			_ = os.Remove(headerPath)
			return nil, fmt.Errorf("open index header: %w", err)
		}
	}
	b.header = h

	segs, err := segmentFiles(ctx, r.bkt, meta)
	if err != nil {
		_ = h.close()
		return nil, err
	}
	for _, s := range segs {
		b.segments = append(b.segments, path.Join(id.String(), "chunks", s))
	}

	start, end := h.seriesSection()
	avg := int64(1024)
	if n := int64(meta.Stats.NumSeries); n > 0 {
		avg = (end - start) / n
	}
	b.seriesEstimate = min(max(2*avg+64, 256), 64<<10)
	return b, nil
}

// fileSize is the size meta.json records for a block file, or 0.
func fileSize(meta *block.Meta, rel string) int64 {
	for _, f := range meta.Thanos.Files {
		if f.RelPath == rel {
			return f.SizeBytes
		}
	}
	return 0
}

// segmentFiles lists the block's chunk segment files in order: a chunk
// reference's segment number indexes this list.
func segmentFiles(ctx context.Context, bkt bucket.Bucket, meta *block.Meta) ([]string, error) {
	if len(meta.Thanos.SegmentFiles) > 0 {
		return slices.Sorted(slices.Values(meta.Thanos.SegmentFiles)), nil
	}
	var out []string
	for _, f := range meta.Thanos.Files {
		if name, ok := strings.CutPrefix(f.RelPath, "chunks/"); ok {
			out = append(out, name)
		}
	}
	if len(out) > 0 {
		slices.Sort(out)
		return out, nil
	}
	// Blocks written by other tools may list no files.
	dir := path.Join(meta.ULID.String(), "chunks") + "/"
	err := bkt.Iter(ctx, dir, func(name string) error {
		if !strings.HasSuffix(name, "/") {
			out = append(out, strings.TrimPrefix(name, dir))
		}
		return nil
	}, false)
	if err != nil {
		return nil, fmt.Errorf("list chunk segments: %w", err)
	}
	slices.Sort(out)
	return out, nil
}

// close waits for the queries using the block and releases its header.
func (b *bucketBlock) close() error {
	b.mtx.Lock()
	defer b.mtx.Unlock()
	return b.header.close()
}

func (b *bucketBlock) resolution() int64 { return b.meta.Thanos.Downsample.Resolution }

// labelPair names one postings list.
type labelPair struct{ name, value string }

// postings returns the raw postings list of every pair (nil for pairs no
// series has), from the cache or from range reads of the index.
func (b *bucketBlock) postings(ctx context.Context, pairs []labelPair) ([][]byte, error) {
	out := make([][]byte, len(pairs))
	var parts []part
	for i, p := range pairs {
		key := cacheKey{block: b.id, kind: cachePostings, name: p.name, value: p.value}
		if data, ok := b.cache.get(key); ok {
			out[i] = data
			continue
		}
		start, end, ok, err := b.header.postingsRange(p.name, p.value)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		parts = append(parts, part{start: start, end: end, id: i})
	}
	err := b.fetchParts(ctx, fetchPostings, b.index, parts, func(p part, buf []byte) error {
		data, err := block.PostingsList(buf)
		if err != nil {
			return fmt.Errorf("postings list at %d: %w", p.start, err)
		}
		data = bytes.Clone(data)
		pr := pairs[p.id]
		b.cache.set(cacheKey{block: b.id, kind: cachePostings, name: pr.name, value: pr.value}, data)
		out[p.id] = data
		return nil
	})
	return out, err
}

// decodePostings turns a raw postings list into Postings.
func decodePostings(data []byte) (index.Postings, error) {
	if data == nil {
		return index.EmptyPostings(), nil
	}
	_, p, err := index.DecodePostingsRaw(encoding.Decbuf{B: data})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", block.ErrCorrupt, err)
	}
	return p, nil
}

// series returns the index entries (without length and checksum) of the
// series refs, in the order of refs.
func (b *bucketBlock) series(ctx context.Context, refs []storage.SeriesRef) ([][]byte, error) {
	out := make([][]byte, len(refs))
	start, end := b.header.seriesSection()
	var parts []part
	for i, ref := range refs {
		if data, ok := b.cache.get(cacheKey{block: b.id, kind: cacheSeries, ref: uint64(ref)}); ok {
			out[i] = data
			continue
		}
		off := int64(ref) * block.SeriesAlignment
		if off < start || off >= end {
			return nil, fmt.Errorf("%w: series %d outside the series section", block.ErrCorrupt, ref)
		}
		parts = append(parts, part{start: off, end: min(off+b.seriesEstimate, end), id: i})
	}
	err := b.fetchParts(ctx, fetchSeries, b.index, parts, func(p part, buf []byte) error {
		data, need, err := block.SeriesEntry(buf)
		if need > 0 {
			// Longer than estimated: read exactly what it needs.
			if buf, err = b.r.read(ctx, fetchSeries, b.index, p.start, int64(need)); err != nil {
				return err
			}
			data, need, err = block.SeriesEntry(buf)
			if need > 0 {
				return fmt.Errorf("%w: series entry at %d runs past the index", block.ErrCorrupt, p.start)
			}
		}
		if err != nil {
			return fmt.Errorf("series entry at %d: %w", p.start, err)
		}
		data = bytes.Clone(data)
		b.cache.set(cacheKey{block: b.id, kind: cacheSeries, ref: uint64(refs[p.id])}, data)
		out[p.id] = data
		return nil
	})
	return out, err
}

// chunkWant is one chunk to read: where its bytes end at the latest (the
// next chunk of the same series in the same segment), or 0 if unknown.
type chunkWant struct {
	meta  *chunks.Meta
	bound int64
}

// loadChunks reads the chunks of wants and sets their Chunk. Chunks of one
// segment that lie close together are read with one request.
func (b *bucketBlock) loadChunks(ctx context.Context, wants []chunkWant) error {
	bySegment := map[int][]part{}
	for i, w := range wants {
		seg, off := chunks.BlockChunkRef(w.meta.Ref).Unpack()
		end := int64(off) + chunkEstimate
		if w.bound > int64(off) && w.bound < end {
			end = w.bound
		}
		bySegment[seg] = append(bySegment[seg], part{start: int64(off), end: end, id: i})
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(b.opts.FetchConcurrency)
	for seg, parts := range bySegment {
		if seg >= len(b.segments) {
			return fmt.Errorf("%w: chunk in segment %d of %d", block.ErrCorrupt, seg+1, len(b.segments))
		}
		name := b.segments[seg]
		for _, fr := range mergeParts(parts, b.opts.MaxRangeGap) {
			g.Go(func() error {
				buf, err := b.r.read(gctx, fetchChunks, name, fr.start, fr.end-fr.start)
				if err != nil {
					return err
				}
				for _, p := range fr.parts {
					chk, err := b.chunkAt(gctx, name, p.start, buf[min(p.start-fr.start, int64(len(buf))):])
					if err != nil {
						return err
					}
					wants[p.id].meta.Chunk = chk
				}
				return nil
			})
		}
	}
	return g.Wait()
}

// chunkAt decodes the chunk at off of segment name from buf, which starts
// at off and may end too soon; the rest is read then.
func (b *bucketBlock) chunkAt(ctx context.Context, name string, off int64, buf []byte) (chunkenc.Chunk, error) {
	for attempt := 0; ; attempt++ {
		chk, need, err := block.ChunkRecord(buf)
		if err != nil {
			return nil, fmt.Errorf("chunk at %s:%d: %w", name, off, err)
		}
		if need == 0 {
			return chk, nil
		}
		if attempt == 2 {
			return nil, fmt.Errorf("%w: chunk at %s:%d cut short", block.ErrCorrupt, name, off)
		}
		if buf, err = b.r.read(ctx, fetchChunks, name, off, int64(need)); err != nil {
			return nil, err
		}
	}
}

// fetchParts reads the parts of object name with merged range reads, at
// most FetchConcurrency at once, and hands each part's bytes (from its
// start to the end of its read) to f. f may be called concurrently for
// different parts.
func (b *bucketBlock) fetchParts(ctx context.Context, kind, name string, parts []part, f func(p part, buf []byte) error) error {
	if len(parts) == 0 {
		return nil
	}
	ranges := mergeParts(parts, b.opts.MaxRangeGap)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(b.opts.FetchConcurrency)
	for _, fr := range ranges {
		g.Go(func() error {
			buf, err := b.r.read(gctx, kind, name, fr.start, fr.end-fr.start)
			if err != nil {
				return err
			}
			for _, p := range fr.parts {
				if err := f(p, buf[min(p.start-fr.start, int64(len(buf))):]); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return g.Wait()
}
