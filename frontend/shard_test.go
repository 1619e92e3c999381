package frontend

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/storage"
)

func TestPlanShards(t *testing.T) {
	p := parser.NewParser(parser.Options{EnableExperimentalFunctions: true})
	for _, c := range []struct {
		query  string
		outer  string // "" when not shardable
		groups int
	}{
		{`sum(rate(x[5m]))`, `sum(__atoll_shard_results__{__atoll_shard_group__="0"})`, 1},
		{`sum by (job) (x)`, `sum by (job) (__atoll_shard_results__{__atoll_shard_group__="0"})`, 1},
		{`count without (instance) (x > 1)`, `sum without (instance) (__atoll_shard_results__{__atoll_shard_group__="0"})`, 1},
		{`avg(x)`, `(sum(__atoll_shard_results__{__atoll_shard_group__="0"}) / sum(__atoll_shard_results__{__atoll_shard_group__="1"}))`, 2},
		{`max(x) - min(y)`, `max(__atoll_shard_results__{__atoll_shard_group__="0"}) - min(__atoll_shard_results__{__atoll_shard_group__="1"})`, 2},
		{`histogram_quantile(0.9, sum by (le) (rate(h_bucket[5m])))`, `histogram_quantile(0.9, sum by (le) (__atoll_shard_results__{__atoll_shard_group__="0"}))`, 1},
		{`topk(3, sum by (job) (x))`, `topk(3, sum by (job) (__atoll_shard_results__{__atoll_shard_group__="0"}))`, 1},
		{`sum(x * 2 + 1)`, `sum(__atoll_shard_results__{__atoll_shard_group__="0"})`, 1},
		{`x`, "", 0},
		{`rate(x[5m])`, "", 0},
		{`topk(3, x)`, "", 0},
		{`sum(x / y)`, "", 0},
		{`sum(vector(1))`, "", 0},
		{`sum(absent(x))`, "", 0},
		{`sum(histogram_quantile(0.9, x))`, "", 0},
		{`sum(x > scalar(y))`, "", 0},
		{`max_over_time(sum(x)[1h:1m])`, "", 0},
		{`count_values("v", x)`, "", 0},
	} {
		e, err := p.ParseExpr(c.query)
		if err != nil {
			t.Fatal(err)
		}
		plan, ok := planShards(p, e, 3)
		if c.outer == "" {
			if ok {
				t.Errorf("%s sharded: %+v", c.query, plan)
			}
			continue
		}
		if !ok {
			t.Errorf("%s not sharded", c.query)
			continue
		}
		if plan.outer != c.outer || len(plan.groups) != c.groups {
			t.Errorf("%s: outer %s, %d groups; want %s, %d", c.query, plan.outer, len(plan.groups), c.outer, c.groups)
		}
		for _, g := range plan.groups {
			if len(g) != 3 || !strings.Contains(g[2], `__query_shard__="3_of_3"`) {
				t.Errorf("%s: shard queries %v", c.query, g)
			}
		}
		if e.String() != c.query && !strings.Contains(c.query, "  ") {
			// planShards must leave the query it was given alone.
			if e2, _ := p.ParseExpr(c.query); e.String() != e2.String() {
				t.Errorf("%s changed to %s", c.query, e)
			}
		}
	}
}

// shardingQueryable reads the shard matcher as a querier does: it keeps
// the series whose labels without the name hash into the shard.
type shardingQueryable struct{ storage.Queryable }

func (s shardingQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	q, err := s.Queryable.Querier(mint, maxt)
	return shardingQuerier{q}, err
}

type shardingQuerier struct{ storage.Querier }

func (s shardingQuerier) Select(ctx context.Context, sorted bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	var index, count uint64
	var rest []*labels.Matcher
	for _, m := range ms {
		if m.Name == ShardMatcherName {
			i, n, _ := strings.Cut(m.Value, "_of_")
			index, _ = strconv.ParseUint(i, 10, 64)
			count, _ = strconv.ParseUint(n, 10, 64)
			continue
		}
		rest = append(rest, m)
	}
	set := s.Querier.Select(ctx, sorted, hints, rest...)
	if count == 0 {
		return set
	}
	var out []storage.Series
	var buf []byte
	for set.Next() {
		var h uint64
		h, buf = set.At().Labels().HashWithoutLabels(buf, labels.MetricName)
		if h%count == index-1 {
			out = append(out, set.At())
		}
	}
	return &seriesSlice{series: out}
}

// TestShardedEvaluationMatchesWhole evaluates queries whole and by shards
// (the shard queries by the engine over a sharding store, the outer query
// over their answers as the frontend does): the answers must agree.
func TestShardedEvaluationMatchesWhole(t *testing.T) {
	st := promqltest.LoadedStorage(t, `
load 1m
  req_total{job="api",instance="a",code="200"} 0+10x120
  req_total{job="api",instance="b",code="200"} 0+7x60 _x20 420+7x40
  req_total{job="api",instance="c",code="500"} 0+1x120
  req_total{job="db",instance="a",code="200"} 5+3x120
  req_total{job="db",instance="d",code="200"} _x30 0+2x90
  req_total{job="web",instance="e",code="404"} 0+5x50
  temp{job="api",instance="a"} 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30
  temp{job="db",instance="b"} -5+0.5x120
  temp{job="web",instance="c"} 3.3x120
  lat_bucket{le="0.1",job="api"} 0+1x120
  lat_bucket{le="1",job="api"} 0+3x120
  lat_bucket{le="+Inf",job="api"} 0+4x120
  lat_bucket{le="0.1",job="db"} 0+2x120
  lat_bucket{le="1",job="db"} 0+2x120
  lat_bucket{le="+Inf",job="db"} 0+5x120
`)
	eng := promqltest.NewTestEngine(t, false, 5*time.Minute, 1e6)
	p := parser.NewParser(parser.Options{EnableExperimentalFunctions: true})
	q := shardingQueryable{st}
	start, end, step := int64(0), 2*hour, int64(45_000)
	queries := []string{
		`sum(rate(req_total[5m]))`,
		`sum by (job) (rate(req_total[5m]))`,
		`sum without (instance) (increase(req_total[10m]))`,
		`count(req_total)`,
		`count by (code) (req_total > 100)`,
		`max by (job) (temp)`,
		`min(temp)`,
		`avg by (job) (temp)`,
		`group by (job) (req_total)`,
		`histogram_quantile(0.5, sum by (le) (rate(lat_bucket[5m])))`,
		`sum(rate(req_total[5m])) / sum(rate(req_total{code="200"}[5m]))`,
		`topk(2, sum by (instance) (rate(req_total[5m])))`,
		`sum(max_over_time(temp[10m:1m]))`,
		`sum by (job) (clamp_max(temp, 10) * 2)`,
		`count(temp offset 30m)`,
		`scalar(sum(temp))`,
	}
	for _, n := range []int{2, 3, 5} {
		for _, qs := range queries {
			expr, err := p.ParseExpr(qs)
			if err != nil {
				t.Fatal(err)
			}
			plan, ok := planShards(p, expr, n)
			if !ok {
				t.Fatalf("%s not sharded", qs)
			}
			t.Run(fmt.Sprintf("%d shards/%s", n, qs), func(t *testing.T) {
				// Range.
				want := evalRange(t, eng, st, qs, start, end, step)
				sa := &shardAnswers{groups: make([][]*series, len(plan.groups)), step: step, end: end}
				for gi, g := range plan.groups {
					for _, sq := range g {
						for _, s := range evalRange(t, eng, q, sq, start, end, step) {
							sa.groups[gi] = append(sa.groups[gi], &series{lset: s.Metric, floats: s.Floats})
						}
					}
				}
				got := evalRange(t, eng, sa, plan.outer, start, end, step)
				sameMatrix(t, got, want)
				// Instant, at a time some series have no sample.
				at := 95*minute + 10_000
				wantV := evalInstantAt(t, eng, st, qs, at)
				sa = &shardAnswers{groups: make([][]*series, len(plan.groups))}
				for gi, g := range plan.groups {
					for _, sq := range g {
						v := evalInstantAt(t, eng, q, sq, at)
						for _, s := range v {
							sa.groups[gi] = append(sa.groups[gi], &series{lset: s.Metric, floats: s.Floats})
						}
					}
				}
				gotV := evalInstantAt(t, eng, sa, plan.outer, at)
				sameMatrix(t, gotV, wantV)
			})
		}
	}
}

func evalRange(t *testing.T, eng *promql.Engine, q storage.Queryable, qs string, start, end, step int64) promql.Matrix {
	t.Helper()
	qry, err := eng.NewRangeQuery(context.Background(), q, nil, qs, time.UnixMilli(start), time.UnixMilli(end), time.Duration(step)*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	res := qry.Exec(context.Background())
	if res.Err != nil {
		t.Fatalf("%s: %v", qs, res.Err)
	}
	m, err := res.Matrix()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// evalInstantAt returns an instant query's answer as a matrix of
// one-point series (a scalar as one series without labels).
func evalInstantAt(t *testing.T, eng *promql.Engine, q storage.Queryable, qs string, at int64) promql.Matrix {
	t.Helper()
	qry, err := eng.NewInstantQuery(context.Background(), q, nil, qs, time.UnixMilli(at))
	if err != nil {
		t.Fatal(err)
	}
	res := qry.Exec(context.Background())
	if res.Err != nil {
		t.Fatalf("%s: %v", qs, res.Err)
	}
	var out promql.Matrix
	switch v := res.Value.(type) {
	case promql.Vector:
		for _, s := range v {
			out = append(out, promql.Series{Metric: s.Metric, Floats: []promql.FPoint{{T: s.T, F: s.F}}})
		}
	case promql.Scalar:
		out = append(out, promql.Series{Metric: labels.EmptyLabels(), Floats: []promql.FPoint{{T: v.T, F: v.V}}})
	}
	out = append(promql.Matrix{}, out...)
	sortMatrix(out)
	return out
}

func sortMatrix(m promql.Matrix) {
	for i := 1; i < len(m); i++ {
		for j := i; j > 0 && labels.Compare(m[j].Metric, m[j-1].Metric) < 0; j-- {
			m[j], m[j-1] = m[j-1], m[j]
		}
	}
}

// sameMatrix compares answers; sums over shards add in another order, so
// values may differ in the last bits.
func sameMatrix(t *testing.T, got, want promql.Matrix) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d series, want %d\ngot:  %v\nwant: %v", len(got), len(want), got, want)
	}
	for i := range want {
		if !labels.Equal(got[i].Metric, want[i].Metric) || len(got[i].Floats) != len(want[i].Floats) {
			t.Fatalf("series %d: got %v, want %v", i, got[i], want[i])
		}
		for j, w := range want[i].Floats {
			g := got[i].Floats[j]
			if g.T != w.T || !closeEnough(g.F, w.F) {
				t.Fatalf("%s at %d: got %v, want %v", want[i].Metric, w.T, g, w)
			}
		}
	}
}

func closeEnough(a, b float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	if a == b {
		return true
	}
	return math.Abs(a-b) <= 1e-9*math.Max(math.Abs(a), math.Abs(b))
}
