package block

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/tsdb/index"
	"golang.org/x/sync/errgroup"

	"github.com/atoll-metrics/atoll/bucket"
)

// Kinds of Problem that Verify reports.
const (
	// ProblemOverlap: blocks with the same external labels and resolution
	// cover overlapping time ranges (blocks marked for deletion aside).
	ProblemOverlap = "overlap"
	// ProblemBadMeta: meta.json does not parse or makes no sense.
	ProblemBadMeta = "bad-meta"
	// ProblemMissingFile: the index or a chunk segment is missing.
	ProblemMissingFile = "missing-file"
	// ProblemCorruptIndex: the index does not parse or fails a checksum.
	ProblemCorruptIndex = "corrupt-index"
	// ProblemCorruptChunks: a chunk segment does not parse, fails a
	// checksum, or is shorter than chunks pointing into it.
	ProblemCorruptChunks = "corrupt-chunks"
	// ProblemMetaMismatch: meta.json and the files disagree (sizes, series
	// or chunk counts, time range).
	ProblemMetaMismatch = "meta-mismatch"
)

// Problem is one thing wrong with a bucket.
type Problem struct {
	Kind   string
	Blocks []ulid.ULID
	Detail string
}

func (p Problem) String() string {
	ids := make([]string, len(p.Blocks))
	for i, id := range p.Blocks {
		ids[i] = id.String()
	}
	return fmt.Sprintf("%s %s: %s", p.Kind, strings.Join(ids, ","), p.Detail)
}

// VerifyOptions tune Verify.
type VerifyOptions struct {
	// Deep reads every series entry and chunk, checking each checksum and
	// that chunks lie within the block and their segment; otherwise only
	// the structure of indexes and segments is read.
	Deep bool
	// Concurrency bounds the blocks checked at once; 0 means 4.
	Concurrency int
}

// Verify checks every block of set, read from bkt, and returns the
// problems found, in a stable order. The error is for a bucket it could not
// read.
func Verify(ctx context.Context, bkt bucket.Bucket, set *Set, opts VerifyOptions) ([]Problem, error) {
	if opts.Concurrency <= 0 {
		opts.Concurrency = 4
	}
	var problems []Problem
	for id, err := range set.Unreadable {
		problems = append(problems, Problem{Kind: ProblemBadMeta, Blocks: []ulid.ULID{id}, Detail: err.Error()})
	}
	problems = append(problems, overlaps(set)...)

	var mtx sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(opts.Concurrency)
	for _, b := range set.Sorted() {
		meta := b.Meta
		g.Go(func() error {
			ps, err := verifyBlock(gctx, bkt, meta, opts.Deep)
			if err != nil {
				return fmt.Errorf("block %s: %w", meta.ULID, err)
			}
			mtx.Lock()
			problems = append(problems, ps...)
			mtx.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	sort.SliceStable(problems, func(i, j int) bool {
		a, b := problems[i], problems[j]
		if c := a.Blocks[0].Compare(b.Blocks[0]); c != 0 {
			return c < 0
		}
		return a.Kind < b.Kind
	})
	return problems, nil
}

// overlaps finds blocks of one stream (external labels and resolution)
// whose time ranges overlap, among the blocks readers read: a compaction
// overlaps its sources until they are marked and deleted, and readers
// serve only the compaction.
func overlaps(set *Set) []Problem {
	type stream struct {
		ext string
		res int64
	}
	streams := map[stream][]*Meta{}
	for _, b := range set.Visible(UnlessDeletionMarked(time.Now(), 0)) {
		k := stream{b.Meta.ExternalLabels().String(), b.Resolution()}
		streams[k] = append(streams[k], b.Meta)
	}
	var out []Problem
	for k, blocks := range streams {
		sort.Slice(blocks, func(i, j int) bool { return blocks[i].MinTime < blocks[j].MinTime })
		var last *Meta
		for _, b := range blocks {
			if last != nil && b.MinTime < last.MaxTime {
				out = append(out, Problem{
					Kind:   ProblemOverlap,
					Blocks: []ulid.ULID{last.ULID, b.ULID},
					Detail: fmt.Sprintf("labels %s resolution %d: [%s, %s) and [%s, %s) overlap", k.ext, k.res,
						fmtMillis(last.MinTime), fmtMillis(last.MaxTime), fmtMillis(b.MinTime), fmtMillis(b.MaxTime)),
				})
			}
			if last == nil || b.MaxTime > last.MaxTime {
				last = b
			}
		}
	}
	return out
}

func fmtMillis(ms int64) string { return time.UnixMilli(ms).UTC().Format(time.RFC3339) }

// verifyBlock checks one block. Problems found are returned; the error is
// for a bucket that could not be read.
func verifyBlock(ctx context.Context, bkt bucket.Bucket, meta *Meta, deep bool) ([]Problem, error) {
	id := meta.ULID
	var problems []Problem
	report := func(kind, format string, args ...any) {
		problems = append(problems, Problem{Kind: kind, Blocks: []ulid.ULID{id}, Detail: fmt.Sprintf(format, args...)})
	}
	if meta.MinTime >= meta.MaxTime {
		report(ProblemBadMeta, "empty time range [%d, %d)", meta.MinTime, meta.MaxTime)
	}

	// Files: what meta.json lists, or at least the index and segments.
	sizes := map[string]int64{}
	listed := map[string]int64{}
	for _, f := range meta.Thanos.Files {
		if f.RelPath != MetaFilename {
			listed[f.RelPath] = f.SizeBytes
		}
	}
	err := bkt.Iter(ctx, id.String(), func(name string) error {
		rel := strings.TrimPrefix(name, id.String()+"/")
		if rel == MetaFilename || rel == DeletionMarkFilename {
			return nil
		}
		attrs, err := bkt.Attributes(ctx, name)
		if err != nil {
			return err
		}
		sizes[rel] = attrs.Size
		return nil
	}, true)
	if err != nil {
		return nil, fmt.Errorf("list files: %w", err)
	}
	for rel, want := range listed {
		got, ok := sizes[rel]
		switch {
		case !ok:
			report(ProblemMissingFile, "%s listed in %s is missing", rel, MetaFilename)
		case want > 0 && got != want:
			report(ProblemMetaMismatch, "%s is %d bytes, %s says %d", rel, got, MetaFilename, want)
		}
	}
	var segments []string
	for rel := range sizes {
		if name, ok := strings.CutPrefix(rel, "chunks/"); ok {
			segments = append(segments, name)
		}
	}
	slices.Sort(segments)
	if _, ok := sizes["index"]; !ok {
		if _, alreadyReported := listed["index"]; !alreadyReported {
			report(ProblemMissingFile, "index is missing")
		}
		return problems, nil
	}
	if len(segments) == 0 && meta.Stats.NumChunks > 0 {
		report(ProblemMissingFile, "no chunk segments for %d chunks", meta.Stats.NumChunks)
	}
	for _, s := range segments {
		if err := checkSegmentHeader(ctx, bkt, path.Join(id.String(), "chunks", s)); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				return nil, err
			}
			report(ProblemCorruptChunks, "chunks/%s: %v", s, err)
		}
	}

	// Index structure.
	ix, err := openBucketIndex(ctx, bkt, id)
	if err != nil {
		if !errors.Is(err, ErrCorrupt) {
			return nil, err
		}
		report(ProblemCorruptIndex, "%v", err)
		return problems, nil
	}
	if err := checkSymbols(ctx, ix); err != nil {
		if !errors.Is(err, ErrCorrupt) {
			return nil, err
		}
		report(ProblemCorruptIndex, "%v", err)
	}
	series := -1
	if err := ix.EachPostingsList(ctx, func(name, _ string, n int) {
		if name == "" {
			series = n
		}
	}); err != nil {
		if !errors.Is(err, ErrCorrupt) {
			return nil, err
		}
		report(ProblemCorruptIndex, "%v", err)
		return problems, nil
	}
	if series >= 0 && uint64(series) != meta.Stats.NumSeries {
		report(ProblemMetaMismatch, "index holds %d series, %s says %d", series, MetaFilename, meta.Stats.NumSeries)
	}
	if !deep {
		return problems, nil
	}

	segSizes := make([]int64, len(segments))
	for i, s := range segments {
		segSizes[i] = sizes["chunks/"+s]
	}
	st, err := scanSeries(ctx, ix, meta, segSizes)
	if err != nil {
		if !errors.Is(err, ErrCorrupt) {
			return nil, err
		}
		report(ProblemCorruptIndex, "%v", err)
		return problems, nil
	}
	for _, p := range st.problems {
		report(p.kind, "%s", p.detail)
	}
	if st.chunks != meta.Stats.NumChunks {
		report(ProblemMetaMismatch, "index references %d chunks, %s says %d", st.chunks, MetaFilename, meta.Stats.NumChunks)
	}
	var stored uint64
	for _, s := range segments {
		n, err := scanSegment(ctx, bkt, path.Join(id.String(), "chunks", s))
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				return nil, err
			}
			report(ProblemCorruptChunks, "chunks/%s: %v", s, err)
		}
		stored += n
	}
	if stored != st.chunks {
		report(ProblemCorruptChunks, "segments hold %d chunks, the index references %d", stored, st.chunks)
	}
	return problems, nil
}

// openBucketIndex opens the index of block id in bkt.
func openBucketIndex(ctx context.Context, bkt bucket.Bucket, id ulid.ULID) (*IndexReader, error) {
	name := path.Join(id.String(), indexFile)
	attrs, err := bkt.Attributes(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	return OpenIndex(ctx, bkt, name, attrs.Size)
}

type seriesScan struct {
	series, chunks uint64
	problems       []struct{ kind, detail string }
	// seen counts each kind of fault, so that a fault shared by every
	// series is reported once with its count.
	seen map[string]*seenFault
}

type seenFault struct {
	kind, example string
	n             int
}

func (st *seriesScan) fault(kind, what, example string) {
	if st.seen == nil {
		st.seen = map[string]*seenFault{}
	}
	f := st.seen[what]
	if f == nil {
		f = &seenFault{kind: kind, example: example}
		st.seen[what] = f
	}
	f.n++
}

// checkSymbols streams the symbol table through its checksum.
func checkSymbols(ctx context.Context, ix *IndexReader) error {
	_, err := ix.CopySymbols(ctx, io.Discard)
	return err
}

// scanSeries reads every series entry, checking its checksum and where its
// chunks lie.
func scanSeries(ctx context.Context, ix *IndexReader, meta *Meta, segSizes []int64) (*seriesScan, error) {
	st := &seriesScan{}
	dec := index.Decoder{LookupSymbol: func(context.Context, uint32) (string, error) { return "", nil }}
	var (
		builder labels.ScratchBuilder
		chks    []chunks.Meta
	)
	err := ix.EachSeries(ctx, func(pos int64, entry []byte) error {
		if err := dec.Series(entry, &builder, &chks); err != nil {
			return corruptf("series at %d: %v", pos, err)
		}
		st.series++
		st.chunks += uint64(len(chks))
		for _, c := range chks {
			seg, off := chunks.BlockChunkRef(c.Ref).Unpack()
			switch {
			case c.MinTime > c.MaxTime:
				st.fault(ProblemCorruptIndex, "chunks ending before they start",
					fmt.Sprintf("series at %d: chunk [%d, %d]", pos, c.MinTime, c.MaxTime))
			case c.MinTime < meta.MinTime || c.MaxTime >= meta.MaxTime:
				st.fault(ProblemMetaMismatch, "chunks outside the block's time range",
					fmt.Sprintf("series at %d: chunk [%d, %d] outside [%d, %d)", pos, c.MinTime, c.MaxTime, meta.MinTime, meta.MaxTime))
			}
			if seg >= len(segSizes) || int64(off) >= segSizes[seg] {
				st.fault(ProblemCorruptChunks, "chunks past the end of the segments",
					fmt.Sprintf("series at %d: chunk in segment %d at %d", pos, seg+1, off))
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	whats := slices.Sorted(maps.Keys(st.seen))
	for _, what := range whats {
		f := st.seen[what]
		st.problems = append(st.problems, struct{ kind, detail string }{f.kind, fmt.Sprintf("%d %s, e.g. %s", f.n, what, f.example)})
	}
	if st.series != meta.Stats.NumSeries {
		st.problems = append(st.problems, struct{ kind, detail string }{ProblemMetaMismatch,
			fmt.Sprintf("series section holds %d series, %s says %d", st.series, MetaFilename, meta.Stats.NumSeries)})
	}
	return st, nil
}

// checkSegmentHeader reads the magic number and version of a segment.
func checkSegmentHeader(ctx context.Context, bkt bucket.Bucket, name string) error {
	rc, err := bkt.GetRange(ctx, name, 0, chunks.SegmentHeaderSize)
	if err != nil {
		return err
	}
	defer rc.Close()
	b := make([]byte, chunks.SegmentHeaderSize)
	if _, err := io.ReadFull(rc, b); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return corruptf("header: %v", err)
		}
		return err
	}
	if m := binary.BigEndian.Uint32(b); m != chunks.MagicChunks {
		return corruptf("magic %x", m)
	}
	if v := b[chunks.MagicChunksSize]; v != 1 {
		return corruptf("format version %d", v)
	}
	return nil
}

// scanSegment streams a chunk segment, checking every chunk's record, and
// returns how many chunks it holds.
func scanSegment(ctx context.Context, bkt bucket.Bucket, name string) (uint64, error) {
	rc, err := bkt.Get(ctx, name)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	r := bufio.NewReaderSize(rc, 1<<16)
	if _, err := r.Discard(chunks.SegmentHeaderSize); err != nil {
		return 0, corruptf("header: %v", err)
	}
	pos := int64(chunks.SegmentHeaderSize)
	var (
		n   uint64
		buf []byte
	)
	for {
		l, err := binary.ReadUvarint(r)
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, corruptf("chunk at %d: %v", pos, err)
		}
		if l == 0 {
			// Zero padding after the last chunk, as old writers left.
			return n, nil
		}
		buf = binary.AppendUvarint(buf[:0], l)
		head := len(buf)
		buf = slices.Grow(buf, int(l)+1+4)[:head+int(l)+1+4]
		if _, err := io.ReadFull(r, buf[head:]); err != nil {
			return n, corruptf("chunk at %d: %v", pos, err)
		}
		if _, _, err := ChunkRecord(buf); err != nil {
			return n, fmt.Errorf("chunk at %d: %w", pos, err)
		}
		n++
		pos += int64(len(buf))
	}
}
