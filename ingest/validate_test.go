package ingest

import (
	"bytes"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/prometheus/prometheus/prompb"
)

func seriesOf(kv ...string) *timeSeries {
	ts := &timeSeries{}
	for i := 0; i < len(kv); i += 2 {
		ts.Labels = append(ts.Labels, label{Name: []byte(kv[i]), Value: []byte(kv[i+1])})
	}
	return ts
}

func TestValidateSeries(t *testing.T) {
	withExemplar := func(ts *timeSeries, kv ...string) *timeSeries {
		ts.Exemplars = append(ts.Exemplars, wireExemplar{Labels: seriesOf(kv...).Labels})
		return ts
	}
	tests := []struct {
		name   string
		ts     *timeSeries
		reason string // "" for valid
		detail string // in the message
	}{
		{"valid", seriesOf("__name__", "up", "instance", "a:9100", "job", "node"), "", ""},
		{"valid utf-8 name and value", seriesOf("__name__", "résumé_total", "service.name", "café ☕"), "", ""},
		{"valid with exemplar", withExemplar(seriesOf("__name__", "up"), "trace_id", "abc"), "", ""},
		{"only __name__", seriesOf("__name__", "x"), "", ""},
		{"empty value elsewhere", seriesOf("__name__", "x", "a", ""), "", ""},
		{"no labels", seriesOf(), reasonNoLabels, "no labels"},
		{"empty label name", seriesOf("", "v", "__name__", "x"), reasonEmptyLabelName, "empty label name"},
		{"duplicate label name", seriesOf("__name__", "x", "job", "a", "job", "b"), reasonDuplicateLabelName, `duplicate label name "job"`},
		{"duplicate __name__", seriesOf("__name__", "x", "__name__", "y"), reasonDuplicateLabelName, `duplicate label name "__name__"`},
		{"not sorted", seriesOf("__name__", "x", "job", "a", "instance", "b"), reasonLabelsNotSorted, `"job" before "instance"`},
		{"not sorted, byte order", seriesOf("__name__", "x", "b", "1", "B", "2"), reasonLabelsNotSorted, `"b" before "B"`},
		{"invalid utf-8 in name", seriesOf("__name__", "x", "j\xffb", "a"), reasonInvalidUTF8, `label name "j\xffb"`},
		{"invalid utf-8 in value", seriesOf("__name__", "x", "job", "\xc3\x28"), reasonInvalidUTF8, `value of label "job"`},
		{"truncated utf-8 in value", seriesOf("__name__", "caf\xc3"), reasonInvalidUTF8, `value of label "__name__"`},
		{"surrogate in value", seriesOf("__name__", "x\xed\xa0\x80"), reasonInvalidUTF8, "value"},
		{"missing __name__", seriesOf("instance", "a", "job", "b"), reasonMissingMetricName, "missing metric name"},
		{"empty __name__", seriesOf("__name__", "", "job", "b"), reasonMissingMetricName, "empty metric name"},
		{"invalid utf-8 in exemplar name", withExemplar(seriesOf("__name__", "x"), "\xff", "v"), reasonInvalidExemplarUTF8, "exemplar 0"},
		{"invalid utf-8 in exemplar value", withExemplar(withExemplar(seriesOf("__name__", "x"), "a", "b"), "trace_id", "\xfe"), reasonInvalidExemplarUTF8, `label "trace_id" of exemplar 1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := validateSeries(tt.ts)
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("ValidateSeries = %v, want nil", err)
				}
				return
			}
			var ise *invalidSeriesError
			if !errors.As(err, &ise) || !errors.Is(err, errInvalidSeries) {
				t.Fatalf("ValidateSeries = %v, want an *InvalidSeriesError", err)
			}
			if ise.Reason != tt.reason {
				t.Errorf("reason %q, want %q", ise.Reason, tt.reason)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.detail) || !strings.Contains(msg, labelsString(tt.ts.Labels)) || strings.Contains(msg, "\n") {
				t.Errorf("message %q should name the series and say %q on one line", msg, tt.detail)
			}
			if errors.Is(err, errMalformedRequest) {
				t.Errorf("an invalid series must not look like a malformed request")
			}
		})
	}
}

// Decoded series take the fast path that checks UTF-8 over the span of Raw
// holding the labels; these cases make that span non-ASCII in each way.
func TestValidateDecodedSeries(t *testing.T) {
	long := strings.Repeat("v", 200) // its length takes a two-byte varint
	tests := []struct {
		name   string
		ts     prompb.TimeSeries
		reason string
	}{
		{"ascii", prompb.TimeSeries{Labels: testLabels("__name__", "up", "job", "x")}, ""},
		{"long ascii value", prompb.TimeSeries{Labels: testLabels("__name__", "up", "job", long)}, ""},
		{"utf-8 value", prompb.TimeSeries{Labels: testLabels("__name__", "up", "job", "ünïcode")}, ""},
		{"invalid utf-8 value", prompb.TimeSeries{Labels: testLabels("__name__", "up", "job", "\xff")}, reasonInvalidUTF8},
		{"invalid utf-8 after a long value", prompb.TimeSeries{Labels: testLabels("__name__", long, "job", "\xff")}, reasonInvalidUTF8},
		{"empty values", prompb.TimeSeries{Labels: testLabels("__name__", "up", "a", "", "b", "")}, ""},
		{"samples between labels", prompb.TimeSeries{Labels: testLabels("__name__", "up"), Samples: []prompb.Sample{{Value: math.Float64frombits(0xffffffffffffffff)}}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := mustMarshal(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{tt.ts}})
			var r writeRequest
			if err := r.Decode(body); err != nil {
				t.Fatal(err)
			}
			got := ""
			var ise *invalidSeriesError
			if err := validateSeries(&r.Timeseries[0]); errors.As(err, &ise) {
				got = ise.Reason
			} else if err != nil {
				t.Fatal(err)
			}
			if got != tt.reason {
				t.Errorf("reason %q, want %q", got, tt.reason)
			}
		})
	}
	// Labels interleaved with a sample whose bytes are not ASCII: the span
	// holds the sample too.
	body := msg(nil, 1, cat(
		msg(nil, 1, labelBytes("__name__", "up")),
		msg(nil, 2, sampleBytes(math.Float64frombits(0xffffffffffffffff), 1)),
		msg(nil, 1, labelBytes("job", "x")),
	))
	var r writeRequest
	if err := r.Decode(body); err != nil {
		t.Fatal(err)
	}
	if err := validateSeries(&r.Timeseries[0]); err != nil {
		t.Errorf("interleaved sample: %v", err)
	}
}

func TestInvalidSeriesErrorOutlivesTheBuffer(t *testing.T) {
	body := mustMarshal(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{Labels: testLabels("job", "x")}}})
	var r writeRequest
	if err := r.Decode(body); err != nil {
		t.Fatal(err)
	}
	err := validateSeries(&r.Timeseries[0])
	before := err.Error()
	clear(body)
	if after := err.Error(); after != before || !strings.Contains(after, `job="x"`) {
		t.Errorf("error changed with the buffer: %q, then %q", before, after)
	}
}

func TestInvalidSeriesErrorIsBounded(t *testing.T) {
	ts := seriesOf("__name__", strings.Repeat("x", 1<<20), "job", "\n"+strings.Repeat("y", 1<<20))
	ts.Labels = append(ts.Labels, ts.Labels[0])
	msg := validateSeries(ts).Error()
	if len(msg) > 4096 || strings.Contains(msg, "\n") {
		t.Errorf("message of %d bytes for a hostile series: %.300q", len(msg), msg)
	}
}

func TestValidateSeriesDoesNotAllocate(t *testing.T) {
	body := mustMarshal(t, benchRequest(200))
	var r writeRequest
	if err := r.Decode(body); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(10, func() {
		for i := range r.Timeseries {
			if err := validateSeries(&r.Timeseries[i]); err != nil {
				t.Fatal(err)
			}
		}
	}); n != 0 {
		t.Errorf("ValidateSeries allocates %v times per request of valid series", n)
	}
}

// referenceValidate is validateSeries written for clarity, not speed, to
// check it in FuzzDecode. It returns the reason or "". The order in which it
// looks for problems is part of the contract: structure label by label, then
// UTF-8, then the metric name's presence, then exemplars.
func referenceValidate(ts *timeSeries) string {
	if len(ts.Labels) == 0 {
		return reasonNoLabels
	}
	for i, l := range ts.Labels {
		switch {
		case len(l.Name) == 0:
			return reasonEmptyLabelName
		case i > 0 && bytes.Equal(ts.Labels[i-1].Name, l.Name):
			return reasonDuplicateLabelName
		case i > 0 && bytes.Compare(ts.Labels[i-1].Name, l.Name) > 0:
			return reasonLabelsNotSorted
		case string(l.Name) == "__name__" && len(l.Value) == 0:
			return reasonMissingMetricName
		}
	}
	for _, l := range ts.Labels {
		if !utf8.Valid(l.Name) || !utf8.Valid(l.Value) {
			return reasonInvalidUTF8
		}
	}
	if !slices.ContainsFunc(ts.Labels, func(l label) bool { return string(l.Name) == "__name__" }) {
		return reasonMissingMetricName
	}
	for _, e := range ts.Exemplars {
		for _, l := range e.Labels {
			if !utf8.Valid(l.Name) || !utf8.Valid(l.Value) {
				return reasonInvalidExemplarUTF8
			}
		}
	}
	return ""
}

func BenchmarkValidateSeries(b *testing.B) {
	body := mustMarshal(b, benchRequest(2000))
	var r writeRequest
	if err := r.Decode(body); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		for i := range r.Timeseries {
			if err := validateSeries(&r.Timeseries[i]); err != nil {
				b.Fatal(err)
			}
		}
	}
}
