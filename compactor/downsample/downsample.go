package downsample

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/tsdb/tombstones"

	"github.com/atoll-metrics/atoll/block"
)

// ErrInput is returned, wrapped, when the input block cannot be read: its
// files are missing, truncated or inconsistent.
var ErrInput = errors.New("unreadable input block")

// Stats counts what one downsampling read and wrote.
type Stats struct {
	// InputSamples are the samples read.
	InputSamples int64
	// DroppedHistograms counts histogram samples left out of a sum or
	// counter because their bucket layouts could not be added.
	DroppedHistograms int64
}

// Block downsamples the block in dir to resolution res (milliseconds),
// writing a new block into outDir/<ulid>, and returns the new block's meta.
// The input may be raw or already downsampled at a resolution res is a
// multiple of. The new block keeps the input's time range, compaction level
// and sources, and its external labels; its meta.json has source
// "compactor" and the new resolution.
func Block(ctx context.Context, dir, outDir string, res int64) (*block.Meta, Stats, error) {
	var st Stats
	in, err := block.ReadMetaFromDir(dir)
	if err != nil {
		return nil, st, err
	}
	inRes := in.Thanos.Downsample.Resolution
	if res <= inRes || (inRes > 0 && res%inRes != 0) {
		return nil, st, fmt.Errorf("cannot downsample block %s from resolution %d to %d", in.ULID, inRes, res)
	}
	b, err := tsdb.OpenBlock(nil, dir, nil, nil)
	if err != nil {
		return nil, st, fmt.Errorf("%w: %w", ErrInput, err)
	}
	defer b.Close()
	indexr, err := b.Index()
	if err != nil {
		return nil, st, err
	}
	defer indexr.Close()
	chunkr, err := b.Chunks()
	if err != nil {
		return nil, st, err
	}
	defer chunkr.Close()
	tombsr, err := b.Tombstones()
	if err != nil {
		return nil, st, err
	}
	defer tombsr.Close()

	var symbols []string
	it := indexr.Symbols()
	for it.Next() {
		symbols = append(symbols, it.At())
	}
	if err := it.Err(); err != nil {
		return nil, st, err
	}

	id := ulid.MustNew(ulid.Now(), rand.Reader)
	final := filepath.Join(outDir, id.String())
	tmp := final + ".tmp"
	w, err := newWriter(tmp, symbols)
	if err != nil {
		return nil, st, err
	}
	fail := func(err error) (*block.Meta, Stats, error) {
		w.abort()
		_ = os.RemoveAll(tmp)
		return nil, st, err
	}
	if inRes == 0 {
		err = downsampleRaw(ctx, w, indexr, chunkr, tombsr, in, res, &st)
	} else {
		err = downsampleAggregates(ctx, w, indexr, chunkr, tombsr, in, res, &st)
	}
	if err != nil {
		var ie *inputError
		if errors.As(err, &ie) {
			err = fmt.Errorf("%w: %w", ErrInput, err)
		}
		return fail(err)
	}
	stats, err := w.finish(ctx)
	if err != nil {
		return fail(err)
	}
	out := &block.Meta{BlockMeta: tsdb.BlockMeta{
		ULID:    id,
		MinTime: in.MinTime,
		MaxTime: in.MaxTime,
		Stats:   stats,
		Version: 1,
	}}
	out.Compaction.Level = in.Compaction.Level
	out.Compaction.Sources = in.Compaction.Sources
	if len(out.Compaction.Sources) == 0 {
		out.Compaction.Sources = []ulid.ULID{in.ULID}
	}
	out.Compaction.Parents = []tsdb.BlockDesc{{ULID: in.ULID, MinTime: in.MinTime, MaxTime: in.MaxTime}}
	out.Thanos = block.ThanosMeta{
		Version:    1,
		Labels:     in.Thanos.Labels,
		Downsample: block.Downsample{Resolution: res},
		Source:     block.SourceCompactor,
	}
	if _, err := tombstones.WriteFile(nil, tmp, tombstones.NewMemTombstones()); err != nil {
		return fail(err)
	}
	if err := block.WriteMetaToDir(tmp, out); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return fail(err)
	}
	return out, st, nil
}

// downsampleRaw aggregates every raw series into windows of res.
func downsampleRaw(ctx context.Context, w *writer, indexr tsdb.IndexReader, chunkr tsdb.ChunkReader, tombsr tombstones.Reader, in *block.Meta, res int64, st *Stats) error {
	set := tsdb.NewBlockChunkSeriesSet(in.ULID, indexr, chunkr, tombsr, tsdb.AllSortedPostings(ctx, indexr), in.MinTime, in.MaxTime-1, false)
	var (
		chkIt chunks.Iterator
		smpIt chunkenc.Iterator
		agg   rawAggregator
		out   [5][]chunks.Meta
	)
	for set.Next() {
		if err := ctx.Err(); err != nil {
			return err
		}
		s := set.At()
		agg.reset(res)
		chkIt = s.Iterator(chkIt)
		for chkIt.Next() {
			smpIt = chkIt.At().Chunk.Iterator(smpIt)
			for typ := smpIt.Next(); typ != chunkenc.ValNone; typ = smpIt.Next() {
				st.InputSamples++
				switch typ {
				case chunkenc.ValFloat:
					agg.addFloat(smpIt.At())
				case chunkenc.ValHistogram, chunkenc.ValFloatHistogram:
					agg.addHistogram(smpIt.AtFloatHistogram(nil))
				}
			}
			if err := smpIt.Err(); err != nil {
				return &inputError{fmt.Errorf("series %s: %w", s.Labels(), err)}
			}
		}
		if err := chkIt.Err(); err != nil {
			return &inputError{fmt.Errorf("series %s: %w", s.Labels(), err)}
		}
		agg.finish()
		st.DroppedHistograms += int64(agg.dropped + agg.hc.failed)
		if err := encodeAll(&out, &agg.outputs); err != nil {
			return fmt.Errorf("series %s: %w", s.Labels(), err)
		}
		if err := w.add(s.Labels(), &out); err != nil {
			return err
		}
	}
	if err := set.Err(); err != nil {
		return &inputError{err}
	}
	return nil
}

// inputError marks failures reading the input block.
type inputError struct{ err error }

func (e *inputError) Error() string { return e.err.Error() }
func (e *inputError) Unwrap() error { return e.err }

// outputs holds one series' aggregates, indexed as aggregateOrder.
type outputs [5][]sample

var (
	idxCount   = aggregateIndex(block.AggrCount)
	idxCounter = aggregateIndex(block.AggrCounter)
	idxMax     = aggregateIndex(block.AggrMax)
	idxMin     = aggregateIndex(block.AggrMin)
	idxSum     = aggregateIndex(block.AggrSum)
)

// rawAggregator computes the aggregates of one raw series, window by
// window. Float samples yield count, sum, min, max and counter; histogram
// samples yield count, a float histogram sum (a gauge histogram) and, for
// counter histograms, a float histogram counter. A window in which a series
// switches between floats and histograms yields aggregates of both kinds.
type rawAggregator struct {
	res     int64
	outputs outputs

	window      int64
	open        bool
	n           int
	lastT       int64
	nf          int
	fSum        float64
	fMin, fMax  float64
	lastFT      int64
	nh          int
	hSum        *histogram.FloatHistogram
	lastHT      int64
	sumBroken   bool
	counterHist bool

	fc      floatCounter
	hc      histogramCounter
	dropped int
}

func (a *rawAggregator) reset(res int64) {
	for i := range a.outputs {
		a.outputs[i] = a.outputs[i][:0]
	}
	*a = rawAggregator{res: res, outputs: a.outputs}
}

func (a *rawAggregator) enter(t int64) {
	w := windowOf(t, a.res)
	if a.open && w != a.window {
		a.flush()
	}
	a.window, a.open = w, true
}

func (a *rawAggregator) addFloat(t int64, v float64) {
	if value.IsStaleNaN(v) {
		return
	}
	a.enter(t)
	a.n++
	a.lastT = t
	if a.nf == 0 {
		a.fSum, a.fMin, a.fMax = v, v, v
	} else {
		a.fSum += v
		a.fMin, a.fMax = math.Min(a.fMin, v), math.Max(a.fMax, v)
	}
	a.nf++
	a.lastFT = t
	a.fc.add(t, v)
}

func (a *rawAggregator) addHistogram(t int64, h *histogram.FloatHistogram) {
	if value.IsStaleNaN(h.Sum) {
		return
	}
	a.enter(t)
	a.n++
	a.lastT = t
	if a.nh == 0 {
		a.hSum = h.Copy()
		a.sumBroken = false
	} else if !a.sumBroken {
		if _, _, _, err := a.hSum.Add(h); err != nil {
			a.sumBroken = true
			a.dropped++
		}
	} else {
		a.dropped++
	}
	a.nh++
	a.lastHT = t
	if h.CounterResetHint != histogram.GaugeType {
		a.counterHist = true
		a.hc.add(t, h)
	}
}

func (a *rawAggregator) flush() {
	if !a.open {
		return
	}
	a.outputs[idxCount] = append(a.outputs[idxCount], sample{t: a.lastT, f: float64(a.n)})
	// Floats and histograms of one window go out in time order.
	emitFloats := func() {
		if a.nf == 0 {
			return
		}
		a.outputs[idxSum] = append(a.outputs[idxSum], sample{t: a.lastFT, f: a.fSum})
		a.outputs[idxMin] = append(a.outputs[idxMin], sample{t: a.lastFT, f: a.fMin})
		a.outputs[idxMax] = append(a.outputs[idxMax], sample{t: a.lastFT, f: a.fMax})
		a.fc.flush()
	}
	emitHistograms := func() {
		if a.nh == 0 {
			return
		}
		if !a.sumBroken {
			sum := a.hSum.Compact(0)
			sum.CounterResetHint = histogram.GaugeType
			a.outputs[idxSum] = append(a.outputs[idxSum], sample{t: a.lastHT, fh: sum})
		}
		if a.counterHist {
			a.hc.flush()
		}
	}
	if a.nf > 0 && a.nh > 0 && a.lastHT < a.lastFT {
		emitHistograms()
		emitFloats()
	} else {
		emitFloats()
		emitHistograms()
	}
	a.n, a.nf, a.nh, a.hSum = 0, 0, 0, nil
	a.open = false
}

func (a *rawAggregator) finish() {
	a.flush()
	// The counters raise earlier samples when they meet a reset, so their
	// samples are taken only now.
	fs := a.outputs[idxCounter][:0]
	for _, s := range a.fc.out {
		fs = append(fs, sample{t: s.t, f: s.v})
	}
	a.outputs[idxCounter] = mergeByTime(fs, a.hc.out)
}

// mergeByTime merges float samples with histogram samples in time order.
func mergeByTime(fs []sample, hs []hsample) []sample {
	if len(fs) == 0 {
		out := make([]sample, 0, len(hs))
		for _, h := range hs {
			out = append(out, sample{t: h.t, fh: h.h})
		}
		return out
	}
	out := make([]sample, 0, len(fs)+len(hs))
	i, j := 0, 0
	for i < len(fs) || j < len(hs) {
		if j == len(hs) || (i < len(fs) && fs[i].t < hs[j].t) {
			out = append(out, fs[i])
			i++
		} else {
			out = append(out, sample{t: hs[j].t, fh: hs[j].h})
			j++
		}
	}
	return out
}

// downsampleAggregates re-aggregates a downsampled block into coarser
// windows. The five aggregate series of one input series are read side by
// side: every aggregate's postings list is sorted the same way by the
// labels without __aggr__ (see writer), so they are merged by those labels.
func downsampleAggregates(ctx context.Context, w *writer, indexr tsdb.IndexReader, chunkr tsdb.ChunkReader, tombsr tombstones.Reader, in *block.Meta, res int64, st *Stats) error {
	var sets [5]storage.ChunkSeriesSet
	var heads [5]storage.ChunkSeries
	var keys [5]labels.Labels
	for i, aggr := range aggregateOrder {
		p, err := indexr.Postings(ctx, block.AggregateLabel, aggr)
		if err != nil {
			return err
		}
		sets[i] = tsdb.NewBlockChunkSeriesSet(in.ULID, indexr, chunkr, tombsr, indexr.SortedPostings(p), in.MinTime, in.MaxTime-1, false)
	}
	advance := func(i int) {
		heads[i] = nil
		if sets[i].Next() {
			heads[i] = sets[i].At()
			keys[i] = labels.NewBuilder(heads[i].Labels()).Set(block.AggregateLabel, "").Labels()
		}
	}
	for i := range sets {
		advance(i)
	}
	var out [5][]chunks.Meta
	var outs outputs
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var key labels.Labels
		found := false
		for i := range heads {
			if heads[i] != nil && (!found || labels.Compare(keys[i], key) < 0) {
				key, found = keys[i], true
			}
		}
		if !found {
			break
		}
		for i := range outs {
			outs[i] = outs[i][:0]
		}
		for i := range heads {
			if heads[i] == nil || labels.Compare(keys[i], key) != 0 {
				continue
			}
			samples, err := readSeries(heads[i])
			if err != nil {
				return &inputError{fmt.Errorf("series %s: %w", heads[i].Labels(), err)}
			}
			st.InputSamples += int64(len(samples))
			outs[i] = reaggregate(aggregateOrder[i], samples, res, st)
			advance(i)
		}
		if err := encodeAll(&out, &outs); err != nil {
			return fmt.Errorf("series %s: %w", key, err)
		}
		if err := w.add(key, &out); err != nil {
			return err
		}
	}
	var errs []error
	for _, s := range sets {
		errs = append(errs, s.Err())
	}
	if err := errors.Join(errs...); err != nil {
		return &inputError{err}
	}
	return nil
}

func readSeries(s storage.ChunkSeries) ([]sample, error) {
	var out []sample
	it := s.Iterator(nil)
	var si chunkenc.Iterator
	for it.Next() {
		si = it.At().Chunk.Iterator(si)
		for typ := si.Next(); typ != chunkenc.ValNone; typ = si.Next() {
			switch typ {
			case chunkenc.ValFloat:
				t, v := si.At()
				out = append(out, sample{t: t, f: v})
			default:
				t, h := si.AtFloatHistogram(nil)
				out = append(out, sample{t: t, fh: h})
			}
		}
		if err := si.Err(); err != nil {
			return nil, err
		}
	}
	return out, it.Err()
}

// reaggregate folds one aggregate series into windows of res. Each window's
// sample is stamped with the window's last input time, which is the time of
// the window's last raw sample.
func reaggregate(aggr string, in []sample, res int64, st *Stats) []sample {
	if aggr == block.AggrCounter {
		var fc floatCounter
		var hc histogramCounter
		window, open := int64(0), false
		for _, s := range in {
			w := windowOf(s.t, res)
			if open && w != window {
				fc.flush()
				hc.flush()
			}
			window, open = w, true
			if s.fh != nil {
				hc.add(s.t, s.fh)
			} else {
				fc.add(s.t, s.f)
			}
		}
		fc.flush()
		hc.flush()
		st.DroppedHistograms += int64(hc.failed)
		fs := make([]sample, 0, len(fc.out))
		for _, s := range fc.out {
			fs = append(fs, sample{t: s.t, f: s.v})
		}
		return mergeByTime(fs, hc.out)
	}
	var out []sample
	var cur sample
	window, open, broken := int64(0), false, false
	emit := func() {
		if open && !broken {
			if cur.fh != nil {
				cur.fh = cur.fh.Compact(0)
			}
			out = append(out, cur)
		}
	}
	for _, s := range in {
		w := windowOf(s.t, res)
		if !open || w != window || (s.fh == nil) != (cur.fh == nil) {
			emit()
			cur, window, open, broken = s, w, true, false
			if s.fh != nil {
				cur.fh = s.fh.Copy()
				cur.fh.CounterResetHint = histogram.GaugeType
			}
			continue
		}
		cur.t = s.t
		switch {
		case cur.fh != nil:
			if _, _, _, err := cur.fh.Add(s.fh); err != nil {
				broken = true
				st.DroppedHistograms++
			}
			cur.fh.CounterResetHint = histogram.GaugeType
		case aggr == block.AggrMin:
			cur.f = math.Min(cur.f, s.f)
		case aggr == block.AggrMax:
			cur.f = math.Max(cur.f, s.f)
		default: // count and sum add up
			cur.f += s.f
		}
	}
	emit()
	return out
}

// encodeAll cuts every aggregate's samples into chunks.
func encodeAll(out *[5][]chunks.Meta, in *outputs) error {
	for i := range in {
		chks, err := encode(in[i], out[i][:0])
		if err != nil {
			return err
		}
		out[i] = chks
	}
	return nil
}

// samplesPerChunk is what Prometheus's head puts in a chunk.
const samplesPerChunk = 120

func encode(in []sample, out []chunks.Meta) ([]chunks.Meta, error) {
	hasHistograms := false
	for _, s := range in {
		if s.fh != nil {
			hasHistograms = true
			break
		}
	}
	if !hasHistograms {
		for i := 0; i < len(in); i += samplesPerChunk {
			part := in[i:min(i+samplesPerChunk, len(in))]
			c := chunkenc.NewXORChunk()
			app, err := c.Appender()
			if err != nil {
				return nil, err
			}
			for _, s := range part {
				app.Append(0, s.t, s.f)
			}
			out = append(out, chunks.Meta{MinTime: part[0].t, MaxTime: part[len(part)-1].t, Chunk: c})
		}
		return out, nil
	}
	smp := make([]chunks.Sample, len(in))
	for i, s := range in {
		smp[i] = s
	}
	it := storage.NewSeriesToChunkEncoder(storage.NewListSeries(labels.EmptyLabels(), smp)).Iterator(nil)
	for it.Next() {
		out = append(out, it.At())
	}
	return out, it.Err()
}

// sample is one output or input sample, a float or a float histogram.
type sample struct {
	t  int64
	f  float64
	fh *histogram.FloatHistogram
}

func (s sample) T() int64                      { return s.t }
func (s sample) ST() int64                     { return 0 }
func (s sample) F() float64                    { return s.f }
func (s sample) H() *histogram.Histogram       { return nil }
func (s sample) FH() *histogram.FloatHistogram { return s.fh }

func (s sample) Type() chunkenc.ValueType {
	if s.fh != nil {
		return chunkenc.ValFloatHistogram
	}
	return chunkenc.ValFloat
}

func (s sample) Copy() chunks.Sample {
	if s.fh != nil {
		s.fh = s.fh.Copy()
	}
	return s
}
