package ingest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strconv"
	"unicode/utf8"
	"unsafe"
)

// errInvalidSeries is matched (errors.Is) by every *InvalidSeriesError.
var errInvalidSeries = errors.New("invalid series")

// Reasons an InvalidSeriesError gives. They are stable and short, fit for a
// metric label counting discarded series.
const (
	reasonNoLabels            = "no_labels"
	reasonEmptyLabelName      = "empty_label_name"
	reasonDuplicateLabelName  = "duplicate_label_name"
	reasonLabelsNotSorted     = "labels_not_sorted"
	reasonInvalidUTF8         = "invalid_utf8"
	reasonMissingMetricName   = "missing_metric_name"
	reasonInvalidExemplarUTF8 = "invalid_exemplar_utf8"
	reasonReservedLabel       = "reserved_label"
)

// invalidSeriesError is why validateSeries rejected a series. It holds copies,
// never references into the request buffer, so it may outlive the request.
type invalidSeriesError struct {
	// Series is the offending series formatted by labelsString; very long
	// names, values and label sets are cut short.
	Series string
	// Reason is one of the Reason… constants.
	Reason string
	// Detail says what is wrong, e.g. `duplicate label name "job"`.
	Detail string
}

// Error returns one line naming the series and the problem.
func (e *invalidSeriesError) Error() string {
	return "invalid series " + e.Series + ": " + e.Detail
}

// Is makes errors.Is(err, errInvalidSeries) hold.
func (e *invalidSeriesError) Is(target error) bool {
	return target == errInvalidSeries
}

// wireErrorLabelLimit bounds each name and value quoted in an
// InvalidSeriesError: clients send hostile series too, and the message goes
// back to them and into logs.
const wireErrorLabelLimit = 256

var wireMetricName = []byte("__name__")

// validateSeries checks what the write path relies on: at least one label,
// non-empty unique label names sorted by name, valid UTF-8 in every name and
// value, a non-empty __name__, and valid UTF-8 in exemplar labels. It reports
// the first problem found, looking in that order: the names label by label
// (empty, out of order or repeated, an empty __name__), then UTF-8, then
// whether __name__ is there, then exemplars. It allocates only to report a
// failure, as an *InvalidSeriesError.
func validateSeries(ts *timeSeries) error {
	ls := ts.Labels
	if len(ls) == 0 {
		return wireInvalidSeries(ts, reasonNoLabels, "no labels")
	}
	// While checking names, note the span of memory all names and values
	// lie in. Decoded labels sit next to each other in Raw, separated only by
	// tags and lengths, which are ASCII when short: one scan of that span
	// then proves every name and value ASCII, which beats a call per label.
	lo, hi := ^uintptr(0), uintptr(0)
	var prev []byte
	nameSeen := false
	for i, l := range ls {
		if len(l.Name) == 0 {
			return wireInvalidSeries(ts, reasonEmptyLabelName, "empty label name")
		}
		p := uintptr(unsafe.Pointer(unsafe.SliceData(l.Name)))
		lo, hi = min(lo, p), max(hi, p+uintptr(len(l.Name)))
		if len(l.Value) > 0 {
			p := uintptr(unsafe.Pointer(unsafe.SliceData(l.Value)))
			lo, hi = min(lo, p), max(hi, p+uintptr(len(l.Value)))
		}
		if i > 0 {
			// Names of one series mostly differ in their first byte, which
			// settles the order without a call to bytes.Compare.
			c := int(prev[0]) - int(l.Name[0])
			if c == 0 {
				c = bytes.Compare(prev, l.Name)
			}
			switch {
			case c == 0:
				return wireInvalidSeries(ts, reasonDuplicateLabelName, "duplicate label name "+wireQuote(l.Name))
			case c > 0:
				return wireInvalidSeries(ts, reasonLabelsNotSorted,
					"labels not sorted by name: "+wireQuote(prev)+" before "+wireQuote(l.Name))
			}
		}
		prev = l.Name
		if !nameSeen && bytes.Equal(l.Name, wireMetricName) {
			if len(l.Value) == 0 {
				return wireInvalidSeries(ts, reasonMissingMetricName, "empty metric name (__name__)")
			}
			nameSeen = true
		}
	}
	if !wireSpanASCII(ts.Raw, lo, hi) {
		for _, l := range ls {
			if !utf8.Valid(l.Name) {
				return wireInvalidSeries(ts, reasonInvalidUTF8, "invalid UTF-8 in label name "+wireQuote(l.Name))
			}
			if !utf8.Valid(l.Value) {
				return wireInvalidSeries(ts, reasonInvalidUTF8, "invalid UTF-8 in value of label "+wireQuote(l.Name))
			}
		}
	}
	if !nameSeen {
		return wireInvalidSeries(ts, reasonMissingMetricName, "missing metric name (__name__)")
	}
	for i := range ts.Exemplars {
		for _, l := range ts.Exemplars[i].Labels {
			if !utf8.Valid(l.Name) || !utf8.Valid(l.Value) {
				return wireInvalidSeries(ts, reasonInvalidExemplarUTF8,
					"invalid UTF-8 in label "+wireQuote(l.Name)+" of exemplar "+strconv.Itoa(i))
			}
		}
	}
	return nil
}

// wireSpanASCII reports whether the bytes at addresses [lo, hi) are ASCII,
// when that span lies within raw and is not much more than labels; false
// means "check label by label", not "invalid". The span is only ever read
// through raw, never through a pointer made from an address.
func wireSpanASCII(raw []byte, lo, hi uintptr) bool {
	base := uintptr(unsafe.Pointer(unsafe.SliceData(raw)))
	if len(raw) == 0 || lo < base || hi > base+uintptr(len(raw)) || lo > hi {
		return false
	}
	span := raw[lo-base : hi-base]
	var w uint64
	for len(span) >= 8 {
		w |= binary.LittleEndian.Uint64(span)
		span = span[8:]
	}
	for _, c := range span {
		w |= uint64(c)
	}
	return w&0x8080808080808080 == 0
}

func wireQuote(s []byte) string {
	s, cut := wireCut(s, wireErrorLabelLimit)
	q := strconv.Quote(wireUnsafeString(s))
	if cut {
		q += "…"
	}
	return q
}

func wireInvalidSeries(ts *timeSeries, reason, detail string) *invalidSeriesError {
	return &invalidSeriesError{
		Series: string(wireAppendLabels(nil, ts.Labels, wireErrorLabelLimit)),
		Reason: reason,
		Detail: detail,
	}
}

// reservedLabels are label names a series may not carry (see
// RouterOptions.ReservedLabels).
type reservedLabels [][]byte

func newReservedLabels(names []string) reservedLabels {
	var out reservedLabels
	for _, n := range names {
		if n != "" {
			out = append(out, []byte(n))
		}
	}
	return out
}

// check refuses a series that carries a reserved label. It runs where
// validateSeries does: on series not seen before.
func (r reservedLabels) check(ts *timeSeries) error {
	for _, l := range ts.Labels {
		for _, n := range r {
			if len(l.Name) == len(n) && l.Name[0] == n[0] && bytes.Equal(l.Name, n) {
				return wireInvalidSeries(ts, reasonReservedLabel, "label "+wireQuote(l.Name)+
					" is reserved: Atoll sets it itself (tenant or replica label); drop or rename it, e.g. with write_relabel_configs")
			}
		}
	}
	return nil
}
