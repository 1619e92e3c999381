package storegateway

import (
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"

	"github.com/atoll-metrics/atoll/block"
	"github.com/atoll-metrics/atoll/storeapi"
)

// aggregateOf is the aggregate a request reads from downsampled blocks.
func aggregateOf(a string) (string, error) {
	if a == "" {
		return block.AggrAvg, nil
	}
	if a == block.AggrAvg || slices.Contains(block.Aggregates(), a) {
		return a, nil
	}
	return "", fmt.Errorf("unknown aggregate %q (want one of %v or %s)", a, block.Aggregates(), block.AggrAvg)
}

// maxSamplesPerChunk is where encoded average chunks are cut, as the TSDB
// cuts its own.
const maxSamplesPerChunk = 120

// pendingAggregate is a sum or count series still waiting for its partner.
type pendingAggregate struct {
	s     decodedSeries
	isSum bool
}

// readAverages returns, for every raw series of a downsampled block, the
// average of each window: its sum divided by its count, encoded as new XOR
// chunks. The sum and count series of one raw series are paired by their
// labels without the aggregate label. Both postings lists are in label
// order, and since the aggregate label has one value within each list, a
// raw series has the same rank in both: partners meet in the same batch.
// A series whose partner is missing waits, and is left out at the end.
func (g *Gateway) readAverages(ctx context.Context, q blockQuery, send func(*seriesBatch) error) error {
	withAggr := func(a string) []*labels.Matcher {
		return append(slices.Clip(q.ms), labels.MustNewMatcher(labels.MatchEqual, block.AggregateLabel, a))
	}
	sums, err := q.b.seriesRefs(ctx, withAggr(block.AggrSum))
	if err != nil {
		return err
	}
	counts, err := q.b.seriesRefs(ctx, withAggr(block.AggrCount))
	if err != nil {
		return err
	}
	d := newSeriesDecoder(q)
	waiting := map[string]pendingAggregate{}
	half := max(1, g.opts.SeriesBatchSize/2)
	var key []byte
	for len(sums) > 0 || len(counts) > 0 {
		ns, nc := min(len(sums), half), min(len(counts), half)
		refs := append(slices.Clip(sums[:ns]), counts[:nc]...)
		sums, counts = sums[ns:], counts[nc:]
		entries, err := q.b.series(ctx, refs)
		if err != nil {
			return err
		}
		var pairs [][2]decodedSeries
		for i, e := range entries {
			s, ok, err := d.decode(e, false)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			isSum := i < ns
			key = s.lset.Bytes(key[:0])
			other, found := waiting[string(key)]
			if !found || other.isSum == isSum {
				waiting[string(key)] = pendingAggregate{s: s, isSum: isSum}
				continue
			}
			delete(waiting, string(key))
			if isSum {
				pairs = append(pairs, [2]decodedSeries{s, other.s})
			} else {
				pairs = append(pairs, [2]decodedSeries{other.s, s})
			}
		}
		if len(pairs) == 0 {
			continue
		}
		var wants []chunkWant
		for i := range pairs {
			wants = pairs[i][0].appendWants(wants)
			wants = pairs[i][1].appendWants(wants)
		}
		if err := q.b.loadChunks(ctx, wants); err != nil {
			return err
		}
		out := &seriesBatch{series: make([]storeapi.Series, 0, len(pairs))}
		for _, p := range pairs {
			avg, err := averageChunks(p[0].chks, p[1].chks)
			if err != nil {
				return err
			}
			if len(avg) > 0 {
				out.series = append(out.series, storeapi.Series{Labels: p[0].lset, Chunks: avg, Resolution: q.b.resolution()})
			}
		}
		if err := send(out); err != nil {
			return err
		}
	}
	if len(waiting) > 0 {
		g.logger.Debug("downsampled series without a sum or count partner left out of averages", "block", q.b.id, "series", len(waiting))
	}
	return nil
}

// aggrSamples walks the samples of consecutive chunks: floats, and
// histograms as float histograms.
type aggrSamples struct {
	chks []chunks.Meta
	it   chunkenc.Iterator
	err  error

	t  int64
	f  float64
	fh *histogram.FloatHistogram
}

func (s *aggrSamples) next() bool {
	for {
		if s.it != nil {
			switch s.it.Next() {
			case chunkenc.ValFloat:
				s.t, s.f = s.it.At()
				s.fh = nil
				return true
			case chunkenc.ValHistogram, chunkenc.ValFloatHistogram:
				s.t, s.fh = s.it.AtFloatHistogram(nil)
				return true
			case chunkenc.ValNone:
				if err := s.it.Err(); err != nil {
					s.err = err
					return false
				}
				s.it = nil
			}
			continue
		}
		if len(s.chks) == 0 {
			return false
		}
		s.it = s.chks[0].Chunk.Iterator(nil)
		s.chks = s.chks[1:]
	}
}

// averageChunks divides the sums (floats, or the float histograms of
// histogram series) by the counts of equal timestamps and encodes the
// quotients. A window where a series mixed floats and histograms stamps
// its count and sums differently and has no average.
func averageChunks(sum, count []chunks.Meta) ([]chunks.Meta, error) {
	ss, cs := &aggrSamples{chks: sum}, &aggrSamples{chks: count}
	var enc chunkEncoder
	sok, cok := ss.next(), cs.next()
	for sok && cok {
		switch {
		case ss.t < cs.t:
			sok = ss.next()
		case cs.t < ss.t:
			cok = cs.next()
		default:
			if n := cs.f; cs.fh == nil && n > 0 && !math.IsNaN(n) {
				var err error
				if ss.fh != nil {
					// The iterator may share the buckets with its own state.
					err = enc.addHistogram(ss.t, ss.fh.Copy().Div(n))
				} else {
					err = enc.addFloat(ss.t, ss.f/n)
				}
				if err != nil {
					return nil, err
				}
			}
			sok, cok = ss.next(), cs.next()
		}
	}
	if ss.err != nil {
		return nil, ss.err
	}
	if cs.err != nil {
		return nil, cs.err
	}
	return enc.out, nil
}

// chunkEncoder builds XOR and float histogram chunks from samples in time
// order, cutting chunks as the TSDB does: at 120 samples, or for
// histograms near 1KiB.
type chunkEncoder struct {
	out []chunks.Meta
	cur chunkenc.Chunk
	app chunkenc.Appender
	n   int
}

// start begins a chunk of encoding enc at t unless the current one has
// that encoding and room.
func (e *chunkEncoder) start(enc chunkenc.Encoding, t int64) error {
	if e.cur != nil && e.cur.Encoding() == enc && e.n < maxSamplesPerChunk {
		switch enc {
		case chunkenc.EncXOR:
			if len(e.cur.Bytes()) < chunkenc.MaxBytesPerXORChunkBeforeAppend {
				return nil
			}
		default:
			if len(e.cur.Bytes()) < chunkenc.TargetBytesPerHistogramChunk || e.n < chunkenc.MinSamplesPerHistogramChunk {
				return nil
			}
		}
	}
	c, err := chunkenc.NewEmptyChunk(enc)
	if err != nil {
		return err
	}
	app, err := c.Appender()
	if err != nil {
		return err
	}
	e.cur, e.app, e.n = c, app, 0
	e.out = append(e.out, chunks.Meta{Chunk: c, MinTime: t})
	return nil
}

func (e *chunkEncoder) addFloat(t int64, v float64) error {
	if err := e.start(chunkenc.EncXOR, t); err != nil {
		return err
	}
	e.app.Append(0, t, v)
	e.n++
	e.out[len(e.out)-1].MaxTime = t
	return nil
}

func (e *chunkEncoder) addHistogram(t int64, h *histogram.FloatHistogram) error {
	if err := e.start(chunkenc.EncFloatHistogram, t); err != nil {
		return err
	}
	c, recoded, app, err := e.app.AppendFloatHistogram(nil, 0, t, h, false)
	if err != nil {
		return err
	}
	e.app = app
	switch {
	case c == nil:
	case recoded:
		// The layout grew: the same samples, re-encoded.
		e.cur = c
		e.out[len(e.out)-1].Chunk = c
	default:
		// The layout changed in a way that needs a new chunk.
		e.cur, e.n = c, 0
		e.out = append(e.out, chunks.Meta{Chunk: c, MinTime: t})
	}
	e.n++
	e.out[len(e.out)-1].MaxTime = t
	return nil
}
