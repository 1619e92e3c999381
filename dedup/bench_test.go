package dedup

import (
	"fmt"
	"slices"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// xorSeries is a series backed by one encoded chunk, as series arrive from
// the Store API.
type xorSeries struct {
	lset labels.Labels
	chk  chunkenc.Chunk
}

func (s *xorSeries) Labels() labels.Labels { return s.lset }

func (s *xorSeries) Iterator(it chunkenc.Iterator) chunkenc.Iterator { return s.chk.Iterator(it) }

func encodeReplica(b *testing.B, nSeries, nSamples int, replica string, offset int64) []storage.Series {
	b.Helper()
	res := make([]storage.Series, 0, nSeries)
	for i := range nSeries {
		lb := labels.NewScratchBuilder(4)
		lb.Add("__name__", "http_requests_total")
		lb.Add("instance", fmt.Sprintf("host-%05d", i))
		lb.Add("job", "api")
		if replica != "" {
			lb.Add("replica", replica)
		}
		lb.Sort()
		c := chunkenc.NewXORChunk()
		app, err := c.Appender()
		if err != nil {
			b.Fatal(err)
		}
		for j := range nSamples {
			app.Append(0, int64(j)*15*sec+offset, float64(i+j*10))
		}
		res = append(res, &xorSeries{lset: lb.Labels(), chk: c})
	}
	slices.SortFunc(res, func(x, y storage.Series) int { return labels.Compare(x.Labels(), y.Labels()) })
	return res
}

func drain(b *testing.B, set storage.SeriesSet) int {
	n := 0
	var it chunkenc.Iterator
	for set.Next() {
		it = set.At().Iterator(it)
		for it.Next() != chunkenc.ValNone {
			n++
		}
		if err := it.Err(); err != nil {
			b.Fatal(err)
		}
	}
	if err := set.Err(); err != nil {
		b.Fatal(err)
	}
	return n
}

// BenchmarkDedup deduplicates 2 replicas x 10k series x 120 samples and
// compares it with a chain merge of the same data, the cost of merging
// without deduplication.
func BenchmarkDedup(b *testing.B) {
	const nSeries, nSamples = 10_000, 120
	withReplica := [][]storage.Series{
		encodeReplica(b, nSeries, nSamples, "a", 0),
		encodeReplica(b, nSeries, nSamples, "b", 0),
	}
	offset := [][]storage.Series{
		encodeReplica(b, nSeries, nSamples, "a", 0),
		encodeReplica(b, nSeries, nSamples, "b", 7*sec),
	}
	stripped := [][]storage.Series{
		encodeReplica(b, nSeries, nSamples, "", 0),
		encodeReplica(b, nSeries, nSamples, "", 0),
	}
	sets := func(in [][]storage.Series) []storage.SeriesSet {
		res := make([]storage.SeriesSet, len(in))
		for i, s := range in {
			res[i] = &listSet{series: s, i: -1}
		}
		return res
	}
	cases := []struct {
		name string
		set  func() storage.SeriesSet
		want int
	}{
		{"chain merge", func() storage.SeriesSet {
			return storage.NewMergeSeriesSet(sets(stripped), 0, storage.ChainedSeriesMerge)
		}, nSeries * nSamples},
		{"dedup identical", func() storage.SeriesSet {
			return NewSeriesSet(sets(withReplica), []string{"replica"})
		}, nSeries * nSamples},
		{"dedup identical counter", func() storage.SeriesSet {
			return NewSeriesSet(sets(withReplica), []string{"replica"}, WithFunc("rate"))
		}, nSeries * nSamples},
		{"dedup offset", func() storage.SeriesSet {
			return NewSeriesSet(sets(offset), []string{"replica"})
		}, nSeries * nSamples},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if n := drain(b, tc.set()); n != tc.want {
					b.Fatalf("%d samples, want %d", n, tc.want)
				}
			}
		})
	}
}
