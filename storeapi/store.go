package storeapi

import (
	"context"
	"math"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
)

// Store is one source of series: local TSDBs, a receiver or a store gateway
// reached over gRPC. Every series a store returns carries the external labels
// of the TSDB or block it came from.
type Store interface {
	// Name identifies the store in warnings, logs and metrics.
	Name() string
	// Info describes what the store holds, so queries skip stores that
	// cannot match.
	Info(ctx context.Context) (Info, error)
	// Series calls f for every matching series, in no particular order.
	// The labels and chunk bytes passed to f are valid only during the
	// call. With req.SkipChunks, f gets no chunks.
	Series(ctx context.Context, req *SeriesRequest, f SeriesFunc) (annotations.Annotations, error)
	LabelNames(ctx context.Context, req *LabelsRequest) ([]string, annotations.Annotations, error)
	LabelValues(ctx context.Context, name string, req *LabelsRequest) ([]string, annotations.Annotations, error)
	Exemplars(ctx context.Context, mint, maxt int64, matchers [][]*labels.Matcher) ([]exemplar.QueryResult, error)
	// Metadata returns metric metadata of the TSDBs whose external labels
	// match req.Matchers.
	Metadata(ctx context.Context, req *MetadataRequest) (map[string][]metadata.Metadata, error)
}

// Components a store reports in Info.
const (
	ComponentReceive = "receive"
	ComponentStore   = "store"
	ComponentAll     = "all"
)

// SeriesFunc receives one series from a store. The labels and chunk bytes
// are valid only during the call.
type SeriesFunc func(s Series) error

// Series is one series a store returns.
type Series struct {
	Labels labels.Labels
	Chunks []chunks.Meta
	// Resolution is the downsampling resolution of the chunks in
	// milliseconds; 0 for raw samples.
	Resolution int64
	// ChunksOwned says the chunks' bytes belong to the receiver of the
	// call and may be kept after it (a remote store's decoded message);
	// otherwise they must be copied to be kept. The Chunks slice itself is
	// reused either way.
	ChunksOwned bool
}

// Info describes a store.
type Info struct {
	// LabelSets has the external labels of each TSDB or block group behind
	// the store. A store with none can hold any series.
	LabelSets []labels.Labels
	// MinTime and MaxTime bound the samples held, in milliseconds.
	MinTime, MaxTime int64
	// Component is what kind of store this is: receive, store, all.
	Component string
}

// SeriesRequest asks a store for series.
type SeriesRequest struct {
	MinTime, MaxTime int64
	Matchers         []*labels.Matcher
	SkipChunks       bool
	Hints            *storage.SelectHints
	// MaxResolution is the coarsest downsampling resolution accepted, in
	// milliseconds; 0 asks for raw data.
	MaxResolution int64
	// Aggregate is the aggregate of downsampled series wanted (block.Aggr*);
	// empty means the average. Raw series are returned as they are.
	Aggregate string
	// SkipBlocks names blocks another store of the same process reads for
	// this request (LocalAndBucket): a store over a bucket leaves out every
	// block made only from them. It does not travel over the Store API.
	SkipBlocks map[ulid.ULID]struct{}
	// PartialResponse lets a store made of parts answer without a part
	// that failed, with a warning, instead of failing.
	PartialResponse bool
}

// LabelsRequest asks a store for label names or values.
type LabelsRequest struct {
	MinTime, MaxTime int64
	Matchers         []*labels.Matcher
	Limit            int
	// PartialResponse is as in SeriesRequest.
	PartialResponse bool
}

// MetadataRequest asks a store for metric metadata.
type MetadataRequest struct {
	Metric   string
	Limit    int
	Matchers []*labels.Matcher
}

// overlaps reports whether the store's time range meets [mint, maxt].
func (i Info) Overlaps(mint, maxt int64) bool {
	return i.MinTime <= maxt && mint <= i.MaxTime
}

// mayMatch reports whether some label set of the store is compatible with
// the matchers: a matcher on an external label must accept its value.
func (i Info) MayMatch(ms []*labels.Matcher) bool {
	if len(i.LabelSets) == 0 {
		return true
	}
	for _, ls := range i.LabelSets {
		if _, ok := MatchExternal(ls, ms); ok {
			return true
		}
	}
	return false
}

// matchExternal checks the matchers that name an external label against
// its value. It returns the matchers left for the TSDB itself, and false
// when an external label rules the TSDB out.
func MatchExternal(ext labels.Labels, ms []*labels.Matcher) ([]*labels.Matcher, bool) {
	if ext.IsEmpty() {
		return ms, true
	}
	var rest []*labels.Matcher
	for _, m := range ms {
		v, ok := ext.Get(m.Name), ext.Has(m.Name)
		if !ok {
			rest = append(rest, m)
			continue
		}
		if !m.Matches(v) {
			return nil, false
		}
	}
	return rest, true
}

// emptyRange is the time range of a store that holds nothing.
var emptyRange = Info{MinTime: math.MaxInt64, MaxTime: math.MinInt64}
