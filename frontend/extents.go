package frontend

import (
	"encoding/binary"
	"errors"
	"math"
	"sort"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
)

// extent is a cached answer for every point of a query's grid from start to
// end: series without points there are known to have none.
type extent struct {
	start, end int64
	series     []*series
	infos      []string
}

// missing lists the spans of [start, end] on the grid of step that no
// extent covers.
func missing(start, end, step int64, exts []extent) []span {
	var out []span
	cur := start
	for _, e := range exts {
		if e.end < cur || e.start > end {
			continue
		}
		if e.start > cur {
			// The last grid point before the extent.
			last := cur + floorDiv(e.start-1-cur, step)*step
			if last >= cur {
				out = append(out, span{cur, last})
			}
		}
		// The first grid point after the extent.
		next := cur + (floorDiv(e.end-cur, step)+1)*step
		if next > cur {
			cur = next
		}
		if cur > end {
			return out
		}
	}
	if cur <= end {
		out = append(out, span{cur, end})
	}
	return out
}

// mergeExtents sorts extents and joins those that overlap or touch (the
// next starting one step after the previous ends).
func mergeExtents(exts []extent, step int64) []extent {
	sort.Slice(exts, func(i, j int) bool { return exts[i].start < exts[j].start })
	var out []extent
	for _, e := range exts {
		if n := len(out); n > 0 && e.start <= out[n-1].end+step {
			last := &out[n-1]
			last.series = mergeSeries(last.series, e.series)
			last.infos = unionStrings(last.infos, e.infos...)
			if e.end > last.end {
				last.end = e.end
			}
			continue
		}
		out = append(out, e)
	}
	return out
}

// trimExtent keeps the points of e up to end.
func trimExtent(e extent, end int64) (extent, bool) {
	if e.start > end {
		return extent{}, false
	}
	if e.end > end {
		e.series = sliceSeries(e.series, e.start, end)
		e.end = end
	}
	return e, true
}

// Cache entries are the key they were stored under (a hash collision
// reads as a miss), then the extents, snappy-compressed:
//
//	version, key, n extents, per extent: start, end, infos, series
//	series: labels, floats (time deltas, value bits), histograms (time deltas, JSON)
const entryVersion = 1

var errBadEntry = errors.New("malformed cache entry")

func encodeEntry(key string, exts []extent) []byte {
	b := make([]byte, 0, 4096)
	b = binary.AppendUvarint(b, entryVersion)
	b = appendString(b, key)
	b = binary.AppendUvarint(b, uint64(len(exts)))
	for _, e := range exts {
		b = binary.AppendVarint(b, e.start)
		b = binary.AppendVarint(b, e.end)
		b = binary.AppendUvarint(b, uint64(len(e.infos)))
		for _, s := range e.infos {
			b = appendString(b, s)
		}
		b = binary.AppendUvarint(b, uint64(len(e.series)))
		for _, s := range e.series {
			b = binary.AppendUvarint(b, uint64(s.lset.Len()))
			s.lset.Range(func(l labels.Label) {
				b = appendString(b, l.Name)
				b = appendString(b, l.Value)
			})
			b = binary.AppendUvarint(b, uint64(len(s.floats)))
			prev := e.start
			for _, p := range s.floats {
				b = binary.AppendVarint(b, p.T-prev)
				prev = p.T
				b = binary.LittleEndian.AppendUint64(b, math.Float64bits(p.F))
			}
			b = binary.AppendUvarint(b, uint64(len(s.hists)))
			prev = e.start
			for _, p := range s.hists {
				b = binary.AppendVarint(b, p.T-prev)
				prev = p.T
				b = appendString(b, string(p.JSON))
			}
		}
	}
	return snappy.Encode(nil, b)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// entryReader reads what encodeEntry wrote; the first error sticks.
type entryReader struct {
	b   []byte
	err error
}

func (r *entryReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errBadEntry
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *entryReader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errBadEntry
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *entryReader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil || uint64(len(r.b)) < n {
		r.err = errBadEntry
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *entryReader) float() float64 {
	if r.err != nil || len(r.b) < 8 {
		r.err = errBadEntry
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(r.b))
	r.b = r.b[8:]
	return v
}

// count reads a length and checks it against what is left, so a corrupt
// entry cannot make the reader allocate without bound.
func (r *entryReader) count() int {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.err = errBadEntry
		return 0
	}
	return int(n)
}

func decodeEntry(key string, data []byte) ([]extent, error) {
	raw, err := snappy.Decode(nil, data)
	if err != nil {
		return nil, errBadEntry
	}
	r := &entryReader{b: raw}
	if r.uvarint() != entryVersion || string(r.bytes()) != key {
		return nil, errBadEntry
	}
	exts := make([]extent, r.count())
	var lb labels.ScratchBuilder
	for i := range exts {
		e := &exts[i]
		e.start, e.end = r.varint(), r.varint()
		for range r.count() {
			e.infos = append(e.infos, string(r.bytes()))
		}
		e.series = make([]*series, r.count())
		for j := range e.series {
			s := &series{}
			lb.Reset()
			for range r.count() {
				name := string(r.bytes())
				lb.Add(name, string(r.bytes()))
			}
			s.lset = lb.Labels()
			if n := r.count(); n > 0 {
				s.floats = make([]promql.FPoint, n)
				prev := e.start
				for k := range s.floats {
					prev += r.varint()
					s.floats[k] = promql.FPoint{T: prev, F: r.float()}
				}
			}
			if n := r.count(); n > 0 {
				s.hists = make([]histPoint, n)
				prev := e.start
				for k := range s.hists {
					prev += r.varint()
					s.hists[k] = histPoint{T: prev, JSON: r.bytes()}
				}
			}
			e.series[j] = s
		}
		if r.err != nil {
			return nil, r.err
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	return exts, nil
}
