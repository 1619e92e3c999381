package compactor_test

import (
	"context"
	"math"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/atoll-metrics/atoll/block"
	"github.com/atoll-metrics/atoll/internal/blockgen"
)

// window is the expected aggregates of one window computed from raw data.
type window struct {
	lastT         int64
	count         float64
	sum, min, max float64
	hsum          *histogram.FloatHistogram
	last          point // raw sample at lastT
	reset         bool  // a counter reset since the previous window's last sample
}

func expectedWindows(cfg blockgen.Config, s blockgen.Series, pts []point, res, mint, maxt int64) []window {
	var out []window
	var prev *point
	for i := range pts {
		p := pts[i]
		if p.t < mint || p.t >= maxt {
			continue
		}
		w := p.t / res
		if len(out) == 0 || out[len(out)-1].lastT/res != w {
			out = append(out, window{min: math.Inf(1), max: math.Inf(-1)})
		}
		cur := &out[len(out)-1]
		cur.lastT, cur.last = p.t, p
		cur.count++
		if p.fh != nil {
			if cur.hsum == nil {
				cur.hsum = p.fh.Copy()
			} else {
				cur.hsum.Add(p.fh)
			}
			if prev != nil && p.fh.DetectReset(prev.fh) {
				cur.reset = true
			}
		} else {
			cur.sum += p.f
			cur.min, cur.max = math.Min(cur.min, p.f), math.Max(cur.max, p.f)
			if prev != nil && p.f < prev.f {
				cur.reset = true
			}
		}
		prev = &pts[i]
	}
	return out
}

// checkAggregates compares a downsampled block's aggregates with those
// computed from the generator's truth over [mint, maxt).
func checkAggregates(t *testing.T, ctx context.Context, cfg blockgen.Config, blocks []*tsdb.Block, res, mint, maxt int64) {
	t.Helper()
	q := blocksQueryable(blocks, "")
	byAggr := map[string]map[string][]point{}
	for _, a := range block.Aggregates() {
		got := readAll(t, ctx, q, mint, maxt,
			labels.MustNewMatcher(labels.MatchRegexp, "series", ".+"),
			labels.MustNewMatcher(labels.MatchEqual, block.AggregateLabel, a))
		byAggr[a] = got
	}
	want := truth(cfg)
	approx := func(a, b float64) bool {
		return a == b || math.Abs(a-b) <= 1e-9*math.Max(math.Abs(a), math.Abs(b))
	}
	for _, s := range cfg.AllSeries() {
		name := s.Labels.String()
		ws := expectedWindows(cfg, s, want[name], res, mint, maxt)
		check := func(aggr string, f func(i int, w window, p point) bool) {
			got := byAggr[aggr][name]
			if len(got) != len(ws) {
				t.Errorf("res %d %s %s: %d samples, want %d", res, name, aggr, len(got), len(ws))
				return
			}
			for i, w := range ws {
				if got[i].t != w.lastT {
					t.Errorf("res %d %s %s window %d: stamped %d, want last raw time %d", res, name, aggr, i, got[i].t, w.lastT)
					return
				}
				if !f(i, w, got[i]) {
					t.Errorf("res %d %s %s window %d: got %v/%v, window %+v last %v", res, name, aggr, i, got[i].f, got[i].fh, w, w.last.fh)
					if i+1 < len(ws) {
						t.Errorf("next window %+v last %v", ws[i+1], ws[i+1].last.fh)
					}
					return
				}
			}
		}
		check(block.AggrCount, func(_ int, w window, p point) bool { return p.f == w.count })
		if s.Kind == blockgen.Histogram {
			check(block.AggrSum, func(_ int, w window, p point) bool {
				return p.fh != nil && p.fh.Count == w.hsum.Count && approx(p.fh.Sum, w.hsum.Sum)
			})
			if n := len(byAggr[block.AggrMin][name]) + len(byAggr[block.AggrMax][name]); n != 0 {
				t.Errorf("%s: histogram series has %d min/max samples", name, n)
			}
			check(block.AggrCounter, func(i int, w window, p point) bool {
				if p.fh == nil {
					return false
				}
				if i+1 < len(ws) && ws[i+1].reset {
					// Raised by the increase before the next window's reset.
					return p.fh.Count >= w.last.fh.Count
				}
				return p.fh.Count == w.last.fh.Count && approx(p.fh.Sum, w.last.fh.Sum)
			})
			continue
		}
		check(block.AggrSum, func(_ int, w window, p point) bool { return approx(p.f, w.sum) })
		check(block.AggrMin, func(_ int, w window, p point) bool { return p.f == w.min })
		check(block.AggrMax, func(_ int, w window, p point) bool { return p.f == w.max })
		check(block.AggrCounter, func(i int, w window, p point) bool {
			switch {
			case s.Kind != blockgen.Counter:
				return true // a gauge's counter aggregate means nothing
			case i+1 < len(ws) && ws[i+1].reset:
				return p.f >= w.last.f
			}
			return p.f == w.last.f
		})
		// PromQL's increase over the counter aggregate equals the raw one
		// between the first and the last window.
		if s.Kind == blockgen.Counter && len(ws) > 2 && !ws[1].reset {
			got := byAggr[block.AggrCounter][name]
			var raw []float64
			for _, p := range want[name] {
				if p.t >= ws[0].lastT && p.t <= ws[len(ws)-1].lastT {
					raw = append(raw, p.f)
				}
			}
			var agg []float64
			for _, p := range got {
				agg = append(agg, p.f)
			}
			if a, r := increase(agg), increase(raw); !approx(a, r) {
				t.Errorf("res %d %s: increase over the counter aggregate %v, over raw %v", res, name, a, r)
			}
		}
	}
}

// increase is PromQL's increase without extrapolation.
func increase(vs []float64) float64 {
	var inc float64
	for i := 1; i < len(vs); i++ {
		if vs[i] < vs[i-1] {
			inc += vs[i]
		} else {
			inc += vs[i] - vs[i-1]
		}
	}
	return inc
}
