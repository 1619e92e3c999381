package compactor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"

	"github.com/atoll-metrics/atoll/block"
	"github.com/atoll-metrics/atoll/dedup"
)

// blockError is a failure the compactor pins on one input block: it marks
// the block no-compact and carries on without it.
type blockError struct {
	ID ulid.ULID
	// Reason is a block.NoCompactReason constant.
	Reason string
	Err    error
}

func (e *blockError) Error() string {
	return fmt.Sprintf("block %s (%s): %v", e.ID, e.Reason, e.Err)
}

func (e *blockError) Unwrap() error { return e.Err }

// input is what the populator knows of one input block.
type input struct {
	// replica is the block's replica label values, "" for blocks without
	// them (such as the compactor's own).
	replica string
	// rank orders downsampled inputs: where they overlap, the higher rank's
	// samples win.
	rank int
}

// populator fills a new block from its inputs, replacing TSDB's default so
// that overlapping raw inputs are deduplicated the way the querier does it
// and overlapping downsampled inputs are merged by precedence.
//
// Raw inputs of the same replica are united first (storage.ChainedSeriesMerge,
// one sample per timestamp); the replicas are then deduplicated with
// dedup.ChunkMergeFunc, which leaves chunks that do not overlap untouched.
//
// Downsampled inputs cannot be deduplicated sample by sample: their
// aggregates were computed over different raw data, and their window stamps
// differ. They overlap only when late raw data was downsampled into a new
// block after an older downsampled block had been compacted (the newer
// block then holds that range's aggregates over more data), so within a
// newer input's time range its samples replace those of older inputs.
//
// Every input is checked as it is read: series in order, chunks within the
// block and not overlapping. A violation, or a read error, becomes a
// *blockError naming the input.
type populator struct {
	downsampled bool
	inputs      map[ulid.ULID]input
}

var _ tsdb.BlockPopulator = (*populator)(nil)

func (p *populator) PopulateBlock(ctx context.Context, metrics *tsdb.CompactorMetrics, _ *slog.Logger, _ chunkenc.Pool,
	_ storage.VerticalChunkSeriesMergeFunc, blocks []tsdb.BlockReader, meta *tsdb.BlockMeta,
	indexw tsdb.IndexWriter, chunkw tsdb.ChunkWriter, postingsFunc tsdb.IndexReaderPostingsFunc,
) (err error) {
	if len(blocks) == 0 {
		return errors.New("no blocks to compact")
	}
	var closers []io.Closer
	defer func() {
		for _, c := range closers {
			if cerr := c.Close(); cerr != nil && err == nil {
				err = cerr
			}
		}
		metrics.PopulatingBlocks.Set(0)
	}()
	metrics.PopulatingBlocks.Set(1)

	type opened struct {
		id  ulid.ULID
		in  input
		set storage.ChunkSeriesSet
		bm  tsdb.BlockMeta
	}
	var (
		sets    []opened
		symbols []string
	)
	for _, b := range blocks {
		bm := b.Meta()
		fail := func(err error) error {
			return &blockError{ID: bm.ULID, Reason: block.NoCompactReasonUnreadable, Err: err}
		}
		indexr, err := b.Index()
		if err != nil {
			return fail(err)
		}
		closers = append(closers, indexr)
		chunkr, err := b.Chunks()
		if err != nil {
			return fail(err)
		}
		closers = append(closers, chunkr)
		tombsr, err := b.Tombstones()
		if err != nil {
			return fail(err)
		}
		closers = append(closers, tombsr)
		// The symbol table of the output is the union of the inputs'.
		it := indexr.Symbols()
		for it.Next() {
			symbols = append(symbols, it.At())
		}
		if err := it.Err(); err != nil {
			return fail(err)
		}
		set := tsdb.NewBlockChunkSeriesSet(bm.ULID, indexr, chunkr, tombsr, postingsFunc(ctx, indexr), meta.MinTime, meta.MaxTime-1, false)
		sets = append(sets, opened{
			id:  bm.ULID,
			in:  p.inputs[bm.ULID],
			set: &checkedSet{ChunkSeriesSet: set, id: bm.ULID, mint: bm.MinTime, maxt: bm.MaxTime},
			bm:  bm,
		})
	}
	slices.Sort(symbols)
	symbols = slices.Compact(symbols)
	for _, s := range symbols {
		if err := indexw.AddSymbol(s); err != nil {
			return fmt.Errorf("add symbol: %w", err)
		}
	}

	var set storage.ChunkSeriesSet
	if p.downsampled {
		// Highest rank first; each input loses what higher ranks cover.
		slices.SortStableFunc(sets, func(a, b opened) int { return b.in.rank - a.in.rank })
		var covered []interval
		var all []storage.ChunkSeriesSet
		for _, s := range sets {
			all = append(all, trimSet(s.set, covered))
			covered = append(covered, interval{s.bm.MinTime, s.bm.MaxTime - 1})
		}
		set = mergeSets(all, storage.NewCompactingChunkSeriesMerger(storage.ChainedSeriesMerge))
	} else {
		byReplica := map[string][]storage.ChunkSeriesSet{}
		for _, s := range sets {
			byReplica[s.in.replica] = append(byReplica[s.in.replica], s.set)
		}
		replicas := make([]string, 0, len(byReplica))
		for r := range byReplica {
			replicas = append(replicas, r)
		}
		// Deduplication follows the first replica on ties: prefer the
		// compactor's own blocks (no replica labels), then a fixed order.
		slices.Sort(replicas)
		var perReplica []storage.ChunkSeriesSet
		for _, r := range replicas {
			perReplica = append(perReplica, mergeSets(byReplica[r], storage.NewCompactingChunkSeriesMerger(storage.ChainedSeriesMerge)))
		}
		set = mergeSets(perReplica, dedup.ChunkMergeFunc())
	}

	var (
		ref  storage.SeriesRef
		chks []chunks.Meta
		it   chunks.Iterator
	)
	for set.Next() {
		if err := ctx.Err(); err != nil {
			return err
		}
		s := set.At()
		it = s.Iterator(it)
		chks = chks[:0]
		for it.Next() {
			chks = append(chks, it.At())
		}
		if err := it.Err(); err != nil {
			return err
		}
		if len(chks) == 0 {
			continue
		}
		if err := chunkw.WriteChunks(chks...); err != nil {
			return fmt.Errorf("write chunks: %w", err)
		}
		if err := indexw.AddSeries(ref, s.Labels(), chks...); err != nil {
			return fmt.Errorf("add series: %w", err)
		}
		meta.Stats.NumChunks += uint64(len(chks))
		meta.Stats.NumSeries++
		for _, c := range chks {
			n := uint64(c.Chunk.NumSamples())
			meta.Stats.NumSamples += n
			switch c.Chunk.Encoding() {
			case chunkenc.EncHistogram, chunkenc.EncFloatHistogram, chunkenc.EncHistogramST, chunkenc.EncFloatHistogramST:
				meta.Stats.NumHistogramSamples += n
			default:
				meta.Stats.NumFloatSamples += n
			}
		}
		ref++
	}
	return set.Err()
}

func mergeSets(sets []storage.ChunkSeriesSet, f storage.VerticalChunkSeriesMergeFunc) storage.ChunkSeriesSet {
	if len(sets) == 1 {
		return sets[0]
	}
	return storage.NewMergeChunkSeriesSet(sets, 0, f)
}

// replicaKey joins the values of the replica labels of a block's external
// labels, in the order the labels are given.
func replicaKey(ext map[string]string, replicaLabels []string) string {
	var b strings.Builder
	for i, l := range replicaLabels {
		if i > 0 {
			b.WriteByte(0xff)
		}
		b.WriteString(ext[l])
	}
	if strings.Trim(b.String(), "\xff") == "" {
		return ""
	}
	return b.String()
}

// checkedSet verifies an input block as it is read, so a broken block is
// named rather than poisoning the output.
type checkedSet struct {
	storage.ChunkSeriesSet
	id         ulid.ULID
	mint, maxt int64
	prev       labels.Labels
	err        error
}

func (s *checkedSet) Next() bool {
	if s.err != nil || !s.ChunkSeriesSet.Next() {
		return false
	}
	lset := s.ChunkSeriesSet.At().Labels()
	if !s.prev.IsEmpty() && labels.Compare(s.prev, lset) >= 0 {
		s.err = &blockError{ID: s.id, Reason: block.NoCompactReasonCorrupt, Err: fmt.Errorf("series %s after %s: index out of order", lset, s.prev)}
		return false
	}
	s.prev = lset
	return true
}

func (s *checkedSet) At() storage.ChunkSeries {
	return &checkedSeries{ChunkSeries: s.ChunkSeriesSet.At(), set: s}
}

func (s *checkedSet) Err() error {
	if s.err != nil {
		return s.err
	}
	if err := s.ChunkSeriesSet.Err(); err != nil {
		return &blockError{ID: s.id, Reason: block.NoCompactReasonUnreadable, Err: err}
	}
	return nil
}

type checkedSeries struct {
	storage.ChunkSeries
	set *checkedSet
}

func (s *checkedSeries) Iterator(it chunks.Iterator) chunks.Iterator {
	return &checkedChunks{Iterator: s.ChunkSeries.Iterator(it), s: s, lastMax: int64(-1) << 63}
}

type checkedChunks struct {
	chunks.Iterator
	s       *checkedSeries
	lastMax int64
	err     error
}

func (c *checkedChunks) Next() bool {
	if c.err != nil || !c.Iterator.Next() {
		return false
	}
	m := c.Iterator.At()
	set := c.s.set
	var problem string
	switch {
	case m.MinTime > m.MaxTime:
		problem = fmt.Sprintf("chunk with min time %d after max time %d", m.MinTime, m.MaxTime)
	case m.MinTime < set.mint || m.MaxTime >= set.maxt:
		problem = fmt.Sprintf("chunk [%d, %d] outside the block [%d, %d)", m.MinTime, m.MaxTime, set.mint, set.maxt)
	case m.MinTime <= c.lastMax:
		problem = fmt.Sprintf("chunk [%d, %d] overlaps the previous one, ending %d", m.MinTime, m.MaxTime, c.lastMax)
	}
	if problem != "" {
		c.err = &blockError{ID: set.id, Reason: block.NoCompactReasonCorrupt, Err: fmt.Errorf("series %s: %s", c.s.Labels(), problem)}
		return false
	}
	c.lastMax = m.MaxTime
	return true
}

func (c *checkedChunks) Err() error {
	if c.err != nil {
		return c.err
	}
	if err := c.Iterator.Err(); err != nil {
		return &blockError{ID: c.s.set.id, Reason: block.NoCompactReasonUnreadable, Err: fmt.Errorf("series %s: %w", c.s.Labels(), err)}
	}
	return nil
}

// interval is a closed time range in milliseconds.
type interval struct{ mint, maxt int64 }

func (iv interval) contains(t int64) bool { return t >= iv.mint && t <= iv.maxt }

// trimSet drops from every series of set the samples inside any of the
// covered intervals.
func trimSet(set storage.ChunkSeriesSet, covered []interval) storage.ChunkSeriesSet {
	if len(covered) == 0 {
		return set
	}
	return &trimmedSet{ChunkSeriesSet: set, covered: slices.Clone(covered)}
}

type trimmedSet struct {
	storage.ChunkSeriesSet
	covered []interval
}

func (s *trimmedSet) At() storage.ChunkSeries {
	series := s.ChunkSeriesSet.At()
	return &storage.ChunkSeriesEntry{
		Lset: series.Labels(),
		ChunkIteratorFn: func(chunks.Iterator) chunks.Iterator {
			return &trimmedChunks{it: series.Iterator(nil), covered: s.covered, lset: series.Labels()}
		},
	}
}

// trimmedChunks passes chunks outside every covered interval through,
// drops those inside one, and re-encodes the rest.
type trimmedChunks struct {
	it      chunks.Iterator
	covered []interval
	lset    labels.Labels
	pending []chunks.Meta
	cur     chunks.Meta
	err     error
}

func (t *trimmedChunks) Next() bool {
	for {
		if len(t.pending) > 0 {
			t.cur, t.pending = t.pending[0], t.pending[1:]
			return true
		}
		if t.err != nil || !t.it.Next() {
			return false
		}
		m := t.it.At()
		inside, overlaps := false, false
		for _, iv := range t.covered {
			if iv.mint <= m.MinTime && m.MaxTime <= iv.maxt {
				inside = true
			}
			if m.MinTime <= iv.maxt && iv.mint <= m.MaxTime {
				overlaps = true
			}
		}
		switch {
		case inside:
			continue
		case !overlaps:
			t.cur = m
			return true
		}
		var kept []chunks.Sample
		ci := m.Chunk.Iterator(nil)
		for typ := ci.Next(); typ != chunkenc.ValNone; typ = ci.Next() {
			ts := ci.AtT()
			if slices.ContainsFunc(t.covered, func(iv interval) bool { return iv.contains(ts) }) {
				continue
			}
			kept = append(kept, readSample(ci, typ))
		}
		if err := ci.Err(); err != nil {
			t.err = err
			return false
		}
		if len(kept) == 0 {
			continue
		}
		enc := storage.NewSeriesToChunkEncoder(storage.NewListSeries(t.lset, kept)).Iterator(nil)
		for enc.Next() {
			t.pending = append(t.pending, enc.At())
		}
		if err := enc.Err(); err != nil {
			t.err = err
			return false
		}
	}
}

func (t *trimmedChunks) At() chunks.Meta { return t.cur }

func (t *trimmedChunks) Err() error {
	if t.err != nil {
		return t.err
	}
	return t.it.Err()
}

// sample is one decoded sample of any type.
type sample struct {
	t  int64
	f  float64
	h  *histogram.Histogram
	fh *histogram.FloatHistogram
}

func readSample(it chunkenc.Iterator, typ chunkenc.ValueType) sample {
	switch typ {
	case chunkenc.ValHistogram:
		t, h := it.AtHistogram(nil)
		return sample{t: t, h: h}
	case chunkenc.ValFloatHistogram:
		t, fh := it.AtFloatHistogram(nil)
		return sample{t: t, fh: fh}
	default:
		t, f := it.At()
		return sample{t: t, f: f}
	}
}

func (s sample) T() int64                      { return s.t }
func (s sample) ST() int64                     { return 0 }
func (s sample) F() float64                    { return s.f }
func (s sample) H() *histogram.Histogram       { return s.h }
func (s sample) FH() *histogram.FloatHistogram { return s.fh }

func (s sample) Type() chunkenc.ValueType {
	switch {
	case s.h != nil:
		return chunkenc.ValHistogram
	case s.fh != nil:
		return chunkenc.ValFloatHistogram
	default:
		return chunkenc.ValFloat
	}
}

func (s sample) Copy() chunks.Sample {
	c := s
	if s.h != nil {
		c.h = s.h.Copy()
	}
	if s.fh != nil {
		c.fh = s.fh.Copy()
	}
	return c
}
