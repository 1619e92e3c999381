package downsample

import (
	"math"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/value"
)

// fsample is a float sample.
type fsample struct {
	t int64
	v float64
}

// hsample is a float histogram sample.
type hsample struct {
	t int64
	h *histogram.FloatHistogram
}

// windowOf returns the index of the window of size res holding t.
func windowOf(t, res int64) int64 {
	w := t / res
	if t < 0 && t%res != 0 {
		w--
	}
	return w
}

// floatCounter folds a float counter into one sample per window such that
// PromQL's increase between any two of its samples equals PromQL's increase
// over the raw samples between the same two times, except for the part of
// a window's increase that came before a counter reset, which is moved one
// window earlier.
//
// PromQL sees a counter reset wherever a value drops, and then counts the
// whole new value as increase. A window in which the raw counter reset has a
// true increase d (what PromQL counts over its raw samples) made of p, the
// increase before the window's last reset, and the raw value v at the
// window's end. Emitting v alone would lose p. Instead p is added to the
// previous window's sample, and v is emitted as is: PromQL counts p one
// window early, then sees the drop to v and counts v. The emitted series
// then equals the raw counter again, so consecutive blocks, downsampled
// independently, join without a jump. When the drop would not be visible
// (v is not below the raised previous sample, as when a counter that reset
// grows back past its old value within one window), the window's sample is
// d itself if that is a visible drop, or else the previous sample plus d;
// both keep an offset over the raw value until a later reset sheds it.
type floatCounter struct {
	out []fsample

	started  bool    // a window has been emitted
	prevDrop bool    // the last emitted sample was a drop from the one before
	offset   float64 // emitted minus raw value at the last emitted sample

	havePrev bool // a raw sample has been seen
	prevRaw  float64

	inWindow bool
	d, p     float64
	reset    bool
	lastT    int64
	lastRaw  float64
}

func (c *floatCounter) add(t int64, v float64) {
	if math.IsNaN(v) {
		return // stale markers and NaNs say nothing about increase
	}
	if c.havePrev {
		if v < c.prevRaw {
			c.p = c.d
			c.d += v
			c.reset = true
		} else {
			c.d += v - c.prevRaw
		}
	}
	c.havePrev, c.prevRaw = true, v
	c.inWindow, c.lastT, c.lastRaw = true, t, v
}

func (c *floatCounter) flush() {
	if !c.inWindow {
		return
	}
	v := c.lastRaw
	switch {
	case !c.started:
		c.out = append(c.out, fsample{c.lastT, v})
		c.started, c.offset, c.prevDrop = true, 0, false
	case !c.reset:
		c.out = append(c.out, fsample{c.lastT, v + c.offset})
		c.prevDrop = false
	default:
		n := len(c.out)
		prev := c.out[n-1].v
		raised := prev + c.p
		keepsPrevDrop := !c.prevDrop || n < 2 || raised < c.out[n-2].v
		switch {
		case v < raised && keepsPrevDrop:
			c.out[n-1].v = raised
			c.out = append(c.out, fsample{c.lastT, v})
			c.offset, c.prevDrop = 0, true
		case c.d < prev:
			c.out = append(c.out, fsample{c.lastT, c.d})
			c.offset, c.prevDrop = c.d-v, true
		default:
			c.out = append(c.out, fsample{c.lastT, prev + c.d})
			c.offset, c.prevDrop = prev+c.d-v, false
		}
	}
	c.inWindow, c.d, c.p, c.reset = false, 0, 0, false
}

// histogramCounter is floatCounter for native histograms. PromQL detects
// a histogram counter reset when the count or any bucket drops (chunk
// headers' reset hints are not trusted on read), so "a visible drop" means
// DetectReset finds one, and offsets are histograms.
type histogramCounter struct {
	out []hsample

	started  bool
	prevDrop bool
	offset   *histogram.FloatHistogram // nil is zero

	prev     *histogram.FloatHistogram // last raw histogram
	segStart *histogram.FloatHistogram // start of the current segment; nil is zero

	inWindow bool
	p        *histogram.FloatHistogram // increase before the window's last reset
	reset    bool
	last     hsample
	failed   int // samples whose arithmetic failed (incompatible layouts)
}

func (c *histogramCounter) add(t int64, h *histogram.FloatHistogram) {
	if value.IsStaleNaN(h.Sum) {
		return
	}
	if c.prev != nil && h.DetectReset(c.prev) {
		seg := c.prev
		if c.segStart != nil {
			seg = c.sub(c.prev, c.segStart)
		}
		if seg != nil {
			c.p = c.plus(c.p, seg)
		}
		c.segStart = nil
		c.reset = true
	}
	c.prev = h.Copy()
	c.prev.CounterResetHint = histogram.UnknownCounterReset
	c.inWindow = true
	c.last = hsample{t, c.prev}
}

// plus returns a+b as a new histogram; nil stands for zero.
func (c *histogramCounter) plus(a, b *histogram.FloatHistogram) *histogram.FloatHistogram {
	switch {
	case a == nil && b == nil:
		return nil
	case a == nil:
		return b.Copy()
	case b == nil:
		return a.Copy()
	}
	r := a.Copy()
	if _, _, _, err := r.Add(b); err != nil {
		c.failed++
		return a.Copy()
	}
	r.CounterResetHint = histogram.UnknownCounterReset
	return r.Compact(0)
}

func (c *histogramCounter) sub(a, b *histogram.FloatHistogram) *histogram.FloatHistogram {
	r := a.Copy()
	if _, _, _, err := r.Sub(b); err != nil {
		c.failed++
		return nil
	}
	r.CounterResetHint = histogram.UnknownCounterReset
	return r.Compact(0)
}

func (c *histogramCounter) flush() {
	if !c.inWindow {
		return
	}
	h := c.last.h
	switch {
	case !c.started:
		c.out = append(c.out, hsample{c.last.t, h.Copy()})
		c.started, c.offset, c.prevDrop = true, nil, false
	case !c.reset:
		c.out = append(c.out, hsample{c.last.t, c.plus(h, c.offset)})
		c.prevDrop = false
	default:
		n := len(c.out)
		prev := c.out[n-1].h
		raised := c.plus(prev, c.p)
		keepsPrevDrop := !c.prevDrop || n < 2 || raised.DetectReset(c.out[n-2].h)
		switch d := c.plus(c.p, h); {
		case h.DetectReset(raised) && keepsPrevDrop:
			c.out[n-1].h = raised
			c.out = append(c.out, hsample{c.last.t, h.Copy()})
			c.offset, c.prevDrop = nil, true
		case d.DetectReset(prev):
			c.out = append(c.out, hsample{c.last.t, d})
			c.offset, c.prevDrop = c.p, true
		default:
			c.out = append(c.out, hsample{c.last.t, c.plus(prev, d)})
			c.offset, c.prevDrop = c.plus(prev, c.p), false
		}
	}
	c.segStart = h
	c.inWindow, c.p, c.reset = false, nil, false
}
