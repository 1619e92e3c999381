package querier

import (
	"context"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/atoll-metrics/atoll/block"
)

// Reading downsampled data.
//
// A downsampled block keeps, per window, the count, sum, min, max and
// counter of a series (ship/aggregate.go). Which one a selector reads
// follows from the function around it (Select hints): min_over_time the
// min, max_over_time the max, sum_over_time the sum, rate, increase, irate
// and resets the counter, anything else the average (sum/count).
//
// count_over_time and avg_over_time cannot be answered that way: counting
// the samples of a downsampled series counts windows. So queries that may
// read downsampled data are rewritten before evaluation:
//
//	count_over_time(m[r])  ->  sum_over_time(m{__aggr__="count"}[r])
//	avg_over_time(m[r])    ->  sum_over_time(m[r]) / sum_over_time(m{__aggr__="count"}[r])
//
// The __aggr__ matcher never reaches a store: Select takes it off and asks
// for that aggregate; raw series answering it are read as 1 per sample, so
// the rewritten query is exact on raw data, on downsampled data and on any
// mix of the two.

// resolutionEngine rewrites queries that may read downsampled data and
// widens their lookback to the resolution, then evaluates them with the
// PromQL engine.
type resolutionEngine struct {
	promql.QueryEngine
	parser   parser.Parser
	lookback time.Duration
}

func (e *resolutionEngine) prepare(ctx context.Context, opts promql.QueryOpts, qs string, step time.Duration) (promql.QueryOpts, string) {
	o, ok := ctx.Value(queryOptionsKey{}).(queryOptions)
	if !ok {
		return opts, qs
	}
	res := o.maxResolution
	if o.autoResolution {
		res = o.resolutionFor(&storage.SelectHints{Step: step.Milliseconds()})
	}
	if res <= 0 {
		return opts, qs
	}
	expr, err := e.parser.ParseExpr(qs)
	if err != nil {
		// Let the engine report the error as it would.
		return opts, qs
	}
	qs = rewriteForDownsampling(expr).String()
	// A downsampled series has one sample per window: an instant selector
	// must look back at least that far to see one.
	if opts == nil || opts.LookbackDelta() == 0 {
		var st *bool
		stats := false
		if opts != nil {
			st, stats = opts.UseStartTimestamps(), opts.EnablePerStepStats()
		}
		// Keep the request's own limits.
		var maxSeries, maxSamples uint64
		var maxDuration time.Duration
		if c, ok := opts.(promql.QueryCostOpts); ok {
			maxSeries, maxSamples, maxDuration = c.MaxSeries(), c.MaxSamplesRead(), c.MaxQueryDuration()
		}
		opts = promql.NewPrometheusQueryOptsWithLimits(stats, e.lookback+time.Duration(res)*time.Millisecond, maxSeries, maxSamples, maxDuration, st)
	}
	return opts, qs
}

func (e *resolutionEngine) NewInstantQuery(ctx context.Context, q storage.Queryable, opts promql.QueryOpts, qs string, ts time.Time) (promql.Query, error) {
	opts, qs = e.prepare(ctx, opts, qs, 0)
	return e.QueryEngine.NewInstantQuery(ctx, q, opts, qs, ts)
}

func (e *resolutionEngine) NewRangeQuery(ctx context.Context, q storage.Queryable, opts promql.QueryOpts, qs string, start, end time.Time, interval time.Duration) (promql.Query, error) {
	opts, qs = e.prepare(ctx, opts, qs, interval)
	return e.QueryEngine.NewRangeQuery(ctx, q, opts, qs, start, end, interval)
}

// rewriteForDownsampling returns expr with count_over_time and
// avg_over_time over plain range selectors turned into sums of aggregates.
func rewriteForDownsampling(expr parser.Expr) parser.Expr {
	switch e := expr.(type) {
	case *parser.Call:
		for i, a := range e.Args {
			e.Args[i] = rewriteForDownsampling(a)
		}
		ms, ok := onlyArg(e)
		if !ok {
			return e
		}
		switch e.Func.Name {
		case "count_over_time":
			return sumOverTime(withAggregate(ms, block.AggrCount), e)
		case "avg_over_time":
			return &parser.ParenExpr{Expr: &parser.BinaryExpr{
				Op:             parser.DIV,
				LHS:            sumOverTime(ms, e),
				RHS:            sumOverTime(withAggregate(ms, block.AggrCount), e),
				VectorMatching: &parser.VectorMatching{Card: parser.CardOneToOne},
			}, PosRange: e.PosRange}
		}
		return e
	case *parser.AggregateExpr:
		e.Expr = rewriteForDownsampling(e.Expr)
		if e.Param != nil {
			e.Param = rewriteForDownsampling(e.Param)
		}
	case *parser.BinaryExpr:
		e.LHS = rewriteForDownsampling(e.LHS)
		e.RHS = rewriteForDownsampling(e.RHS)
	case *parser.ParenExpr:
		e.Expr = rewriteForDownsampling(e.Expr)
	case *parser.UnaryExpr:
		e.Expr = rewriteForDownsampling(e.Expr)
	case *parser.SubqueryExpr:
		e.Expr = rewriteForDownsampling(e.Expr)
	}
	return expr
}

// onlyArg returns the range selector that is a call's whole argument.
func onlyArg(c *parser.Call) (*parser.MatrixSelector, bool) {
	if len(c.Args) != 1 {
		return nil, false
	}
	ms, ok := c.Args[0].(*parser.MatrixSelector)
	return ms, ok
}

func sumOverTime(ms *parser.MatrixSelector, like *parser.Call) *parser.Call {
	return &parser.Call{Func: parser.Functions["sum_over_time"], Args: parser.Expressions{ms}, PosRange: like.PosRange}
}

// withAggregate copies a range selector with the marker matcher added.
func withAggregate(ms *parser.MatrixSelector, aggr string) *parser.MatrixSelector {
	vs, ok := ms.VectorSelector.(*parser.VectorSelector)
	if !ok {
		return ms
	}
	nvs := *vs
	nvs.LabelMatchers = append(append([]*labels.Matcher(nil), vs.LabelMatchers...),
		labels.MustNewMatcher(labels.MatchEqual, block.AggregateLabel, aggr))
	nms := *ms
	nms.VectorSelector = &nvs
	return &nms
}

// takeAggregate removes the marker matcher of a rewritten query, returning
// the aggregate it asks for.
func takeAggregate(ms []*labels.Matcher) ([]*labels.Matcher, string) {
	for i, m := range ms {
		if m.Name == block.AggregateLabel && m.Type == labels.MatchEqual {
			out := append(append([]*labels.Matcher(nil), ms[:i]...), ms[i+1:]...)
			return out, m.Value
		}
	}
	return ms, ""
}

// aggregateFor picks the aggregate of downsampled data a function reads.
func aggregateFor(fn string) string {
	switch fn {
	case "min_over_time":
		return block.AggrMin
	case "max_over_time":
		return block.AggrMax
	case "sum_over_time":
		return block.AggrSum
	case "count_over_time":
		return block.AggrCount
	case "rate", "increase", "irate", "resets":
		return block.AggrCounter
	}
	return block.AggrAvg
}

// onesIterator reads every sample of a series as the float 1: a raw
// series answering for the count aggregate.
type onesIterator struct{ chunkenc.Iterator }

func (o onesIterator) Next() chunkenc.ValueType {
	if o.Iterator.Next() == chunkenc.ValNone {
		return chunkenc.ValNone
	}
	return chunkenc.ValFloat
}

// millis is int64 under another name: go vet's stdmethods check takes any
// Seek(int64) for a broken io.Seeker.
type millis = int64

func (o onesIterator) Seek(t millis) chunkenc.ValueType {
	if o.Iterator.Seek(t) == chunkenc.ValNone {
		return chunkenc.ValNone
	}
	return chunkenc.ValFloat
}

func (o onesIterator) At() (int64, float64) { return o.Iterator.AtT(), 1 }

func (o onesIterator) AtHistogram(*histogram.Histogram) (int64, *histogram.Histogram) {
	panic("onesIterator holds floats only")
}

func (o onesIterator) AtFloatHistogram(*histogram.FloatHistogram) (int64, *histogram.FloatHistogram) {
	panic("onesIterator holds floats only")
}
