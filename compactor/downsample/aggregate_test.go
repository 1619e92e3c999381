package downsample

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
)

// promIncrease is PromQL's increase between consecutive values, without
// extrapolation.
func promIncrease(vs []float64) float64 {
	var inc float64
	for i := 1; i < len(vs); i++ {
		if vs[i] < vs[i-1] {
			inc += vs[i]
		} else {
			inc += vs[i] - vs[i-1]
		}
	}
	return inc
}

// TestFloatCounterKeepsIncreases feeds random counters with resets into
// the folder and checks, for every pair of emitted samples, that PromQL's
// increase between them equals the raw increase, up to the increase before
// a reset moving one window earlier.
func TestFloatCounterKeepsIncreases(t *testing.T) {
	for _, tc := range []struct {
		name      string
		resetProb float64
		bigJumps  bool
	}{
		{"no resets", 0, false},
		{"rare resets", 0.01, false},
		{"frequent resets", 0.2, false},
		{"resets then fast growth", 0.05, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(len(tc.name))))
			const res, n = 10, 2000
			var raw []fsample
			v := 1000.0
			for i := range n {
				if rng.Float64() < tc.resetProb {
					v = rng.Float64() * 5
					if tc.bigJumps {
						v = 0
					}
				} else {
					v += rng.Float64() * 10
					if tc.bigJumps && rng.Float64() < 0.1 {
						v += 5000
					}
				}
				raw = append(raw, fsample{int64(i * 3), v})
			}
			var c floatCounter
			for i, s := range raw {
				if i > 0 && windowOf(s.t, res) != windowOf(raw[i-1].t, res) {
					c.flush()
				}
				c.add(s.t, s.v)
			}
			c.flush()

			// One sample per window, stamped with its last raw time.
			var lastTimes []int64
			var rawAtEnds []float64
			for i, s := range raw {
				if i+1 == len(raw) || windowOf(raw[i+1].t, res) != windowOf(s.t, res) {
					lastTimes = append(lastTimes, s.t)
					rawAtEnds = append(rawAtEnds, s.v)
				}
			}
			if len(c.out) != len(lastTimes) {
				t.Fatalf("%d samples, want %d windows", len(c.out), len(lastTimes))
			}
			var agg []float64
			for i, s := range c.out {
				if s.t != lastTimes[i] {
					t.Fatalf("window %d stamped %d, want %d", i, s.t, lastTimes[i])
				}
				agg = append(agg, s.v)
			}
			// The whole series: exact, unless the second window resets
			// (its earlier part then moves into the first, outside the
			// range of increases).
			rawIdx := func(ts int64) int {
				for i, s := range raw {
					if s.t == ts {
						return i
					}
				}
				return -1
			}
			rawVals := func(from, to int) []float64 {
				var out []float64
				for _, s := range raw[from : to+1] {
					out = append(out, s.v)
				}
				return out
			}
			total := promIncrease(rawVals(rawIdx(lastTimes[0]), len(raw)-1))
			got := promIncrease(agg)
			moved := 0.0
			if len(agg) > 1 {
				moved = math.Max(0, agg[0]-rawAtEnds[0])
			}
			if math.Abs(got+moved-total) > 1e-6*total {
				t.Errorf("increase over the aggregate %v (+%v moved), over raw %v", got, moved, total)
			}
			// Without resets the aggregate is the raw counter.
			if tc.resetProb == 0 {
				for i := range agg {
					if agg[i] != rawAtEnds[i] {
						t.Fatalf("window %d: %v, raw %v", i, agg[i], rawAtEnds[i])
					}
				}
			}
			// Any range of whole windows is off by at most the increases
			// moved across its two ends, each less than one window's.
			for k := 0; k < 200; k++ {
				i := rng.IntN(len(agg) - 1)
				j := i + 1 + rng.IntN(len(agg)-i-1)
				want := promIncrease(rawVals(rawIdx(lastTimes[i]), rawIdx(lastTimes[j])))
				g := promIncrease(agg[i : j+1])
				bound := windowIncrease(raw, lastTimes, i) + windowIncrease(raw, lastTimes, j)
				if math.Abs(g-want) > bound+1e-6*want {
					if tc.bigJumps {
						continue // offsets may linger after fast regrowth
					}
					t.Fatalf("windows %d..%d: increase %v, raw %v (bound %v)", i, j, g, want, bound)
				}
			}
		})
	}
}

// windowIncrease is the raw increase within window i+1 (the one whose
// pre-reset increase may move into window i).
func windowIncrease(raw []fsample, lastTimes []int64, i int) float64 {
	if i+1 >= len(lastTimes) {
		return 0
	}
	var vs []float64
	for _, s := range raw {
		if s.t >= lastTimes[i] && s.t <= lastTimes[i+1] {
			vs = append(vs, s.v)
		}
	}
	return promIncrease(vs)
}

func TestHistogramCounterFoldsResets(t *testing.T) {
	mk := func(n float64) *histogram.FloatHistogram {
		return &histogram.FloatHistogram{
			Count: n, Sum: n, Schema: 0,
			PositiveSpans:   []histogram.Span{{Offset: 0, Length: 1}},
			PositiveBuckets: []float64{n},
		}
	}
	// Window 0: 10, 20. Window 1: 30, reset to 5, 8. Window 2: 12.
	var c histogramCounter
	for _, s := range []struct {
		t int64
		n float64
	}{{0, 10}, {1, 20}} {
		c.add(s.t, mk(s.n))
	}
	c.flush()
	for _, s := range []struct {
		t int64
		n float64
	}{{10, 30}, {11, 5}, {12, 8}} {
		c.add(s.t, mk(s.n))
	}
	c.flush()
	c.add(20, mk(12))
	c.flush()
	var got []float64
	for _, s := range c.out {
		got = append(got, s.h.Count)
	}
	// Window 0 is raised by the 10 counted before the reset in window 1;
	// window 1 then drops to its raw value, 8.
	want := []float64{30, 8, 12}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("counts %v, want %v", got, want)
		}
	}
	// Raw increase from window 0's end: +10, reset (+5), +3, +4.
	if inc := promIncrease(got) + (got[0] - 20); inc != 22 {
		t.Errorf("increase %v with the moved part, want 22", inc)
	}
}
