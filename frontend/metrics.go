package frontend

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

type metrics struct {
	requestDuration    *prometheus.HistogramVec
	downstreamDuration *prometheus.HistogramVec
	downstreamUp       *prometheus.GaugeVec
	retries            *prometheus.CounterVec
	queueDuration      prometheus.Histogram
	splits             prometheus.Counter
	shardedQueries     *prometheus.CounterVec
	shardFallbacks     prometheus.Counter
	cacheLookups       *prometheus.CounterVec
	cacheSkipped       *prometheus.CounterVec
	refused            *prometheus.CounterVec
	slowQueries        prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	latency := []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}
	return &metrics{
		requestDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:                        "atoll_frontend_request_duration_seconds",
			Help:                        "Time the query-frontend took to answer, by API endpoint (the path after /api/v1) and status code.",
			Buckets:                     latency,
			NativeHistogramBucketFactor: 1.1,
		}, []string{"handler", "code"}),
		downstreamDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:                        "atoll_frontend_downstream_request_duration_seconds",
			Help:                        "Time queriers took to answer the frontend's requests, by API endpoint and status code (error: no answer).",
			Buckets:                     latency,
			NativeHistogramBucketFactor: 1.1,
		}, []string{"handler", "code"}),
		downstreamUp: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "atoll_frontend_downstream_up",
			Help: "Whether a querier answered its last readiness check (1) or not (0).",
		}, []string{"downstream"}),
		retries: f.NewCounterVec(prometheus.CounterOpts{
			Name: "atoll_frontend_retries_total",
			Help: "Requests to queriers sent again after a 5xx answer or none, by API endpoint.",
		}, []string{"handler"}),
		queueDuration: f.NewHistogram(prometheus.HistogramOpts{
			Name:                        "atoll_frontend_queue_duration_seconds",
			Help:                        "Time queries waited for one of their tenant's slots (max_concurrent_queries).",
			Buckets:                     []float64{0.001, 0.01, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60},
			NativeHistogramBucketFactor: 1.1,
		}),
		splits: f.NewCounter(prometheus.CounterOpts{
			Name: "atoll_frontend_split_queries_total",
			Help: "Pieces range queries were split into (one per split interval each query spans).",
		}),
		shardedQueries: f.NewCounterVec(prometheus.CounterOpts{
			Name: "atoll_frontend_sharded_queries_total",
			Help: "Queries (or pieces of range queries) evaluated by vertical sharding, by kind (range, instant).",
		}, []string{"kind"}),
		shardFallbacks: f.NewCounter(prometheus.CounterOpts{
			Name: "atoll_frontend_shard_fallbacks_total",
			Help: "Sharded queries asked again whole because a shard answered native histograms.",
		}),
		cacheLookups: f.NewCounterVec(prometheus.CounterOpts{
			Name: "atoll_frontend_results_cache_lookups_total",
			Help: "Pieces of range queries looked up in the results cache, by result: hit (answered from the cache alone), partial (the cache had part), miss.",
		}, []string{"result"}),
		cacheSkipped: f.NewCounterVec(prometheus.CounterOpts{
			Name: "atoll_frontend_results_cache_not_stored_total",
			Help: "Answers not stored in the results cache, by reason: warnings (e.g. a partial response), fresh (all of it within max freshness of now).",
		}, []string{"reason"}),
		refused: f.NewCounterVec(prometheus.CounterOpts{
			Name: "atoll_frontend_refused_queries_total",
			Help: "Queries refused by a per-tenant limit, by limit.",
		}, []string{"limit"}),
		slowQueries: f.NewCounter(prometheus.CounterOpts{
			Name: "atoll_frontend_slow_queries_total",
			Help: "Queries that took longer than --query-frontend.log-queries-longer-than and were logged.",
		}),
	}
}
