package frontend

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"golang.org/x/sync/errgroup"
)

// Options configure a Frontend.
type Options struct {
	// Downstreams are the queriers; requests go to them in turn.
	Downstreams []Downstream
	// SplitInterval cuts range queries at its multiples; 0 does not split.
	SplitInterval time.Duration
	// AlignRangeWithStep moves start and end of range queries down to
	// multiples of their step.
	AlignRangeWithStep bool
	// MaxRetries is how many more times a request answered with a 5xx (or
	// not at all) is sent, each time to the next querier.
	MaxRetries int
	// MaxFreshness is the recent window never cached: points newer than
	// now minus MaxFreshness may still change as late samples arrive.
	MaxFreshness time.Duration
	// Cache is the results cache; nil caches nothing.
	Cache Cache
	// Limits are the per-tenant limits.
	Limits Limits
	// VerticalShards is how many shards a shardable aggregation is asked
	// in; below 2 nothing is sharded. The queriers must understand
	// ShardMatcherName.
	VerticalShards int
	// MaxParallelism bounds the requests one query has in flight at the
	// queriers (its pieces times its shards).
	MaxParallelism int
	// SlowQueryThreshold logs queries that take longer; 0 logs none, a
	// negative value every query.
	SlowQueryThreshold time.Duration
	// QueryTimeout bounds the frontend's own evaluation of sharded
	// queries.
	QueryTimeout time.Duration
	// TenantFromHeader names a request's tenant: it keys the cache and
	// the limits. Requests without one share the tenant "".
	TenantFromHeader func(http.Header) string
	// CheckInterval is how often Run asks every querier whether it is
	// ready.
	CheckInterval time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// DefaultOptions are Thanos's query-frontend defaults, and what `atoll
// query-frontend` starts with.
func DefaultOptions() Options {
	return Options{
		SplitInterval:      24 * time.Hour,
		AlignRangeWithStep: true,
		MaxRetries:         5,
		MaxFreshness:       time.Minute,
		MaxParallelism:     14,
		QueryTimeout:       2 * time.Minute,
		CheckInterval:      5 * time.Second,
		Limits:             Limits{Default: TenantLimits{MaxQueuedQueries: defaultMaxQueued}},
	}
}

// Frontend serves the Prometheus HTTP API in front of queriers.
type Frontend struct {
	opts   Options
	pool   *pool
	parser parser.Parser
	engine *promql.Engine
	queues tenantQueues
	logger *slog.Logger
	m      *metrics
}

// New returns a Frontend. Mount it at /api/v1/.
func New(opts Options, logger *slog.Logger, reg prometheus.Registerer) (*Frontend, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	d := DefaultOptions()
	if opts.MaxParallelism <= 0 {
		opts.MaxParallelism = d.MaxParallelism
	}
	if opts.QueryTimeout <= 0 {
		opts.QueryTimeout = d.QueryTimeout
	}
	if opts.CheckInterval <= 0 {
		opts.CheckInterval = d.CheckInterval
	}
	if opts.MaxRetries < 0 {
		opts.MaxRetries = 0
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.TenantFromHeader == nil {
		opts.TenantFromHeader = func(http.Header) string { return "" }
	}
	m := newMetrics(reg)
	p, err := newPool(opts.Downstreams, opts.MaxRetries, logger, m)
	if err != nil {
		return nil, err
	}
	f := &Frontend{
		opts:   opts,
		pool:   p,
		parser: parser.NewParser(parser.Options{EnableExperimentalFunctions: true}),
		logger: logger,
		m:      m,
		// The frontend's engine only aggregates again what shards
		// answered: no storage of its own, no metrics to register.
		engine: promql.NewEngine(promql.EngineOpts{
			Logger:               logger.With("subsystem", "promql"),
			MaxSamples:           50_000_000,
			Timeout:              opts.QueryTimeout,
			LookbackDelta:        5 * time.Minute,
			EnableAtModifier:     true,
			EnableNegativeOffset: true,
		}),
	}
	return f, nil
}

// Run checks the queriers every CheckInterval until ctx ends.
func (f *Frontend) Run(ctx context.Context) error {
	f.pool.check(ctx, f.opts.CheckInterval)
	t := time.NewTicker(f.opts.CheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			f.pool.check(ctx, f.opts.CheckInterval)
		}
	}
}

// Ready reports whether a querier answered its last readiness check.
func (f *Frontend) Ready() bool { return f.pool.anyReady() }

// ServeHTTP serves /api/v1/...
func (f *Frontend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	defer func() {
		f.m.requestDuration.WithLabelValues(endpointName(r.URL.Path), strconv.Itoa(sw.status())).Observe(time.Since(start).Seconds())
	}()
	in, err := readIncoming(sw, r)
	if err != nil {
		code := http.StatusBadRequest
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			code = http.StatusRequestEntityTooLarge
		}
		writeError(sw, &apiError{status: code, errorType: "bad_data", msg: err.Error()})
		return
	}
	path := strings.TrimSuffix(r.URL.Path, "/")
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		// OPTIONS and the like are the querier's to answer.
		path = ""
	}
	switch path {
	case "/api/v1/query_range":
		f.serveRange(r.Context(), sw, in, start)
	case "/api/v1/query":
		f.serveInstant(r.Context(), sw, in, start)
	default:
		f.passThrough(r.Context(), sw, in)
	}
}

// knownEndpoints name the API's endpoints in metrics; others are "other".
var knownEndpoints = map[string]bool{
	"/query": true, "/query_range": true, "/query_exemplars": true, "/series": true, "/labels": true,
	"/metadata": true, "/format_query": true, "/parse_query": true, "/targets": true, "/rules": true,
	"/alerts": true, "/stores": true, "/tenants": true, "/blocks": true, "/status/buildinfo": true,
	"/status/flags": true, "/status/runtimeinfo": true, "/status/config": true, "/status/tsdb": true,
}

func endpointName(path string) string {
	p := strings.TrimSuffix(strings.TrimPrefix(path, "/api/v1"), "/")
	if strings.HasPrefix(p, "/label/") && strings.HasSuffix(p, "/values") {
		return "/label/:name/values"
	}
	if knownEndpoints[p] {
		return p
	}
	return "other"
}

// statusWriter remembers the status code written.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) status() int {
	if w.code == 0 {
		return http.StatusOK
	}
	return w.code
}

// passThrough sends a request to a querier as it came and copies the
// answer back.
func (f *Frontend) passThrough(ctx context.Context, w http.ResponseWriter, in *incoming) {
	h := forwardHeader(in.header)
	if ct := in.header.Get("Content-Type"); ct != "" {
		h.Set("Content-Type", ct)
	}
	req := &request{method: in.method, path: in.path, rawQuery: in.rawQuery, header: h, body: in.body, endpoint: endpointName(in.path)}
	f.forward(ctx, w, req)
}

// forward sends req and streams the querier's answer to the client.
func (f *Frontend) forward(ctx context.Context, w http.ResponseWriter, req *request) {
	resp, err := f.pool.do(ctx, req)
	if err != nil {
		f.writeErr(w, err)
		return
	}
	defer resp.Body.Close()
	for k, vs := range resp.Header {
		if slices.Contains(hopHeaders, http.CanonicalHeaderKey(k)) && k != "Content-Type" {
			continue
		}
		w.Header()[k] = vs
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

// querierError is a querier's answer other than success, given to the
// client as it was.
type querierError struct {
	status int
	header http.Header
	body   []byte
}

func (e *querierError) Error() string {
	return fmt.Sprintf("querier answered %d: %s", e.status, strings.TrimSpace(string(e.body)))
}

// writeErr answers with what went wrong, in Prometheus's error shape.
func (f *Frontend) writeErr(w http.ResponseWriter, err error) {
	var qe *querierError
	var ae *apiError
	switch {
	case errors.As(err, &qe):
		if ct := qe.header.Get("Content-Type"); ct != "" {
			w.Header().Set("Content-Type", ct)
		}
		w.WriteHeader(qe.status)
		_, _ = w.Write(qe.body)
	case errors.As(err, &ae):
		writeError(w, ae)
	case errors.Is(err, context.Canceled):
		// The client left; nobody reads the answer.
		writeError(w, &apiError{status: 499, errorType: "canceled", msg: err.Error()})
	case errors.Is(err, context.DeadlineExceeded):
		writeError(w, &apiError{status: http.StatusServiceUnavailable, errorType: "timeout", msg: err.Error()})
	case errors.Is(err, errUnreachable):
		writeError(w, &apiError{status: http.StatusServiceUnavailable, errorType: "unavailable", msg: err.Error()})
	default:
		writeError(w, &apiError{status: http.StatusInternalServerError, errorType: "internal", msg: err.Error()})
	}
}

// admit applies the limits of the request's tenant to a query of the
// points from start to end: it refuses what they do not allow, passes the
// sample limit down in params, and waits for one of the tenant's slots.
// The caller runs release when the query is done.
func (f *Frontend) admit(ctx context.Context, w http.ResponseWriter, in *incoming, start, end int64, now time.Time, params url.Values) (string, func(), bool) {
	tenant := f.opts.TenantFromHeader(in.header)
	l := f.opts.Limits.For(tenant)
	if limit, e := l.check(tenant, start, end, now); e != nil {
		f.m.refused.WithLabelValues(limit).Inc()
		writeError(w, e)
		return tenant, nil, false
	}
	l.applySamples(params)
	waited, release, err := f.queues.acquire(ctx, tenant, l)
	f.m.queueDuration.Observe(waited.Seconds())
	if err != nil {
		if errors.Is(err, errQueueFull) {
			f.m.refused.WithLabelValues("max_queued_queries").Inc()
			writeError(w, &apiError{status: http.StatusTooManyRequests, errorType: "unavailable", msg: fmt.Sprintf(
				"too many queries of tenant %q in flight (max_concurrent_queries %d) and waiting (max_queued_queries %d); retry later",
				tenant, l.MaxConcurrentQueries, l.MaxQueuedQueries)})
		} else {
			f.writeErr(w, err)
		}
		return tenant, nil, false
	}
	return tenant, release, true
}

func (f *Frontend) serveRange(ctx context.Context, w http.ResponseWriter, in *incoming, start time.Time) {
	q, err := parseRangeQuery(in.form, f.parser)
	if err != nil {
		f.passThrough(ctx, w, in)
		return
	}
	now := f.opts.Now()
	tenant, release, ok := f.admit(ctx, w, in, q.start, q.end, now, q.params)
	if !ok {
		return
	}
	defer release()

	if f.opts.AlignRangeWithStep {
		alignToStep(q)
	}
	if pinStartEnd(q.expr, q.start, q.end) {
		q.query = q.expr.String()
	}
	interval := f.opts.SplitInterval.Milliseconds()
	if usesQueryRange(q.expr) {
		// start(), end() and range() answer the times of the query they
		// are evaluated in: a piece would see its own.
		interval = 0
	}
	pieces := splitByInterval(q.start, q.end, q.step, interval)
	f.m.splits.Add(float64(len(pieces)))

	ex := f.newExecution(in.header, q.expr)
	useCache := f.opts.Cache != nil && !usesQueryRange(q.expr) && !strings.Contains(in.header.Get("Cache-Control"), "no-store")
	a, stats, err := f.rangeAnswer(ctx, ex, tenant, q, pieces, now, useCache, interval)
	if err != nil {
		f.writeErr(w, err)
		f.logSlow(start, tenant, in, q.query, err, "pieces", len(pieces))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if err := writeAnswer(w, a); err != nil {
		f.logger.Debug("writing answer failed", "err", err)
	}
	f.logSlow(start, tenant, in, q.query, nil, "pieces", len(pieces), "pieces_from_cache", stats.hits, "querier_requests", ex.requests.Load())
}

// usesQueryRange reports whether expr calls start(), end() or range().
func usesQueryRange(expr parser.Expr) bool {
	found := false
	parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
		if c, ok := node.(*parser.Call); ok {
			switch c.Func.Name {
			case "start", "end", "range":
				found = true
			}
		}
		return nil
	})
	return found
}

func (f *Frontend) serveInstant(ctx context.Context, w http.ResponseWriter, in *incoming, start time.Time) {
	now := f.opts.Now()
	q, err := parseInstantQuery(in.form, f.parser, now)
	if err != nil {
		f.passThrough(ctx, w, in)
		return
	}
	tenant, release, ok := f.admit(ctx, w, in, q.time, q.time, now, q.params)
	if !ok {
		return
	}
	defer release()

	ex := f.newExecution(in.header, q.expr)
	if ex.plan == nil {
		req := formRequest("/api/v1/query", "query", in.header, q.form(q.query))
		f.forward(ctx, w, req)
		f.logSlow(start, tenant, in, q.query, nil)
		return
	}
	a, err := ex.shardedInstant(ctx, q)
	if err != nil {
		f.writeErr(w, err)
		f.logSlow(start, tenant, in, q.query, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = writeAnswer(w, a)
	f.logSlow(start, tenant, in, q.query, nil, "querier_requests", ex.requests.Load())
}

// logSlow logs a query that took longer than the threshold.
func (f *Frontend) logSlow(start time.Time, tenant string, in *incoming, query string, err error, kv ...any) {
	took := time.Since(start)
	th := f.opts.SlowQueryThreshold
	if th == 0 || (th > 0 && took < th) {
		return
	}
	f.m.slowQueries.Inc()
	attrs := []any{"tenant", tenant, "path", in.path, "query", query, "duration", took.String()}
	for _, p := range []string{"start", "end", "step", "time", "dedup", "partial_response", "max_source_resolution"} {
		if v := in.form.Get(p); v != "" {
			attrs = append(attrs, "param_"+p, v)
		}
	}
	attrs = append(attrs, kv...)
	if err != nil {
		attrs = append(attrs, "err", err)
	}
	f.logger.Info("slow query", attrs...)
}

// pieceStats says how a range query was answered.
type pieceStats struct {
	hits int
}

// rangeAnswer answers a range query piece by piece, in parallel, each
// from the cache as far as it holds it.
func (f *Frontend) rangeAnswer(ctx context.Context, ex *execution, tenant string, q *rangeQuery, pieces []span, now time.Time, useCache bool, interval int64) (*answer, pieceStats, error) {
	var stats pieceStats
	// The newest point that may be cached, and whether anything may.
	cacheUntil := int64(0)
	if useCache {
		ahead, latestAt, hasAt := lookAhead(q.expr)
		cacheUntil = now.UnixMilli() - f.opts.MaxFreshness.Milliseconds() - ahead
		if hasAt && latestAt > cacheUntil {
			useCache = false
		}
	}
	keys := make([]string, len(pieces))
	var entries map[string][]byte
	if useCache {
		var wanted []string
		for i, p := range pieces {
			if p.start > cacheUntil {
				f.m.cacheSkipped.WithLabelValues("fresh").Inc()
				continue
			}
			bucket := int64(0)
			if interval > 0 {
				bucket = floorDiv(p.start, interval)
			}
			keys[i] = cacheKey(tenant, q, bucket)
			wanted = append(wanted, keys[i])
		}
		if len(wanted) > 0 {
			entries = f.opts.Cache.Fetch(ctx, wanted)
		}
	}
	answers := make([]*answer, len(pieces))
	hits := make([]bool, len(pieces))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(f.opts.MaxParallelism)
	for i, p := range pieces {
		g.Go(func() error {
			var err error
			if keys[i] == "" {
				answers[i], err = ex.rangeQuery(gctx, q, p.start, p.end)
				return err
			}
			answers[i], hits[i], err = f.cachedPiece(gctx, ex, q, p, keys[i], entries[keys[i]], cacheUntil)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, stats, err
	}
	out := &answer{resultType: "matrix"}
	parts := make([][]*series, len(answers))
	for i, a := range answers {
		parts[i] = a.series
		out.warnings = unionStrings(out.warnings, a.warnings...)
		out.infos = unionStrings(out.infos, a.infos...)
		if hits[i] {
			stats.hits++
		}
	}
	out.series = mergeSeries(parts...)
	return out, stats, nil
}

// cacheKey names a piece's cache entry: everything that shapes its answer
// except the times, which the extents inside the entry hold. The grid's
// phase (start modulo step) is part of it, so extents of unaligned
// queries never mix points of different grids.
func cacheKey(tenant string, q *rangeQuery, bucket int64) string {
	h := sha256.New()
	w := func(s string) {
		_, _ = io.WriteString(h, s)
		_, _ = h.Write([]byte{0})
	}
	w("atoll-frontend-v1")
	w(tenant)
	w(q.query)
	w(strconv.FormatInt(q.step, 10))
	w(strconv.FormatInt(q.start-floorDiv(q.start, q.step)*q.step, 10))
	w(strconv.FormatInt(bucket, 10))
	names := make([]string, 0, len(q.params))
	for k := range q.params {
		switch k {
		case "max_samples_read", "max_series", "max_query_duration", "timeout":
			// Limits change whether an answer comes, not what it is.
		default:
			names = append(names, k)
		}
	}
	sort.Strings(names)
	for _, k := range names {
		w(k)
		for _, v := range q.params[k] {
			w(v)
		}
	}
	return "fe:" + hex.EncodeToString(h.Sum(nil))
}

// cachedPiece answers a piece from its cache entry, asking the queriers
// only for what the entry lacks, and stores what they answered that may
// be cached.
func (f *Frontend) cachedPiece(ctx context.Context, ex *execution, q *rangeQuery, p span, key string, data []byte, cacheUntil int64) (*answer, bool, error) {
	var exts []extent
	if data != nil {
		var err error
		if exts, err = decodeEntry(key, data); err != nil {
			f.logger.Warn("results cache entry unreadable, ignoring it", "err", err)
			exts = nil
		}
	}
	sort.Slice(exts, func(i, j int) bool { return exts[i].start < exts[j].start })
	gaps := missing(p.start, p.end, q.step, exts)
	switch {
	case len(gaps) == 0:
		f.m.cacheLookups.WithLabelValues("hit").Inc()
	case len(gaps) == 1 && gaps[0] == p:
		f.m.cacheLookups.WithLabelValues("miss").Inc()
	default:
		f.m.cacheLookups.WithLabelValues("partial").Inc()
	}
	fetched := make([]*answer, len(gaps))
	g, gctx := errgroup.WithContext(ctx)
	for i, gap := range gaps {
		g.Go(func() error {
			a, err := ex.rangeQuery(gctx, q, gap.start, gap.end)
			fetched[i] = a
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, false, err
	}

	out := &answer{resultType: "matrix"}
	var parts [][]*series
	for _, e := range exts {
		if e.end < p.start || e.start > p.end {
			continue
		}
		parts = append(parts, sliceSeries(e.series, p.start, p.end))
		out.infos = unionStrings(out.infos, e.infos...)
	}
	// The grid's last point that may be cached.
	until := p.start + floorDiv(cacheUntil-p.start, q.step)*q.step
	changed := false
	for i, a := range fetched {
		parts = append(parts, a.series)
		out.warnings = unionStrings(out.warnings, a.warnings...)
		out.infos = unionStrings(out.infos, a.infos...)
		if len(a.warnings) > 0 {
			f.m.cacheSkipped.WithLabelValues("warnings").Inc()
			continue
		}
		e, ok := trimExtent(extent{start: gaps[i].start, end: gaps[i].end, series: a.series, infos: a.infos}, until)
		if !ok {
			f.m.cacheSkipped.WithLabelValues("fresh").Inc()
			continue
		}
		exts = append(exts, e)
		changed = true
	}
	out.series = mergeSeries(parts...)
	if changed {
		exts = mergeExtents(exts, q.step)
		f.opts.Cache.Store(ctx, key, encodeEntry(key, exts))
	}
	return out, len(gaps) == 0, nil
}
