package frontend

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"golang.org/x/sync/errgroup"
)

// execution is one client query on its way through the queriers: the
// requests it makes share one bound on what is in flight.
type execution struct {
	f      *Frontend
	header http.Header
	slots  chan struct{}
	plan   *shardPlan
	// requests counts what was asked of the queriers, for the slow-query
	// log.
	requests atomic.Int64
}

func (f *Frontend) newExecution(header http.Header, expr parser.Expr) *execution {
	ex := &execution{f: f, header: header, slots: make(chan struct{}, f.opts.MaxParallelism)}
	if f.opts.VerticalShards > 1 {
		if plan, ok := planShards(f.parser, expr, f.opts.VerticalShards); ok {
			ex.plan = plan
		}
	}
	return ex
}

// ask sends one query request and decodes the answer.
func (ex *execution) ask(ctx context.Context, req *request) (*answer, error) {
	select {
	case ex.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	ex.requests.Add(1)
	status, header, body, err := ex.f.pool.fetch(ctx, req)
	<-ex.slots
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, &querierError{status: status, header: header, body: body}
	}
	a, err := decodeAnswer(body)
	if err != nil {
		var ae *apiError
		if errors.As(err, &ae) {
			return nil, &querierError{status: http.StatusUnprocessableEntity, header: header, body: body}
		}
		return nil, err
	}
	return a, nil
}

// rangeQuery answers the points of q from start to end: from the queriers
// at once, or shard by shard.
func (ex *execution) rangeQuery(ctx context.Context, q *rangeQuery, start, end int64) (*answer, error) {
	if ex.plan != nil {
		a, err := ex.shardedRange(ctx, q, start, end)
		if !errors.Is(err, errShardHistograms) {
			return a, err
		}
		ex.f.m.shardFallbacks.Inc()
	}
	return ex.ask(ctx, formRequest("/api/v1/query_range", "query_range", ex.header, q.form(q.query, start, end)))
}

// errShardHistograms says a shard answered native histograms, which the
// frontend does not aggregate again: the query is asked whole instead.
var errShardHistograms = errors.New("shard answered native histograms")

// askShards asks every shard query of the plan, form building each
// request, and gathers the answers per group.
func (ex *execution) askShards(ctx context.Context, path, endpoint string, form func(query string) map[string][]string) (*shardAnswers, error) {
	groups := ex.plan.groups
	answers := make([][]*answer, len(groups))
	g, gctx := errgroup.WithContext(ctx)
	for gi, queries := range groups {
		answers[gi] = make([]*answer, len(queries))
		for si, query := range queries {
			g.Go(func() error {
				a, err := ex.ask(gctx, formRequest(path, endpoint, ex.header, form(query)))
				if err != nil {
					return err
				}
				for _, s := range a.series {
					if len(s.hists) > 0 {
						return errShardHistograms
					}
				}
				answers[gi][si] = a
				return nil
			})
		}
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	sa := &shardAnswers{groups: make([][]*series, len(groups))}
	var warnings, infos []string
	for gi, as := range answers {
		for _, a := range as {
			sa.groups[gi] = append(sa.groups[gi], a.series...)
			warnings = unionStrings(warnings, a.warnings...)
			infos = unionStrings(infos, a.infos...)
		}
	}
	sa.warningList, sa.infoList = warnings, infos
	return sa, nil
}

func (ex *execution) shardedRange(ctx context.Context, q *rangeQuery, start, end int64) (*answer, error) {
	ex.f.m.shardedQueries.WithLabelValues("range").Inc()
	sa, err := ex.askShards(ctx, "/api/v1/query_range", "query_range", func(query string) map[string][]string {
		return q.form(query, start, end)
	})
	if err != nil {
		return nil, err
	}
	sa.step, sa.end = q.step, end
	return ex.evaluate(ctx, sa, func(ctx context.Context) (promql.Query, error) {
		return ex.f.engine.NewRangeQuery(ctx, sa, nil, ex.plan.outer, time.UnixMilli(start), time.UnixMilli(end), time.Duration(q.step)*time.Millisecond)
	})
}

func (ex *execution) shardedInstant(ctx context.Context, q *instantQuery) (*answer, error) {
	ex.f.m.shardedQueries.WithLabelValues("instant").Inc()
	sa, err := ex.askShards(ctx, "/api/v1/query", "query", func(query string) map[string][]string {
		return q.form(query)
	})
	if errors.Is(err, errShardHistograms) {
		ex.f.m.shardFallbacks.Inc()
		return ex.ask(ctx, formRequest("/api/v1/query", "query", ex.header, q.form(q.query)))
	}
	if err != nil {
		return nil, err
	}
	return ex.evaluate(ctx, sa, func(ctx context.Context) (promql.Query, error) {
		return ex.f.engine.NewInstantQuery(ctx, sa, nil, ex.plan.outer, time.UnixMilli(q.time))
	})
}

// evaluate runs the plan's outer query over the shards' answers. Its
// errors are the ones the querier would have answered with.
func (ex *execution) evaluate(ctx context.Context, sa *shardAnswers, newQuery func(context.Context) (promql.Query, error)) (*answer, error) {
	ctx, cancel := context.WithTimeout(ctx, ex.f.opts.QueryTimeout)
	defer cancel()
	qry, err := newQuery(ctx)
	if err != nil {
		return nil, &apiError{status: http.StatusBadRequest, errorType: "bad_data", msg: err.Error()}
	}
	defer qry.Close()
	res := qry.Exec(ctx)
	var timeout promql.ErrQueryTimeout
	switch {
	case errors.As(res.Err, &timeout):
		return nil, &apiError{status: http.StatusServiceUnavailable, errorType: "timeout", msg: res.Err.Error()}
	case res.Err != nil:
		return nil, &apiError{status: http.StatusUnprocessableEntity, errorType: "execution", msg: res.Err.Error()}
	}
	a := &answer{warnings: sa.warningList, infos: sa.infoList}
	switch v := res.Value.(type) {
	case promql.Matrix:
		a.resultType = "matrix"
		for _, s := range v {
			// The engine takes its point slices back when the query is
			// closed.
			a.series = append(a.series, &series{lset: s.Metric, floats: slices.Clone(s.Floats)})
		}
	case promql.Vector:
		a.resultType = "vector"
		for _, s := range v {
			a.series = append(a.series, &series{lset: s.Metric, floats: []promql.FPoint{{T: s.T, F: s.F}}})
		}
	case promql.Scalar:
		a.resultType = "scalar"
		a.scalarT, a.scalarV = v.T, formatFloat(v.V)
	default:
		return nil, fmt.Errorf("evaluate sharded query: unexpected result %T", res.Value)
	}
	return a, nil
}
