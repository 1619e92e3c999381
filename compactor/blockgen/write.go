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

// SeriesData is one series' samples for a block, floats or histograms.
type SeriesData struct {
	Labels     labels.Labels
	Floats     []FloatSample
	Histograms []HistogramSample
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
		meta.Stats.NumHistogramSamples += uint64(len(s.Histograms))
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
	if len(s.Floats) > 0 && len(s.Histograms) > 0 {
		return nil, fmt.Errorf("both float and histogram samples")
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
	if len(s.Histograms) == 0 {
		return out, nil
	}
	// Histogram chunks also cut on counter resets and layout changes; let
	// the appender decide.
	var (
		cur  chunkenc.Chunk
		app  chunkenc.Appender
		n    int
		mint int64
		last int64
	)
	flush := func() {
		if cur != nil {
			out = append(out, chunks.Meta{MinTime: mint, MaxTime: last, Chunk: cur})
		}
	}
	for _, smp := range s.Histograms {
		if cur == nil || n >= samplesPerChunk {
			prev := app
			flush()
			c := chunkenc.NewHistogramChunk()
			a, err := c.Appender()
			if err != nil {
				return nil, err
			}
			cur, app, n, mint = c, a, 0, smp.T
			newChk, _, a2, err := app.AppendHistogram(prev, 0, smp.T, smp.H, false)
			if err != nil {
				return nil, err
			}
			if newChk != nil {
				cur = newChk
			}
			app = a2
		} else {
			newChk, recoded, a2, err := app.AppendHistogram(nil, 0, smp.T, smp.H, false)
			if err != nil {
				return nil, err
			}
			if newChk != nil {
				if !recoded {
					flush()
					mint, n = smp.T, 0
				}
				cur = newChk
			}
			app = a2
		}
		last = smp.T
		n++
	}
	flush()
	return out, nil
}
