package compactor_test

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"

	"github.com/atoll-metrics/atoll/block"
	"github.com/atoll-metrics/atoll/internal/blockgen"
	"github.com/atoll-metrics/atoll/internal/promqltest"
)

// Tolerances of rate() over downsampled counters against raw data, as
// relative errors. Over 30 days the only difference is where PromQL's
// extrapolation starts and ends (within one window of the range's ends),
// and with resets every 3 to 8 days the increase before a reset that moves
// one window early. Over shorter ranges a window's worth of extrapolation
// and the moved increase weigh more; ranges holding a counter reset are
// compared with the looser bound.
const (
	rate30dTolerance      = 1e-3
	rateWindowedTolerance = 0.02 // ranges of 12 or more windows, no reset inside
	rateResetTolerance    = 0.10 // ranges of 12 or more windows around a reset
)

// TestRateOverDownsampledMatchesRaw compacts and downsamples 30 days of
// counters and native histogram counters, then compares PromQL's rate()
// over the raw blocks with rate() over the counter aggregate at 5m and 1h.
func TestRateOverDownsampledMatchesRaw(t *testing.T) {
	ctx := testContext(t, 3*time.Minute)
	bkt := newBucket(t)
	cfg := blockgen.Config{Duration: 30 * day, Interval: 2 * time.Minute, Series: 4, HistogramSeries: 1, Replicas: []string{"a"}, NoGaps: true, Seed: 7}
	generate(t, ctx, bkt, cfg)
	cfg = cfg.WithDefaults()
	runCompactor(t, ctx, bkt, testOptions(t, time.UnixMilli(cfg.MaxTime()).Add(time.Hour)))

	live := liveBlocks(t, ctx, bkt)
	raw := blocksQueryable(openBlocks(t, ctx, bkt, live[block.ResolutionRaw]), "")
	res5m := blocksQueryable(openBlocks(t, ctx, bkt, live[block.Resolution5m]), block.AggrCounter)
	res1h := blocksQueryable(openBlocks(t, ctx, bkt, live[block.Resolution1h]), block.AggrCounter)
	ng := promqltest.NewEngine(t)

	start, end := time.UnixMilli(cfg.MinTime()), time.UnixMilli(cfg.MaxTime()-1)
	resets := resetTimes(cfg)

	for _, metric := range []string{blockgen.CounterMetric, blockgen.HistogramMetric} {
		wrap := func(expr string) string {
			if metric == blockgen.HistogramMetric {
				return "histogram_count(" + expr + ")"
			}
			return expr
		}
		t.Run(metric+"/30d", func(t *testing.T) {
			expr := wrap(fmt.Sprintf("rate(%s[30d])", metric))
			want := instant(t, ctx, ng, raw, expr, end)
			for name, q := range map[string]storage.Queryable{"5m": res5m} {
				got := instant(t, ctx, ng, q, expr, end)
				worst := compare(t, name+" "+expr, got, want, func(string, int64) float64 { return rate30dTolerance })
				t.Logf("%s %s: worst relative error %.2g", name, expr, worst)
			}
		})
		t.Run(metric+"/windows", func(t *testing.T) {
			for _, c := range []struct {
				name  string
				q     storage.Queryable
				rng   time.Duration
				until time.Time
			}{
				{"5m", res5m, time.Hour, end},
				{"1h", res1h, 12 * time.Hour, time.UnixMilli(cfg.MinTime() + (28 * day).Milliseconds() - 1)},
			} {
				expr := wrap(fmt.Sprintf("rate(%s[%s])", metric, model(c.rng)))
				from := start.Add(c.rng)
				want := rangeQ(t, ctx, ng, raw, expr, from, c.until, c.rng)
				got := rangeQ(t, ctx, ng, c.q, expr, from, c.until, c.rng)
				worst := compare(t, c.name+" "+expr, got, want, func(series string, ts int64) float64 {
					for _, r := range resets[series] {
						if r > ts-c.rng.Milliseconds()-time.Hour.Milliseconds() && r <= ts+time.Hour.Milliseconds() {
							return rateResetTolerance
						}
					}
					return rateWindowedTolerance
				})
				t.Logf("%s %s: worst relative error %.2g", c.name, expr, worst)
			}
		})
	}
}

// resetTimes returns, per series key, the times of counter resets.
func resetTimes(cfg blockgen.Config) map[string][]int64 {
	out := map[string][]int64{}
	for name, pts := range truth(cfg) {
		for i := 1; i < len(pts); i++ {
			if (pts[i].fh == nil && pts[i].f < pts[i-1].f) || (pts[i].fh != nil && pts[i].fh.Count < pts[i-1].fh.Count) {
				out[name] = append(out[name], pts[i].t)
			}
		}
	}
	return out
}

func model(d time.Duration) string {
	if d%time.Hour == 0 {
		return fmt.Sprintf("%dh", d/time.Hour)
	}
	return d.String()
}

// vector maps series (labels without __name__) to values by time.
type vector map[string]map[int64]float64

func instant(t *testing.T, ctx context.Context, ng *promql.Engine, q storage.Queryable, expr string, ts time.Time) vector {
	t.Helper()
	out := vector{}
	for _, s := range promqltest.Instant(t, ctx, ng, q, expr, ts) {
		out[s.Metric.String()] = map[int64]float64{s.T: s.F}
	}
	return out
}

func rangeQ(t *testing.T, ctx context.Context, ng *promql.Engine, q storage.Queryable, expr string, start, end time.Time, step time.Duration) vector {
	t.Helper()
	out := vector{}
	for _, s := range promqltest.Range(t, ctx, ng, q, expr, start, end, step) {
		pts := map[int64]float64{}
		for _, p := range s.Floats {
			pts[p.T] = p.F
		}
		out[s.Metric.String()] = pts
	}
	return out
}

// compare checks got against want point by point and returns the largest
// relative error seen.
func compare(t *testing.T, what string, got, want vector, tolerance func(series string, ts int64) float64) float64 {
	t.Helper()
	if len(want) == 0 {
		t.Fatalf("%s: raw query returned nothing", what)
	}
	worst := 0.0
	for series, wp := range want {
		gp, ok := got[series]
		if !ok {
			t.Errorf("%s: series %s missing", what, series)
			continue
		}
		key := seriesKey(series)
		for ts, w := range wp {
			g, ok := gp[ts]
			if !ok {
				t.Errorf("%s: %s has no value at %d", what, series, ts)
				continue
			}
			rel := math.Abs(g-w) / math.Max(math.Abs(w), 1e-12)
			worst = max(worst, rel)
			if tol := tolerance(key, ts); rel > tol {
				t.Errorf("%s: %s at %s: %g, raw %g (relative error %.3g > %g)", what, series, time.UnixMilli(ts).UTC(), g, w, rel, tol)
			}
		}
	}
	return worst
}

// seriesKey turns a query result's labels (no __name__) into the truth's
// key for the series.
func seriesKey(series string) string {
	for _, s := range (blockgen.Config{Series: 4, HistogramSeries: 1}).AllSeries() {
		lb := s.Labels.DropMetricName()
		if lb.String() == series {
			return s.Labels.String()
		}
	}
	return series
}
