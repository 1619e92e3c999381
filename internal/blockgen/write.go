package blockgen

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/tsdb/index"
	"github.com/prometheus/prometheus/tsdb/tombstones"

	"github.com/atoll-metrics/atoll/block"
)

// FloatSample is one float sample.
type FloatSample struct {
	T int64
	V float64
}

// HistogramSample is one native histogram sample.
type HistogramSample struct {
	T int64
	H *histogram.Histogram
}

// FloatHistogramSample is one float histogram sample, as downsampled
// blocks hold.
type FloatHistogramSample struct {
	T  int64
	FH *histogram.FloatHistogram
}

// SeriesData is one series' samples for a block, of one kind: floats,
// histograms or float histograms.
type SeriesData struct {
	Labels          labels.Labels
	Floats          []FloatSample
	Histograms      []HistogramSample
	FloatHistograms []FloatHistogramSample
}

// samplesPerChunk matches what Prometheus's head cuts.
const samplesPerChunk = 120

// WriteBlock writes a level-1 block with the given series (in any order;
// series without samples are left out) to dir/<id> as a receiver would ship
// it: meta.json carries the external labels, source "receive" and the block
// as its own compaction source.
func WriteBlock(ctx context.Context, dir string, id ulid.ULID, mint, maxt int64, ext map[string]string, series []SeriesData) (*block.Meta, error) {
	series = slices.Clone(series)
	slices.SortFunc(series, func(a, b SeriesData) int { return labels.Compare(a.Labels, b.Labels) })
	bdir := filepath.Join(dir, id.String())
	if err := os.MkdirAll(bdir, 0o755); err != nil {
		return nil, err
	}
	cw, err := chunks.NewWriter(filepath.Join(bdir, "chunks"))
	if err != nil {
		return nil, err
	}
	iw, err := index.NewWriter(ctx, filepath.Join(bdir, "index"))
	if err != nil {
		cw.Close()
		return nil, err
	}
	closeAll := func() { cw.Close(); iw.Close() }

	symbols := map[string]struct{}{}
	for _, s := range series {
		s.Labels.Range(func(l labels.Label) {
			symbols[l.Name] = struct{}{}
			symbols[l.Value] = struct{}{}
		})
	}
	sorted := make([]string, 0, len(symbols))
	for s := range symbols {
		sorted = append(sorted, s)
	}
	slices.Sort(sorted)
	for _, s := range sorted {
		if err := iw.AddSymbol(s); err != nil {
			closeAll()
			return nil, err
		}
	}

	meta := &block.Meta{BlockMeta: tsdb.BlockMeta{ULID: id, MinTime: mint, MaxTime: maxt, Version: 1}}
	meta.Compaction.Level = 1
	meta.Compaction.Sources = []ulid.ULID{id}
	var ref storage.SeriesRef
	for _, s := range series {
		chks, err := encode(s)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("series %s: %w", s.Labels, err)
		}
		if len(chks) == 0 {
			continue
		}
		if err := cw.WriteChunks(chks...); err != nil {
			closeAll()
			return nil, err
		}
		if err := iw.AddSeries(ref, s.Labels, chks...); err != nil {
			closeAll()
			return nil, err
		}
		ref++
		meta.Stats.NumSeries++
		meta.Stats.NumChunks += uint64(len(chks))
		meta.Stats.NumFloatSamples += uint64(len(s.Floats))
		meta.Stats.NumHistogramSamples += uint64(len(s.Histograms) + len(s.FloatHistograms))
	}
	meta.Stats.NumSamples = meta.Stats.NumFloatSamples + meta.Stats.NumHistogramSamples
	if err := cw.Close(); err != nil {
		iw.Close()
		return nil, err
	}
	if err := iw.Close(); err != nil {
		return nil, err
	}
	if _, err := tombstones.WriteFile(nil, bdir, tombstones.NewMemTombstones()); err != nil {
		return nil, err
	}
	meta.Thanos = block.ThanosMeta{Version: 1, Labels: ext, Source: block.SourceReceive}
	if err := block.WriteMetaToDir(bdir, meta); err != nil {
		return nil, err
	}
	return meta, nil
}

// encode cuts a series' samples into chunks of samplesPerChunk, as
// Prometheus's head would.
func encode(s SeriesData) ([]chunks.Meta, error) {
	kinds := 0
	for _, n := range []int{len(s.Floats), len(s.Histograms), len(s.FloatHistograms)} {
		if n > 0 {
			kinds++
		}
	}
	if kinds > 1 {
		return nil, fmt.Errorf("samples of more than one kind")
	}
	var out []chunks.Meta
	for i := 0; i < len(s.Floats); i += samplesPerChunk {
		part := s.Floats[i:min(i+samplesPerChunk, len(s.Floats))]
		c := chunkenc.NewXORChunk()
		app, err := c.Appender()
		if err != nil {
			return nil, err
		}
		for _, smp := range part {
			app.Append(0, smp.T, smp.V)
		}
		out = append(out, chunks.Meta{MinTime: part[0].T, MaxTime: part[len(part)-1].T, Chunk: c})
	}
	if len(s.Floats) > 0 {
		return out, nil
	}
	// Histogram chunks also cut on counter resets and layout changes; let
	// the appender decide.
	h := histogramChunks{newChunk: func() chunkenc.Chunk { return chunkenc.NewHistogramChunk() }}
	for _, smp := range s.Histograms {
		if err := h.add(smp.T, func(app chunkenc.Appender, prev chunkenc.Appender) (chunkenc.Chunk, bool, chunkenc.Appender, error) {
			return app.AppendHistogram(prev, 0, smp.T, smp.H, false)
		}); err != nil {
			return nil, err
		}
	}
	h.newChunk = func() chunkenc.Chunk { return chunkenc.NewFloatHistogramChunk() }
	for _, smp := range s.FloatHistograms {
		if err := h.add(smp.T, func(app chunkenc.Appender, prev chunkenc.Appender) (chunkenc.Chunk, bool, chunkenc.Appender, error) {
			return app.AppendFloatHistogram(prev, 0, smp.T, smp.FH, false)
		}); err != nil {
			return nil, err
		}
	}
	h.flush()
	return append(out, h.out...), nil
}

// histogramChunks cuts histogram samples into chunks as the head does:
// every samplesPerChunk samples, and wherever the appender asks for a new
// chunk (a counter reset or a layout change).
type histogramChunks struct {
	newChunk  func() chunkenc.Chunk
	out       []chunks.Meta
	cur       chunkenc.Chunk
	app       chunkenc.Appender
	n         int
	mint, max int64
}

// add appends one sample with appendFn, which gets the current appender
// and, when a chunk was just cut, the previous one.
func (h *histogramChunks) add(t int64, appendFn func(app, prev chunkenc.Appender) (chunkenc.Chunk, bool, chunkenc.Appender, error)) error {
	if h.cur == nil || h.n >= samplesPerChunk {
		prev := h.app
		h.flush()
		c := h.newChunk()
		a, err := c.Appender()
		if err != nil {
			return err
		}
		h.cur, h.app, h.n, h.mint = c, a, 0, t
		newChk, _, a2, err := appendFn(h.app, prev)
		if err != nil {
			return err
		}
		if newChk != nil {
			h.cur = newChk
		}
		h.app = a2
	} else {
		newChk, recoded, a2, err := appendFn(h.app, nil)
		if err != nil {
			return err
		}
		if newChk != nil {
			if !recoded {
				h.flush()
				h.mint, h.n = t, 0
			}
			h.cur = newChk
		}
		h.app = a2
	}
	h.max = t
	h.n++
	return nil
}

func (h *histogramChunks) flush() {
	if h.cur != nil {
		h.out = append(h.out, chunks.Meta{MinTime: h.mint, MaxTime: h.max, Chunk: h.cur})
		h.cur = nil
	}
}
