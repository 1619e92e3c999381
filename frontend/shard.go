package frontend

import (
	"context"
	"fmt"
	"math"
	"strconv"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"
)

// ShardMatcherName is the matcher a sharded query carries on every
// selector, with the value "<i>_of_<n>": the querier keeps the series whose
// labels without the metric name hash to i-1 modulo n. Mimir's queriers
// read the same matcher.
const ShardMatcherName = "__query_shard__"

// The selector that stands, in the query the frontend evaluates itself,
// for the answers of a group of shard queries.
const (
	shardResultsMetric = "__atoll_shard_results__"
	shardGroupLabel    = "__atoll_shard_group__"
)

// shardPlan is a query rewritten so that its shardable aggregations are
// asked of the queriers once per shard and aggregated again here.
type shardPlan struct {
	// outer is evaluated by the frontend's engine over the shards' answers.
	outer string
	// groups hold, per rewritten aggregation, one query per shard.
	groups [][]string
}

// shardableOps aggregate per group of series in a way that can be
// aggregated again: the outer operation over the shards' answers.
var shardableOps = map[parser.ItemType]parser.ItemType{
	parser.SUM:   parser.SUM,
	parser.MIN:   parser.MIN,
	parser.MAX:   parser.MAX,
	parser.COUNT: parser.SUM,
	parser.GROUP: parser.GROUP,
}

// perSeriesFuncs compute each output series from one input series (and
// constants), so they can run on any split of the series.
var perSeriesFuncs = map[string]bool{}

func init() {
	for _, f := range []string{
		"abs", "acos", "acosh", "asin", "asinh", "atan", "atanh", "ceil", "clamp", "clamp_max", "clamp_min",
		"cos", "cosh", "deg", "exp", "floor", "ln", "log2", "log10", "rad", "round", "sgn", "sin", "sinh", "sqrt",
		"tan", "tanh", "timestamp", "label_replace", "label_join", "sort", "sort_desc",
		"days_in_month", "day_of_month", "day_of_week", "day_of_year", "hour", "minute", "month", "year",
		"changes", "delta", "deriv", "idelta", "increase", "irate", "rate", "resets", "predict_linear",
		"double_exponential_smoothing",
		"avg_over_time", "count_over_time", "first_over_time", "last_over_time", "mad_over_time",
		"max_over_time", "min_over_time", "present_over_time", "quantile_over_time", "stddev_over_time",
		"stdvar_over_time", "sum_over_time", "ts_of_first_over_time", "ts_of_last_over_time",
		"ts_of_max_over_time", "ts_of_min_over_time",
		"histogram_avg", "histogram_count", "histogram_fraction", "histogram_stddev", "histogram_stdvar",
		"histogram_sum",
	} {
		perSeriesFuncs[f] = true
	}
}

// planShards rewrites expr for n shards; false when nothing in it can be
// sharded. expr is not modified.
func planShards(p parser.Parser, expr parser.Expr, n int) (*shardPlan, bool) {
	if n < 2 {
		return nil, false
	}
	// Work on a copy: the rewrite replaces nodes in place.
	e, err := p.ParseExpr(expr.String())
	if err != nil {
		return nil, false
	}
	m := &shardMapper{p: p, n: n}
	out := m.rewrite(e)
	if len(m.groups) == 0 || m.err != nil {
		return nil, false
	}
	return &shardPlan{outer: out.String(), groups: m.groups}, true
}

type shardMapper struct {
	p      parser.Parser
	n      int
	groups [][]string
	err    error
}

func (m *shardMapper) rewrite(e parser.Expr) parser.Expr {
	switch n := e.(type) {
	case *parser.AggregateExpr:
		if r, ok := m.shard(n); ok {
			return r
		}
		n.Expr = m.rewrite(n.Expr)
	case *parser.BinaryExpr:
		n.LHS = m.rewrite(n.LHS)
		n.RHS = m.rewrite(n.RHS)
	case *parser.Call:
		for i, a := range n.Args {
			n.Args[i] = m.rewrite(a)
		}
	case *parser.ParenExpr:
		n.Expr = m.rewrite(n.Expr)
	case *parser.UnaryExpr:
		n.Expr = m.rewrite(n.Expr)
	case *parser.StepInvariantExpr:
		n.Expr = m.rewrite(n.Expr)
	}
	// Selectors, literals and subqueries stay: an aggregation inside a
	// subquery is evaluated at the subquery's steps, which the shards'
	// answers would not have.
	return e
}

// shard replaces a shardable aggregation by its outer aggregation over the
// shards' answers.
func (m *shardMapper) shard(a *parser.AggregateExpr) (parser.Expr, bool) {
	if a.Param != nil || !perSeries(a.Expr) {
		return nil, false
	}
	outer := func(inner parser.ItemType) parser.Expr {
		return &parser.AggregateExpr{
			Op:       shardableOps[inner],
			Expr:     m.group(a, inner),
			Grouping: a.Grouping,
			Without:  a.Without,
		}
	}
	if a.Op == parser.AVG {
		// avg = sum / count, each sharded; both sides have the same
		// labels, so they match one to one.
		return &parser.ParenExpr{Expr: &parser.BinaryExpr{
			Op:             parser.DIV,
			LHS:            outer(parser.SUM),
			RHS:            outer(parser.COUNT),
			VectorMatching: &parser.VectorMatching{Card: parser.CardOneToOne},
		}}, true
	}
	if _, ok := shardableOps[a.Op]; !ok {
		return nil, false
	}
	return outer(a.Op), true
}

// group adds the shard queries of a with operation op and returns the
// selector standing for their answers.
func (m *shardMapper) group(a *parser.AggregateExpr, op parser.ItemType) parser.Expr {
	g := len(m.groups)
	queries := make([]string, m.n)
	for i := range m.n {
		e, err := m.p.ParseExpr(a.String())
		if err != nil {
			m.err = err
			return a
		}
		agg := e.(*parser.AggregateExpr)
		agg.Op = op
		shard := labels.MustNewMatcher(labels.MatchEqual, ShardMatcherName, fmt.Sprintf("%d_of_%d", i+1, m.n))
		parser.Inspect(agg, func(node parser.Node, _ []parser.Node) error {
			if vs, ok := node.(*parser.VectorSelector); ok {
				vs.LabelMatchers = append(vs.LabelMatchers, shard)
			}
			return nil
		})
		queries[i] = agg.String()
	}
	m.groups = append(m.groups, queries)
	return &parser.VectorSelector{
		Name: shardResultsMetric,
		LabelMatchers: []*labels.Matcher{
			labels.MustNewMatcher(labels.MatchEqual, labels.MetricName, shardResultsMetric),
			labels.MustNewMatcher(labels.MatchEqual, shardGroupLabel, strconv.Itoa(g)),
		},
	}
}

// perSeries reports whether every series e yields comes from one series of
// a selector in it, so that e gives the same series whether evaluated over
// all series or over the shards one by one.
func perSeries(e parser.Expr) bool {
	switch n := e.(type) {
	case *parser.VectorSelector:
		return true
	case *parser.MatrixSelector:
		return perSeries(n.VectorSelector)
	case *parser.SubqueryExpr:
		return perSeries(n.Expr)
	case *parser.ParenExpr:
		return perSeries(n.Expr)
	case *parser.StepInvariantExpr:
		return perSeries(n.Expr)
	case *parser.UnaryExpr:
		return perSeries(n.Expr)
	case *parser.Call:
		if !perSeriesFuncs[n.Func.Name] {
			return false
		}
		series := 0
		for _, a := range n.Args {
			if hasSelector(a) {
				if !perSeries(a) {
					return false
				}
				series++
			}
		}
		return series == 1
	case *parser.BinaryExpr:
		// One side per series, the other a constant: comparing or
		// scaling each series on its own.
		l, r := hasSelector(n.LHS), hasSelector(n.RHS)
		switch {
		case l && !r:
			return n.RHS.Type() == parser.ValueTypeScalar && perSeries(n.LHS)
		case r && !l:
			return n.LHS.Type() == parser.ValueTypeScalar && perSeries(n.RHS)
		}
	}
	return false
}

func hasSelector(e parser.Expr) bool {
	found := false
	parser.Inspect(e, func(node parser.Node, _ []parser.Node) error {
		if _, ok := node.(*parser.VectorSelector); ok {
			found = true
		}
		return nil
	})
	return found
}

// shardAnswers is what the shard queries of a plan answered: per group,
// the series of every shard one after the other. It is the Queryable the
// outer query is evaluated over.
type shardAnswers struct {
	groups [][]*series
	// step is the range query's step (0 for an instant query): where a
	// series has no point at a step, a staleness marker keeps the
	// engine's lookback from reading an earlier point in its place.
	step, end int64
	// warningList and infoList are what the shards' answers carried.
	warningList, infoList []string
}

func (s *shardAnswers) Querier(int64, int64) (storage.Querier, error) { return s, nil }

func (s *shardAnswers) Select(_ context.Context, _ bool, _ *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	g := -1
	for _, m := range ms {
		if m.Name == shardGroupLabel {
			g, _ = strconv.Atoi(m.Value)
		}
	}
	if g < 0 || g >= len(s.groups) {
		return storage.ErrSeriesSet(fmt.Errorf("no shard group in %v", ms))
	}
	out := make([]storage.Series, 0, len(s.groups[g]))
	for _, ser := range s.groups[g] {
		out = append(out, promql.NewStorageSeries(promql.Series{Metric: ser.lset, Floats: s.withStaleMarkers(ser.floats)}))
	}
	return &seriesSlice{series: out}
}

func (s *shardAnswers) withStaleMarkers(ps []promql.FPoint) []promql.FPoint {
	if s.step <= 0 || len(ps) == 0 {
		return ps
	}
	stale := math.Float64frombits(value.StaleNaN)
	out := make([]promql.FPoint, 0, len(ps)+2)
	for i, p := range ps {
		out = append(out, p)
		next := p.T + s.step
		if (i+1 < len(ps) && ps[i+1].T > next) || (i+1 == len(ps) && next <= s.end) {
			out = append(out, promql.FPoint{T: next, F: stale})
		}
	}
	return out
}

func (s *shardAnswers) LabelValues(context.Context, string, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, nil
}

func (s *shardAnswers) LabelNames(context.Context, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, nil
}

func (s *shardAnswers) Close() error { return nil }

// seriesSlice is a SeriesSet over series in memory.
type seriesSlice struct {
	series []storage.Series
	i      int
}

func (s *seriesSlice) Next() bool {
	if s.i >= len(s.series) {
		return false
	}
	s.i++
	return true
}

func (s *seriesSlice) At() storage.Series                { return s.series[s.i-1] }
func (s *seriesSlice) Err() error                        { return nil }
func (s *seriesSlice) Warnings() annotations.Annotations { return nil }
