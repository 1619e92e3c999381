package storegateway

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// metrics are the gateway's atoll_gateway_* series.
type metrics struct {
	blocksLoaded      prometheus.Gauge
	blockLoads        prometheus.Counter
	blockLoadFailures prometheus.Counter
	blockDrops        prometheus.Counter
	partialBlocks     prometheus.Gauge
	markedBlocks      prometheus.Gauge
	syncs             prometheus.Counter
	syncFailures      prometheus.Counter
	syncDuration      prometheus.Histogram
	lastSync          prometheus.Gauge

	fetchedBytes *prometheus.CounterVec
	fetches      *prometheus.CounterVec

	seriesReturned  prometheus.Counter
	chunksReturned  prometheus.Counter
	samplesReturned prometheus.Counter
	requestDuration *prometheus.HistogramVec
	blocksQueried   prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		blocksLoaded: f.NewGauge(prometheus.GaugeOpts{
			Name: "atoll_gateway_blocks_loaded",
			Help: "Bucket blocks the gateway serves.",
		}),
		blockLoads: f.NewCounter(prometheus.CounterOpts{
			Name: "atoll_gateway_block_loads_total",
			Help: "Blocks loaded: index header built or reopened.",
		}),
		blockLoadFailures: f.NewCounter(prometheus.CounterOpts{
			Name: "atoll_gateway_blocks_load_failures_total",
			Help: "Attempts to load a block that failed (unreadable meta, missing or corrupt index); the block is skipped and retried at the next sync.",
		}),
		blockDrops: f.NewCounter(prometheus.CounterOpts{
			Name: "atoll_gateway_block_drops_total",
			Help: "Blocks no longer served: deleted, marked for deletion past the delay, or outside the time window.",
		}),
		partialBlocks: f.NewGauge(prometheus.GaugeOpts{
			Name: "atoll_gateway_partial_blocks",
			Help: "Block directories without meta.json at the last sync (uploads in progress or abandoned); not served.",
		}),
		markedBlocks: f.NewGauge(prometheus.GaugeOpts{
			Name: "atoll_gateway_deletion_marked_blocks",
			Help: "Blocks with a deletion mark at the last sync, served or not.",
		}),
		syncs: f.NewCounter(prometheus.CounterOpts{
			Name: "atoll_gateway_syncs_total",
			Help: "Syncs of the block list with the bucket.",
		}),
		syncFailures: f.NewCounter(prometheus.CounterOpts{
			Name: "atoll_gateway_sync_failures_total",
			Help: "Syncs that could not list the bucket; the previous block list stays served.",
		}),
		syncDuration: f.NewHistogram(prometheus.HistogramOpts{
			Name:                        "atoll_gateway_sync_duration_seconds",
			Help:                        "Time a sync of the block list took, loading new blocks included.",
			Buckets:                     prometheus.ExponentialBuckets(0.01, 4, 8),
			NativeHistogramBucketFactor: 1.1,
		}),
		lastSync: f.NewGauge(prometheus.GaugeOpts{
			Name: "atoll_gateway_last_successful_sync_timestamp_seconds",
			Help: "When the block list was last synced with the bucket.",
		}),
		fetchedBytes: f.NewCounterVec(prometheus.CounterOpts{
			Name: "atoll_gateway_bucket_fetched_bytes_total",
			Help: "Bytes read from the bucket, by what they were for: header (building index headers), postings, series, chunks.",
		}, []string{"kind"}),
		fetches: f.NewCounterVec(prometheus.CounterOpts{
			Name: "atoll_gateway_bucket_range_reads_total",
			Help: "Range reads sent to the bucket, by what they were for.",
		}, []string{"kind"}),
		seriesReturned: f.NewCounter(prometheus.CounterOpts{
			Name: "atoll_gateway_series_returned_total",
			Help: "Series returned by Series requests (one per block a series lives in).",
		}),
		chunksReturned: f.NewCounter(prometheus.CounterOpts{
			Name: "atoll_gateway_chunks_returned_total",
			Help: "Chunks returned by Series requests.",
		}),
		samplesReturned: f.NewCounter(prometheus.CounterOpts{
			Name: "atoll_gateway_samples_returned_total",
			Help: "Samples in the chunks returned by Series requests.",
		}),
		requestDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:                        "atoll_gateway_request_duration_seconds",
			Help:                        "Time Store API requests took in the gateway, by request.",
			Buckets:                     prometheus.DefBuckets,
			NativeHistogramBucketFactor: 1.1,
		}, []string{"request"}),
		blocksQueried: f.NewHistogram(prometheus.HistogramOpts{
			Name:                        "atoll_gateway_blocks_queried",
			Help:                        "Blocks one Series request read.",
			Buckets:                     prometheus.ExponentialBuckets(1, 2, 12),
			NativeHistogramBucketFactor: 1.1,
		}),
	}
}
