package dedup

import (
	"math"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// replica is one input of the iterator and its position.
type replica struct {
	it  chunkenc.Iterator
	typ chunkenc.ValueType // ValNone when exhausted (or failed, see err)
	t   int64
	v   float64 // float value at the position, read only when counters are corrected
	err error

	// The sample before the position in this replica's own stream, known once
	// the replica has moved with Next. Counter correction uses it to tell a real
	// reset from a replica that merely lags.
	predKnown bool
	predT     int64
	predV     float64 // NaN unless the predecessor is a float
}

func (r *replica) load(values bool) {
	if r.typ == chunkenc.ValNone {
		r.err = r.it.Err()
		return
	}
	r.t = r.it.AtT()
	if values && r.typ == chunkenc.ValFloat {
		_, r.v = r.it.At()
	}
}

func (r *replica) step(values bool) {
	if r.typ != chunkenc.ValNone {
		r.predKnown = true
		r.predT = r.t
		r.predV = math.NaN()
		if r.typ == chunkenc.ValFloat {
			r.predV = r.v
		}
	}
	r.typ = r.it.Next()
	r.load(values)
}

// advance moves to the first sample at or after t. It steps with Next rather
// than Seek: replicas move in lockstep, so the distance is a sample or two,
// and Seek on merged iterators rebuilds their heap every time.
func (r *replica) advance(t int64, values bool) {
	for r.typ != chunkenc.ValNone && r.t < t {
		r.step(values)
	}
}

// iterator deduplicates replicas of one series. See the package documentation
// for the rules it follows.
type iterator struct {
	reps []replica
	cfg  config

	started, done bool
	err           error

	cur      int                // replica the current sample comes from
	typ      chunkenc.ValueType // type of the current sample
	curStale bool               // current sample is a stale marker (tracked with counter correction)
	lastT    int64              // timestamp of the current sample
	emitted  bool               // lastT is set
	// Estimated scrape interval, 0 until learned. It follows the distance
	// between emitted samples but at most doubles per sample, so that one
	// gap does not make the iterator blind to the other replicas for long.
	iv int64

	v float64 // output value of the current float sample

	// Counter reset hint reported for the current histogram when the
	// replica's own hint does not hold for the output stream.
	hintSet bool
	hint    histogram.CounterResetHint

	// Counter correction state, used only with cfg.counter.
	off        float64 // added to every float value
	haveFloat  bool    // lastRaw, lastOut and floatFrom describe the last live float emitted
	floatFrom  int
	lastRaw    float64
	lastOut    float64
	haveHist   bool // lastH and histFrom describe the last live histogram emitted
	histFrom   int
	lastH      *histogram.FloatHistogram
	newH       *histogram.FloatHistogram
	lastResetT int64 // timestamp of the last counter reset the output shows

	// Scratch space for reading histograms that are not returned.
	probe  *histogram.FloatHistogram
	probeH *histogram.Histogram
}

var _ chunkenc.Iterator = (*iterator)(nil)

func (it *iterator) reset(series []storage.Series, cfg config) {
	reps := it.reps
	if cap(reps) < len(series) {
		reps = make([]replica, len(series))
	}
	reps = reps[:len(series)]
	for i, s := range series {
		reps[i] = replica{it: s.Iterator(reps[i].it)}
	}
	*it = iterator{
		reps:       reps,
		cfg:        cfg,
		lastT:      math.MinInt64,
		lastResetT: math.MinInt64,
		lastH:      it.lastH,
		newH:       it.newH,
		probe:      it.probe,
		probeH:     it.probeH,
	}
}

// millis is int64 under another name. go vet's stdmethods check reads any
// Seek(int64) method as a broken io.Seeker; chunkenc.Iterator.Seek is not one,
// and the alias keeps vet quiet without hiding other findings.
type millis = int64

// addSat adds a non-negative d to t without overflowing.
func addSat(t, d int64) int64 {
	if t > math.MaxInt64-d {
		return math.MaxInt64
	}
	return t + d
}

// learnInterval estimates the scrape interval before any distance between
// emitted samples is known. It looks at the replicas' own spacing instead of
// guessing: a guess below the offset between replicas makes the second sample
// come from another replica. A replica that competes with the followed one's
// next sample is stepped once for that, which costs it a sample only the
// followed replica having a gap right at the start could have needed.
func (it *iterator) learnInterval() int64 {
	cur := &it.reps[it.cur]
	iv := int64(math.MaxInt64)
	for i := range it.reps {
		r := &it.reps[i]
		if i != it.cur && r.typ != chunkenc.ValNone && !r.predKnown && cur.typ != chunkenc.ValNone && r.t < cur.t {
			r.step(it.cfg.counter)
		}
		if r.typ != chunkenc.ValNone && r.predKnown {
			iv = min(iv, max(r.t-r.predT, 1))
		}
	}
	if iv == math.MaxInt64 {
		return initialPenalty / 2
	}
	return iv
}

func double(d int64) int64 {
	if d > math.MaxInt64/2 {
		return math.MaxInt64
	}
	return 2 * d
}

func (it *iterator) Next() chunkenc.ValueType {
	if it.done {
		return chunkenc.ValNone
	}
	values := it.cfg.counter
	if !it.started {
		it.started = true
		for i := range it.reps {
			it.reps[i].step(values)
		}
		return it.pick(initialPenalty, false)
	}
	it.reps[it.cur].advance(addSat(it.lastT, 1), values)
	if it.iv == 0 {
		it.iv = it.learnInterval()
	}
	iv := it.iv
	// Samples closer than half an interval to the last one would raise the
	// sample rate; replicas scraped in step with it are still picked up.
	from := addSat(it.lastT, max(iv/2, 1))
	for i := range it.reps {
		if i != it.cur {
			it.reps[i].advance(from, values)
		}
	}
	return it.pick(double(iv), true)
}

// Seek moves to the first sample at or after t. Once iteration has begun it
// steps with Next, so the samples after a Seek are exactly those Next alone
// would have produced; only the first call may seek the replicas directly.
func (it *iterator) Seek(t millis) chunkenc.ValueType {
	if it.done {
		return chunkenc.ValNone
	}
	if !it.started {
		it.started = true
		for i := range it.reps {
			r := &it.reps[i]
			r.typ = r.it.Seek(t)
			r.load(it.cfg.counter)
		}
		return it.pick(initialPenalty, false)
	}
	for it.lastT < t {
		if it.Next() == chunkenc.ValNone {
			return chunkenc.ValNone
		}
	}
	return it.typ
}

// pick emits the next sample. With sticky, the followed replica keeps the
// lead while its next sample is within the penalty of the last one; past that
// it has a gap, and like at the start the earliest sample wins, the followed
// replica winning ties. A live sample within the penalty window wins over a
// stale marker.
func (it *iterator) pick(pen int64, sticky bool) chunkenc.ValueType {
	best := -1
	for i := range it.reps {
		r := &it.reps[i]
		if r.typ == chunkenc.ValNone {
			if r.err != nil {
				it.err = r.err
				return it.finish()
			}
			continue
		}
		if best < 0 || r.t < it.reps[best].t || (r.t == it.reps[best].t && i == it.cur) {
			best = i
		}
	}
	if best < 0 {
		return it.finish()
	}
	if cur := &it.reps[it.cur]; sticky && cur.typ != chunkenc.ValNone && cur.t <= addSat(it.lastT, pen) {
		best = it.cur
	}
	if alt := it.liveAlternative(best, pen); alt >= 0 {
		best = alt
	}
	it.emit(best)
	return it.typ
}

func (it *iterator) finish() chunkenc.ValueType {
	it.done = true
	it.typ = chunkenc.ValNone
	it.hintSet = false
	return chunkenc.ValNone
}

// liveAlternative returns the replica whose live sample should replace a
// stale marker at best, or -1.
func (it *iterator) liveAlternative(best int, pen int64) int {
	limit := addSat(it.reps[best].t, pen)
	near := false
	for i := range it.reps {
		if i != best && it.reps[i].typ != chunkenc.ValNone && it.reps[i].t <= limit {
			near = true
			break
		}
	}
	if !near || !it.isStale(&it.reps[best]) {
		return -1
	}
	alt := -1
	for i := range it.reps {
		r := &it.reps[i]
		if i == best || r.typ == chunkenc.ValNone || r.t > limit {
			continue
		}
		if (alt < 0 || r.t < it.reps[alt].t) && !it.isStale(r) {
			alt = i
		}
	}
	return alt
}

func (it *iterator) isStale(r *replica) bool {
	switch r.typ {
	case chunkenc.ValFloat:
		_, v := r.it.At()
		return value.IsStaleNaN(v)
	case chunkenc.ValHistogram:
		if it.probeH == nil {
			it.probeH = &histogram.Histogram{}
		}
		_, h := r.it.AtHistogram(it.probeH)
		return value.IsStaleNaN(h.Sum)
	case chunkenc.ValFloatHistogram:
		if it.probe == nil {
			it.probe = &histogram.FloatHistogram{}
		}
		_, fh := r.it.AtFloatHistogram(it.probe)
		return value.IsStaleNaN(fh.Sum)
	}
	return false
}

// readFloatHistogram copies the histogram at r's position into dst. The
// returned pointers of At*Histogram are never kept: some iterators hand out
// their own memory instead of filling the argument.
func (it *iterator) readFloatHistogram(r *replica, dst *histogram.FloatHistogram) *histogram.FloatHistogram {
	if r.typ == chunkenc.ValHistogram {
		if it.probeH == nil {
			it.probeH = &histogram.Histogram{}
		}
		_, h := r.it.AtHistogram(it.probeH)
		return h.ToFloat(dst)
	}
	_, fh := r.it.AtFloatHistogram(dst)
	if fh != dst {
		fh.CopyTo(dst)
	}
	return dst
}

func (it *iterator) emit(best int) {
	r := &it.reps[best]
	prevCur, prevStale, first := it.cur, it.curStale, !it.emitted
	if it.iv > 0 {
		it.iv = min(r.t-it.lastT, double(it.iv))
	}
	it.lastT, it.emitted = r.t, true
	it.cur = best
	it.typ = r.typ
	it.hintSet = false
	it.curStale = false

	if r.typ == chunkenc.ValFloat {
		it.emitFloat(r, best)
		return
	}
	switched := !first && best != prevCur
	if !it.cfg.counter {
		if switched {
			// The replica's hint relates to its own previous sample, which the
			// output may not contain.
			it.setHint(histogram.UnknownCounterReset)
		}
		return
	}
	it.emitCounterHistogram(r, best, switched, !first && best == prevCur && !prevStale)
}

func (it *iterator) setHint(h histogram.CounterResetHint) {
	it.hintSet = true
	it.hint = h
}

func (it *iterator) emitFloat(r *replica, best int) {
	_, raw := r.it.At()
	it.v = raw
	if !it.cfg.counter {
		return
	}
	if value.IsStaleNaN(raw) {
		// Adding to a stale marker would turn it into an ordinary NaN.
		it.curStale = true
		return
	}
	switch {
	case !it.haveFloat:
		it.off = 0
	case it.floatFrom == best:
		if raw < it.lastRaw {
			it.off = 0
			it.lastResetT = r.t
		}
	case raw+it.off < it.lastOut:
		if r.predKnown && r.predT > it.lastResetT && r.predV > raw {
			// The replica dropped on its own after the last reset shown: a
			// real reset, which PromQL must see with its true value.
			it.off = 0
			it.lastResetT = r.t
		} else {
			it.off = offsetFor(it.lastOut, raw)
		}
	}
	if it.off != 0 {
		it.v = raw + it.off
	}
	it.haveFloat, it.floatFrom = true, best
	it.lastRaw, it.lastOut = raw, it.v
	it.haveHist = false
}

// offsetFor returns o such that raw+o, rounded, is not below target and is as
// close to it as the rounding allows. A value one ulp below target would read
// as a counter reset.
func offsetFor(target, raw float64) float64 {
	o := target - raw
	inc := math.Nextafter(math.Max(math.Abs(target), math.Abs(raw)), math.Inf(1)) - math.Max(math.Abs(target), math.Abs(raw))
	for i := 0; raw+o < target && i < 64; i++ {
		o += inc
		inc *= 2
	}
	return o
}

// emitCounterHistogram decides the reset hint of a histogram when counters
// are corrected. consecutive means the previous output sample is the live
// sample before this one in the same replica, so the replica's hint holds.
func (it *iterator) emitCounterHistogram(r *replica, best int, switched, consecutive bool) {
	if it.newH == nil {
		it.newH = &histogram.FloatHistogram{}
		it.lastH = &histogram.FloatHistogram{}
	}
	fh := it.readFloatHistogram(r, it.newH)
	if value.IsStaleNaN(fh.Sum) {
		it.curStale = true
		return
	}
	hint := fh.CounterResetHint
	switch {
	case hint == histogram.GaugeType:
	case !it.haveHist:
		if switched {
			it.setHint(histogram.UnknownCounterReset)
		}
	case consecutive && it.histFrom == best:
		if hint == histogram.CounterReset || (hint == histogram.UnknownCounterReset && detectReset(fh, it.lastH)) {
			it.lastResetT = r.t
		}
	case it.histFrom == best:
		// Same replica, but samples of it were skipped: its hint relates to
		// one of those, so let PromQL compare with the previous output.
		it.setHint(histogram.UnknownCounterReset)
		if detectReset(fh, it.lastH) {
			it.lastResetT = r.t
		}
	case !detectReset(fh, it.lastH):
		it.setHint(histogram.UnknownCounterReset)
	case hint == histogram.CounterReset && r.predKnown && r.predT > it.lastResetT:
		// The replica itself recorded a reset after the last one shown.
		it.setHint(histogram.UnknownCounterReset)
		it.lastResetT = r.t
	default:
		// A drop only against the other replica: lag, not a reset.
		it.setHint(histogram.NotCounterReset)
	}
	it.newH, it.lastH = it.lastH, it.newH
	it.haveHist, it.histFrom = true, best
	it.haveFloat = false
}

// detectReset compares cur with prev the way PromQL does when it has no hint.
func detectReset(cur, prev *histogram.FloatHistogram) bool {
	h := cur.CounterResetHint
	cur.CounterResetHint = histogram.UnknownCounterReset
	reset := cur.DetectReset(prev)
	cur.CounterResetHint = h
	return reset
}

func (it *iterator) At() (int64, float64) {
	if it.typ == chunkenc.ValFloat || it.typ == chunkenc.ValNone {
		return it.lastT, it.v
	}
	return it.reps[it.cur].it.At()
}

func (it *iterator) AtHistogram(h *histogram.Histogram) (int64, *histogram.Histogram) {
	t, got := it.reps[it.cur].it.AtHistogram(h)
	if it.hintSet && got.CounterResetHint != histogram.GaugeType && got.CounterResetHint != it.hint {
		if got != h {
			// Not the caller's memory: it may belong to the replica's data.
			got = got.Copy()
		}
		got.CounterResetHint = it.hint
	}
	return t, got
}

func (it *iterator) AtFloatHistogram(fh *histogram.FloatHistogram) (int64, *histogram.FloatHistogram) {
	t, got := it.reps[it.cur].it.AtFloatHistogram(fh)
	if it.hintSet && got.CounterResetHint != histogram.GaugeType && got.CounterResetHint != it.hint {
		if got != fh {
			got = got.Copy()
		}
		got.CounterResetHint = it.hint
	}
	return t, got
}

func (it *iterator) AtT() int64 { return it.lastT }

func (it *iterator) AtST() int64 {
	if it.typ == chunkenc.ValNone {
		return 0
	}
	return it.reps[it.cur].it.AtST()
}

func (it *iterator) Err() error { return it.err }
