package ingest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"unsafe"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
)

// errMalformedRequest is matched (errors.Is) by every error that reports a
// remote-write body that is not a well-formed prompb.WriteRequest.
var errMalformedRequest = errors.New("malformed remote-write request")

// writeRequest is a decoded remote-write 1.0 request (prompb.WriteRequest).
//
// Decode fills it without reflection and without allocating per label or per
// sample: every byte slice in it (label names and values, Raw, metadata
// strings) points into the buffer given to Decode, and the Labels, Samples,
// Histograms and Exemplars slices of all series are carved from backing
// arrays owned by the writeRequest and reused by the next Decode.
//
// Lifetime: everything reachable from a writeRequest is valid until the next
// Decode on it, and only while the decoded buffer is neither modified nor
// reused. Code that keeps labels past that point must copy them, once, where
// they are retained (buildLabels does so for the head's new-series path).
//
// A writeRequest is not safe for concurrent Decode; reading a decoded one from
// several goroutines is fine.
type writeRequest struct {
	Timeseries []timeSeries
	Metadata   []metricMetadata

	// Backing arrays shared by all series of one request. A series' slices
	// are capped at their own length, so appending to one never overwrites
	// its neighbour.
	labels         []label
	samples        []sample
	histograms     []wireHistogram
	exemplars      []wireExemplar
	exemplarLabels []label
	hashScratch    []byte
}

// timeSeries is one prompb.TimeSeries of a writeRequest.
type timeSeries struct {
	// Raw is the encoded prompb.TimeSeries message: the payload of one field 1
	// of the writeRequest. A router forwards a subset of series by appending
	// the tag 0x0a, the uvarint len(Raw) and Raw for each, without re-encoding.
	Raw []byte
	// Labels are in wire order, unvalidated (see validateSeries).
	Labels []label
	// LabelsHash is xxhash64 over name, 0xff, value, 0xff for each label in
	// wire order. For sorted labels it equals labels.Labels.Hash under the
	// slicelabels build tag; under the default stringlabels build the two
	// differ, so never mix them as keys of one map.
	LabelsHash uint64
	Samples    []sample
	Histograms []wireHistogram
	Exemplars  []wireExemplar
}

// label is a name/value pair pointing into the decoded buffer.
type label struct {
	Name, Value []byte
}

// sample is a float sample: T in milliseconds since the epoch.
type sample struct {
	T int64
	V float64
}

// wireHistogram is a native histogram sample kept encoded: native histograms are
// rare next to float samples, so they are only walked for well-formedness and
// their timestamp during Decode. Call Decode for the value.
type wireHistogram struct {
	// Raw is the encoded prompb.Histogram message.
	Raw []byte
	// T is the histogram's timestamp in milliseconds, decoded eagerly so
	// ordering and limits need not decode the rest.
	T int64
}

// wireExemplar is one prompb.Exemplar; its Labels follow the same lifetime rules
// as a series' labels.
type wireExemplar struct {
	Labels []label
	T      int64
	V      float64
}

// metricMetadata is one prompb.MetricMetadata.
type metricMetadata struct {
	Type       prompb.MetricMetadata_MetricType
	FamilyName []byte
	Help       []byte
	Unit       []byte
}

// Protobuf wire types.
const (
	wireVarint     = 0
	wireFixed64    = 1
	wireBytes      = 2
	wireStartGroup = 3
	wireEndGroup   = 4
	wireFixed32    = 5
)

// Failures of the wire layer. They are static so that rejecting garbage
// costs no allocation below the point where context is added.
var (
	errWireTruncatedVarint = errors.New("truncated varint")
	errWireVarintOverflow  = errors.New("varint longer than 10 bytes")
	errWireTruncatedFixed  = errors.New("truncated fixed-width field")
	errWireLengthOverflow  = errors.New("length-delimited field runs past the end of its message")
	errWireEndGroup        = errors.New("end-group tag outside a group")
	errWireFieldNumber     = errors.New("illegal field number")
	errWireIllegalType     = errors.New("illegal wire type")
)

// Decode parses b, the snappy-decoded body of a remote-write 1.0 request,
// into r. It resets r first and reuses its capacity. It accepts every input
// prompb.WriteRequest.Unmarshal accepts (unknown fields of any wire type,
// including groups, are skipped) and returns an error wrapping
// errMalformedRequest otherwise; after an error r is empty.
//
// r keeps pointing into b: see writeRequest for the lifetime contract.
func (r *writeRequest) Decode(b []byte) error {
	r.wireReset()
	if err := r.wireDecode(b); err != nil {
		r.wireReset()
		return err
	}
	return nil
}

func (r *writeRequest) wireReset() {
	r.Timeseries = r.Timeseries[:0]
	r.Metadata = r.Metadata[:0]
	r.labels = r.labels[:0]
	r.samples = r.samples[:0]
	r.histograms = r.histograms[:0]
	r.exemplars = r.exemplars[:0]
	r.exemplarLabels = r.exemplarLabels[:0]
}

func (r *writeRequest) wireDecode(b []byte) error {
	for i := 0; i < len(b); {
		start := i
		field, wt, next, err := wireTag(b, i)
		if err != nil {
			return wireRequestError("", -1, start, err)
		}
		i = next
		switch field {
		case 1, 3:
			what := "timeseries"
			if field == 3 {
				what = "metadata"
			}
			if wt != wireBytes {
				return wireRequestError(what, -1, start, wireTypeError(field, wt))
			}
			msg, next, err := wireLengthDelimited(b, i)
			if err != nil {
				return wireRequestError(what, -1, start, err)
			}
			i = next
			if field == 1 {
				if err := r.wireTimeSeries(msg); err != nil {
					return wireRequestError(what, len(r.Timeseries)-1, start, err)
				}
			} else {
				md, err := wireMetadata(msg)
				if err != nil {
					return wireRequestError(what, len(r.Metadata), start, err)
				}
				r.Metadata = append(r.Metadata, md)
			}
		default:
			if i, err = wireSkip(b, i, wt); err != nil {
				return wireRequestError(fmt.Sprintf("unknown field %d", field), -1, start, err)
			}
		}
	}
	return nil
}

// wireRequestError puts the sentinel and where it happened in front of a wire
// failure. It only runs on the error path.
func wireRequestError(what string, index, offset int, err error) error {
	switch {
	case what == "":
		return fmt.Errorf("%w: at byte %d: %w", errMalformedRequest, offset, err)
	case index < 0:
		return fmt.Errorf("%w: %s at byte %d: %w", errMalformedRequest, what, offset, err)
	default:
		return fmt.Errorf("%w: %s %d at byte %d: %w", errMalformedRequest, what, index, offset, err)
	}
}

func wireTypeError(field int32, wt uint8) error {
	return fmt.Errorf("field %d has wire type %d", field, wt)
}

// wireTimeSeries appends the series encoded in b to r.Timeseries; on error
// the partial series stays appended so the caller can name its index.
func (r *writeRequest) wireTimeSeries(b []byte) error {
	if len(r.Timeseries) < cap(r.Timeseries) {
		r.Timeseries = r.Timeseries[:len(r.Timeseries)+1]
	} else {
		r.Timeseries = append(r.Timeseries, timeSeries{})
	}
	ts := &r.Timeseries[len(r.Timeseries)-1]
	*ts = timeSeries{Raw: b}

	// The hot arenas live in locals for the loop: stores through r would be
	// reloaded and written back on every label.
	labels, samples, h := r.labels, r.samples, r.hashScratch[:0]
	lbl, smp, hst, exm := len(labels), len(samples), len(r.histograms), len(r.exemplars)
	for i := 0; i < len(b); {
		var field int32
		var msg []byte
		// Fast path, taken by nearly every field: one of fields 1-4 with a
		// one-byte tag and a one-byte length that fits.
		if c := b[i]; c&7 == wireBytes && c >= 1<<3 && c < 5<<3 && i+1 < len(b) && b[i+1] < 0x80 && int(b[i+1]) < len(b)-i-1 {
			end := i + 2 + int(b[i+1])
			field, msg, i = int32(c>>3), b[i+2:end:end], end
		} else {
			f, wt, next, err := wireTag(b, i)
			if err != nil {
				return err
			}
			i = next
			if f < 1 || f > 4 {
				if i, err = wireSkip(b, i, wt); err != nil {
					return err
				}
				continue
			}
			if wt != wireBytes {
				return wireTypeError(f, wt)
			}
			if msg, i, err = wireLengthDelimited(b, i); err != nil {
				return err
			}
			field = f
		}
		switch field {
		case 1:
			name, value, err := wireLabel(msg)
			if err != nil {
				return fmt.Errorf("label %d: %w", len(labels)-lbl, err)
			}
			// Not append(labels, Label{...}): that builds the Label on the
			// stack with 8-byte stores and copies it with 16-byte loads, which
			// stalls store forwarding on every label.
			if len(labels) == cap(labels) {
				labels = slices.Grow(labels, 1)
			}
			labels = labels[:len(labels)+1]
			l := &labels[len(labels)-1]
			l.Name, l.Value = name, value
			h = append(h, name...)
			h = append(h, 0xff)
			h = append(h, value...)
			h = append(h, 0xff)
		case 2:
			s, err := wireSample(msg)
			if err != nil {
				return fmt.Errorf("sample %d: %w", len(samples)-smp, err)
			}
			samples = append(samples, s)
		case 3:
			if err := r.wireExemplar(msg); err != nil {
				return fmt.Errorf("exemplar %d: %w", len(r.exemplars)-exm, err)
			}
		case 4:
			t, err := wireHistogramTimestamp(msg)
			if err != nil {
				return fmt.Errorf("histogram %d: %w", len(r.histograms)-hst, err)
			}
			r.histograms = append(r.histograms, wireHistogram{Raw: msg, T: t})
		}
	}
	r.labels, r.samples, r.hashScratch = labels, samples, h

	// Three-index slices: a caller appending to one series must not overwrite
	// the next series' entries in the shared backing array.
	ts.Labels = labels[lbl:len(labels):len(labels)]
	if len(samples) > smp {
		ts.Samples = samples[smp:len(samples):len(samples)]
	}
	if len(r.histograms) > hst {
		ts.Histograms = r.histograms[hst:len(r.histograms):len(r.histograms)]
	}
	if len(r.exemplars) > exm {
		ts.Exemplars = r.exemplars[exm:len(r.exemplars):len(r.exemplars)]
	}
	ts.LabelsHash = xxhash.Sum64(h)
	return nil
}

func wireLabel(b []byte) (name, value []byte, err error) {
	// Fast path for what every encoder writes: name then value, each with a
	// one-byte length, and nothing else.
	if len(b) >= 4 && b[0] == 1<<3|wireBytes && b[1] < 0x80 {
		n := 2 + int(b[1])
		if n+2 <= len(b) && b[n] == 2<<3|wireBytes && b[n+1] < 0x80 && n+2+int(b[n+1]) == len(b) {
			return b[2:n:n], b[n+2:], nil
		}
	}
	for i := 0; i < len(b); {
		field, wt, next, err := wireTag(b, i)
		if err != nil {
			return nil, nil, err
		}
		i = next
		switch field {
		case 1, 2:
			if wt != wireBytes {
				return nil, nil, wireTypeError(field, wt)
			}
			s, next, err := wireLengthDelimited(b, i)
			if err != nil {
				return nil, nil, err
			}
			i = next
			if field == 1 {
				name = s
			} else {
				value = s
			}
		default:
			if i, err = wireSkip(b, i, wt); err != nil {
				return nil, nil, err
			}
		}
	}
	return name, value, nil
}

func wireSample(b []byte) (sample, error) {
	var s sample
	// Fast path for what every encoder writes: value, then timestamp, then
	// nothing else.
	if len(b) >= 11 && b[0] == 1<<3|wireFixed64 && b[9] == 2<<3|wireVarint {
		if t, next := wireUvarint(b, 10); next == len(b) {
			s.V = math.Float64frombits(binary.LittleEndian.Uint64(b[1:9]))
			s.T = int64(t)
			return s, nil
		}
	}
	for i := 0; i < len(b); {
		field, wt, next, err := wireTag(b, i)
		if err != nil {
			return s, err
		}
		i = next
		switch field {
		case 1:
			if wt != wireFixed64 {
				return s, wireTypeError(field, wt)
			}
			if len(b)-i < 8 {
				return s, errWireTruncatedFixed
			}
			s.V = math.Float64frombits(binary.LittleEndian.Uint64(b[i:]))
			i += 8
		case 2:
			if wt != wireVarint {
				return s, wireTypeError(field, wt)
			}
			v, next := wireUvarint(b, i)
			if next < 0 {
				return s, wireVarintError(next)
			}
			s.T, i = int64(v), next
		default:
			if i, err = wireSkip(b, i, wt); err != nil {
				return s, err
			}
		}
	}
	return s, nil
}

func (r *writeRequest) wireExemplar(b []byte) error {
	lbl := len(r.exemplarLabels)
	var e wireExemplar
	for i := 0; i < len(b); {
		field, wt, next, err := wireTag(b, i)
		if err != nil {
			return err
		}
		i = next
		switch field {
		case 1:
			if wt != wireBytes {
				return wireTypeError(field, wt)
			}
			msg, next, err := wireLengthDelimited(b, i)
			if err != nil {
				return err
			}
			i = next
			name, value, err := wireLabel(msg)
			if err != nil {
				return fmt.Errorf("label %d: %w", len(r.exemplarLabels)-lbl, err)
			}
			r.exemplarLabels = append(r.exemplarLabels, label{Name: name, Value: value})
		case 2:
			if wt != wireFixed64 {
				return wireTypeError(field, wt)
			}
			if len(b)-i < 8 {
				return errWireTruncatedFixed
			}
			e.V = math.Float64frombits(binary.LittleEndian.Uint64(b[i:]))
			i += 8
		case 3:
			if wt != wireVarint {
				return wireTypeError(field, wt)
			}
			v, next := wireUvarint(b, i)
			if next < 0 {
				return wireVarintError(next)
			}
			e.T, i = int64(v), next
		default:
			if i, err = wireSkip(b, i, wt); err != nil {
				return err
			}
		}
	}
	if len(r.exemplarLabels) > lbl {
		e.Labels = r.exemplarLabels[lbl:len(r.exemplarLabels):len(r.exemplarLabels)]
	}
	r.exemplars = append(r.exemplars, e)
	return nil
}

// wireHistogramTimestamp checks b the way prompb.Histogram.Unmarshal does,
// so that Histogram.Decode succeeds on everything Decode accepted, and returns
// the timestamp (field 15, last occurrence wins).
func wireHistogramTimestamp(b []byte) (int64, error) {
	var t int64
	for i := 0; i < len(b); {
		field, wt, next, err := wireTag(b, i)
		if err != nil {
			return 0, err
		}
		i = next
		switch field {
		case 1, 4, 6, 14, 15: // count_int, schema, zero_count_int, reset_hint, timestamp
			if wt != wireVarint {
				return 0, wireTypeError(field, wt)
			}
			v, next := wireUvarint(b, i)
			if next < 0 {
				return 0, wireVarintError(next)
			}
			i = next
			if field == 15 {
				t = int64(v)
			}
		case 2, 3, 5, 7: // count_float, sum, zero_threshold, zero_count_float
			if wt != wireFixed64 {
				return 0, wireTypeError(field, wt)
			}
			if len(b)-i < 8 {
				return 0, errWireTruncatedFixed
			}
			i += 8
		case 8, 11: // negative_spans, positive_spans
			if wt != wireBytes {
				return 0, wireTypeError(field, wt)
			}
			msg, next, err := wireLengthDelimited(b, i)
			if err != nil {
				return 0, err
			}
			i = next
			if err := wireBucketSpan(msg); err != nil {
				return 0, fmt.Errorf("bucket span: %w", err)
			}
		case 9, 12: // negative_deltas, positive_deltas: sint64, packed or not
			switch wt {
			case wireVarint:
				_, next := wireUvarint(b, i)
				if next < 0 {
					return 0, wireVarintError(next)
				}
				i = next
			case wireBytes:
				_, end, err := wireLengthDelimited(b, i)
				if err != nil {
					return 0, err
				}
				// Like prompb, read whole elements even when the last one
				// crosses the packed field's end: only the message bounds them.
				for i = wireSkipLength(b, i); i < end; {
					_, next := wireUvarint(b, i)
					if next < 0 {
						return 0, wireVarintError(next)
					}
					i = next
				}
			default:
				return 0, wireTypeError(field, wt)
			}
		case 10, 13, 16: // negative_counts, positive_counts, custom_values: double, packed or not
			switch wt {
			case wireFixed64:
				if len(b)-i < 8 {
					return 0, errWireTruncatedFixed
				}
				i += 8
			case wireBytes:
				_, end, err := wireLengthDelimited(b, i)
				if err != nil {
					return 0, err
				}
				for i = wireSkipLength(b, i); i < end; i += 8 {
					if len(b)-i < 8 {
						return 0, errWireTruncatedFixed
					}
				}
			default:
				return 0, wireTypeError(field, wt)
			}
		default:
			if i, err = wireSkip(b, i, wt); err != nil {
				return 0, err
			}
		}
	}
	return t, nil
}

func wireBucketSpan(b []byte) error {
	for i := 0; i < len(b); {
		field, wt, next, err := wireTag(b, i)
		if err != nil {
			return err
		}
		i = next
		switch field {
		case 1, 2: // offset, length
			if wt != wireVarint {
				return wireTypeError(field, wt)
			}
			_, next := wireUvarint(b, i)
			if next < 0 {
				return wireVarintError(next)
			}
			i = next
		default:
			if i, err = wireSkip(b, i, wt); err != nil {
				return err
			}
		}
	}
	return nil
}

func wireMetadata(b []byte) (metricMetadata, error) {
	var md metricMetadata
	for i := 0; i < len(b); {
		field, wt, next, err := wireTag(b, i)
		if err != nil {
			return md, err
		}
		i = next
		switch field {
		case 1:
			if wt != wireVarint {
				return md, wireTypeError(field, wt)
			}
			v, next := wireUvarint(b, i)
			if next < 0 {
				return md, wireVarintError(next)
			}
			// An enum is an int32 on the wire; prompb truncates likewise.
			md.Type, i = prompb.MetricMetadata_MetricType(int32(v)), next
		case 2, 4, 5:
			if wt != wireBytes {
				return md, wireTypeError(field, wt)
			}
			s, next, err := wireLengthDelimited(b, i)
			if err != nil {
				return md, err
			}
			i = next
			switch field {
			case 2:
				md.FamilyName = s
			case 4:
				md.Help = s
			default:
				md.Unit = s
			}
		default:
			if i, err = wireSkip(b, i, wt); err != nil {
				return md, err
			}
		}
	}
	return md, nil
}

// wireUvarint reads a base-128 varint at b[i:] and returns it with the index
// after it. A negative index reports failure (see wireVarintError). Like
// prompb it accepts up to 10 bytes and drops bits beyond 64 in the tenth. The
// one-byte case is kept small enough to inline.
func wireUvarint(b []byte, i int) (uint64, int) {
	if uint(i) < uint(len(b)) {
		if c := b[i]; c < 0x80 {
			return uint64(c), i + 1
		}
	}
	return wireUvarintSlow(b, i)
}

const (
	wireVarintTruncated = -1
	wireVarintTooLong   = -2
)

//go:noinline
func wireUvarintSlow(b []byte, i int) (uint64, int) {
	var v uint64
	for shift := uint(0); shift < 64; shift += 7 {
		if i >= len(b) {
			return 0, wireVarintTruncated
		}
		c := b[i]
		i++
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return v, i
		}
	}
	return 0, wireVarintTooLong
}

func wireVarintError(code int) error {
	if code == wireVarintTooLong {
		return errWireVarintOverflow
	}
	return errWireTruncatedVarint
}

// wireTag reads a field tag. The field number is truncated to int32 as
// prompb does, so both agree on which inputs name field 1; numbers <= 0 and
// stray end-group tags are errors, as there. The one-byte case, which covers
// every field of remote write, inlines.
func wireTag(b []byte, i int) (field int32, wt uint8, next int, err error) {
	if uint(i) < uint(len(b)) {
		if c := b[i]; c < 0x80 && c >= 1<<3 && c&7 != wireEndGroup {
			return int32(c >> 3), c & 7, i + 1, nil
		}
	}
	return wireTagSlow(b, i)
}

//go:noinline
func wireTagSlow(b []byte, i int) (field int32, wt uint8, next int, err error) {
	v, next := wireUvarint(b, i)
	if next < 0 {
		return 0, 0, 0, wireVarintError(next)
	}
	wt = uint8(v & 7)
	if wt == wireEndGroup {
		return 0, 0, 0, errWireEndGroup
	}
	field = int32(v >> 3)
	if field <= 0 {
		return 0, 0, 0, errWireFieldNumber
	}
	return field, wt, next, nil
}

// wireLengthDelimited reads a length prefix at b[i:] and returns the payload
// it announces, capped so appends cannot run into what follows, and the index
// after it. The length is checked against what is left before any use.
func wireLengthDelimited(b []byte, i int) (payload []byte, next int, err error) {
	if uint(i) < uint(len(b)) {
		if n := int(b[i]); n < 0x80 && n < len(b)-i {
			end := i + 1 + n
			return b[i+1 : end : end], end, nil
		}
	}
	return wireLengthDelimitedSlow(b, i)
}

//go:noinline
func wireLengthDelimitedSlow(b []byte, i int) (payload []byte, next int, err error) {
	n, i := wireUvarint(b, i)
	if i < 0 {
		return nil, 0, wireVarintError(i)
	}
	if n > uint64(len(b)-i) {
		return nil, 0, errWireLengthOverflow
	}
	end := i + int(n)
	return b[i:end:end], end, nil
}

// wireSkipLength returns the index after the (already validated) length
// prefix at b[i:].
func wireSkipLength(b []byte, i int) int {
	_, next := wireUvarint(b, i)
	return next
}

// wireSkip skips the value of a field of wire type wt whose tag ended at
// b[i-1] and returns the index after it. Groups may nest to any depth: a
// counter tracks them, not recursion. Like prompb, an end-group tag need not
// repeat the start-group field number.
func wireSkip(b []byte, i int, wt uint8) (int, error) {
	depth := 0
	for {
		switch wt {
		case wireVarint:
			_, next := wireUvarint(b, i)
			if next < 0 {
				return 0, wireVarintError(next)
			}
			i = next
		case wireFixed64:
			if len(b)-i < 8 {
				return 0, errWireTruncatedFixed
			}
			i += 8
		case wireBytes:
			_, next, err := wireLengthDelimited(b, i)
			if err != nil {
				return 0, err
			}
			i = next
		case wireFixed32:
			if len(b)-i < 4 {
				return 0, errWireTruncatedFixed
			}
			i += 4
		case wireStartGroup:
			depth++
		case wireEndGroup:
			if depth == 0 {
				return 0, errWireEndGroup
			}
			depth--
		default:
			return 0, errWireIllegalType
		}
		if depth == 0 {
			return i, nil
		}
		// Inside a group: the next tag, with any field number.
		v, next := wireUvarint(b, i)
		if next < 0 {
			return 0, wireVarintError(next)
		}
		i, wt = next, uint8(v&7)
	}
}

// Decode decodes the histogram with prompb and converts it with the upstream
// helpers: exactly one of the results is non-nil when err is nil. The result
// shares no memory with Raw.
func (h wireHistogram) Decode() (*histogram.Histogram, *histogram.FloatHistogram, error) {
	var p prompb.Histogram
	if err := p.Unmarshal(h.Raw); err != nil {
		return nil, nil, fmt.Errorf("%w: histogram: %w", errMalformedRequest, err)
	}
	if p.IsFloatHistogram() {
		return nil, p.ToFloatHistogram(), nil
	}
	return p.ToIntHistogram(), nil, nil
}

// BuildLabels returns ts.Labels as labels.Labels, sorted, with the strings
// copied out of the request buffer so the result may be retained (the
// new-series path of an appender). b is reset first; reuse one per request.
// Labels with empty values are kept, as Prometheus's receiver keeps them.
func (ts *timeSeries) BuildLabels(b *labels.ScratchBuilder) labels.Labels {
	return buildLabels(b, ts.Labels)
}

// buildLabels is timeSeries.BuildLabels for any labels, e.g. an exemplar's.
func buildLabels(b *labels.ScratchBuilder, ls []label) labels.Labels {
	b.Reset()
	if wireBuilderCopies() {
		// The builder copies into its own storage, so strings aliasing the
		// request buffer live only until Labels returns: one copy in all.
		for _, l := range ls {
			b.Add(wireUnsafeString(l.Name), wireUnsafeString(l.Value))
		}
	} else {
		// The builder keeps the strings it was given (slicelabels,
		// dedupelabels): hand it one fresh allocation holding all of them.
		n := 0
		for _, l := range ls {
			n += len(l.Name) + len(l.Value)
		}
		buf := make([]byte, 0, n)
		for _, l := range ls {
			buf = append(buf, l.Name...)
			buf = append(buf, l.Value...)
		}
		s := wireUnsafeString(buf)
		off := 0
		for _, l := range ls {
			name := s[off : off+len(l.Name)]
			off += len(l.Name)
			value := s[off : off+len(l.Value)]
			off += len(l.Value)
			b.Add(name, value)
		}
	}
	b.Sort()
	return b.Labels()
}

// wireBuilderCopies reports whether labels.ScratchBuilder.Labels copies the
// strings it was given, which depends on the labels build tag. It is probed
// rather than assumed so that a build tag can never make buildLabels return
// strings that alias a reused request buffer.
var wireBuilderCopies = sync.OnceValue(func() bool {
	name, value := []byte("probe_name"), []byte("probe_value")
	b := labels.NewScratchBuilder(1)
	b.Add(wireUnsafeString(name), wireUnsafeString(value))
	ls := b.Labels()
	name[0], value[0] = 'X', 'X'
	return ls.Get("probe_name") == "probe_value"
})

// wireUnsafeString views b as a string without copying. The string is only
// valid while b is neither modified nor reused.
func wireUnsafeString(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// labelsString formats labels for messages, in wire order, like
// labels.Labels.String: {__name__="up", job="x"}. Names that are not plain
// identifiers are quoted, and so is invalid UTF-8, so the result is one line.
func labelsString(ls []label) string {
	return string(wireAppendLabels(nil, ls, math.MaxInt))
}

// wireAppendLabels appends the labelsString form of ls to dst. With a limit,
// names and values longer than it are cut, and so is the list once the
// output passes 4*limit bytes; "…" marks each cut.
func wireAppendLabels(dst []byte, ls []label, limit int) []byte {
	start := len(dst)
	dst = append(dst, '{')
	for i, l := range ls {
		if limit < math.MaxInt/4 && len(dst)-start > 4*limit {
			return append(dst, ", …}"...)
		}
		if i > 0 {
			dst = append(dst, ", "...)
		}
		name, cutName := wireCut(l.Name, limit)
		if !cutName && wireIsIdentifier(name) {
			dst = append(dst, name...)
		} else {
			dst = strconv.AppendQuote(dst, wireUnsafeString(name))
		}
		if cutName {
			dst = append(dst, "…"...)
		}
		dst = append(dst, '=')
		value, cutValue := wireCut(l.Value, limit)
		dst = strconv.AppendQuote(dst, wireUnsafeString(value))
		if cutValue {
			dst = append(dst, "…"...)
		}
	}
	return append(dst, '}')
}

func wireCut(s []byte, limit int) ([]byte, bool) {
	if len(s) <= limit {
		return s, false
	}
	return s[:limit], true
}

// wireIsIdentifier reports whether s is a legacy Prometheus label name,
// which needs no quotes.
func wireIsIdentifier(s []byte) bool {
	if len(s) == 0 {
		return false
	}
	for i, c := range s {
		if c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9' {
			continue
		}
		return false
	}
	return true
}
