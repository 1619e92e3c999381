package promqltest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
)

// NewEngine returns an engine with Prometheus's query defaults (5m lookback,
// a minute's timeout) and room for large test queries, closed when the
// test ends.
func NewEngine(t testing.TB) *promql.Engine {
	ng := promql.NewEngine(promql.EngineOpts{MaxSamples: 50_000_000, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
	t.Cleanup(func() { _ = ng.Close() })
	return ng
}

// Instant evaluates expr at ts; a scalar comes back as one sample without
// labels. The test fails on any error.
func Instant(t testing.TB, ctx context.Context, ng promql.QueryEngine, q storage.Queryable, expr string, ts time.Time) promql.Vector {
	t.Helper()
	qry, err := ng.NewInstantQuery(ctx, q, nil, expr, ts)
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	defer qry.Close()
	var out promql.Vector
	switch v := exec(t, ctx, qry, expr).(type) {
	case promql.Vector:
		for _, s := range v {
			if s.H != nil {
				s.H = s.H.Copy()
			}
			out = append(out, s)
		}
	case promql.Scalar:
		out = promql.Vector{{T: v.T, F: v.V}}
	default:
		t.Fatalf("%s: instant query returned %T", expr, v)
	}
	return out
}

// Range evaluates expr from start to end every step. The test fails on any
// error.
func Range(t testing.TB, ctx context.Context, ng promql.QueryEngine, q storage.Queryable, expr string, start, end time.Time, step time.Duration) promql.Matrix {
	t.Helper()
	qry, err := ng.NewRangeQuery(ctx, q, nil, expr, start, end, step)
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	defer qry.Close()
	m, ok := exec(t, ctx, qry, expr).(promql.Matrix)
	if !ok {
		t.Fatalf("%s: range query returned no matrix", expr)
	}
	out := make(promql.Matrix, len(m))
	for i, s := range m {
		hs := slices.Clone(s.Histograms)
		for j := range hs {
			hs[j].H = hs[j].H.Copy()
		}
		out[i] = promql.Series{Metric: s.Metric, Floats: slices.Clone(s.Floats), Histograms: hs}
	}
	return out
}

// exec runs qry and returns its value, which is valid until qry is closed:
// the callers copy what they keep, because closing recycles the points.
func exec(t testing.TB, ctx context.Context, qry promql.Query, expr string) any {
	t.Helper()
	res := qry.Exec(ctx)
	if res.Err != nil {
		t.Fatalf("%s: %v", expr, res.Err)
	}
	return res.Value
}
