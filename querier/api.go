package querier

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"runtime"
	"runtime/debug"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/grafana/regexp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/route"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/scrape"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/util/annotations"
	"github.com/prometheus/prometheus/util/features"
	"github.com/prometheus/prometheus/util/httputil"
	"github.com/prometheus/prometheus/util/notifications"
	v1 "github.com/prometheus/prometheus/web/api/v1"

	"github.com/atoll-metrics/atoll/storeapi"
	"github.com/atoll-metrics/atoll/tenant"
)

// APIOptions configure the HTTP API.
type APIOptions struct {
	// BuildInfo is served at /api/v1/status/buildinfo.
	BuildInfo v1.PrometheusVersion
	// Flags are served at /api/v1/status/flags.
	Flags map[string]string
	// QueryTimeout bounds one query's evaluation.
	QueryTimeout time.Duration
	// LookbackDelta is how far back an instant vector selector looks.
	LookbackDelta time.Duration
	// MaxSamples bounds the samples one query may hold in memory.
	MaxSamples int
	// Ready gates the query endpoints: they answer 503 until it is true.
	Ready func() bool
	// CORSOrigin matches the origins whose pages may call the API; nil
	// allows every origin, as Prometheus's default does.
	CORSOrigin *regexp.Regexp
	// Config is the running configuration as YAML, secrets masked, served
	// at /api/v1/status/config; empty answers 404.
	Config string
	// StorageRetention describes how long data is kept, for
	// /api/v1/status/runtimeinfo.
	StorageRetention string
	// HeadStats reports the head of a tenant's TSDB for
	// /api/v1/status/tsdb: its statistics and chunk count, or nil stats
	// when the tenant has no TSDB here. Nil where the process holds no
	// TSDB: the endpoint answers 404.
	HeadStats func(tenant string, limit int) (*tsdb.Stats, int64, error)
}

// DefaultAPIOptions match Prometheus's own defaults, so answers match.
func DefaultAPIOptions() APIOptions {
	return APIOptions{
		QueryTimeout:  2 * time.Minute,
		LookbackDelta: 5 * time.Minute,
		MaxSamples:    50_000_000,
	}
}

// API serves the Prometheus HTTP API v1 over a Querier, using Prometheus's
// own API implementation so answers, JSON shapes and error types are the
// ones Grafana and Prometheus clients expect.
type API struct {
	q       *Querier
	opts    APIOptions
	logger  *slog.Logger
	router  *route.Router
	started time.Time
}

// NewAPI builds the API. Mount its handler at /api/v1/.
func NewAPI(q *Querier, opts APIOptions, logger *slog.Logger, reg prometheus.Registerer, gatherer prometheus.Gatherer) *API {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if opts.Ready == nil {
		opts.Ready = func() bool { return true }
	}
	if opts.CORSOrigin == nil {
		// Prometheus's API dereferences it for every request with an
		// Origin header, which every browser POST carries.
		opts.CORSOrigin = regexp.MustCompile(".*")
	}
	// The engine records the PromQL features it has; /api/v1/features
	// serves them.
	featureRegistry := features.NewRegistry()
	var engine promql.QueryEngine = promql.NewEngine(promql.EngineOpts{
		FeatureRegistry:      featureRegistry,
		Logger:               logger.With("component", "promql"),
		Reg:                  reg,
		MaxSamples:           opts.MaxSamples,
		Timeout:              opts.QueryTimeout,
		LookbackDelta:        opts.LookbackDelta,
		EnableAtModifier:     true,
		EnableNegativeOffset: true,
		// Per-query limits (max_samples_read, max_series): a query-frontend
		// passes each tenant's down with every request.
		EnableQueryCost: true,
		NoStepSubqueryIntervalFn: func(int64) int64 {
			return time.Minute.Milliseconds()
		},
	})
	engine = &resolutionEngine{QueryEngine: engine, parser: parser.NewParser(parser.Options{}), lookback: opts.LookbackDelta}
	a := &API{q: q, opts: opts, logger: logger, router: route.New().WithInstrumentation(instrumentAPI(reg)), started: time.Now()}
	cfg := config.DefaultConfig
	buildInfo := opts.BuildInfo
	api := v1.NewAPI(
		engine,
		queryableWithoutChunks{q},
		nil, // no appender: writes arrive on the remote-write listener
		q,
		func(context.Context) v1.ScrapePoolsRetriever { return noTargets{} },
		func(context.Context) v1.TargetRetriever { return noTargets{} },
		func(context.Context) v1.AlertmanagerRetriever { return noTargets{} },
		func() config.Config { return cfg },
		opts.Flags,
		v1.GlobalURLOptions{},
		a.readyGate,
		nil, // TSDB admin and status endpoints are answered by atoll itself
		"",
		false,
		false,
		0,
		logger,
		func(context.Context) v1.RulesRetriever { return noTargets{} },
		0, 0, 0,
		false,
		opts.CORSOrigin,
		a.runtimeInfo,
		&buildInfo,
		func() []notifications.Notification { return nil },
		func() (<-chan notifications.Notification, func(), bool) { return nil, func() {}, false },
		gatherer,
		reg,
		nil,
		false,
		nil,
		false, false, false,
		opts.LookbackDelta,
		false,
		false,
		overrideStoreUnavailable(),
		featureRegistry,
		v1.OpenAPIOptions{},
		nil,
		true, // per-query limits, as for the engine
		opts.QueryTimeout,
	)
	api.Register(a.router.WithPrefix("/api/v1"))
	return a
}

// instrumentAPI times every API route, by handler (the route's path after
// /api/v1, e.g. /query_range) and status code.
func instrumentAPI(reg prometheus.Registerer) func(string, http.HandlerFunc) http.HandlerFunc {
	duration := promauto.With(reg).NewHistogramVec(prometheus.HistogramOpts{
		Name:                        "atoll_api_request_duration_seconds",
		Help:                        "Time to answer Prometheus HTTP API requests, by handler and status code.",
		Buckets:                     prometheus.DefBuckets,
		NativeHistogramBucketFactor: 1.1,
	}, []string{"handler", "code"})
	return func(handler string, h http.HandlerFunc) http.HandlerFunc {
		return promhttp.InstrumentHandlerDuration(duration.MustCurryWith(prometheus.Labels{"handler": handler}), h)
	}
}

// ServeHTTP serves /api/v1/...
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o, err := a.requestOptions(r)
	if err != nil {
		writeAPIError(w, http.StatusBadRequest, "bad_data", err)
		return
	}
	r = r.WithContext(withQueryOptions(r.Context(), o))
	switch strings.TrimSuffix(r.URL.Path, "/") {
	case "/api/v1/metadata":
		a.metadata(w, r)
		return
	case "/api/v1/status/config":
		httputil.SetCORS(w, a.opts.CORSOrigin, r)
		if a.opts.Config == "" {
			writeAPIError(w, http.StatusNotFound, "not_found", errors.New("this process has no configuration to show besides its flags (/api/v1/status/flags)"))
			return
		}
		writeAPIData(w, map[string]string{"yaml": a.opts.Config}, nil)
		return
	case "/api/v1/status/tsdb":
		httputil.SetCORS(w, a.opts.CORSOrigin, r)
		a.tsdbStatus(w, r, o.tenant)
		return
	case "/api/v1/status/tsdb/blocks", "/api/v1/status/walreplay",
		"/api/v1/admin/tsdb/delete_series", "/api/v1/admin/tsdb/clean_tombstones", "/api/v1/admin/tsdb/snapshot",
		"/api/v1/read", "/api/v1/write", "/api/v1/otlp/v1/metrics",
		"/api/v1/search/metric_names", "/api/v1/search/label_names", "/api/v1/search/label_values":
		writeAPIError(w, http.StatusNotFound, "not_found", fmt.Errorf("%s is not served by the atoll query API", r.URL.Path))
		return
	}
	a.router.ServeHTTP(w, r)
}

// requestOptions reads the tenant header and the Thanos-style query
// parameters that PromQL itself does not know.
func (a *API) requestOptions(r *http.Request) (queryOptions, error) {
	o := queryOptions{dedup: true, partialResponse: a.q.opts.PartialResponse, autoResolution: a.q.opts.AutoDownsampling}
	id := tenant.FromHeader(r.Header)
	switch {
	case id != "":
		if err := tenant.Validate(id); err != nil {
			return o, err
		}
		o.tenant = id
	case a.q.opts.AllTenants:
		o.tenant = ""
	default:
		o.tenant = a.q.opts.DefaultTenant
	}
	if err := r.ParseForm(); err != nil {
		return o, fmt.Errorf("parse form: %w", err)
	}
	if v := r.Form.Get("dedup"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return o, fmt.Errorf("invalid dedup parameter %q: %w", v, err)
		}
		o.dedup = b
	}
	if v := r.Form.Get("partial_response"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return o, fmt.Errorf("invalid partial_response parameter %q: %w", v, err)
		}
		o.partialResponse = b
	}
	if v := r.Form.Get("max_source_resolution"); v != "" {
		o.autoResolution = v == "auto"
		if !o.autoResolution {
			d, err := model.ParseDuration(v)
			if err != nil {
				return o, fmt.Errorf("invalid max_source_resolution parameter %q: want 0s, 5m, 1h or auto", v)
			}
			o.maxResolution = time.Duration(d).Milliseconds()
		}
	}
	return o, nil
}

func (a *API) readyGate(f http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !a.opts.Ready() {
			writeAPIError(w, http.StatusServiceUnavailable, "unavailable", errors.New("atoll is starting or stopping"))
			return
		}
		f(w, r)
	}
}

// overrideStoreUnavailable answers 503 when stores were unreachable and
// partial responses were not allowed, so clients retry rather than give up.
// The API's hook takes an unexported parameter type, so the function is
// built by reflection rather than declared.
func overrideStoreUnavailable() v1.OverrideErrorCode {
	t := reflect.TypeOf(v1.OverrideErrorCode(nil))
	fn := reflect.MakeFunc(t, func(args []reflect.Value) []reflect.Value {
		err, _ := args[1].Interface().(error)
		if errors.Is(err, errStoreUnavailable) {
			return []reflect.Value{reflect.ValueOf(http.StatusServiceUnavailable), reflect.ValueOf(true)}
		}
		return []reflect.Value{reflect.ValueOf(0), reflect.ValueOf(false)}
	})
	return fn.Interface().(v1.OverrideErrorCode)
}

// runtimeInfo reports the process as it runs. Atoll reads its
// configuration once, at start, so the last (and only) load is the start
// and it succeeded.
func (a *API) runtimeInfo() (v1.RuntimeInfo, error) {
	cwd, err := os.Getwd()
	if err != nil {
		cwd = "<unknown: " + err.Error() + ">"
	}
	host, err := os.Hostname()
	if err != nil {
		host = "<unknown: " + err.Error() + ">"
	}
	gogc := os.Getenv("GOGC")
	if gogc == "" {
		gogc = "100" // the runtime's default
	}
	return v1.RuntimeInfo{
		StartTime:           a.started,
		CWD:                 cwd,
		Hostname:            host,
		ServerTime:          time.Now().UTC(),
		ReloadConfigSuccess: true,
		LastConfigTime:      a.started,
		GoroutineCount:      runtime.NumGoroutine(),
		GOMAXPROCS:          runtime.GOMAXPROCS(0),
		GOMEMLIMIT:          debug.SetMemoryLimit(-1),
		GOGC:                gogc,
		GODEBUG:             os.Getenv("GODEBUG"),
		StorageRetention:    a.opts.StorageRetention,
	}, nil
}

// maxTSDBStatusLimit bounds the limit parameter of /api/v1/status/tsdb, as
// Prometheus does.
const maxTSDBStatusLimit = 10000

// tsdbStatus serves /api/v1/status/tsdb for the request's tenant in
// Prometheus's shape: the head's series, label pairs, chunks and time
// range, and its top cardinalities.
func (a *API) tsdbStatus(w http.ResponseWriter, r *http.Request, id string) {
	if a.opts.HeadStats == nil {
		writeAPIError(w, http.StatusNotFound, "not_found", errors.New("this process holds no TSDB; ask a receiver or atoll all"))
		return
	}
	if !a.opts.Ready() {
		writeAPIError(w, http.StatusServiceUnavailable, "unavailable", errors.New("atoll is starting or stopping"))
		return
	}
	if id == "" {
		writeAPIError(w, http.StatusBadRequest, "bad_data", fmt.Errorf("name the tenant with the %s or %s header", tenant.HeaderThanos, tenant.HeaderOrgID))
		return
	}
	limit := 10
	if v := r.FormValue("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxTSDBStatusLimit {
			writeAPIError(w, http.StatusBadRequest, "bad_data", fmt.Errorf("limit must be a number from 1 to %d", maxTSDBStatusLimit))
			return
		}
		limit = n
	}
	st, chunks, err := a.opts.HeadStats(id, limit)
	if err != nil {
		writeAPIError(w, http.StatusInternalServerError, "internal", err)
		return
	}
	if st == nil {
		writeAPIError(w, http.StatusNotFound, "not_found", fmt.Errorf("no TSDB for tenant %q here: it has written nothing to this process", id))
		return
	}
	ps := st.IndexPostingStats
	writeAPIData(w, v1.TSDBStatus{
		HeadStats: v1.HeadStats{
			NumSeries:     st.NumSeries,
			NumLabelPairs: ps.NumLabelPairs,
			ChunkCount:    chunks,
			MinTime:       st.MinTime,
			MaxTime:       st.MaxTime,
		},
		SeriesCountByMetricName:     v1.TSDBStatsFromIndexStats(ps.CardinalityMetricsStats),
		LabelValueCountByLabelName:  v1.TSDBStatsFromIndexStats(ps.CardinalityLabelStats),
		MemoryInBytesByLabelName:    v1.TSDBStatsFromIndexStats(ps.LabelValueStats),
		SeriesCountByLabelValuePair: v1.TSDBStatsFromIndexStats(ps.LabelValuePairsStats),
	}, nil)
}

// metadata serves /api/v1/metadata from the metadata remote-write clients
// sent, in Prometheus's response shape.
func (a *API) metadata(w http.ResponseWriter, r *http.Request) {
	limit, err := intParam(r, "limit")
	if err != nil {
		writeAPIError(w, http.StatusBadRequest, "bad_data", err)
		return
	}
	perMetric, err := intParam(r, "limit_per_metric")
	if err != nil {
		writeAPIError(w, http.StatusBadRequest, "bad_data", err)
		return
	}
	res, warns, err := a.q.Metadata(r.Context(), r.Form.Get("metric"), limit)
	if err != nil {
		code, typ := http.StatusUnprocessableEntity, "execution"
		if errors.Is(err, errStoreUnavailable) {
			code, typ = http.StatusServiceUnavailable, "unavailable"
		}
		writeAPIError(w, code, typ, err)
		return
	}
	if perMetric > 0 {
		for k, v := range res {
			if len(v) > perMetric {
				res[k] = v[:perMetric]
			}
		}
	}
	writeAPIData(w, res, warns)
}

func intParam(r *http.Request, name string) (int, error) {
	v := r.FormValue(name)
	if v == "" {
		return -1, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("invalid %s parameter %q: %w", name, v, err)
	}
	return n, nil
}

// Metadata gathers metric metadata from every store for the request's
// tenant.
func (q *Querier) Metadata(ctx context.Context, metric string, limit int) (map[string][]metadata.Metadata, []string, error) {
	o := q.optionsFrom(ctx)
	ms := q.scope(o, nil)
	req := &storeapi.MetadataRequest{Metric: metric, Limit: limit, Matchers: ms}
	var (
		mtx     sync.Mutex
		results []map[string][]metadata.Metadata
	)
	warns, err := q.fanOut(ctx, "metadata", o, math.MinInt64, math.MaxInt64, ms, func(ctx context.Context, s storeapi.Store) (annotations.Annotations, error) {
		m, err := s.Metadata(ctx, req)
		if err == nil {
			mtx.Lock()
			results = append(results, m)
			mtx.Unlock()
		}
		return nil, err
	})
	if err != nil {
		return nil, nil, err
	}
	out := map[string][]metadata.Metadata{}
	for _, m := range results {
		for name, list := range m {
			for _, md := range list {
				if !slices.Contains(out[name], md) {
					out[name] = append(out[name], md)
				}
			}
		}
	}
	if limit > 0 && len(out) > limit {
		// Keep a stable choice of metrics when cutting.
		names := make([]string, 0, len(out))
		for n := range out {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names[limit:] {
			delete(out, n)
		}
	}
	var warnings []string
	for _, err := range warns {
		warnings = append(warnings, err.Error())
	}
	return out, warnings, nil
}

// writeAPIData writes a success response in the Prometheus API envelope.
func writeAPIData(w http.ResponseWriter, data any, warnings []string) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(struct {
		Status   string   `json:"status"`
		Data     any      `json:"data"`
		Warnings []string `json:"warnings,omitempty"`
	}{"success", data, warnings})
}

// writeAPIError writes an error in the Prometheus API envelope.
func writeAPIError(w http.ResponseWriter, code int, typ string, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(struct {
		Status    string `json:"status"`
		ErrorType string `json:"errorType"`
		Error     string `json:"error"`
	}{"error", typ, err.Error()})
}

// queryableWithoutChunks gives the API the storage.SampleAndChunkQueryable
// it asks for; chunks are only used by remote read, which atoll does not
// serve on the query API.
type queryableWithoutChunks struct{ q *Querier }

func (w queryableWithoutChunks) Querier(mint, maxt int64) (storage.Querier, error) {
	return w.q.Querier(mint, maxt)
}

func (queryableWithoutChunks) ChunkQuerier(int64, int64) (storage.ChunkQuerier, error) {
	return nil, errors.New("remote read is not served by atoll")
}

// noTargets answers the API's questions about scraping, alerting and rules:
// atoll does none of them, so every list is empty.
type noTargets struct{}

func (noTargets) ScrapePools() []string                       { return nil }
func (noTargets) TargetsActive() map[string][]*scrape.Target  { return nil }
func (noTargets) TargetsDropped() map[string][]*scrape.Target { return nil }
func (noTargets) TargetsDroppedCounts() map[string]int        { return nil }
func (noTargets) Alertmanagers() []*url.URL                   { return nil }
func (noTargets) DroppedAlertmanagers() []*url.URL            { return nil }
func (noTargets) RuleGroups() []*rules.Group                  { return nil }
func (noTargets) AlertingRules() []*rules.AlertingRule        { return nil }
func (noTargets) ScrapePoolConfig(string) (*config.ScrapeConfig, error) {
	return nil, errors.New("atoll does not scrape")
}
