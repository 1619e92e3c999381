package dedup

import (
	"math"
	"strconv"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const sec = int64(1000)

// smp is a test sample; exactly one of f, h and fh is meaningful.
type smp struct {
	t  int64
	f  float64
	h  *histogram.Histogram
	fh *histogram.FloatHistogram
}

func (s smp) T() int64                      { return s.t }
func (s smp) ST() int64                     { return 0 }
func (s smp) F() float64                    { return s.f }
func (s smp) H() *histogram.Histogram       { return s.h }
func (s smp) FH() *histogram.FloatHistogram { return s.fh }
func (s smp) Copy() chunks.Sample {
	c := s
	if s.h != nil {
		c.h = s.h.Copy()
	}
	if s.fh != nil {
		c.fh = s.fh.Copy()
	}
	return c
}

func (s smp) Type() chunkenc.ValueType {
	switch {
	case s.h != nil:
		return chunkenc.ValHistogram
	case s.fh != nil:
		return chunkenc.ValFloatHistogram
	}
	return chunkenc.ValFloat
}

// ramp returns float samples every step from start+offset up to end
// (exclusive), skipping the half-open gaps [from, to), valued by fn.
func ramp(start, end, step, offset int64, fn func(t int64) float64, gaps ...[2]int64) []chunks.Sample {
	var out []chunks.Sample
next:
	for t := start + offset; t < end; t += step {
		for _, g := range gaps {
			if t >= g[0] && t < g[1] {
				continue next
			}
		}
		out = append(out, smp{t: t, f: fn(t)})
	}
	return out
}

// hramp is ramp for integer histograms; fn gives the observation count
// growth, each histogram is a counter histogram with that many observations.
func hramp(start, end, step, offset int64, fn func(t int64) int64, gaps ...[2]int64) []chunks.Sample {
	fs := ramp(start, end, step, offset, func(t int64) float64 { return float64(fn(t)) }, gaps...)
	out := make([]chunks.Sample, len(fs))
	for i, s := range fs {
		out[i] = smp{t: s.T(), h: testHistogram(int64(s.F()), histogram.NotCounterReset)}
	}
	return out
}

// testHistogram returns a histogram with n observations spread over three
// buckets, so that a larger n is never a counter reset of a smaller one.
func testHistogram(n int64, hint histogram.CounterResetHint) *histogram.Histogram {
	a := n / 3
	b := n / 3
	c := n - a - b
	return &histogram.Histogram{
		CounterResetHint: hint,
		Schema:           0,
		Count:            uint64(n),
		Sum:              float64(n) * 1.5,
		ZeroThreshold:    0.001,
		PositiveSpans:    []histogram.Span{{Offset: 0, Length: 3}},
		// Delta encoded bucket counts.
		PositiveBuckets: []int64{a, b - a, c - b},
	}
}

func linear(perSec float64) func(int64) float64 {
	return func(t int64) float64 { return float64(t) / 1000 * perSec }
}

func shifted(fn func(int64) float64, by float64) func(int64) float64 {
	return func(t int64) float64 { return fn(t) + by }
}

func listSeries(lset labels.Labels, s []chunks.Sample) storage.Series {
	return storage.NewListSeries(lset, s)
}

// out is one sample read back from an iterator.
type out struct {
	t   int64
	typ chunkenc.ValueType
	f   float64
	fh  *histogram.FloatHistogram
}

func readAt(it chunkenc.Iterator, typ chunkenc.ValueType) out {
	o := out{t: it.AtT(), typ: typ}
	switch typ {
	case chunkenc.ValFloat:
		var t int64
		t, o.f = it.At()
		if t != o.t {
			panic("At and AtT disagree")
		}
	case chunkenc.ValHistogram:
		_, h := it.AtHistogram(nil)
		o.fh = h.ToFloat(nil)
	case chunkenc.ValFloatHistogram:
		_, o.fh = it.AtFloatHistogram(nil)
	}
	return o
}

func expand(t *testing.T, it chunkenc.Iterator) []out {
	t.Helper()
	var res []out
	for typ := it.Next(); typ != chunkenc.ValNone; typ = it.Next() {
		res = append(res, readAt(it, typ))
	}
	if err := it.Err(); err != nil {
		t.Fatalf("iterator error: %v", err)
	}
	return res
}

// floatsOf returns what a float iterator should yield for these samples.
func floatsOf(ss ...[]chunks.Sample) []out {
	var res []out
	for _, s := range ss {
		for _, x := range s {
			res = append(res, out{t: x.T(), typ: chunkenc.ValFloat, f: x.F()})
		}
	}
	return res
}

func sameFloats(t *testing.T, got, want []out) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d samples, want %d\ngot:  %v\nwant: %v", len(got), len(want), brief(got), brief(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.t != w.t || g.typ != w.typ || !sameFloat(g.f, w.f) {
			t.Fatalf("sample %d: got %v, want %v\ngot:  %v\nwant: %v", i, g, w, brief(got), brief(want))
		}
	}
}

func sameFloat(a, b float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.Float64bits(a) == math.Float64bits(b)
	}
	return a == b
}

func brief(os []out) []string {
	res := make([]string, len(os))
	for i, o := range os {
		switch {
		case o.typ != chunkenc.ValFloat:
			res[i] = formatT(o.t) + "=H"
		case value.IsStaleNaN(o.f):
			res[i] = formatT(o.t) + "=stale"
		default:
			res[i] = formatT(o.t) + "=" + formatF(o.f)
		}
	}
	return res
}

func formatT(t int64) string   { return formatF(float64(t)/1000) + "s" }
func formatF(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// promIncrease is the increase PromQL's counter handling sees in a float
// sample stream, without extrapolation: every drop is a reset.
func promIncrease(os []out) float64 {
	var sum, prev float64
	have := false
	for _, o := range os {
		if o.typ != chunkenc.ValFloat || value.IsStaleNaN(o.f) {
			continue
		}
		if have {
			if o.f < prev {
				sum += o.f
			} else {
				sum += o.f - prev
			}
		}
		prev, have = o.f, true
	}
	return sum
}

// drops counts the decreases in a float sample stream.
func drops(os []out) int {
	n := 0
	var prev float64
	have := false
	for _, o := range os {
		if o.typ != chunkenc.ValFloat || value.IsStaleNaN(o.f) {
			continue
		}
		if have && o.f < prev {
			n++
		}
		prev, have = o.f, true
	}
	return n
}
