package dedup

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/atoll-metrics/atoll/internal/promqltest"
)

// openStore opens a real TSDB standing in for one store the querier reads.
func openStore(t *testing.T) *tsdb.DB {
	t.Helper()
	opts := tsdb.DefaultOptions()
	opts.RetentionDuration = 0
	opts.MinBlockDuration = int64(24 * time.Hour / time.Millisecond)
	opts.MaxBlockDuration = opts.MinBlockDuration
	db, err := tsdb.Open(t.TempDir(), nil, nil, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	})
	return db
}

func appendSamples(t *testing.T, db *tsdb.DB, lset labels.Labels, samples []chunks.Sample) {
	t.Helper()
	app := db.AppenderV2(context.Background())
	for _, s := range samples {
		if _, err := app.Append(0, lset, 0, s.T(), s.F(), s.H(), s.FH(), storage.AppendV2Options{}); err != nil {
			t.Fatalf("append %s at %d: %v", lset, s.T(), err)
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
}

// dedupQueryable answers PromQL from several stores through NewSeriesSet,
// the way the querier does.
type dedupQueryable struct {
	stores        []*tsdb.DB
	replicaLabels []string
	// ignoreFunc drops the PromQL function hint, to show what happens
	// without counter correction.
	ignoreFunc bool
}

func (q dedupQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	res := &dedupQuerier{q: q}
	for _, db := range q.stores {
		sq, err := db.Querier(mint, maxt)
		if err != nil {
			res.Close()
			return nil, err
		}
		res.stores = append(res.stores, sq)
	}
	return res, nil
}

type dedupQuerier struct {
	q      dedupQueryable
	stores []storage.Querier
}

func (q *dedupQuerier) Select(ctx context.Context, _ bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	sets := make([]storage.SeriesSet, 0, len(q.stores))
	for _, s := range q.stores {
		sets = append(sets, s.Select(ctx, true, hints, ms...))
	}
	var opts []Option
	if hints != nil && !q.q.ignoreFunc {
		opts = append(opts, WithFunc(hints.Func))
	}
	return NewSeriesSet(sets, q.q.replicaLabels, opts...)
}

func (*dedupQuerier) LabelValues(context.Context, string, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, nil
}

func (*dedupQuerier) LabelNames(context.Context, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, nil
}

func (q *dedupQuerier) Close() error {
	var err error
	for _, s := range q.stores {
		if e := s.Close(); e != nil && err == nil {
			err = e
		}
	}
	return err
}

// rangeQuery returns the single series a range query yields, by step time.
func rangeQuery(t *testing.T, ng *promql.Engine, q storage.Queryable, expr string, start, end, step time.Duration) map[int64]float64 {
	t.Helper()
	m := promqltest.Range(t, testContext(t), ng, q, expr, time.UnixMilli(start.Milliseconds()), time.UnixMilli(end.Milliseconds()), step)
	if len(m) != 1 {
		t.Fatalf("%s: %d series, want 1: %v", expr, len(m), m)
	}
	out := map[int64]float64{}
	for _, p := range m[0].Floats {
		out[p.T] = p.F
	}
	return out
}

func instantQuery(t *testing.T, ng *promql.Engine, q storage.Queryable, expr string, at time.Duration) float64 {
	t.Helper()
	v := promqltest.Instant(t, testContext(t), ng, q, expr, time.UnixMilli(at.Milliseconds()))
	if len(v) != 1 {
		t.Fatalf("%s: %d series, want 1: %v", expr, len(v), v)
	}
	return v[0].F
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func metric(replica string) labels.Labels {
	return labels.FromStrings("__name__", "m", "job", "j", "receive_replica", replica)
}

// TestPromQLIdenticalReplicas stands for receivers replicating writes: the
// replicas hold the same samples, so aggregations over time must see exactly
// one copy, with every gap of one replica filled from another.
func TestPromQLIdenticalReplicas(t *testing.T) {
	const minute = 60 * sec
	fn := func(t int64) float64 { return float64(t%(97*sec)) / 1000 }
	full := ramp(0, 60*minute, 15*sec, 0, fn)
	gaps := [][][2]int64{
		{{10 * minute, 15 * minute}, {40 * minute, 41 * minute}},
		{{30 * minute, 40 * minute}},
		{{10 * minute, 12 * minute}, {45 * minute, 50 * minute}},
	}
	var stores []*tsdb.DB
	for i, g := range gaps {
		db := openStore(t)
		appendSamples(t, db, metric(fmt.Sprintf("r%d", i)), ramp(0, 60*minute, 15*sec, 0, fn, g...))
		stores = append(stores, db)
	}
	truth := openStore(t)
	appendSamples(t, truth, metric("r0"), full)

	ng := promqltest.NewEngine(t)
	rl := []string{"receive_replica"}
	deduped := dedupQueryable{stores: stores, replicaLabels: rl}
	single := dedupQueryable{stores: []*tsdb.DB{truth}, replicaLabels: rl}
	for _, expr := range []string{"sum_over_time(m[1h])", "count_over_time(m[1h])", "avg_over_time(m[1h])"} {
		got := instantQuery(t, ng, deduped, expr, time.Hour)
		want := instantQuery(t, ng, single, expr, time.Hour)
		if got != want {
			t.Errorf("%s = %v over three replicas, %v over one", expr, got, want)
		}
	}
}

// slowCounter grows by one per minute and resets at 60m, like an error
// counter of a restarted process.
func slowCounter(t int64) float64 {
	if t >= 60*60*sec {
		t -= 60 * 60 * sec
	}
	return math.Floor(float64(t) / float64(60*sec))
}

// behind reads a counter one increment late, as a replica scraping a lagging
// exporter (or another pod behind a load balancer) does.
func behind(fn func(int64) float64) func(int64) float64 {
	return func(t int64) float64 { return math.Max(fn(t)-1, 0) }
}

// haPair returns the samples of two Prometheus HA replicas scraping every
// 15s, 7s apart, the second one reading one increment behind, each with
// gaps that start between increments so that switching to the second one
// meets a lower value.
func haPair(fn func(int64) float64, end int64, withGaps bool) (a, b []chunks.Sample) {
	const minute = 60 * sec
	var gapsA, gapsB [][2]int64
	if withGaps {
		gapsA = [][2]int64{{20*minute + 30*sec, 25 * minute}, {58*minute + 30*sec, 63 * minute}, {90*minute + 30*sec, 92 * minute}}
		gapsB = [][2]int64{{35*minute + 30*sec, 40 * minute}, {75*minute + 30*sec, 80 * minute}, {100*minute + 30*sec, 104 * minute}}
	}
	return ramp(0, end, 15*sec, 0, fn, gapsA...), ramp(0, end, 15*sec, 7*sec, behind(fn), gapsB...)
}

// checkAgainstReplicas runs expr over the deduplicated replicas and over each
// complete replica alone. Every step must lie between the two complete
// replicas' results, widened by tolerance: which replica is followed decides
// the sampling, and a switch to the replica ahead may add its lead. Without
// counter correction the result must leave that band by more than spike, so
// the scenario is known to contain a false reset.
func checkAgainstReplicas(t *testing.T, deduped, uncorrected storage.Queryable, refs []storage.Queryable, expr string, end time.Duration, tolerance, spike float64) {
	t.Helper()
	ng := promqltest.NewEngine(t)
	start, step := 10*time.Minute, 30*time.Second
	got := rangeQuery(t, ng, deduped, expr, start, end, step)
	bad := rangeQuery(t, ng, uncorrected, expr, start, end, step)
	var want []map[int64]float64
	for _, r := range refs {
		want = append(want, rangeQuery(t, ng, r, expr, start, end, step))
	}
	if len(got) != len(want[0]) {
		t.Fatalf("%s: %d steps, want %d", expr, len(got), len(want[0]))
	}
	var worstBad float64
	for ts := range want[0] {
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, w := range want {
			lo, hi = math.Min(lo, w[ts]), math.Max(hi, w[ts])
		}
		if got[ts] < lo-tolerance || got[ts] > hi+tolerance {
			t.Errorf("%s at %v: %v, replicas alone give %v..%v", expr, time.Duration(ts)*time.Millisecond, got[ts], lo, hi)
		}
		worstBad = math.Max(worstBad, math.Max(lo-bad[ts], bad[ts]-hi))
	}
	if worstBad < spike {
		t.Errorf("%s without correction leaves the replicas' band by only %v; the scenario has no false reset", expr, worstBad)
	}
}

// TestPromQLCounterAcrossHAReplicas runs increase(), rate() and resets() over
// two Prometheus HA replicas with gaps, one reading the counter behind.
func TestPromQLCounterAcrossHAReplicas(t *testing.T) {
	end := 120 * 60 * sec
	a, b := haPair(slowCounter, end, true)
	fullA, fullB := haPair(slowCounter, end, false)

	storeA, storeB, truthA, truthB := openStore(t), openStore(t), openStore(t), openStore(t)
	appendSamples(t, storeA, metric("a"), a)
	appendSamples(t, storeB, metric("b"), b)
	appendSamples(t, truthA, metric("a"), fullA)
	appendSamples(t, truthB, metric("b"), fullB)

	rl := []string{"receive_replica"}
	deduped := dedupQueryable{stores: []*tsdb.DB{storeA, storeB}, replicaLabels: rl}
	uncorrected := dedupQueryable{stores: []*tsdb.DB{storeA, storeB}, replicaLabels: rl, ignoreFunc: true}
	refs := []storage.Queryable{
		dedupQueryable{stores: []*tsdb.DB{truthA}, replicaLabels: rl},
		dedupQueryable{stores: []*tsdb.DB{truthB}, replicaLabels: rl},
	}
	for _, tc := range []struct {
		expr             string
		tolerance, spike float64
	}{
		// One increment of lead, stretched by extrapolation.
		{"increase(m[10m])", 1.1, 20},
		{"rate(m[10m]) * 600", 1.1, 20},
		{"resets(m[10m])", 0, 0.5},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			checkAgainstReplicas(t, deduped, uncorrected, refs, tc.expr, 120*time.Minute, tc.tolerance, tc.spike)
		})
	}
}

// TestPromQLHistogramReplicas checks native histograms end to end: receivers
// with gaps, and HA replicas where one lags an increment behind.
func TestPromQLHistogramReplicas(t *testing.T) {
	end := 90 * 60 * sec
	toH := func(s []chunks.Sample) []chunks.Sample {
		res := make([]chunks.Sample, len(s))
		for i, x := range s {
			res[i] = smp{t: x.T(), h: testHistogram(int64(3*x.F()), histogram.UnknownCounterReset)}
		}
		return res
	}
	rl := []string{"receive_replica"}
	const expr = "histogram_count(increase(m[10m]))"

	t.Run("receivers", func(t *testing.T) {
		const minute = 60 * sec
		full := ramp(0, end, 15*sec, 0, slowCounter)
		a := ramp(0, end, 15*sec, 0, slowCounter, [2]int64{20 * minute, 25 * minute}, [2]int64{58 * minute, 63 * minute})
		b := ramp(0, end, 15*sec, 0, slowCounter, [2]int64{35 * minute, 40 * minute})
		storeA, storeB, truth := openStore(t), openStore(t), openStore(t)
		appendSamples(t, storeA, metric("a"), toH(a))
		appendSamples(t, storeB, metric("b"), toH(b))
		appendSamples(t, truth, metric("a"), toH(full))
		ng := promqltest.NewEngine(t)
		deduped := dedupQueryable{stores: []*tsdb.DB{storeA, storeB}, replicaLabels: rl}
		reference := dedupQueryable{stores: []*tsdb.DB{truth}, replicaLabels: rl}
		want := rangeQuery(t, ng, reference, expr, 10*time.Minute, 90*time.Minute, 30*time.Second)
		got := rangeQuery(t, ng, deduped, expr, 10*time.Minute, 90*time.Minute, 30*time.Second)
		for ts, w := range want {
			// Replicas scraped in step fill each other's gaps sample for sample.
			if got[ts] != w {
				t.Errorf("at %v: %v, want %v", time.Duration(ts)*time.Millisecond, got[ts], w)
			}
		}
	})

	t.Run("HA pair, one replica behind", func(t *testing.T) {
		a, b := haPair(slowCounter, end, true)
		fullA, fullB := haPair(slowCounter, end, false)
		storeA, storeB, truthA, truthB := openStore(t), openStore(t), openStore(t), openStore(t)
		appendSamples(t, storeA, metric("a"), toH(a))
		appendSamples(t, storeB, metric("b"), toH(b))
		appendSamples(t, truthA, metric("a"), toH(fullA))
		appendSamples(t, truthB, metric("b"), toH(fullB))
		deduped := dedupQueryable{stores: []*tsdb.DB{storeA, storeB}, replicaLabels: rl}
		uncorrected := dedupQueryable{stores: []*tsdb.DB{storeA, storeB}, replicaLabels: rl, ignoreFunc: true}
		refs := []storage.Queryable{
			dedupQueryable{stores: []*tsdb.DB{truthA}, replicaLabels: rl},
			dedupQueryable{stores: []*tsdb.DB{truthB}, replicaLabels: rl},
		}
		// Three observations per increment.
		checkAgainstReplicas(t, deduped, uncorrected, refs, expr, 90*time.Minute, 3.3, 20)
	})
}
