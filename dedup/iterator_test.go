package dedup

import (
	"errors"
	"math"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
)

var testLabels = labels.FromStrings("__name__", "m", "job", "j")

func dedupIterator(opts []Option, replicas ...[]chunks.Sample) chunkenc.Iterator {
	ss := make([]storage.Series, len(replicas))
	for i, r := range replicas {
		ss[i] = listSeries(testLabels, r)
	}
	return mergeFunc(opts...)(ss...).Iterator(nil)
}

func stale(t int64) chunks.Sample { return smp{t: t, f: math.Float64frombits(value.StaleNaN)} }

func join(ss ...[]chunks.Sample) []chunks.Sample {
	var res []chunks.Sample
	for _, s := range ss {
		res = append(res, s...)
	}
	return res
}

// window returns the samples of s with start <= t < end.
func window(s []chunks.Sample, start, end int64) []chunks.Sample {
	var res []chunks.Sample
	for _, x := range s {
		if x.T() >= start && x.T() < end {
			res = append(res, x)
		}
	}
	return res
}

func TestIteratorFloats(t *testing.T) {
	const step = 15 * sec
	v := linear(1)
	full := func(offset int64, fn func(int64) float64, gaps ...[2]int64) []chunks.Sample {
		return ramp(0, 300*sec, step, offset, fn, gaps...)
	}
	gapA := [2]int64{60 * sec, 150 * sec}

	cases := []struct {
		name     string
		replicas [][]chunks.Sample
		want     []out
	}{
		{
			name:     "identical replicas yield one copy",
			replicas: [][]chunks.Sample{full(0, v), full(0, v)},
			want:     floatsOf(full(0, v)),
		},
		{
			name:     "three identical replicas yield one copy",
			replicas: [][]chunks.Sample{full(0, v), full(0, v), full(0, v)},
			want:     floatsOf(full(0, v)),
		},
		{
			name:     "one replica empty",
			replicas: [][]chunks.Sample{nil, full(0, v)},
			want:     floatsOf(full(0, v)),
		},
		{
			// Once the followed replica misses more than one scrape, the
			// other one is picked up where the gap starts.
			name:     "gap in one replica filled from the other",
			replicas: [][]chunks.Sample{full(0, v, gapA), full(0, shifted(v, 0.5))},
			want: floatsOf(
				window(full(0, v), 0, 60*sec),
				window(full(0, shifted(v, 0.5)), 60*sec, 300*sec),
			),
		},
		{
			name: "gaps in both replicas at different times",
			replicas: [][]chunks.Sample{
				full(0, v, gapA),
				full(0, shifted(v, 0.5), [2]int64{180 * sec, 240 * sec}),
			},
			want: floatsOf(
				window(full(0, v), 0, 60*sec),
				window(full(0, shifted(v, 0.5)), 60*sec, 180*sec),
				window(full(0, v), 180*sec, 300*sec),
			),
		},
		{
			name: "gaps in both replicas at the same time stay a gap",
			replicas: [][]chunks.Sample{
				full(0, v, gapA),
				full(0, shifted(v, 0.5), [2]int64{90 * sec, 180 * sec}),
			},
			want: floatsOf(
				window(full(0, v), 0, 60*sec),
				window(full(0, shifted(v, 0.5)), 60*sec, 90*sec),
				window(full(0, v), 150*sec, 300*sec),
			),
		},
		{
			name: "three replicas: the earliest available one fills",
			replicas: [][]chunks.Sample{
				full(0, v, gapA),
				full(0, shifted(v, 0.5), [2]int64{30 * sec, 210 * sec}),
				full(0, shifted(v, 0.25)),
			},
			want: floatsOf(
				window(full(0, v), 0, 60*sec),
				window(full(0, shifted(v, 0.25)), 60*sec, 300*sec),
			),
		},
		{
			name:     "a replica ending early is continued by another",
			replicas: [][]chunks.Sample{window(full(0, v), 0, 150*sec), full(0, shifted(v, 0.5))},
			want: floatsOf(
				window(full(0, v), 0, 150*sec),
				window(full(0, shifted(v, 0.5)), 150*sec, 300*sec),
			),
		},
		{
			name:     "scrape offsets do not interleave",
			replicas: [][]chunks.Sample{full(0, v), full(7*sec, v)},
			want:     floatsOf(full(0, v)),
		},
		{
			name:     "the earliest replica is followed",
			replicas: [][]chunks.Sample{full(7*sec, v), full(0, v)},
			want:     floatsOf(full(0, v)),
		},
		{
			// 52s is too close to 45s: it would raise the sample rate.
			name:     "scrape offsets with a gap",
			replicas: [][]chunks.Sample{full(0, v, gapA), full(7*sec, v)},
			want: floatsOf(
				window(full(0, v), 0, 60*sec),
				window(full(7*sec, v), 67*sec, 300*sec),
			),
		},
		{
			name: "stale marker of one replica yields to a live replica",
			replicas: [][]chunks.Sample{
				join(window(full(0, v), 0, 60*sec), []chunks.Sample{stale(60 * sec)}),
				full(0, shifted(v, 0.5)),
			},
			want: floatsOf(
				window(full(0, v), 0, 60*sec),
				window(full(0, shifted(v, 0.5)), 60*sec, 300*sec),
			),
		},
		{
			// After a gap of both, the interval estimate grows at most
			// twofold, so b is not ignored for twice the gap's length.
			name: "gap common to both replicas does not hide the next one",
			replicas: [][]chunks.Sample{
				ramp(0, 900*sec, step, 0, v, [2]int64{60 * sec, 660 * sec}, [2]int64{675 * sec, 900 * sec}),
				ramp(0, 900*sec, step, 0, shifted(v, 0.5), [2]int64{60 * sec, 660 * sec}),
			},
			want: floatsOf(
				window(full(0, v), 0, 60*sec),
				[]chunks.Sample{smp{t: 660 * sec, f: 660}},
				ramp(675*sec, 900*sec, step, 0, shifted(v, 0.5)),
			),
		},
		{
			name: "single missed scrape is not a gap",
			replicas: [][]chunks.Sample{
				full(0, v, [2]int64{60 * sec, 75 * sec}),
				full(0, shifted(v, 0.5)),
			},
			want: floatsOf(full(0, v, [2]int64{60 * sec, 75 * sec})),
		},
		{
			name: "stale marker of every replica is kept",
			replicas: [][]chunks.Sample{
				join(window(full(0, v), 0, 60*sec), []chunks.Sample{stale(60 * sec)}),
				join(window(full(0, v), 0, 60*sec), []chunks.Sample{stale(60 * sec)}),
			},
			want: floatsOf(window(full(0, v), 0, 60*sec), []chunks.Sample{stale(60 * sec)}),
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, opts := range [][]Option{nil, {WithFunc("rate")}} {
				got := expand(t, dedupIterator(opts, tc.replicas...))
				sameFloats(t, got, tc.want)
			}
		})
	}
}

func TestIteratorNoDoubleCounting(t *testing.T) {
	r := ramp(0, 3600*sec, 15*sec, 0, linear(2))
	var want float64
	for _, s := range r {
		want += s.F()
	}
	for _, n := range []int{2, 3} {
		replicas := make([][]chunks.Sample, n)
		for i := range replicas {
			replicas[i] = r
		}
		var got float64
		for _, o := range expand(t, dedupIterator(nil, replicas...)) {
			got += o.f
		}
		if got != want {
			t.Fatalf("%d replicas: sum %v, want one replica's sum %v", n, got, want)
		}
	}
}

func TestIteratorSeek(t *testing.T) {
	const step = 15 * sec
	v := linear(1)
	data := map[string][][]chunks.Sample{
		"identical": {
			ramp(0, 300*sec, step, 0, v),
			ramp(0, 300*sec, step, 0, v),
		},
		"gaps in both": {
			ramp(0, 300*sec, step, 0, v, [2]int64{60 * sec, 150 * sec}),
			ramp(0, 300*sec, step, 0, shifted(v, 0.5), [2]int64{180 * sec, 240 * sec}),
		},
		"offsets with gaps": {
			ramp(0, 300*sec, step, 0, v, [2]int64{60 * sec, 150 * sec}),
			ramp(0, 300*sec, step, 7*sec, shifted(v, 0.5), [2]int64{180 * sec, 240 * sec}),
		},
	}
	for name, replicas := range data {
		t.Run(name, func(t *testing.T) {
			for _, opts := range [][]Option{nil, {WithFunc("increase")}} {
				full := expand(t, dedupIterator(opts, replicas...))
				var targets []int64
				for _, o := range full {
					targets = append(targets, o.t-1, o.t, o.t+1)
				}
				targets = append(targets, math.MinInt64, -1, 1000*sec, math.MaxInt64)

				// After Next calls, Seek must land where Next alone would.
				for k := 1; k <= len(full); k++ {
					for _, target := range targets {
						it := dedupIterator(opts, replicas...)
						for range k {
							it.Next()
						}
						wantIdx := k - 1
						for wantIdx < len(full) && full[wantIdx].t < target {
							wantIdx++
						}
						typ := it.Seek(target)
						if wantIdx == len(full) {
							if typ != chunkenc.ValNone {
								t.Fatalf("k=%d Seek(%d): got %v, want ValNone", k, target, typ)
							}
							if it.Next() != chunkenc.ValNone || it.Seek(0) != chunkenc.ValNone {
								t.Fatalf("k=%d Seek(%d): exhausted iterator moved", k, target)
							}
							continue
						}
						if typ != chunkenc.ValFloat {
							t.Fatalf("k=%d Seek(%d): got %v", k, target, typ)
						}
						rest := []out{readAt(it, typ)}
						rest = append(rest, expand(t, it)...)
						sameFloats(t, rest, full[wantIdx:])
					}
				}

				// A first Seek may pick a different replica in a gap, but what
				// it yields is ordered, at or after the target, and one copy
				// per time where replicas agree.
				for _, target := range targets {
					it := dedupIterator(opts, replicas...)
					typ := it.Seek(target)
					if typ == chunkenc.ValNone {
						if target <= full[len(full)-1].t {
							t.Fatalf("Seek(%d) on a fresh iterator found nothing", target)
						}
						continue
					}
					got := append([]out{readAt(it, typ)}, expand(t, it)...)
					if got[0].t < target {
						t.Fatalf("Seek(%d) landed on %d", target, got[0].t)
					}
					for i := 1; i < len(got); i++ {
						if got[i].t <= got[i-1].t {
							t.Fatalf("Seek(%d): timestamps not increasing: %v", target, brief(got))
						}
					}
					if name == "identical" {
						i := 0
						for i < len(full) && full[i].t < target {
							i++
						}
						sameFloats(t, got, full[i:])
					}
				}
			}
		})
	}
}

func TestIteratorCounters(t *testing.T) {
	const step = 15 * sec
	v := linear(0.1)
	// Counter that resets to zero at 300s.
	reset := func(t int64) float64 {
		if t >= 300*sec {
			return v(t - 300*sec)
		}
		return v(t)
	}
	full := func(fn func(int64) float64, gaps ...[2]int64) []chunks.Sample {
		return ramp(0, 600*sec, step, 0, fn, gaps...)
	}
	truth := func(fn func(int64) float64) float64 { return promIncrease(floatsOf(full(fn))) }

	cases := []struct {
		name     string
		replicas [][]chunks.Sample
		truth    float64
		// Allowed error of the increase, at most the lag between replicas.
		tolerance float64
		// Decreases the output may show: real resets only.
		drops int
		// The output must be the replicas' own values.
		raw bool
	}{
		{
			name: "lagging replica at a switch is not a reset",
			replicas: [][]chunks.Sample{
				full(v, [2]int64{120 * sec, 300 * sec}),
				full(shifted(v, -5)),
			},
			truth:     truth(v),
			tolerance: 5,
		},
		{
			name: "switching back and forth with a lagging replica",
			replicas: [][]chunks.Sample{
				full(v, [2]int64{120 * sec, 300 * sec}),
				full(shifted(v, -5), [2]int64{400 * sec, 500 * sec}),
			},
			truth:     truth(v),
			tolerance: 5,
		},
		{
			name: "reset seen by the followed replica is kept",
			replicas: [][]chunks.Sample{
				full(reset, [2]int64{240 * sec, 420 * sec}),
				full(reset),
			},
			truth: truth(reset),
			drops: 1,
			raw:   true,
		},
		{
			name: "reset while both replicas were down is kept",
			replicas: [][]chunks.Sample{
				window(full(reset), 0, 240*sec),
				full(reset, [2]int64{150 * sec, 360 * sec}),
			},
			// The increase between 225s and the reset was never scraped.
			truth: truth(reset) - (reset(285*sec) - reset(225*sec)),
			drops: 1,
			raw:   true,
		},
		{
			name: "reset already shown is not counted twice",
			replicas: [][]chunks.Sample{
				window(full(reset), 0, 360*sec),
				full(shifted(reset, -6), [2]int64{270 * sec, 390 * sec}),
			},
			truth:     truth(reset),
			tolerance: 6,
			drops:     1,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := expand(t, dedupIterator([]Option{WithFunc("rate")}, tc.replicas...))
			if d := drops(got); d != tc.drops {
				t.Fatalf("output has %d drops, want %d: %v", d, tc.drops, brief(got))
			}
			if inc := promIncrease(got); math.Abs(inc-tc.truth) > tc.tolerance+1e-9 {
				t.Fatalf("increase %v, want %v ± %v: %v", inc, tc.truth, tc.tolerance, brief(got))
			}
			gauge := expand(t, dedupIterator(nil, tc.replicas...))
			if tc.raw {
				sameFloats(t, got, gauge)
			}
			if len(got) != len(gauge) {
				t.Fatalf("correction changed the samples picked: %d vs %d", len(got), len(gauge))
			}
		})
	}
}

func TestIteratorGaugesPassThrough(t *testing.T) {
	a := ramp(0, 600*sec, 15*sec, 0, linear(0.1), [2]int64{120 * sec, 300 * sec})
	b := ramp(0, 600*sec, 15*sec, 0, shifted(linear(0.1), -5))
	want := floatsOf(window(a, 0, 120*sec), window(b, 120*sec, 600*sec))
	for _, f := range []string{"", "avg_over_time", "sum", "deriv", "delta"} {
		got := expand(t, dedupIterator([]Option{WithFunc(f)}, a, b))
		sameFloats(t, got, want)
		if drops(got) != 1 {
			t.Fatalf("%q: the gauge drop at the switch must stay", f)
		}
	}
}

func TestIteratorStaleMarkerKeepsItsBits(t *testing.T) {
	a := ramp(0, 600*sec, 15*sec, 0, linear(0.1), [2]int64{120 * sec, 300 * sec})
	b := join(ramp(0, 600*sec, 15*sec, 0, shifted(linear(0.1), -5)), []chunks.Sample{stale(600 * sec)})
	got := expand(t, dedupIterator([]Option{WithFunc("increase")}, a, b))
	last := got[len(got)-1]
	if last.t != 600*sec || !value.IsStaleNaN(last.f) {
		t.Fatalf("last sample %v, want a stale marker at 600s", brief(got[len(got)-1:]))
	}
	if got[len(got)-2].f == b[len(b)-2].F() {
		t.Fatal("the scenario must shift the values before the stale marker")
	}
}

func TestOffsetFor(t *testing.T) {
	cases := [][2]float64{
		{0.3, 0.1},
		{1e15 + 0.1, 1e15 - 0.3},
		{1e15 + 0.125, 3},
		{7, 1e16},
		{1e-300, 0},
		{123456.789, 123456.788},
	}
	for _, c := range cases {
		target, raw := c[0], c[1]
		o := offsetFor(target, raw)
		if raw+o < target {
			t.Fatalf("offsetFor(%v, %v) = %v: %v below target", target, raw, o, raw+o)
		}
		// Later values of the same replica never read below the target.
		for _, later := range []float64{raw, math.Nextafter(raw, math.Inf(1)), raw + 1} {
			if later+o < target {
				t.Fatalf("offsetFor(%v, %v): later %v reads %v", target, raw, later, later+o)
			}
		}
		if d := raw + o - target; d > math.Max(math.Abs(target), math.Abs(raw))*1e-12 {
			t.Fatalf("offsetFor(%v, %v) overshoots by %v", target, raw, d)
		}
	}
}

func histOuts(t *testing.T, it chunkenc.Iterator) []out {
	t.Helper()
	return expand(t, it)
}

func TestIteratorHistograms(t *testing.T) {
	const step = 15 * sec
	count := func(t int64) int64 { return 100 + t/sec }
	lag := func(t int64) int64 { return count(t) - 60 }
	ahead := func(t int64) int64 { return count(t) + 1 }
	gapA := [2]int64{120 * sec, 300 * sec}
	full := func(fn func(int64) int64, gaps ...[2]int64) []chunks.Sample {
		return hramp(0, 600*sec, step, 0, fn, gaps...)
	}

	type wantSample struct {
		t     int64
		count float64
		hint  histogram.CounterResetHint
	}
	expect := func(s []chunks.Sample, hintAt map[int64]histogram.CounterResetHint) []wantSample {
		var res []wantSample
		for _, x := range s {
			h := x.H().CounterResetHint
			if hh, ok := hintAt[x.T()]; ok {
				h = hh
			}
			res = append(res, wantSample{t: x.T(), count: float64(x.H().Count), hint: h})
		}
		return res
	}

	// A reset recorded by replica b right after its own gap.
	resetB := full(count, [2]int64{150 * sec, 360 * sec})
	for i, x := range resetB {
		if x.T() >= 360*sec {
			resetB[i] = smp{t: x.T(), h: testHistogram(x.T()/sec-360+1, histogram.NotCounterReset)}
		}
	}
	resetB[10] = smp{t: resetB[10].T(), h: testHistogram(1, histogram.CounterReset)}
	if resetB[10].T() != 360*sec {
		t.Fatalf("test data: reset at %d", resetB[10].T())
	}

	cases := []struct {
		name     string
		opts     []Option
		replicas [][]chunks.Sample
		want     []wantSample
	}{
		{
			name:     "identical replicas",
			replicas: [][]chunks.Sample{full(count), full(count)},
			want:     expect(full(count), nil),
		},
		{
			name:     "switch makes the hint unknown",
			replicas: [][]chunks.Sample{full(count, gapA), full(ahead)},
			want: expect(join(window(full(count), 0, 120*sec), window(full(ahead), 120*sec, 600*sec)),
				map[int64]histogram.CounterResetHint{120 * sec: histogram.UnknownCounterReset}),
		},
		{
			name:     "counter: switch to a replica ahead leaves the comparison to PromQL",
			opts:     []Option{WithFunc("rate")},
			replicas: [][]chunks.Sample{full(count, gapA), full(ahead)},
			want: expect(join(window(full(count), 0, 120*sec), window(full(ahead), 120*sec, 600*sec)),
				map[int64]histogram.CounterResetHint{120 * sec: histogram.UnknownCounterReset}),
		},
		{
			name:     "counter: switch to a lagging replica is not a reset",
			opts:     []Option{WithFunc("rate")},
			replicas: [][]chunks.Sample{full(count, gapA), full(lag)},
			want: expect(join(window(full(count), 0, 120*sec), window(full(lag), 120*sec, 600*sec)),
				map[int64]histogram.CounterResetHint{120 * sec: histogram.NotCounterReset}),
		},
		{
			name:     "gauge: switch to a lagging replica is left to PromQL",
			replicas: [][]chunks.Sample{full(count, gapA), full(lag)},
			want: expect(join(window(full(count), 0, 120*sec), window(full(lag), 120*sec, 600*sec)),
				map[int64]histogram.CounterResetHint{120 * sec: histogram.UnknownCounterReset}),
		},
		{
			name:     "counter: reset recorded by the new replica is kept",
			opts:     []Option{WithFunc("increase")},
			replicas: [][]chunks.Sample{window(full(count), 0, 240*sec), resetB},
			want: expect(join(window(full(count), 0, 240*sec), window(resetB, 360*sec, 600*sec)),
				map[int64]histogram.CounterResetHint{360 * sec: histogram.UnknownCounterReset}),
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Keep a deep copy to prove the inputs are not modified.
			orig := make([][]chunks.Sample, len(tc.replicas))
			for i, r := range tc.replicas {
				for _, s := range r {
					orig[i] = append(orig[i], s.Copy())
				}
			}
			got := histOuts(t, dedupIterator(tc.opts, tc.replicas...))
			if len(got) != len(tc.want) {
				t.Fatalf("got %d samples, want %d: %v", len(got), len(tc.want), brief(got))
			}
			for i, g := range got {
				w := tc.want[i]
				if g.typ != chunkenc.ValHistogram || g.t != w.t || g.fh.Count != w.count || g.fh.CounterResetHint != w.hint {
					t.Fatalf("sample %d: got t=%d type=%v count=%v hint=%v, want t=%d count=%v hint=%v",
						i, g.t, g.typ, g.fh.Count, g.fh.CounterResetHint, w.t, w.count, w.hint)
				}
			}
			for i, r := range tc.replicas {
				for j, s := range r {
					if !s.H().Equals(orig[i][j].H()) || s.H().CounterResetHint != orig[i][j].H().CounterResetHint {
						t.Fatalf("replica %d sample %d was modified", i, j)
					}
				}
			}
		})
	}
}

func TestIteratorMixedTypes(t *testing.T) {
	a := ramp(0, 300*sec, 15*sec, 0, linear(1), [2]int64{60 * sec, 150 * sec})
	b := hramp(0, 300*sec, 15*sec, 0, func(t int64) int64 { return t / sec })
	for _, opts := range [][]Option{nil, {WithFunc("rate")}} {
		it := dedupIterator(opts, a, b)
		n := 0
		for typ := it.Next(); typ != chunkenc.ValNone; typ = it.Next() {
			ts := it.AtT()
			switch {
			case ts < 60*sec:
				if typ != chunkenc.ValFloat {
					t.Fatalf("%d: type %v, want float", ts, typ)
				}
				if _, f := it.At(); f != float64(ts)/1000 {
					t.Fatalf("%d: value %v", ts, f)
				}
			case ts >= 60*sec:
				if typ != chunkenc.ValHistogram {
					t.Fatalf("%d: type %v, want histogram", ts, typ)
				}
				_, h := it.AtHistogram(nil)
				if h.Count != uint64(ts/sec) {
					t.Fatalf("%d: count %v", ts, h.Count)
				}
			default:
				t.Fatalf("unexpected sample at %d", ts)
			}
			n++
		}
		if n != 4+16 {
			t.Fatalf("got %d samples", n)
		}
	}
}

// failingIterator fails after a number of samples.
type failingIterator struct {
	chunkenc.Iterator
	left int
	err  error
}

func (f *failingIterator) Next() chunkenc.ValueType {
	if f.left == 0 {
		return chunkenc.ValNone
	}
	f.left--
	return f.Iterator.Next()
}

func (f *failingIterator) Err() error {
	if f.left == 0 {
		return f.err
	}
	return nil
}

func TestIteratorError(t *testing.T) {
	errBroken := errors.New("broken replica")
	r := ramp(0, 300*sec, 15*sec, 0, linear(1))
	failing := &storage.SeriesEntry{Lset: testLabels, SampleIteratorFn: func(chunkenc.Iterator) chunkenc.Iterator {
		return &failingIterator{Iterator: listSeries(testLabels, r).Iterator(nil), left: 5, err: errBroken}
	}}
	it := mergeFunc()(listSeries(testLabels, r), failing).Iterator(nil)
	n := 0
	for it.Next() != chunkenc.ValNone {
		n++
	}
	if !errors.Is(it.Err(), errBroken) {
		t.Fatalf("Err() = %v, want %v", it.Err(), errBroken)
	}
	if n > 5 {
		t.Fatalf("iterated %d samples past the failure", n)
	}
}

func TestIteratorReuse(t *testing.T) {
	a := ramp(0, 300*sec, 15*sec, 0, linear(1), [2]int64{60 * sec, 150 * sec})
	b := ramp(0, 300*sec, 15*sec, 7*sec, linear(1))
	c := ramp(0, 300*sec, 15*sec, 0, linear(2))
	merge := mergeFunc(WithFunc("rate"))
	s1 := merge(listSeries(testLabels, a), listSeries(testLabels, b))
	s2 := merge(listSeries(testLabels, c), listSeries(testLabels, c), listSeries(testLabels, c))
	want1 := expand(t, s1.Iterator(nil))
	want2 := expand(t, s2.Iterator(nil))

	it := s1.Iterator(nil)
	it.Next()
	it = s2.Iterator(it)
	sameFloats(t, expand(t, it), want2)
	it = s1.Iterator(it)
	sameFloats(t, expand(t, it), want1)
	sameFloats(t, want2, floatsOf(c))
}
