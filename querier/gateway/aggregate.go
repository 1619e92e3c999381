package gateway

import (
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"

	"github.com/atoll-metrics/atoll/querier"
	"github.com/atoll-metrics/atoll/ship"
)

// aggregateOf is the aggregate a request reads from downsampled blocks.
func aggregateOf(a string) (string, error) {
	if a == "" {
		return ship.AggrAvg, nil
	}
	if a == ship.AggrAvg || slices.Contains(ship.Aggregates, a) {
		return a, nil
	}
	return "", fmt.Errorf("unknown aggregate %q (want one of %v or %s)", a, ship.Aggregates, ship.AggrAvg)
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
		return append(slices.Clip(q.ms), labels.MustNewMatcher(labels.MatchEqual, ship.AggregateLabel, a))
	}
	sums, err := q.b.seriesRefs(ctx, withAggr(ship.AggrSum))
	if err != nil {
		return err
	}
	counts, err := q.b.seriesRefs(ctx, withAggr(ship.AggrCount))
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
		out := &seriesBatch{series: make([]querier.StoreSeries, 0, len(pairs))}
		for _, p := range pairs {
			avg, err := averageChunks(p[0].chks, p[1].chks)
			if err != nil {
				return err
			}
			if len(avg) > 0 {
				out.series = append(out.series, querier.StoreSeries{Labels: p[0].lset, Chunks: avg, Resolution: q.b.resolution()})
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

// floatSamples walks the float samples of consecutive chunks.
type floatSamples struct {
	chks []chunks.Meta
	it   chunkenc.Iterator
	err  error
}

func (s *floatSamples) next() (int64, float64, bool) {
	for {
		if s.it != nil {
			switch s.it.Next() {
			case chunkenc.ValFloat:
				t, v := s.it.At()
				return t, v, true
			case chunkenc.ValNone:
				if err := s.it.Err(); err != nil {
					s.err = err
					return 0, 0, false
				}
				s.it = nil
			}
			continue
		}
		if len(s.chks) == 0 {
			return 0, 0, false
		}
		s.it = s.chks[0].Chunk.Iterator(nil)
		s.chks = s.chks[1:]
	}
}

// averageChunks divides the sums by the counts of equal timestamps and
// encodes the quotients.
func averageChunks(sum, count []chunks.Meta) ([]chunks.Meta, error) {
	ss, cs := &floatSamples{chks: sum}, &floatSamples{chks: count}
	var enc xorEncoder
	st, sv, sok := ss.next()
	ct, cv, cok := cs.next()
	for sok && cok {
		switch {
		case st < ct:
			st, sv, sok = ss.next()
		case ct < st:
			ct, cv, cok = cs.next()
		default:
			if cv > 0 && !math.IsNaN(cv) {
				if err := enc.add(st, sv/cv); err != nil {
					return nil, err
				}
			}
			st, sv, sok = ss.next()
			ct, cv, cok = cs.next()
		}
	}
	if ss.err != nil {
		return nil, ss.err
	}
	if cs.err != nil {
		return nil, cs.err
	}
	return enc.finish(), nil
}

// xorEncoder builds XOR chunks from samples in time order.
type xorEncoder struct {
	out []chunks.Meta
	cur *chunkenc.XORChunk
	app chunkenc.Appender
	n   int
}

func (e *xorEncoder) add(t int64, v float64) error {
	if e.cur == nil || e.n >= maxSamplesPerChunk || len(e.cur.Bytes()) >= chunkenc.MaxBytesPerXORChunkBeforeAppend {
		e.finish()
		e.cur = chunkenc.NewXORChunk()
		app, err := e.cur.Appender()
		if err != nil {
			return err
		}
		e.app, e.n = app, 0
		e.out = append(e.out, chunks.Meta{Chunk: e.cur, MinTime: t})
	}
	e.app.Append(0, t, v)
	e.n++
	e.out[len(e.out)-1].MaxTime = t
	return nil
}

// finish returns the chunks built so far.
func (e *xorEncoder) finish() []chunks.Meta {
	e.cur = nil
	return e.out
}
