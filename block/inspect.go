package block

import (
	"bufio"
	"container/heap"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
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

// Operator tools over a bucket: listing its blocks, inspecting one, and
// verifying all of them. They read indexes with range reads, a section at
// a time, so a bucket of any size can be checked from a laptop.

// indexTOCLen is the TOC at the end of an index: six offsets and a CRC32.
const indexTOCLen = 6*8 + 4

var inspectCastagnoli = crc32.MakeTable(crc32.Castagnoli)

// IndexStats describes a block's index.
type IndexStats struct {
	Version   int
	SizeBytes int64
	Symbols   int
	// Series is the length of the index's list of all series.
	Series     int
	LabelNames int
	// LabelPairs is the number of label name and value pairs.
	LabelPairs int
	// TopNames are the label names with the most values, most first.
	TopNames []LabelNameStats
	// TopPairs are the label pairs with the most series, most first.
	TopPairs []LabelPairStats
}

// LabelNameStats is one label name of an index.
type LabelNameStats struct {
	Name   string
	Values int
	// Series is how many series have the label.
	Series int
}

// LabelPairStats is one label pair of an index.
type LabelPairStats struct {
	Name, Value string
	Series      int
}

// Inspect reads the meta.json of block id and the symbol count, TOC
// and postings offset table of its index: enough for the cardinality of
// every label without reading any postings list or series.
func Inspect(ctx context.Context, bkt bucket.Bucket, id ulid.ULID, top int) (*Meta, *IndexStats, error) {
	meta, err := ReadMeta(ctx, bkt, id)
	if err != nil {
		return nil, nil, err
	}
	ix, err := openBucketIndex(ctx, bkt, id)
	if err != nil {
		return meta, nil, err
	}
	st := &IndexStats{Version: ix.version, SizeBytes: ix.size}
	if st.Symbols, err = ix.symbolCount(ctx); err != nil {
		return meta, nil, err
	}
	names := map[string]*LabelNameStats{}
	pairs := &topPairs{max: top}
	err = ix.eachPostingsList(ctx, func(name, value string, series int) {
		if name == "" {
			st.Series = series
			return
		}
		st.LabelPairs++
		n := names[name]
		if n == nil {
			n = &LabelNameStats{Name: name}
			names[name] = n
		}
		n.Values++
		n.Series += series
		pairs.add(LabelPairStats{Name: name, Value: value, Series: series})
	})
	if err != nil {
		return meta, nil, err
	}
	st.LabelNames = len(names)
	for _, n := range names {
		st.TopNames = append(st.TopNames, *n)
	}
	sort.Slice(st.TopNames, func(i, j int) bool {
		a, b := st.TopNames[i], st.TopNames[j]
		if a.Values != b.Values {
			return a.Values > b.Values
		}
		return a.Name < b.Name
	})
	if top >= 0 && len(st.TopNames) > top {
		st.TopNames = st.TopNames[:top]
	}
	st.TopPairs = pairs.sorted()
	return meta, st, nil
}

// topPairs keeps the max label pairs with the most series.
type topPairs struct {
	max int
	h   pairHeap
}

func (t *topPairs) add(p LabelPairStats) {
	if t.max <= 0 {
		return
	}
	if len(t.h) < t.max {
		heap.Push(&t.h, p)
		return
	}
	if pairLess(t.h[0], p) {
		t.h[0] = p
		heap.Fix(&t.h, 0)
	}
}

func (t *topPairs) sorted() []LabelPairStats {
	out := slices.Clone(t.h)
	sort.Slice(out, func(i, j int) bool { return pairLess(out[j], out[i]) })
	return out
}

// pairLess orders pairs by series, then inversely by name and value, so
// that the top list is stable.
func pairLess(a, b LabelPairStats) bool {
	if a.Series != b.Series {
		return a.Series < b.Series
	}
	if a.Name != b.Name {
		return a.Name > b.Name
	}
	return a.Value > b.Value
}

type pairHeap []LabelPairStats

func (h pairHeap) Len() int           { return len(h) }
func (h pairHeap) Less(i, j int) bool { return pairLess(h[i], h[j]) }
func (h pairHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *pairHeap) Push(x any)        { *h = append(*h, x.(LabelPairStats)) }
func (h *pairHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

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
			if !errors.Is(err, errInspectCorrupt) {
				return nil, err
			}
			report(ProblemCorruptChunks, "chunks/%s: %v", s, err)
		}
	}

	// Index structure.
	ix, err := openBucketIndex(ctx, bkt, id)
	if err != nil {
		if !errors.Is(err, errInspectCorrupt) {
			return nil, err
		}
		report(ProblemCorruptIndex, "%v", err)
		return problems, nil
	}
	if err := ix.checkSymbols(ctx); err != nil {
		if !errors.Is(err, errInspectCorrupt) {
			return nil, err
		}
		report(ProblemCorruptIndex, "%v", err)
	}
	series := -1
	if err := ix.eachPostingsList(ctx, func(name, _ string, n int) {
		if name == "" {
			series = n
		}
	}); err != nil {
		if !errors.Is(err, errInspectCorrupt) {
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
	st, err := ix.scanSeries(ctx, meta, segSizes)
	if err != nil {
		if !errors.Is(err, errInspectCorrupt) {
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
			if !errors.Is(err, errInspectCorrupt) {
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

// errInspectCorrupt marks bytes that do not parse, as opposed to a bucket
// that could not be read.
var errInspectCorrupt = errors.New("corrupt")

func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errInspectCorrupt, fmt.Sprintf(format, args...))
}

// bucketIndex is an index in a bucket, read by range.
type bucketIndex struct {
	bkt     bucket.Bucket
	name    string
	size    int64
	version int
	toc     *index.TOC
}

type memBytes []byte

func (b memBytes) Len() int                    { return len(b) }
func (b memBytes) Range(start, end int) []byte { return b[start:end] }

func openBucketIndex(ctx context.Context, bkt bucket.Bucket, id ulid.ULID) (*bucketIndex, error) {
	ix := &bucketIndex{bkt: bkt, name: path.Join(id.String(), "index")}
	attrs, err := bkt.Attributes(ctx, ix.name)
	if err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	ix.size = attrs.Size
	if ix.size < index.HeaderLen+indexTOCLen {
		return nil, corruptf("index of %d bytes", ix.size)
	}
	head, err := readObjectRange(ctx, bkt, ix.name, 0, index.HeaderLen)
	if err != nil {
		return nil, err
	}
	if binary.BigEndian.Uint32(head) != index.MagicIndex {
		return nil, corruptf("index magic %x", binary.BigEndian.Uint32(head))
	}
	ix.version = int(head[4])
	if ix.version != index.FormatV2 && ix.version != index.FormatV3 {
		return nil, corruptf("unsupported index version %d", ix.version)
	}
	tail, err := readObjectRange(ctx, bkt, ix.name, ix.size-indexTOCLen, indexTOCLen)
	if err != nil {
		return nil, err
	}
	if ix.toc, err = index.NewTOCFromByteSlice(memBytes(tail)); err != nil {
		return nil, corruptf("TOC: %v", err)
	}
	end := uint64(ix.size - indexTOCLen)
	t := ix.toc
	if t.Symbols < index.HeaderLen || t.Series < t.Symbols || t.Postings < t.Series || t.PostingsTable < t.Postings || t.PostingsTable >= end {
		return nil, corruptf("TOC offsets out of order: %+v", *t)
	}
	return ix, nil
}

func readObjectRange(ctx context.Context, bkt bucket.Bucket, name string, off, length int64) ([]byte, error) {
	rc, err := bkt.GetRange(ctx, name, off, length)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, err
	}
	if int64(len(b)) < length {
		return nil, corruptf("%s: %d bytes at %d, want %d", name, len(b), off, length)
	}
	return b, nil
}

func (ix *bucketIndex) symbolCount(ctx context.Context) (int, error) {
	b, err := readObjectRange(ctx, ix.bkt, ix.name, int64(ix.toc.Symbols), 8)
	if err != nil {
		return 0, err
	}
	return int(binary.BigEndian.Uint32(b[4:])), nil
}

// checkSymbols streams the symbol table through its checksum.
func (ix *bucketIndex) checkSymbols(ctx context.Context) error {
	off := int64(ix.toc.Symbols)
	rc, err := ix.bkt.GetRange(ctx, ix.name, off, int64(ix.toc.Series)-off)
	if err != nil {
		return err
	}
	defer rc.Close()
	var lb [4]byte
	if _, err := io.ReadFull(rc, lb[:]); err != nil {
		return corruptf("symbol table: %v", err)
	}
	l := int64(binary.BigEndian.Uint32(lb[:]))
	if off+4+l+4 > int64(ix.toc.Series) {
		return corruptf("symbol table of %d bytes runs into the series", l)
	}
	h := crc32.New(inspectCastagnoli)
	if _, err := io.CopyN(h, rc, l); err != nil {
		return corruptf("symbol table: %v", err)
	}
	var sum [4]byte
	if _, err := io.ReadFull(rc, sum[:]); err != nil {
		return corruptf("symbol table: %v", err)
	}
	if binary.BigEndian.Uint32(sum[:]) != h.Sum32() {
		return corruptf("symbol table checksum mismatch")
	}
	return nil
}

// postingsEnd is where the last postings list ends.
func (ix *bucketIndex) postingsEnd() uint64 {
	if ix.toc.LabelIndicesTable > ix.toc.Postings {
		return ix.toc.LabelIndicesTable
	}
	return ix.toc.PostingsTable
}

// eachPostingsList reads the postings offset table and calls f with every
// label pair and the length of its postings list, computed from where the
// next list starts: raw postings lists hold a length, a count, 4 bytes per
// series and a checksum, and are 4-byte aligned.
func (ix *bucketIndex) eachPostingsList(ctx context.Context, f func(name, value string, series int)) error {
	off := int64(ix.toc.PostingsTable)
	b, err := readObjectRange(ctx, ix.bkt, ix.name, off, ix.size-indexTOCLen-off)
	if err != nil {
		return err
	}
	var (
		prevName, prevValue string
		prevOff             uint64
		started             bool
	)
	emit := func(end uint64) error {
		if end < prevOff+12 {
			return corruptf("postings list %s=%q of %d bytes", prevName, prevValue, end-prevOff)
		}
		f(prevName, prevValue, int((end-prevOff-12)/4))
		return nil
	}
	err = index.ReadPostingsOffsetTable(memBytes(b), 0, func(name, value []byte, o uint64, _ int) error {
		if o < ix.toc.Postings || o >= ix.postingsEnd() || (started && o <= prevOff) {
			return corruptf("postings list %s=%q at %d out of order or range", name, value, o)
		}
		if started {
			if err := emit(o); err != nil {
				return err
			}
		}
		prevName, prevValue, prevOff, started = string(name), string(value), o, true
		return nil
	})
	if err != nil {
		if errors.Is(err, errInspectCorrupt) {
			return err
		}
		return corruptf("postings offset table: %v", err)
	}
	if started {
		return emit(ix.postingsEnd())
	}
	return nil
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

// scanSeries streams the series section, checking every entry's checksum
// and where its chunks lie.
func (ix *bucketIndex) scanSeries(ctx context.Context, meta *Meta, segSizes []int64) (*seriesScan, error) {
	start := int64(ix.toc.Series)
	end := int64(ix.toc.LabelIndices)
	if end <= start {
		end = int64(ix.toc.Postings)
	}
	rc, err := ix.bkt.GetRange(ctx, ix.name, start, end-start)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	r := bufio.NewReaderSize(rc, 1<<16)
	st := &seriesScan{}
	dec := index.Decoder{LookupSymbol: func(context.Context, uint32) (string, error) { return "", nil }}
	var (
		builder labels.ScratchBuilder
		chks    []chunks.Meta
		buf     []byte
	)
	pos := start
	for {
		if pad := (16 - pos%16) % 16; pad > 0 {
			if pos+pad >= end {
				break
			}
			if _, err := r.Discard(int(pad)); err != nil {
				return nil, corruptf("series section: %v", err)
			}
			pos += pad
		}
		if pos >= end {
			break
		}
		l, err := binary.ReadUvarint(r)
		if err != nil {
			return nil, corruptf("series at %d: %v", pos, err)
		}
		n := int64(uvarintLen(l))
		if l == 0 || pos+n+int64(l)+4 > end {
			return nil, corruptf("series at %d: bad length %d", pos, l)
		}
		buf = slices.Grow(buf[:0], int(l)+4)[:int(l)+4]
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, corruptf("series at %d: %v", pos, err)
		}
		if binary.BigEndian.Uint32(buf[l:]) != crc32.Checksum(buf[:l], inspectCastagnoli) {
			return nil, corruptf("series at %d: checksum mismatch", pos)
		}
		if err := dec.Series(buf[:l], &builder, &chks); err != nil {
			return nil, corruptf("series at %d: %v", pos, err)
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
		pos += n + int64(l) + 4
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

func uvarintLen(v uint64) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutUvarint(b[:], v)
}

// checkSegmentHeader reads the magic number and version of a segment.
func checkSegmentHeader(ctx context.Context, bkt bucket.Bucket, name string) error {
	b, err := readObjectRange(ctx, bkt, name, 0, chunks.SegmentHeaderSize)
	if err != nil {
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

// scanSegment streams a chunk segment, checking every chunk's checksum,
// and returns how many chunks it holds.
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
	var n uint64
	h := crc32.New(inspectCastagnoli)
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
		h.Reset()
		if _, err := io.CopyN(h, r, int64(l)+1); err != nil {
			return n, corruptf("chunk at %d: %v", pos, err)
		}
		var sum [4]byte
		if _, err := io.ReadFull(r, sum[:]); err != nil {
			return n, corruptf("chunk at %d: %v", pos, err)
		}
		if binary.BigEndian.Uint32(sum[:]) != h.Sum32() {
			return n, corruptf("chunk at %d: checksum mismatch", pos)
		}
		n++
		pos += int64(uvarintLen(l)) + int64(l) + 1 + 4
	}
}
