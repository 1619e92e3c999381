package querier

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
)

// shardMatcherName is the matcher a query-frontend puts on every selector
// of a sharded query, with the value "<i>_of_<n>". Select removes it and
// keeps only the series whose labels, without the metric name and after
// replicas are merged, hash to i-1 modulo n: the n shards of an aggregation
// read disjoint parts of the series, together all of them. The name and
// value format are the contract with the frontend (package frontend), and
// the ones Mimir uses.
const shardMatcherName = "__query_shard__"

// seriesShard is the part of the series a sharded Select keeps.
type seriesShard struct{ index, count uint64 }

// takeShard removes the shard matcher from ms.
func takeShard(ms []*labels.Matcher) ([]*labels.Matcher, *seriesShard, error) {
	for i, m := range ms {
		if m.Name != shardMatcherName {
			continue
		}
		is, ns, ok := strings.Cut(m.Value, "_of_")
		idx, err1 := strconv.ParseUint(is, 10, 64)
		n, err2 := strconv.ParseUint(ns, 10, 64)
		if m.Type != labels.MatchEqual || !ok || err1 != nil || err2 != nil || idx < 1 || idx > n {
			return nil, nil, fmt.Errorf("invalid shard matcher %s: want %s=\"<i>_of_<n>\" with 1 <= i <= n", m, shardMatcherName)
		}
		rest := make([]*labels.Matcher, 0, len(ms)-1)
		rest = append(rest, ms[:i]...)
		rest = append(rest, ms[i+1:]...)
		return rest, &seriesShard{index: idx - 1, count: n}, nil
	}
	return ms, nil, nil
}

// filter keeps the series of set that belong to the shard.
func (s *seriesShard) filter(set storage.SeriesSet) storage.SeriesSet {
	return &shardSet{SeriesSet: set, shard: s}
}

type shardSet struct {
	storage.SeriesSet
	shard *seriesShard
	buf   []byte
}

func (s *shardSet) Next() bool {
	for s.SeriesSet.Next() {
		var h uint64
		h, s.buf = s.SeriesSet.At().Labels().HashWithoutLabels(s.buf, labels.MetricName)
		if h%s.shard.count == s.shard.index {
			return true
		}
	}
	return false
}
