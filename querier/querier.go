package querier

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
	"golang.org/x/sync/errgroup"

	"github.com/atoll-metrics/atoll/block"
	"github.com/atoll-metrics/atoll/dedup"
	"github.com/atoll-metrics/atoll/storeapi"
	"github.com/atoll-metrics/atoll/tenant"
)

// errStoreUnavailable marks a store that could not answer. With partial
// responses allowed the querier turns it into a warning; otherwise the query
// fails with 503 so the client retries.
var errStoreUnavailable = errors.New("store unavailable")

// Options configure a Querier.
type Options struct {
	// ReplicaLabels tell replicas of a series apart; deduplication removes
	// them and merges the replicas.
	ReplicaLabels []string
	// DefaultTenant is queried when a request names no tenant.
	DefaultTenant string
	// AllTenants makes requests without a tenant query every tenant; their
	// series then carry the tenant label.
	AllTenants bool
	// PartialResponse is the default of the partial_response parameter.
	PartialResponse bool
	// AutoDownsampling makes max_source_resolution=auto the default: long
	// ranges with coarse steps read downsampled data.
	AutoDownsampling bool
	// MaxConcurrentStores bounds the stores one Select asks at once.
	MaxConcurrentStores int
	// StoreTimeout bounds one store's answer; zero leaves only the query's
	// own timeout.
	StoreTimeout time.Duration
}

// DefaultOptions suit a single Atoll process and a cluster alike.
func DefaultOptions() Options {
	return Options{
		ReplicaLabels:       []string{"receive_replica"},
		DefaultTenant:       tenant.Default,
		MaxConcurrentStores: 32,
	}
}

// Querier answers queries over every store that stores lists. It is a
// storage.Queryable and storage.ExemplarQueryable for the PromQL engine and
// the HTTP API.
type Querier struct {
	opts   Options
	stores func() []storeapi.Store
	logger *slog.Logger

	storeRequests *prometheus.CounterVec
	partial       *prometheus.CounterVec
	storeDuration *prometheus.HistogramVec
}

var (
	_ storage.Queryable         = (*Querier)(nil)
	_ storage.ExemplarQueryable = (*Querier)(nil)
)

// New returns a Querier over the stores that stores lists at each query, so
// stores discovered later are used at once.
func New(stores func() []storeapi.Store, opts Options, logger *slog.Logger, reg prometheus.Registerer) *Querier {
	if opts.MaxConcurrentStores <= 0 {
		opts.MaxConcurrentStores = DefaultOptions().MaxConcurrentStores
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	f := promauto.With(reg)
	return &Querier{
		opts:   opts,
		stores: stores,
		logger: logger,
		storeRequests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "atoll_querier_store_requests_total",
			Help: "Requests the querier sent to stores, by kind of request and outcome.",
		}, []string{"request", "outcome"}),
		partial: f.NewCounterVec(prometheus.CounterOpts{
			Name: "atoll_querier_partial_responses_total",
			Help: "Store fan-outs answered without some store that failed (partial response), by kind of request.",
		}, []string{"request"}),
		storeDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:                        "atoll_querier_store_request_duration_seconds",
			Help:                        "Time stores took to answer the querier.",
			NativeHistogramBucketFactor: 1.1,
			Buckets:                     prometheus.DefBuckets,
		}, []string{"request"}),
	}
}

// Querier implements storage.Queryable.
func (q *Querier) Querier(mint, maxt int64) (storage.Querier, error) {
	return &querier{q: q, mint: mint, maxt: maxt}, nil
}

// ExemplarQuerier implements storage.ExemplarQueryable.
func (q *Querier) ExemplarQuerier(ctx context.Context) (storage.ExemplarQuerier, error) {
	return &exemplarQuerier{q: q, ctx: ctx}, nil
}

type querier struct {
	q          *Querier
	mint, maxt int64
}

// scope adds the tenant matcher of a tenant-scoped query.
func (q *Querier) scope(o queryOptions, ms []*labels.Matcher) []*labels.Matcher {
	if o.tenant == "" {
		return ms
	}
	out := make([]*labels.Matcher, 0, len(ms)+1)
	out = append(out, ms...)
	return append(out, labels.MustNewMatcher(labels.MatchEqual, tenant.Label, o.tenant))
}

// hiddenLabels are removed from results: the tenant label of a
// tenant-scoped query (every series has the same one) and, with dedup, the
// replica labels.
func (q *Querier) hiddenLabels(o queryOptions) []string {
	var out []string
	if o.tenant != "" {
		out = append(out, tenant.Label)
	}
	if o.dedup {
		out = append(out, q.opts.ReplicaLabels...)
	}
	return out
}

// storeResult is one store's answer to a fan-out.
type storeResult struct {
	store storeapi.Store
	err   error
	warns annotations.Annotations
}

// fanOut calls f on every store whose time range and external labels may
// match, concurrently, and reduces failures according to partial response.
func (q *Querier) fanOut(ctx context.Context, request string, o queryOptions, mint, maxt int64, ms []*labels.Matcher, f func(ctx context.Context, s storeapi.Store) (annotations.Annotations, error)) (annotations.Annotations, error) {
	if o.tenant != "" {
		// Stores across the network enforce the scope themselves, so the
		// tenant matcher below is not the only thing keeping tenants apart.
		ctx = storeapi.WithTenant(ctx, o.tenant)
	}
	stores := q.stores()
	results := make([]storeResult, len(stores))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(q.opts.MaxConcurrentStores)
	for i, s := range stores {
		results[i].store = s
		g.Go(func() error {
			sctx := gctx
			if q.opts.StoreTimeout > 0 {
				var cancel context.CancelFunc
				sctx, cancel = context.WithTimeout(gctx, q.opts.StoreTimeout)
				defer cancel()
			}
			info, err := s.Info(sctx)
			if err != nil {
				results[i].err = err
				return q.storeFailed(o, request, err)
			}
			if !info.Overlaps(mint, maxt) || !info.MayMatch(ms) {
				return nil
			}
			start := time.Now()
			w, err := f(sctx, s)
			q.storeDuration.WithLabelValues(request).Observe(time.Since(start).Seconds())
			results[i].warns, results[i].err = w, err
			if err != nil {
				return q.storeFailed(o, request, err)
			}
			q.storeRequests.WithLabelValues(request, "success").Inc()
			return nil
		})
	}
	err := g.Wait()
	if ctxErr := ctx.Err(); ctxErr != nil {
		return nil, ctxErr
	}
	var warns annotations.Annotations
	partial := false
	for _, r := range results {
		warns.Merge(r.warns)
		if r.err != nil {
			if err != nil {
				// The first failure stopped the others: report the store that failed.
				return nil, fmt.Errorf("%w: %s: %w", errStoreUnavailable, r.store.Name(), r.err)
			}
			q.logger.Warn("store failed, answering without it", "store", r.store.Name(), "request", request, "err", r.err)
			warns.Add(fmt.Errorf("partial response: store %s: %w", r.store.Name(), r.err))
			partial = true
		}
	}
	if partial {
		q.partial.WithLabelValues(request).Inc()
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errStoreUnavailable, err)
	}
	return warns, nil
}

// storeFailed counts a failure and decides whether it stops the fan-out.
func (q *Querier) storeFailed(o queryOptions, request string, err error) error {
	q.storeRequests.WithLabelValues(request, "failure").Inc()
	if o.partialResponse && !errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// collectedSeries is a series copied out of a store's answer.
type collectedSeries struct {
	lset       labels.Labels
	chks       []chunks.Meta
	resolution int64
	// ones reads every sample as 1 (see downsample.go).
	ones bool
}

func (s *collectedSeries) Labels() labels.Labels { return s.lset }

// Iterator implements storage.Series. A chain merge reads chunks that
// follow each other in order and merges any that overlap.
func (s *collectedSeries) Iterator(it chunkenc.Iterator) chunkenc.Iterator {
	if s.ones {
		if o, ok := it.(onesIterator); ok {
			it = o.Iterator
		}
		return onesIterator{s.samples(it)}
	}
	return s.samples(it)
}

func (s *collectedSeries) samples(it chunkenc.Iterator) chunkenc.Iterator {
	switch len(s.chks) {
	case 0:
		return chunkenc.NewNopIterator()
	case 1:
		return s.chks[0].Chunk.Iterator(it)
	}
	iterables := make([]chunkenc.Iterable, len(s.chks))
	for i, c := range s.chks {
		iterables[i] = c.Chunk
	}
	return storage.ChainSampleIteratorFromIterables(it, iterables)
}

// Select implements storage.Querier.
func (sq *querier) Select(ctx context.Context, _ bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	q := sq.q
	o := q.optionsFrom(ctx)
	mint, maxt := sq.mint, sq.maxt
	if hints != nil {
		mint, maxt = hints.Start, hints.End
	}
	ms, marked := takeAggregate(ms)
	ms, shard, err := takeShard(ms)
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	ms = q.scope(o, ms)
	fn := ""
	if hints != nil {
		fn = hints.Func
	}
	aggr := marked
	if aggr == "" {
		aggr = aggregateFor(fn)
	}
	req := &storeapi.SeriesRequest{
		MinTime:         mint,
		MaxTime:         maxt,
		Matchers:        ms,
		Hints:           hints,
		SkipChunks:      fn == "series",
		MaxResolution:   o.resolutionFor(hints),
		Aggregate:       aggr,
		PartialResponse: o.partialResponse,
	}
	// A raw series answering for the count aggregate counts 1 per sample.
	// A rewritten query (marked) may read raw data only: with auto, a
	// narrow range selector reads a finer resolution than the query was
	// rewritten for.
	countRaw := aggr == block.AggrCount && (marked != "" || req.MaxResolution > 0)

	var (
		mtx    sync.Mutex
		series []*collectedSeries
	)
	warns, err := q.fanOut(ctx, "series", o, mint, maxt, ms, func(ctx context.Context, s storeapi.Store) (annotations.Annotations, error) {
		var mine []*collectedSeries
		w, err := s.Series(ctx, req, func(ss storeapi.Series) error {
			chks := ss.Chunks
			cs := &collectedSeries{lset: ss.Labels.Copy(), resolution: ss.Resolution, ones: countRaw && ss.Resolution == 0}
			switch {
			case len(chks) == 0:
			case ss.ChunksOwned:
				cs.chks = slices.Clone(chks)
			default:
				cs.chks = make([]chunks.Meta, 0, len(chks))
				for _, c := range chks {
					cc, err := copyChunk(c)
					if err != nil {
						return err
					}
					cs.chks = append(cs.chks, cc)
				}
			}
			mine = append(mine, cs)
			return nil
		})
		if err == nil {
			mtx.Lock()
			series = append(series, mine...)
			mtx.Unlock()
		}
		return w, err
	})
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	set := q.seriesSet(o, series, warns, fn)
	if shard != nil {
		return shard.filter(set)
	}
	return set
}

// seriesSet sorts what the stores returned, hides labels and merges or
// deduplicates series that became equal. Stores add external labels to
// series they keep sorted without them, so order is only known here.
func (q *Querier) seriesSet(o queryOptions, series []*collectedSeries, warns annotations.Annotations, fn string) storage.SeriesSet {
	if o.tenant != "" {
		b := labels.NewBuilder(labels.EmptyLabels())
		for _, s := range series {
			b.Reset(s.lset)
			b.Del(tenant.Label)
			s.lset = b.Labels()
		}
	}
	set := &seriesList{series: series, warns: warns}
	if o.dedup && len(q.opts.ReplicaLabels) > 0 {
		// Dedup sorts after removing replica labels; sorting here too
		// showed as a quarter of the querier's CPU on big fan-outs.
		return dedup.NewSeriesSet([]storage.SeriesSet{set}, q.opts.ReplicaLabels, dedup.WithFunc(fn))
	}
	// Without dedup only the replica labels stay: a series that several
	// blocks or stores returned under the same labels is still one series,
	// as with dedup.
	sort.SliceStable(series, func(i, j int) bool { return labels.Compare(series[i].lset, series[j].lset) < 0 })
	return &chainedList{seriesList: set}
}

// chainedList is a seriesList whose series with equal labels, next to each
// other once sorted, are united sample by sample.
type chainedList struct {
	*seriesList
	cur storage.Series
}

func (l *chainedList) Next() bool {
	s := l.series
	i := l.i
	if i >= len(s) {
		return false
	}
	j := i + 1
	for j < len(s) && labels.Equal(s[i].lset, s[j].lset) {
		j++
	}
	l.i = j
	if j == i+1 {
		l.cur = s[i]
		return true
	}
	same := make([]storage.Series, 0, j-i)
	for _, cs := range s[i:j] {
		same = append(same, cs)
	}
	l.cur = storage.ChainedSeriesMerge(same...)
	return true
}

func (l *chainedList) At() storage.Series { return l.cur }

// seriesList is a sorted SeriesSet held in memory.
type seriesList struct {
	series []*collectedSeries
	warns  annotations.Annotations
	i      int
}

func (l *seriesList) Next() bool {
	if l.i >= len(l.series) {
		return false
	}
	l.i++
	return true
}

func (l *seriesList) At() storage.Series                { return l.series[l.i-1] }
func (l *seriesList) Err() error                        { return nil }
func (l *seriesList) Warnings() annotations.Annotations { return l.warns }

func copyChunk(c chunks.Meta) (chunks.Meta, error) {
	if c.Chunk == nil {
		return c, nil
	}
	chk, err := chunkenc.FromData(c.Chunk.Encoding(), bytes.Clone(c.Chunk.Bytes()))
	if err != nil {
		return chunks.Meta{}, fmt.Errorf("copy chunk: %w", err)
	}
	return chunks.Meta{Chunk: chk, MinTime: c.MinTime, MaxTime: c.MaxTime}, nil
}

// LabelNames implements storage.Querier.
func (sq *querier) LabelNames(ctx context.Context, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	q := sq.q
	o := q.optionsFrom(ctx)
	ms = q.scope(o, ms)
	req := &storeapi.LabelsRequest{MinTime: sq.mint, MaxTime: sq.maxt, Matchers: ms, PartialResponse: o.partialResponse}
	var (
		mtx  sync.Mutex
		sets [][]string
	)
	warns, err := q.fanOut(ctx, "label_names", o, sq.mint, sq.maxt, ms, func(ctx context.Context, s storeapi.Store) (annotations.Annotations, error) {
		names, w, err := s.LabelNames(ctx, req)
		if err == nil {
			mtx.Lock()
			sets = append(sets, names)
			mtx.Unlock()
		}
		return w, err
	})
	if err != nil {
		return nil, nil, err
	}
	hidden := q.hiddenLabels(o)
	out := storeapi.MergeStrings(sets, 0)
	out = slices.DeleteFunc(out, func(n string) bool { return slices.Contains(hidden, n) })
	if hints != nil && hints.Limit > 0 && len(out) > hints.Limit {
		out = out[:hints.Limit]
	}
	return out, warns, nil
}

// LabelValues implements storage.Querier.
func (sq *querier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	q := sq.q
	o := q.optionsFrom(ctx)
	if slices.Contains(q.hiddenLabels(o), name) {
		return nil, nil, nil
	}
	ms = q.scope(o, ms)
	req := &storeapi.LabelsRequest{MinTime: sq.mint, MaxTime: sq.maxt, Matchers: ms, PartialResponse: o.partialResponse}
	var (
		mtx  sync.Mutex
		sets [][]string
	)
	warns, err := q.fanOut(ctx, "label_values", o, sq.mint, sq.maxt, ms, func(ctx context.Context, s storeapi.Store) (annotations.Annotations, error) {
		values, w, err := s.LabelValues(ctx, name, req)
		if err == nil {
			mtx.Lock()
			sets = append(sets, values)
			mtx.Unlock()
		}
		return w, err
	})
	if err != nil {
		return nil, nil, err
	}
	limit := 0
	if hints != nil {
		limit = hints.Limit
	}
	return storeapi.MergeStrings(sets, limit), warns, nil
}

// Close implements storage.Querier. Select copies what it keeps, so there
// is nothing to release.
func (sq *querier) Close() error { return nil }

type exemplarQuerier struct {
	q   *Querier
	ctx context.Context
}

// Select implements storage.ExemplarQuerier: exemplars of replicas are
// merged under the labels left after hiding replica and tenant labels.
func (eq *exemplarQuerier) Select(start, end int64, matchers ...[]*labels.Matcher) ([]exemplar.QueryResult, error) {
	q := eq.q
	o := q.optionsFrom(eq.ctx)
	for i := range matchers {
		matchers[i] = q.scope(o, matchers[i])
	}
	var (
		mtx sync.Mutex
		all []exemplar.QueryResult
	)
	_, err := q.fanOut(eq.ctx, "exemplars", o, start, end, nil, func(ctx context.Context, s storeapi.Store) (annotations.Annotations, error) {
		res, err := s.Exemplars(ctx, start, end, matchers)
		if err == nil {
			mtx.Lock()
			all = append(all, res...)
			mtx.Unlock()
		}
		return nil, err
	})
	if err != nil {
		return nil, err
	}
	hidden := q.hiddenLabels(o)
	byLabels := map[string]int{}
	var out []exemplar.QueryResult
	b := labels.NewBuilder(labels.EmptyLabels())
	for _, r := range all {
		b.Reset(r.SeriesLabels)
		b.Del(hidden...)
		lset := b.Labels()
		key := lset.String()
		i, ok := byLabels[key]
		if !ok {
			byLabels[key] = len(out)
			out = append(out, exemplar.QueryResult{SeriesLabels: lset, Exemplars: slices.Clone(r.Exemplars)})
			continue
		}
		out[i].Exemplars = append(out[i].Exemplars, r.Exemplars...)
	}
	for i := range out {
		ex := out[i].Exemplars
		sort.SliceStable(ex, func(a, b int) bool { return ex[a].Ts < ex[b].Ts })
		out[i].Exemplars = slices.CompactFunc(ex, func(a, b exemplar.Exemplar) bool { return a.Ts == b.Ts && labels.Equal(a.Labels, b.Labels) })
	}
	sort.Slice(out, func(i, j int) bool { return labels.Compare(out[i].SeriesLabels, out[j].SeriesLabels) < 0 })
	return out, nil
}
