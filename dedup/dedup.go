package dedup

import (
	"slices"

	"github.com/prometheus/prometheus/storage"
)

// initialPenalty (milliseconds) is the penalty while no replica has shown its
// scrape interval, because none has two samples. Scrape intervals are
// seconds long.
const initialPenalty = 5000

// Option configures deduplication.
type Option func(*config)

type config struct {
	counter bool
}

func newConfig(opts []Option) config {
	var c config
	for _, o := range opts {
		o(&c)
	}
	return c
}

// WithFunc names the PromQL function that consumes the series, as in
// storage.SelectHints.Func. For rate, increase, irate and resets, drops of a
// counter at a replica switch are corrected (see the package documentation);
// for every other name, including the empty one, values pass through.
func WithFunc(name string) Option {
	return func(c *config) { c.counter = isCounterFunc(name) }
}

// isCounterFunc reports whether a PromQL function only makes sense over
// counters, so that a drop at a replica switch can be corrected without
// distorting a gauge.
func isCounterFunc(name string) bool {
	switch name {
	case "rate", "increase", "irate", "resets":
		return true
	}
	return false
}

// NewSeriesSet merges the series sets of several stores, each sorted by labels.
//
// Without replica labels it is a plain merge: series with equal labels are
// united sample by sample (storage.ChainedSeriesMerge) and nothing is buffered.
//
// With replica labels, the labels are removed from every series and series
// that become equal are replicas of one another. Series that had equal labels
// before the removal come from the same replica in different stores and are
// united first; different replicas are then deduplicated as the package
// documentation describes. Removing labels can change the order, so the set
// reads every input series (labels and lazy series handles, not samples) on
// the first call to Next and sorts them. The result is sorted by the remaining
// labels; errors and warnings of all inputs are reported.
func NewSeriesSet(sets []storage.SeriesSet, replicaLabels []string, opts ...Option) storage.SeriesSet {
	if len(replicaLabels) == 0 {
		return storage.NewMergeSeriesSet(sets, 0, storage.ChainedSeriesMerge)
	}
	return &seriesSet{
		sets:          slices.Clone(sets),
		replicaLabels: slices.Clone(replicaLabels),
		cfg:           newConfig(opts),
	}
}

// mergeFunc returns a storage.VerticalSeriesMergeFunc that treats every given
// series as a replica and deduplicates them. The series must carry equal
// labels; the first one's labels are kept.
func mergeFunc(opts ...Option) storage.VerticalSeriesMergeFunc {
	cfg := newConfig(opts)
	return func(ss ...storage.Series) storage.Series {
		switch len(ss) {
		case 0:
			return nil
		case 1:
			return ss[0]
		}
		return &series{lset: ss[0].Labels(), replicas: slices.Clone(ss), cfg: cfg}
	}
}

// ChunkMergeFunc returns a storage.VerticalChunkSeriesMergeFunc for vertical
// compaction: chunks that do not overlap pass through untouched, overlapping
// ones are decoded, deduplicated with mergeFunc and encoded again.
func ChunkMergeFunc(opts ...Option) storage.VerticalChunkSeriesMergeFunc {
	return storage.NewCompactingChunkSeriesMerger(mergeFunc(opts...))
}
