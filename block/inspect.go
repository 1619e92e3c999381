package block

import (
	"container/heap"
	"context"
	"slices"
	"sort"

	"github.com/oklog/ulid/v2"

	"github.com/atoll-metrics/atoll/bucket"
)

// Inspect and Verify are the `atoll bucket` tools' view of blocks. They
// read indexes with IndexReader, a section at a time, so a bucket of any
// size can be checked from a laptop.

// IndexStats describes a block's index.
type IndexStats struct {
	Version   int
	SizeBytes int64
	Symbols   int
	// Series is the length of the index's list of all series.
	Series     int
	LabelNames int
	// LabelPairs is the number of label name and value pairs.
	LabelPairs int
	// TopNames are the label names with the most values, most first.
	TopNames []LabelNameStats
	// TopPairs are the label pairs with the most series, most first.
	TopPairs []LabelPairStats
}

// LabelNameStats is one label name of an index.
type LabelNameStats struct {
	Name   string
	Values int
	// Series is how many series have the label.
	Series int
}

// LabelPairStats is one label pair of an index.
type LabelPairStats struct {
	Name, Value string
	Series      int
}

// Inspect reads the meta.json of block id and the symbol count, TOC
// and postings offset table of its index: enough for the cardinality of
// every label without reading any postings list or series.
func Inspect(ctx context.Context, bkt bucket.Bucket, id ulid.ULID, top int) (*Meta, *IndexStats, error) {
	meta, err := readMeta(ctx, bkt, id)
	if err != nil {
		return nil, nil, err
	}
	ix, err := openBucketIndex(ctx, bkt, id)
	if err != nil {
		return meta, nil, err
	}
	st := &IndexStats{Version: ix.Version(), SizeBytes: ix.Size()}
	if st.Symbols, err = ix.SymbolCount(ctx); err != nil {
		return meta, nil, err
	}
	names := map[string]*LabelNameStats{}
	pairs := &topPairs{max: top}
	err = ix.EachPostingsList(ctx, func(name, value string, series int) {
		if name == "" {
			st.Series = series
			return
		}
		st.LabelPairs++
		n := names[name]
		if n == nil {
			n = &LabelNameStats{Name: name}
			names[name] = n
		}
		n.Values++
		n.Series += series
		pairs.add(LabelPairStats{Name: name, Value: value, Series: series})
	})
	if err != nil {
		return meta, nil, err
	}
	st.LabelNames = len(names)
	for _, n := range names {
		st.TopNames = append(st.TopNames, *n)
	}
	sort.Slice(st.TopNames, func(i, j int) bool {
		a, b := st.TopNames[i], st.TopNames[j]
		if a.Values != b.Values {
			return a.Values > b.Values
		}
		return a.Name < b.Name
	})
	if top >= 0 && len(st.TopNames) > top {
		st.TopNames = st.TopNames[:top]
	}
	st.TopPairs = pairs.sorted()
	return meta, st, nil
}

// topPairs keeps the max label pairs with the most series.
type topPairs struct {
	max int
	h   pairHeap
}

func (t *topPairs) add(p LabelPairStats) {
	if t.max <= 0 {
		return
	}
	if len(t.h) < t.max {
		heap.Push(&t.h, p)
		return
	}
	if pairLess(t.h[0], p) {
		t.h[0] = p
		heap.Fix(&t.h, 0)
	}
}

func (t *topPairs) sorted() []LabelPairStats {
	out := slices.Clone(t.h)
	sort.Slice(out, func(i, j int) bool { return pairLess(out[j], out[i]) })
	return out
}

// pairLess orders pairs by series, then inversely by name and value, so
// that the top list is stable.
func pairLess(a, b LabelPairStats) bool {
	if a.Series != b.Series {
		return a.Series < b.Series
	}
	if a.Name != b.Name {
		return a.Name > b.Name
	}
	return a.Value > b.Value
}

type pairHeap []LabelPairStats

func (h pairHeap) Len() int           { return len(h) }
func (h pairHeap) Less(i, j int) bool { return pairLess(h[i], h[j]) }
func (h pairHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *pairHeap) Push(x any)        { *h = append(*h, x.(LabelPairStats)) }
func (h *pairHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
