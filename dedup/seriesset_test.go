package dedup

import (
	"errors"
	"slices"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
)

// listSet is a storage.SeriesSet over series that it sorts by labels, like
// a store does.
type listSet struct {
	series []storage.Series
	i      int
	err    error
	warns  annotations.Annotations
}

func newListSet(series ...storage.Series) *listSet {
	slices.SortFunc(series, func(a, b storage.Series) int { return labels.Compare(a.Labels(), b.Labels()) })
	return &listSet{series: series, i: -1}
}

func (s *listSet) Next() bool {
	if s.i+1 >= len(s.series) {
		s.i = len(s.series)
		return false
	}
	s.i++
	return true
}

func (s *listSet) At() storage.Series                { return s.series[s.i] }
func (s *listSet) Err() error                        { return s.err }
func (s *listSet) Warnings() annotations.Annotations { return s.warns }

type wantSeries struct {
	lset    labels.Labels
	samples []out
}

func collect(t *testing.T, set storage.SeriesSet) []wantSeries {
	t.Helper()
	var res []wantSeries
	var it chunkenc.Iterator
	for set.Next() {
		s := set.At()
		it = s.Iterator(it)
		res = append(res, wantSeries{lset: s.Labels(), samples: expand(t, it)})
	}
	if err := set.Err(); err != nil {
		t.Fatalf("set error: %v", err)
	}
	return res
}

func TestSeriesSet(t *testing.T) {
	const step = 15 * sec
	v := linear(1)
	full := ramp(0, 300*sec, step, 0, v)
	gappy := ramp(0, 300*sec, step, 0, v, [2]int64{60 * sec, 150 * sec})
	other := ramp(0, 300*sec, step, 0, shifted(v, 0.5))
	filled := floatsOf(window(full, 0, 60*sec), window(other, 60*sec, 300*sec))
	ls := labels.FromStrings

	cases := []struct {
		name          string
		replicaLabels []string
		sets          [][]storage.Series
		want          []wantSeries
	}{
		{
			name:          "replicas in two stores",
			replicaLabels: []string{"replica"},
			sets: [][]storage.Series{
				{listSeries(ls("a", "1", "replica", "x"), gappy), listSeries(ls("a", "2", "replica", "x"), full)},
				{listSeries(ls("a", "1", "replica", "y"), other), listSeries(ls("a", "3", "replica", "y"), other)},
			},
			want: []wantSeries{
				{ls("a", "1"), filled},
				{ls("a", "2"), floatsOf(full)},
				{ls("a", "3"), floatsOf(other)},
			},
		},
		{
			name:          "replicas in one store",
			replicaLabels: []string{"replica"},
			sets: [][]storage.Series{
				{listSeries(ls("a", "1", "replica", "x"), gappy), listSeries(ls("a", "1", "replica", "y"), other)},
			},
			want: []wantSeries{{ls("a", "1"), filled}},
		},
		{
			name:          "several replica labels are removed",
			replicaLabels: []string{"prometheus_replica", "receive_replica"},
			sets: [][]storage.Series{
				{listSeries(ls("a", "1", "prometheus_replica", "p0", "receive_replica", "r0"), gappy)},
				{listSeries(ls("a", "1", "prometheus_replica", "p1", "receive_replica", "r0"), other)},
			},
			want: []wantSeries{{ls("a", "1"), filled}},
		},
		{
			name:          "replica label absent on one series",
			replicaLabels: []string{"replica"},
			sets: [][]storage.Series{
				{listSeries(ls("a", "1"), gappy)},
				{listSeries(ls("a", "1", "replica", "y"), other)},
			},
			want: []wantSeries{{ls("a", "1"), filled}},
		},
		{
			name:          "replica labels absent everywhere",
			replicaLabels: []string{"replica"},
			sets: [][]storage.Series{
				{listSeries(ls("a", "1"), full)},
				{listSeries(ls("a", "2"), other)},
			},
			want: []wantSeries{{ls("a", "1"), floatsOf(full)}, {ls("a", "2"), floatsOf(other)}},
		},
		{
			// Sorted by all labels, x's series come before y's; without the
			// replica label z=1 of y belongs before z=2 of x.
			name:          "order changes when replica labels are removed",
			replicaLabels: []string{"receive_replica"},
			sets: [][]storage.Series{{
				listSeries(ls("__name__", "m", "receive_replica", "x", "z", "1"), gappy),
				listSeries(ls("__name__", "m", "receive_replica", "x", "z", "2"), full),
				listSeries(ls("__name__", "m", "receive_replica", "y", "z", "1"), other),
				listSeries(ls("__name__", "m", "receive_replica", "y", "z", "3"), other),
			}},
			want: []wantSeries{
				{ls("__name__", "m", "z", "1"), filled},
				{ls("__name__", "m", "z", "2"), floatsOf(full)},
				{ls("__name__", "m", "z", "3"), floatsOf(other)},
			},
		},
		{
			// A receiver's head and a gateway's block of the same receiver
			// overlap; they are one replica and their samples are united.
			name:          "same replica in two stores is chained",
			replicaLabels: []string{"replica"},
			sets: [][]storage.Series{
				{listSeries(ls("a", "1", "replica", "x"), window(full, 0, 180*sec))},
				{listSeries(ls("a", "1", "replica", "x"), window(full, 120*sec, 300*sec))},
			},
			want: []wantSeries{{ls("a", "1"), floatsOf(full)}},
		},
		{
			name:          "same replica in two stores, deduplicated against another",
			replicaLabels: []string{"replica"},
			sets: [][]storage.Series{
				{listSeries(ls("a", "1", "replica", "x"), window(full, 0, 45*sec))},
				{listSeries(ls("a", "1", "replica", "x"), window(full, 30*sec, 60*sec)), listSeries(ls("a", "1", "replica", "y"), other)},
				{listSeries(ls("a", "1", "replica", "x"), window(full, 150*sec, 300*sec))},
			},
			want: []wantSeries{{ls("a", "1"), filled}},
		},
		{
			name: "without replica labels sets are merged",
			sets: [][]storage.Series{
				{listSeries(ls("a", "1", "replica", "x"), window(full, 0, 180*sec))},
				{listSeries(ls("a", "1", "replica", "x"), window(full, 120*sec, 300*sec)), listSeries(ls("a", "1", "replica", "y"), other)},
			},
			want: []wantSeries{
				{ls("a", "1", "replica", "x"), floatsOf(full)},
				{ls("a", "1", "replica", "y"), floatsOf(other)},
			},
		},
		{
			name:          "no series",
			replicaLabels: []string{"replica"},
			sets:          [][]storage.Series{{}, {}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sets := make([]storage.SeriesSet, len(tc.sets))
			for i, s := range tc.sets {
				sets[i] = newListSet(s...)
			}
			got := collect(t, NewSeriesSet(sets, tc.replicaLabels))
			if len(got) != len(tc.want) {
				t.Fatalf("got %d series, want %d", len(got), len(tc.want))
			}
			for i := range got {
				if !labels.Equal(got[i].lset, tc.want[i].lset) {
					t.Fatalf("series %d: labels %s, want %s", i, got[i].lset, tc.want[i].lset)
				}
				sameFloats(t, got[i].samples, tc.want[i].samples)
			}
		})
	}
}

func TestSeriesSetSeriesOutliveNext(t *testing.T) {
	full := ramp(0, 300*sec, 15*sec, 0, linear(1))
	ls := labels.FromStrings
	set := NewSeriesSet([]storage.SeriesSet{
		newListSet(listSeries(ls("a", "1", "r", "x"), full), listSeries(ls("a", "2", "r", "x"), full)),
		newListSet(listSeries(ls("a", "1", "r", "y"), full), listSeries(ls("a", "2", "r", "y"), full)),
	}, []string{"r"}, WithFunc("rate"))
	var kept []storage.Series
	for set.Next() {
		kept = append(kept, set.At())
	}
	if len(kept) != 2 {
		t.Fatalf("got %d series", len(kept))
	}
	for _, s := range kept {
		sameFloats(t, expand(t, s.Iterator(nil)), floatsOf(full))
	}
}

func TestSeriesSetErrorsAndWarnings(t *testing.T) {
	errStore := errors.New("store failed")
	ls := labels.FromStrings
	full := ramp(0, 60*sec, 15*sec, 0, linear(1))
	warnA := annotations.New().Add(errors.New("warning a"))
	warnB := annotations.New().Add(errors.New("warning b"))

	ok := newListSet(listSeries(ls("a", "1", "r", "x"), full))
	ok.warns = warnA
	failed := newListSet(listSeries(ls("a", "1", "r", "y"), full))
	failed.err = errStore
	failed.warns = warnB

	set := NewSeriesSet([]storage.SeriesSet{ok, failed}, []string{"r"})
	if set.Next() {
		t.Fatal("Next succeeded on a failed input")
	}
	if !errors.Is(set.Err(), errStore) {
		t.Fatalf("Err() = %v, want %v", set.Err(), errStore)
	}
	if w := set.Warnings(); len(w) != 2 {
		t.Fatalf("warnings %v, want both inputs'", w.AsErrors())
	}

	// Warnings without errors survive iteration too.
	ok = newListSet(listSeries(ls("a", "1", "r", "x"), full))
	ok.warns = warnA
	set = NewSeriesSet([]storage.SeriesSet{ok, newListSet()}, []string{"r"})
	if len(collect(t, set)) != 1 || len(set.Warnings()) != 1 {
		t.Fatalf("warnings %v", set.Warnings().AsErrors())
	}
}

func TestMergeFunc(t *testing.T) {
	full := ramp(0, 300*sec, 15*sec, 0, linear(1))
	gappy := ramp(0, 300*sec, 15*sec, 0, linear(1), [2]int64{60 * sec, 150 * sec})
	other := ramp(0, 300*sec, 15*sec, 0, shifted(linear(1), 0.5))
	merge := mergeFunc()
	if merge() != nil {
		t.Fatal("merging nothing must give nil")
	}
	one := listSeries(testLabels, full)
	if merge(one) != one {
		t.Fatal("a single series must pass through")
	}
	s := merge(listSeries(testLabels, gappy), listSeries(testLabels, other))
	if !labels.Equal(s.Labels(), testLabels) {
		t.Fatalf("labels %s", s.Labels())
	}
	sameFloats(t, expand(t, s.Iterator(nil)), floatsOf(window(full, 0, 60*sec), window(other, 60*sec, 300*sec)))
}

func TestChunkMergeFunc(t *testing.T) {
	full := ramp(0, 300*sec, 15*sec, 0, linear(1))
	gappy := ramp(0, 300*sec, 15*sec, 0, linear(1), [2]int64{60 * sec, 150 * sec})
	other := ramp(0, 300*sec, 15*sec, 7*sec, linear(1))
	later := ramp(300*sec, 600*sec, 15*sec, 0, linear(1))

	// Replica x has two chunks, the second overlapping nothing; replica y
	// overlaps x's first chunk.
	x := storage.NewListChunkSeriesFromSamples(testLabels, gappy, later)
	y := storage.NewListChunkSeriesFromSamples(testLabels, other)
	merged := ChunkMergeFunc(WithFunc(""))(x, y)

	var got []out
	var cit chunkenc.Iterator
	chks := merged.Iterator(nil)
	for chks.Next() {
		m := chks.At()
		cit = m.Chunk.Iterator(cit)
		got = append(got, expand(t, cit)...)
	}
	if err := chks.Err(); err != nil {
		t.Fatal(err)
	}
	sameFloats(t, got, floatsOf(window(full, 0, 60*sec), window(other, 67*sec, 300*sec), later))
}

var _ chunks.Sample = smp{}
