package compactor

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	passes             prometheus.Counter
	passFailures       prometheus.Counter
	lastSuccess        prometheus.Gauge
	leaseHeld          prometheus.Gauge
	groups             prometheus.Gauge
	noCompactBlocks    prometheus.Gauge
	newestBlock        prometheus.Gauge
	compactions        *prometheus.CounterVec
	compactionFailures prometheus.Counter
	samplesCompacted   *prometheus.CounterVec
	downsamples        *prometheus.CounterVec
	samplesDownsampled *prometheus.CounterVec
	markedForDeletion  *prometheus.CounterVec
	markedNoCompact    prometheus.Counter
	deleted            prometheus.Counter
	partialDeleted     prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		passes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "atoll_compactor_passes_total",
			Help: "Passes over the bucket started.",
		}),
		passFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "atoll_compactor_pass_failures_total",
			Help: "Passes that ended with errors; the next pass retries.",
		}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "atoll_compactor_last_successful_pass_timestamp_seconds",
			Help: "Unix time of the end of the last pass that left the bucket in order.",
		}),
		leaseHeld: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "atoll_compactor_lease_held",
			Help: "1 while this compactor holds the bucket's lease.",
		}),
		groups: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "atoll_compactor_groups",
			Help: "Groups (external labels without replica labels, and resolution) in the bucket at the last pass.",
		}),
		noCompactBlocks: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "atoll_compactor_no_compact_blocks",
			Help: "Blocks in the bucket marked no-compact at the last pass; they are served but never compacted.",
		}),
		newestBlock: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "atoll_compactor_newest_block_max_time_seconds",
			Help: "Newest sample time of any block the last successful pass saw: time() minus it is how far compaction lags the bucket.",
		}),
		compactions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "atoll_compactor_compactions_total",
			Help: "Blocks written by compaction, by kind (horizontal, or vertical when inputs overlapped) and resolution.",
		}, []string{"kind", "resolution"}),
		compactionFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "atoll_compactor_compaction_failures_total",
			Help: "Compactions that failed for reasons other than an unreadable input block.",
		}),
		samplesCompacted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "atoll_compactor_samples_compacted_total",
			Help: "Samples of the input blocks of compactions, by resolution.",
		}, []string{"resolution"}),
		downsamples: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "atoll_compactor_downsamples_total",
			Help: "Downsampled blocks written, by resolution written.",
		}, []string{"resolution"}),
		samplesDownsampled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "atoll_compactor_samples_downsampled_total",
			Help: "Samples read by downsampling, by resolution read.",
		}, []string{"resolution"}),
		markedForDeletion: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "atoll_compactor_blocks_marked_for_deletion_total",
			Help: "Deletion marks written, by reason (compacted, superseded, retention).",
		}, []string{"reason"}),
		markedNoCompact: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "atoll_compactor_blocks_marked_no_compact_total",
			Help: "Blocks excluded from compaction because they could not be read.",
		}),
		deleted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "atoll_compactor_blocks_deleted_total",
			Help: "Blocks deleted after their deletion delay.",
		}),
		partialDeleted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "atoll_compactor_partial_blocks_deleted_total",
			Help: "Abandoned partial uploads and interrupted deletions cleaned up.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{
			m.passes, m.passFailures, m.lastSuccess, m.leaseHeld, m.groups, m.noCompactBlocks, m.newestBlock,
			m.compactions, m.compactionFailures,
			m.samplesCompacted, m.downsamples, m.samplesDownsampled, m.markedForDeletion,
			m.markedNoCompact, m.deleted, m.partialDeleted,
		} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("compactor metrics: %w", err)
			}
		}
	}
	return m, nil
}
