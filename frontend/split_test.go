package frontend

import (
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
)

const (
	minute = int64(60_000)
	hour   = 60 * minute
	day    = 24 * hour
)

func TestSplitByInterval(t *testing.T) {
	for _, c := range []struct {
		name                       string
		start, end, step, interval int64
		want                       []span
	}{
		{"one day", 0, day - minute, minute, day, []span{{0, day - minute}}},
		{"across midnight", day - 2*minute, day + minute, minute, day, []span{{day - 2*minute, day - minute}, {day, day + minute}}},
		{"point on midnight", day - minute, day, minute, day, []span{{day - minute, day - minute}, {day, day}}},
		{"unaligned grid", 7, 2*day + 7, hour, day, []span{{7, 23*hour + 7}, {day + 7, day + 23*hour + 7}, {2*day + 7, 2*day + 7}}},
		{"step longer than interval", 0, 4 * day, 2 * day, day, []span{{0, 0}, {2 * day, 2 * day}, {4 * day, 4 * day}}},
		{"before 1970", -day - minute, -day + minute, minute, day, []span{{-day - minute, -day - minute}, {-day, -day + minute}}},
		{"no split", 0, 3 * day, minute, 0, []span{{0, 3 * day}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := splitByInterval(c.start, c.end, c.step, c.interval)
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got %v, want %v", got, c.want)
			}
		})
	}
	// Every point of the grid is in exactly one piece, and no piece
	// crosses a multiple of the interval.
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		step := 1 + r.Int64N(3*hour)
		start := r.Int64N(10*day) - 5*day
		end := start + r.Int64N(11000)*step
		interval := (1 + r.Int64N(48)) * hour
		pieces := splitByInterval(start, end, step, interval)
		next := start
		for _, p := range pieces {
			if p.start != next || p.end < p.start || (p.end-p.start)%step != 0 {
				t.Fatalf("step %d interval %d: piece %v after %d", step, interval, p, next)
			}
			if floorDiv(p.start, interval) != floorDiv(p.end, interval) {
				t.Fatalf("piece %v crosses a multiple of %d", p, interval)
			}
			next = p.end + step
		}
		if next-step != end {
			t.Fatalf("pieces end at %d, want %d", next-step, end)
		}
	}
}

func TestAlignToStep(t *testing.T) {
	q := &rangeQuery{start: 61_500, end: 185_000, step: 60_000}
	alignToStep(q)
	if q.start != 60_000 || q.end != 180_000 {
		t.Fatalf("got %d..%d", q.start, q.end)
	}
	q = &rangeQuery{start: -1, end: -1, step: 1000}
	alignToStep(q)
	if q.start != -1000 {
		t.Fatalf("negative: got %d", q.start)
	}
}

func TestPinStartEnd(t *testing.T) {
	p := parser.NewParser(parser.Options{})
	e, _ := p.ParseExpr(`rate(a[5m] @ start()) + b @ end() + max_over_time(c[1h:] @ start()) + d @ 100`)
	if !pinStartEnd(e, 60_000, 120_000) {
		t.Fatal("nothing pinned")
	}
	want := `rate(a[5m] @ 60.000) + b @ 120.000 + max_over_time(c[1h:] @ 60.000) + d @ 100.000`
	if e.String() != want {
		t.Fatalf("got %s, want %s", e, want)
	}
	e, _ = p.ParseExpr(`rate(a[5m])`)
	if pinStartEnd(e, 0, 1) {
		t.Fatal("pinned a query without @")
	}
}

func TestLookAhead(t *testing.T) {
	p := parser.NewParser(parser.Options{})
	for q, want := range map[string][3]int64{
		`a`:                                 {0, 0, 0},
		`a offset -5m`:                      {5 * minute, 0, 0},
		`a offset 5m`:                       {0, 0, 0},
		`max_over_time(a[10m:] offset -1h)`: {hour, 0, 0},
		`a @ 100 + b offset -1m`:            {minute, 100_000, 1},
	} {
		e, err := p.ParseExpr(q)
		if err != nil {
			t.Fatal(err)
		}
		ahead, at, has := lookAhead(e)
		h := int64(0)
		if has {
			h = 1
		}
		if got := [3]int64{ahead, at, h}; got != want {
			t.Errorf("%s: got %v, want %v", q, got, want)
		}
	}
}

func TestMissing(t *testing.T) {
	step := minute
	ext := func(s, e int64) extent { return extent{start: s, end: e} }
	for _, c := range []struct {
		name       string
		start, end int64
		exts       []extent
		want       []span
	}{
		{"nothing cached", 0, 10 * minute, nil, []span{{0, 10 * minute}}},
		{"all cached", 0, 10 * minute, []extent{ext(0, 10*minute)}, nil},
		{"cached inside", 2 * minute, 5 * minute, []extent{ext(0, 10*minute)}, nil},
		{"head missing", 0, 10 * minute, []extent{ext(3*minute, 10*minute)}, []span{{0, 2 * minute}}},
		{"tail missing", 0, 10 * minute, []extent{ext(0, 6*minute)}, []span{{7 * minute, 10 * minute}}},
		{"hole", 0, 10 * minute, []extent{ext(0, 2*minute), ext(5*minute, 10*minute)}, []span{{3 * minute, 4 * minute}}},
		{"extents outside", 5 * minute, 6 * minute, []extent{ext(0, 2*minute), ext(8*minute, 9*minute)}, []span{{5 * minute, 6 * minute}}},
		{"extent ends off the grid", 0, 5 * minute, []extent{ext(0, 2*minute+30_000)}, []span{{3 * minute, 5 * minute}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := missing(c.start, c.end, step, c.exts); !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got %v, want %v", got, c.want)
			}
		})
	}
}

func fpoints(ts ...int64) []promql.FPoint {
	out := make([]promql.FPoint, len(ts))
	for i, t := range ts {
		out[i] = promql.FPoint{T: t, F: float64(t)}
	}
	return out
}

func TestMergeExtentsAndSlices(t *testing.T) {
	a := labels.FromStrings("s", "a")
	b := labels.FromStrings("s", "b")
	exts := []extent{
		{start: 5, end: 6, series: []*series{{lset: b, floats: fpoints(5, 6)}}, infos: []string{"i2"}},
		{start: 0, end: 2, series: []*series{{lset: a, floats: fpoints(0, 1, 2)}}, infos: []string{"i1"}},
		{start: 3, end: 4, series: []*series{{lset: a, floats: fpoints(3)}, {lset: b, floats: fpoints(4)}}},
		{start: 9, end: 9, series: nil},
	}
	got := mergeExtents(exts, 1)
	if len(got) != 2 || got[0].start != 0 || got[0].end != 6 || got[1].start != 9 {
		t.Fatalf("extents %+v", got)
	}
	if !reflect.DeepEqual(got[0].infos, []string{"i1", "i2"}) {
		t.Fatalf("infos %v", got[0].infos)
	}
	s := got[0].series
	if len(s) != 2 || !reflect.DeepEqual(s[0].floats, fpoints(0, 1, 2, 3)) || !reflect.DeepEqual(s[1].floats, fpoints(4, 5, 6)) {
		t.Fatalf("series %+v %+v", s[0], s[1])
	}
	sl := sliceSeries(s, 3, 4)
	if len(sl) != 2 || !reflect.DeepEqual(sl[0].floats, fpoints(3)) || !reflect.DeepEqual(sl[1].floats, fpoints(4)) {
		t.Fatalf("slice %+v", sl)
	}
	if sl := sliceSeries(s, 7, 8); len(sl) != 0 {
		t.Fatalf("slice past the points: %+v", sl)
	}
	// Overlapping points: one per time.
	m := mergeSeries([]*series{{lset: a, floats: fpoints(1, 2, 3)}}, []*series{{lset: a, floats: []promql.FPoint{{T: 2, F: 20}, {T: 4, F: 4}}}})
	if want := []promql.FPoint{{T: 1, F: 1}, {T: 2, F: 20}, {T: 3, F: 3}, {T: 4, F: 4}}; !reflect.DeepEqual(m[0].floats, want) {
		t.Fatalf("overlap: %v", m[0].floats)
	}
}

func TestCacheEntryRoundTrip(t *testing.T) {
	exts := []extent{
		{start: -60_000, end: 120_000, infos: []string{"info"}, series: []*series{
			{lset: labels.FromStrings("__name__", "x", "a", "1"), floats: fpoints(-60_000, 0, 60_000)},
			{lset: labels.FromStrings("b", "2"), hists: []histPoint{{T: 60_000, JSON: []byte(`{"count":"1"}`)}}},
		}},
		{start: 300_000, end: 300_000},
	}
	data := encodeEntry("k", exts)
	got, err := decodeEntry("k", data)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].start != -60_000 || got[0].end != 120_000 || got[1].start != 300_000 ||
		!reflect.DeepEqual(got[0].infos, []string{"info"}) || len(got[0].series) != 2 ||
		!labels.Equal(got[0].series[0].lset, exts[0].series[0].lset) ||
		!reflect.DeepEqual(got[0].series[0].floats, exts[0].series[0].floats) ||
		string(got[0].series[1].hists[0].JSON) != `{"count":"1"}` || got[0].series[1].hists[0].T != 60_000 {
		t.Fatalf("round trip: %+v", got)
	}
	if _, err := decodeEntry("other", data); err == nil {
		t.Fatal("entry of another key accepted")
	}
	for i := range len(data) {
		// A truncated entry is refused, never a panic.
		_, _ = decodeEntry("k", data[:i])
	}
}
