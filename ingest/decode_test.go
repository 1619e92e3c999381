package ingest

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/protobuf/encoding/protowire"
)

// testIntHistogram and testFloatHistogram are small but use every part of
// the encoding: both bucket sides, spans with gaps, a zero bucket, custom
// values absent.
func testIntHistogram() *histogram.Histogram {
	return &histogram.Histogram{
		CounterResetHint: histogram.NotCounterReset,
		Schema:           1,
		ZeroThreshold:    0.001,
		ZeroCount:        3,
		Count:            21,
		Sum:              37.5,
		PositiveSpans:    []histogram.Span{{Offset: 0, Length: 2}, {Offset: 1, Length: 2}},
		PositiveBuckets:  []int64{1, 1, -1, 0},
		NegativeSpans:    []histogram.Span{{Offset: -2, Length: 1}},
		NegativeBuckets:  []int64{2},
	}
}

func testFloatHistogram() *histogram.FloatHistogram {
	return &histogram.FloatHistogram{
		CounterResetHint: histogram.GaugeType,
		Schema:           -1,
		ZeroThreshold:    0.01,
		ZeroCount:        1.5,
		Count:            12.25,
		Sum:              -3.5,
		PositiveSpans:    []histogram.Span{{Offset: 1, Length: 3}},
		PositiveBuckets:  []float64{1, 2.5, 3},
		NegativeSpans:    []histogram.Span{{Offset: 0, Length: 2}},
		NegativeBuckets:  []float64{4, 0.25},
	}
}

func testLabels(kv ...string) []prompb.Label {
	ls := make([]prompb.Label, 0, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		ls = append(ls, prompb.Label{Name: kv[i], Value: kv[i+1]})
	}
	return ls
}

func mustMarshal(t testing.TB, req *prompb.WriteRequest) []byte {
	t.Helper()
	b, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// referenceHash hashes labels the slow, obvious way, to check LabelsHash.
func referenceHash(ls []prompb.Label) uint64 {
	d := xxhash.New()
	for _, l := range ls {
		_, _ = d.WriteString(l.Name)
		_, _ = d.Write([]byte{0xff})
		_, _ = d.WriteString(l.Value)
		_, _ = d.Write([]byte{0xff})
	}
	return d.Sum64()
}

func sameFloat(a, b float64) bool { return math.Float64bits(a) == math.Float64bits(b) }

func diffLabels(what string, got []label, want []prompb.Label) error {
	if len(got) != len(want) {
		return fmt.Errorf("%s: %d labels, want %d", what, len(got), len(want))
	}
	for i := range got {
		if string(got[i].Name) != want[i].Name || string(got[i].Value) != want[i].Value {
			return fmt.Errorf("%s: label %d is %q=%q, want %q=%q", what, i, got[i].Name, got[i].Value, want[i].Name, want[i].Value)
		}
	}
	return nil
}

// diffWithPrompb compares a decoded request with what prompb decodes from the
// same bytes, field by field; histograms and Raw are compared by decoding
// them with prompb and re-encoding both sides.
func diffWithPrompb(got *writeRequest, want *prompb.WriteRequest) error {
	if len(got.Timeseries) != len(want.Timeseries) {
		return fmt.Errorf("%d series, want %d", len(got.Timeseries), len(want.Timeseries))
	}
	for i := range got.Timeseries {
		g, w := &got.Timeseries[i], &want.Timeseries[i]
		if err := diffLabels(fmt.Sprintf("series %d", i), g.Labels, w.Labels); err != nil {
			return err
		}
		if h := referenceHash(w.Labels); g.LabelsHash != h {
			return fmt.Errorf("series %d: LabelsHash %x, want %x", i, g.LabelsHash, h)
		}
		var raw prompb.TimeSeries
		if err := raw.Unmarshal(g.Raw); err != nil {
			return fmt.Errorf("series %d: prompb rejects Raw: %w", i, err)
		}
		if a, b := mustMarshalTS(&raw), mustMarshalTS(w); !bytes.Equal(a, b) {
			return fmt.Errorf("series %d: Raw decodes to a different series", i)
		}
		if len(g.Samples) != len(w.Samples) {
			return fmt.Errorf("series %d: %d samples, want %d", i, len(g.Samples), len(w.Samples))
		}
		for j, s := range g.Samples {
			if s.T != w.Samples[j].Timestamp || !sameFloat(s.V, w.Samples[j].Value) {
				return fmt.Errorf("series %d sample %d: %v, want %v", i, j, s, w.Samples[j])
			}
		}
		if len(g.Histograms) != len(w.Histograms) {
			return fmt.Errorf("series %d: %d histograms, want %d", i, len(g.Histograms), len(w.Histograms))
		}
		for j, h := range g.Histograms {
			if h.T != w.Histograms[j].Timestamp {
				return fmt.Errorf("series %d histogram %d: T %d, want %d", i, j, h.T, w.Histograms[j].Timestamp)
			}
			var p prompb.Histogram
			if err := p.Unmarshal(h.Raw); err != nil {
				return fmt.Errorf("series %d histogram %d: prompb rejects Raw: %w", i, j, err)
			}
			a, _ := p.Marshal()
			b, _ := w.Histograms[j].Marshal()
			if !bytes.Equal(a, b) {
				return fmt.Errorf("series %d histogram %d: Raw decodes to a different histogram", i, j)
			}
			ih, fh, err := h.Decode()
			if err != nil || (ih == nil) == (fh == nil) {
				return fmt.Errorf("series %d histogram %d: Decode = %v, %v, %v", i, j, ih, fh, err)
			}
		}
		if len(g.Exemplars) != len(w.Exemplars) {
			return fmt.Errorf("series %d: %d exemplars, want %d", i, len(g.Exemplars), len(w.Exemplars))
		}
		for j, e := range g.Exemplars {
			we := w.Exemplars[j]
			if e.T != we.Timestamp || !sameFloat(e.V, we.Value) {
				return fmt.Errorf("series %d exemplar %d: T=%d V=%v, want T=%d V=%v", i, j, e.T, e.V, we.Timestamp, we.Value)
			}
			if err := diffLabels(fmt.Sprintf("series %d exemplar %d", i, j), e.Labels, we.Labels); err != nil {
				return err
			}
		}
	}
	if len(got.Metadata) != len(want.Metadata) {
		return fmt.Errorf("%d metadata, want %d", len(got.Metadata), len(want.Metadata))
	}
	for i, m := range got.Metadata {
		w := want.Metadata[i]
		if m.Type != w.Type || string(m.FamilyName) != w.MetricFamilyName || string(m.Help) != w.Help || string(m.Unit) != w.Unit {
			return fmt.Errorf("metadata %d: %+v, want %+v", i, m, w)
		}
	}
	return nil
}

func mustMarshalTS(ts *prompb.TimeSeries) []byte {
	b, err := ts.Marshal()
	if err != nil {
		panic(err)
	}
	return b
}

// Raw wire encoding helpers for inputs gogo never produces.
func tag(b []byte, field protowire.Number, wt protowire.Type) []byte {
	return protowire.AppendTag(b, field, wt)
}

func msg(b []byte, field protowire.Number, payload []byte) []byte {
	return protowire.AppendBytes(tag(b, field, protowire.BytesType), payload)
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// unknownFields is one unknown field of every wire type, a nested group
// included, under field numbers none of the messages use.
func unknownFields() []byte {
	var b []byte
	b = protowire.AppendVarint(tag(b, 100, protowire.VarintType), 1<<40)
	b = protowire.AppendFixed64(tag(b, 101, protowire.Fixed64Type), 7)
	b = msg(b, 102, []byte("opaque"))
	b = protowire.AppendFixed32(tag(b, 103, protowire.Fixed32Type), 9)
	b = tag(b, 104, protowire.StartGroupType)
	b = protowire.AppendVarint(tag(b, 1, protowire.VarintType), 5)
	b = tag(b, 2, protowire.StartGroupType)
	b = msg(b, 3, []byte{0xff, 0x00})
	b = tag(b, 2, protowire.EndGroupType)
	b = tag(b, 104, protowire.EndGroupType)
	return b
}

func labelBytes(name, value string) []byte {
	return msg(msg(nil, 1, []byte(name)), 2, []byte(value))
}

func sampleBytes(v float64, t int64) []byte {
	b := protowire.AppendFixed64(tag(nil, 1, protowire.Fixed64Type), math.Float64bits(v))
	return protowire.AppendVarint(tag(b, 2, protowire.VarintType), uint64(t))
}

func TestDecodeMatchesPrompb(t *testing.T) {
	ih, fh := testIntHistogram(), testFloatHistogram()
	withUnknown := cat(
		unknownFields(),
		msg(nil, 1, cat(
			unknownFields(),
			msg(nil, 1, cat(unknownFields(), labelBytes("__name__", "up"))),
			msg(nil, 1, cat(labelBytes("job", "x"), unknownFields())),
			msg(nil, 2, cat(sampleBytes(1, 1000), unknownFields())),
			msg(nil, 3, cat(msg(nil, 1, labelBytes("trace_id", "abc")), unknownFields())),
			unknownFields(),
		)),
		protowire.AppendVarint(tag(nil, 2, protowire.VarintType), 3), // the reserved field 2
		msg(nil, 3, cat(unknownFields(), msg(nil, 2, []byte("up")), protowire.AppendVarint(tag(nil, 3, protowire.VarintType), 1))),
		unknownFields(),
	)
	histWithUnknown := mustMarshalHistogram(t, prompb.FromIntHistogram(5, ih))
	histWithUnknown = cat(histWithUnknown, unknownFields())
	// Varints prompb accepts but a strict decoder might not: a ten-byte
	// timestamp with bits past 64, a padded length, a padded field tag.
	oddVarints := msg(nil, 1, cat(
		msg(nil, 1, labelBytes("__name__", "odd")),
		[]byte{0x12, 0x0b}, tag(nil, 2, protowire.VarintType), bytes.Repeat([]byte{0xff}, 9), []byte{0x7f},
		[]byte{0x0a, 0x85, 0x00}, labelBytes("a", ""),
	))
	// prompb truncates field numbers to int32, so this names field 1 too.
	wideFieldNumber := cat(protowire.AppendVarint(nil, (1<<32|1)<<3|2), protowire.AppendBytes(nil, msg(nil, 1, labelBytes("__name__", "wide"))))
	// Repeated scalar fields: the last one wins, in prompb and here.
	repeatedScalars := msg(nil, 1, msg(nil, 2, cat(sampleBytes(1, 1), sampleBytes(2, 2))))
	// Packed and unpacked forms of the repeated histogram fields.
	unpackedHistogram := cat(
		protowire.AppendVarint(tag(nil, 1, protowire.VarintType), 3),
		protowire.AppendVarint(tag(nil, 12, protowire.VarintType), protowire.EncodeZigZag(-1)),
		protowire.AppendVarint(tag(nil, 12, protowire.VarintType), protowire.EncodeZigZag(2)),
		protowire.AppendFixed64(tag(nil, 13, protowire.Fixed64Type), math.Float64bits(1)),
		protowire.AppendFixed64(tag(nil, 16, protowire.Fixed64Type), math.Float64bits(2)),
		protowire.AppendVarint(tag(nil, 15, protowire.VarintType), 77),
		protowire.AppendVarint(tag(nil, 15, protowire.VarintType), 78),
	)
	mismatchedGroupEnd := cat(tag(nil, 9, protowire.StartGroupType), tag(nil, 8, protowire.EndGroupType), msg(nil, 1, msg(nil, 1, labelBytes("__name__", "g"))))
	deepGroups := cat(
		bytes.Repeat(tag(nil, 9, protowire.StartGroupType), 10000),
		bytes.Repeat(tag(nil, 9, protowire.EndGroupType), 10000),
	)

	tests := []struct {
		name string
		body []byte
	}{
		{"empty request", nil},
		{"floats", mustMarshal(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
			{Labels: testLabels("__name__", "up", "instance", "a:9100", "job", "node"), Samples: []prompb.Sample{{Value: 1, Timestamp: 1700000000000}, {Value: 0, Timestamp: 1700000015000}}},
			{Labels: testLabels("__name__", "temp", "job", "node"), Samples: []prompb.Sample{{Value: -273.15, Timestamp: -5}, {Value: math.NaN(), Timestamp: 0}, {Value: math.Inf(1), Timestamp: math.MaxInt64}}},
			{Labels: testLabels("__name__", "empty_value", "x", ""), Samples: []prompb.Sample{{Value: math.Float64frombits(0x7ff8000000000001), Timestamp: math.MinInt64}}},
		}})},
		{"native histograms", mustMarshal(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
			{Labels: testLabels("__name__", "latency"), Histograms: []prompb.Histogram{prompb.FromIntHistogram(1000, ih), prompb.FromIntHistogram(-2000, ih)}},
			{Labels: testLabels("__name__", "gauge_hist"), Histograms: []prompb.Histogram{prompb.FromFloatHistogram(3000, fh)}},
			{Labels: testLabels("__name__", "mixed"), Samples: []prompb.Sample{{Value: 1, Timestamp: 1}}, Histograms: []prompb.Histogram{prompb.FromIntHistogram(2, ih), prompb.FromFloatHistogram(3, fh)}},
		}})},
		{"exemplars", mustMarshal(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
			{
				Labels:    testLabels("__name__", "requests_total", "job", "api"),
				Samples:   []prompb.Sample{{Value: 10, Timestamp: 100}},
				Exemplars: []prompb.Exemplar{{Labels: testLabels("trace_id", "4bf92f35", "span_id", "00f067aa"), Value: 0.25, Timestamp: 99}, {Value: 1}},
			},
			{Labels: testLabels("__name__", "other"), Exemplars: []prompb.Exemplar{{Labels: testLabels("trace_id", "x"), Timestamp: 5}}},
		}})},
		{"metadata", mustMarshal(t, &prompb.WriteRequest{
			Timeseries: []prompb.TimeSeries{{Labels: testLabels("__name__", "up")}},
			Metadata: []prompb.MetricMetadata{
				{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "http_requests_total", Help: "Requests.\nSecond line.", Unit: "requests"},
				{Type: prompb.MetricMetadata_STATESET},
				{Type: prompb.MetricMetadata_MetricType(-3), MetricFamilyName: "negative_enum"},
			},
		})},
		{"metadata only", mustMarshal(t, &prompb.WriteRequest{Metadata: []prompb.MetricMetadata{{Type: prompb.MetricMetadata_GAUGE, MetricFamilyName: "g"}}})},
		{"empty series", mustMarshal(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{}, {Labels: testLabels("__name__", "a")}, {}, {Samples: []prompb.Sample{{}}}}})},
		{"empty label and sample messages", msg(nil, 1, cat(msg(nil, 1, nil), msg(nil, 2, nil), msg(nil, 3, nil), msg(nil, 4, nil)))},
		{"unknown fields everywhere", withUnknown},
		{"unknown fields in histogram", msg(nil, 1, msg(nil, 4, histWithUnknown))},
		{"unknown fields in bucket span", msg(nil, 1, msg(nil, 4, msg(nil, 11, cat(unknownFields(), protowire.AppendVarint(tag(nil, 2, protowire.VarintType), 1)))))},
		{"odd varints", oddVarints},
		{"field number truncated like prompb", wideFieldNumber},
		{"repeated scalar fields", repeatedScalars},
		{"unpacked histogram fields", msg(nil, 1, msg(nil, 4, unpackedHistogram))},
		{"group end names another field", mismatchedGroupEnd},
		{"deeply nested unknown groups", deepGroups},
		{"realistic", mustMarshal(t, benchRequest(200))},
	}
	var r writeRequest
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want prompb.WriteRequest
			if err := want.Unmarshal(tt.body); err != nil {
				t.Fatalf("prompb rejects the test input: %v", err)
			}
			// r is shared by all cases, so each decode also tests the reset.
			if err := r.Decode(tt.body); err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if err := diffWithPrompb(&r, &want); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func mustMarshalHistogram(t testing.TB, h prompb.Histogram) []byte {
	b, err := h.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeRejectsMalformed(t *testing.T) {
	goodSeries := msg(nil, 1, cat(msg(nil, 1, labelBytes("__name__", "up")), msg(nil, 2, sampleBytes(1, 2))))
	hist := mustMarshalHistogram(t, prompb.FromIntHistogram(5, testIntHistogram()))
	inSeries := func(field protowire.Number, payload []byte) []byte { return msg(nil, 1, msg(nil, field, payload)) }

	tests := []struct {
		name string
		body []byte
		want string // in the error message
	}{
		{"truncated tag varint", []byte{0x80}, "truncated varint"},
		{"eleven-byte tag varint", append(bytes.Repeat([]byte{0x80}, 10), 0x01), "varint longer than 10 bytes"},
		{"truncated length varint", []byte{0x0a, 0xff}, "truncated varint"},
		{"length past end", []byte{0x0a, 0x05, 0x00}, "runs past the end"},
		{"huge length", cat([]byte{0x0a}, protowire.AppendVarint(nil, math.MaxUint64), []byte{0}), "runs past the end"},
		{"length wraps int", cat([]byte{0x0a}, protowire.AppendVarint(nil, math.MaxInt64), []byte{0}), "runs past the end"},
		{"length past end after good series", cat(goodSeries, []byte{0x0a, 0x7f}), "runs past the end"},
		{"field zero", []byte{0x02, 0x00}, "illegal field number"},
		{"negative field number", cat(protowire.AppendVarint(nil, 0x80000000<<3|2), []byte{0}), "illegal field number"},
		{"end group at top level", tag(nil, 1, protowire.EndGroupType), "end-group"},
		{"unterminated group", tag(nil, 5, protowire.StartGroupType), "truncated varint"},
		{"group ends too often", cat(tag(nil, 5, protowire.StartGroupType), tag(nil, 5, protowire.EndGroupType), tag(nil, 5, protowire.EndGroupType)), "end-group"},
		{"wire type 6", []byte{0x2e}, "illegal wire type"},
		{"wire type 7 inside a group", cat(tag(nil, 5, protowire.StartGroupType), []byte{0x0f}), "illegal wire type"},
		{"timeseries as varint", []byte{0x08, 0x01}, "wire type 0"},
		{"timeseries as group", cat(tag(nil, 1, protowire.StartGroupType), tag(nil, 1, protowire.EndGroupType)), "wire type 3"},
		{"metadata as fixed32", []byte{0x1d, 0, 0, 0, 0}, "wire type 5"},
		{"label as varint", msg(nil, 1, []byte{0x08, 0x01}), "wire type 0"},
		{"label name as varint", inSeries(1, []byte{0x08, 0x01}), "wire type 0"},
		{"label value past end", inSeries(1, []byte{0x12, 0x09, 'a'}), "runs past the end"},
		{"label end group", inSeries(1, []byte{0x0c}), "end-group"},
		{"sample value truncated", inSeries(2, []byte{0x09, 1, 2, 3}), "truncated fixed-width"},
		{"sample value as varint", inSeries(2, []byte{0x08, 0x01}), "wire type 0"},
		{"sample timestamp truncated", inSeries(2, []byte{0x10, 0x80}), "truncated varint"},
		{"sample timestamp as fixed64", inSeries(2, []byte{0x11, 0, 0, 0, 0, 0, 0, 0, 0}), "wire type 1"},
		{"exemplar label truncated", inSeries(3, []byte{0x0a, 0x02, 0x0a}), "runs past the end"},
		{"exemplar value as varint", inSeries(3, []byte{0x10, 0x01}), "wire type 0"},
		{"exemplar timestamp as bytes", inSeries(3, []byte{0x1a, 0x00}), "wire type 2"},
		{"histogram truncated", inSeries(4, hist[:len(hist)-1]), "truncated"},
		{"histogram timestamp as fixed64", inSeries(4, []byte{0x79, 0, 0, 0, 0, 0, 0, 0, 0}), "wire type 1"},
		{"histogram count_int as fixed64", inSeries(4, []byte{0x09, 0, 0, 0, 0, 0, 0, 0, 0}), "wire type 1"},
		{"histogram sum as varint", inSeries(4, []byte{0x18, 0x00}), "wire type 0"},
		{"histogram deltas as fixed32", inSeries(4, []byte{0x65, 0, 0, 0, 0}), "wire type 5"},
		{"histogram counts as varint", inSeries(4, []byte{0x68, 0x00}), "wire type 0"},
		{"histogram packed deltas run out", inSeries(4, []byte{0x62, 0x01, 0x80}), "truncated varint"},
		{"histogram packed counts run out", inSeries(4, []byte{0x6a, 0x04, 0, 0, 0, 0}), "truncated fixed-width"},
		{"histogram span as varint", inSeries(4, []byte{0x5a, 0x02, 0x08, 0x80}), "truncated varint"},
		{"histogram span offset as bytes", inSeries(4, []byte{0x42, 0x02, 0x0a, 0x00}), "wire type 2"},
		{"metadata type as bytes", msg(nil, 3, []byte{0x0a, 0x00}), "wire type 2"},
		{"metadata help past end", msg(nil, 3, []byte{0x22, 0x05}), "runs past the end"},
		{"unknown fixed64 truncated", []byte{0x29, 1, 2}, "truncated fixed-width"},
		{"unknown fixed32 truncated", []byte{0x2d, 1, 2}, "truncated fixed-width"},
		{"garbage", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), ""},
		{"snappy-compressed body given as protobuf", []byte{0xff, 0x06, 0x00, 0x00, 0x73, 0x4e, 0x61, 0x50, 0x70, 0x59}, ""},
	}
	var r writeRequest
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ref prompb.WriteRequest
			if ref.Unmarshal(tt.body) == nil {
				t.Fatalf("prompb accepts the test input; the case is wrong")
			}
			if err := r.Decode(goodSeries); err != nil {
				t.Fatal(err)
			}
			err := r.Decode(tt.body)
			if !errors.Is(err, errMalformedRequest) {
				t.Fatalf("Decode = %v, want ErrMalformedRequest", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
			if len(r.Timeseries) != 0 || len(r.Metadata) != 0 {
				t.Errorf("after an error r holds %d series and %d metadata", len(r.Timeseries), len(r.Metadata))
			}
		})
	}
}

func TestDecodeErrorNamesTheSeries(t *testing.T) {
	good := msg(nil, 1, msg(nil, 1, labelBytes("__name__", "up")))
	body := cat(good, good, msg(nil, 1, msg(nil, 2, []byte{0x09, 1})))
	var r writeRequest
	err := r.Decode(body)
	if err == nil || !strings.Contains(err.Error(), "timeseries 2 at byte") || !strings.Contains(err.Error(), "sample 0") {
		t.Fatalf("error %v does not locate the bad sample", err)
	}
}

func TestDecodeSeriesDoNotShareCapacity(t *testing.T) {
	body := mustMarshal(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: testLabels("__name__", "a"), Samples: []prompb.Sample{{Value: 1}}},
		{Labels: testLabels("__name__", "b"), Samples: []prompb.Sample{{Value: 2}}},
	}})
	orig := bytes.Clone(body)
	var r writeRequest
	if err := r.Decode(body); err != nil {
		t.Fatal(err)
	}
	first := &r.Timeseries[0]
	_ = append(first.Labels, label{Name: []byte("x")})
	_ = append(first.Samples, sample{V: 99})
	_ = append(first.Labels[0].Name, "clobber"...)
	_ = append(first.Raw, "clobber"...)
	if got := string(r.Timeseries[1].Labels[0].Value); got != "b" {
		t.Errorf("second series' label is %q after appending to the first's", got)
	}
	if got := r.Timeseries[1].Samples[0].V; got != 2 {
		t.Errorf("second series' sample is %v after appending to the first's", got)
	}
	if !bytes.Equal(body, orig) {
		t.Errorf("appending to a decoded slice modified the request buffer")
	}
}

func TestDecodeReuse(t *testing.T) {
	big := mustMarshal(t, benchRequest(300))
	small := mustMarshal(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{Labels: testLabels("__name__", "only")}}})
	var r writeRequest
	for i, body := range [][]byte{big, small, big, small} {
		var want prompb.WriteRequest
		if err := want.Unmarshal(body); err != nil {
			t.Fatal(err)
		}
		if err := r.Decode(body); err != nil {
			t.Fatal(err)
		}
		if err := diffWithPrompb(&r, &want); err != nil {
			t.Fatalf("decode %d: %v", i, err)
		}
	}
}

func TestDecodeDoesNotAllocateOnceWarm(t *testing.T) {
	body := mustMarshal(t, benchRequest(500))
	var r writeRequest
	if err := r.Decode(body); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(10, func() {
		if err := r.Decode(body); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("warm Decode allocates %v times per request", n)
	}
}

func TestHistogramDecode(t *testing.T) {
	ih, fh := testIntHistogram(), testFloatHistogram()
	body := mustMarshal(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:     testLabels("__name__", "h"),
		Histograms: []prompb.Histogram{prompb.FromIntHistogram(10, ih), prompb.FromFloatHistogram(20, fh)},
	}}})
	var r writeRequest
	if err := r.Decode(body); err != nil {
		t.Fatal(err)
	}
	hs := r.Timeseries[0].Histograms
	if len(hs) != 2 || hs[0].T != 10 || hs[1].T != 20 {
		t.Fatalf("histograms %+v", hs)
	}
	gotInt, gotFloat, err := hs[0].Decode()
	if err != nil || gotFloat != nil || !gotInt.Equals(ih) {
		t.Errorf("int histogram: %v, %v, %v; want %v", gotInt, gotFloat, err, ih)
	}
	gotInt, gotFloat, err = hs[1].Decode()
	if err != nil || gotInt != nil || !gotFloat.Equals(fh) {
		t.Errorf("float histogram: %v, %v, %v; want %v", gotInt, gotFloat, err, fh)
	}
	if _, _, err := (wireHistogram{Raw: []byte{0x79}}).Decode(); !errors.Is(err, errMalformedRequest) {
		t.Errorf("Decode of a truncated histogram = %v, want ErrMalformedRequest", err)
	}
}

func TestBuildLabels(t *testing.T) {
	body := mustMarshal(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:    testLabels("job", "node", "__name__", "up", "instance", "a:9100"),
		Exemplars: []prompb.Exemplar{{Labels: testLabels("trace_id", "t1")}},
	}}})
	var r writeRequest
	if err := r.Decode(body); err != nil {
		t.Fatal(err)
	}
	sb := labels.NewScratchBuilder(0)
	ls := r.Timeseries[0].BuildLabels(&sb)
	ex := buildLabels(&sb, r.Timeseries[0].Exemplars[0].Labels)
	// The buffer is reused for the next request: the results must not see it.
	clear(body)
	want := labels.FromStrings("__name__", "up", "instance", "a:9100", "job", "node")
	if !labels.Equal(ls, want) {
		t.Errorf("BuildLabels = %v, want %v", ls, want)
	}
	if want := labels.FromStrings("trace_id", "t1"); !labels.Equal(ex, want) {
		t.Errorf("BuildLabels(exemplar) = %v, want %v", ex, want)
	}
}

func TestLabelsString(t *testing.T) {
	l := func(kv ...string) []label {
		var ls []label
		for i := 0; i < len(kv); i += 2 {
			ls = append(ls, label{Name: []byte(kv[i]), Value: []byte(kv[i+1])})
		}
		return ls
	}
	tests := []struct {
		in   []label
		want string
	}{
		{nil, "{}"},
		{l("__name__", "up", "job", "x"), `{__name__="up", job="x"}`},
		{l("service.name", "a\"b\nc"), `{"service.name"="a\"b\nc"}`},
		{l("", "v", "9x", "\xff"), `{""="v", "9x"="\xff"}`},
	}
	for _, tt := range tests {
		if got := labelsString(tt.in); got != tt.want {
			t.Errorf("LabelsString(%v) = %s, want %s", tt.in, got, tt.want)
		}
	}
	long := l("__name__", strings.Repeat("v", 10000), strings.Repeat("n", 1000), "x")
	for range 20 {
		long = append(long, l("label", strings.Repeat("w", 200))...)
	}
	got := string(wireAppendLabels(nil, long, 256))
	if len(got) > 2000 || !strings.Contains(got, "…") || strings.Contains(got, "\n") {
		t.Errorf("bounded form is %d bytes: %.200s", len(got), got)
	}
}

// benchRequest builds a request shaped like a node_exporter scrape sent by
// Prometheus: 8 to 12 labels and 150 to 300 bytes of labels per series, one
// sample each. The output is the same for the same n.
func benchRequest(n int) *prompb.WriteRequest {
	rng := rand.New(rand.NewPCG(1, 2))
	families := []struct {
		name  string
		extra []string
	}{
		{"node_cpu_seconds_total", []string{"cpu", "mode"}},
		{"node_filesystem_avail_bytes", []string{"device", "fstype", "mountpoint"}},
		{"node_network_receive_bytes_total", []string{"device"}},
		{"node_disk_io_time_seconds_total", []string{"device"}},
		{"node_memory_MemAvailable_bytes", nil},
		{"node_load1", nil},
	}
	values := map[string][]string{
		"cpu":        {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15"},
		"mode":       {"idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user"},
		"device":     {"/dev/nvme0n1p1", "/dev/nvme0n1p2", "eth0", "eth1", "sda", "tmpfs"},
		"fstype":     {"ext4", "xfs", "tmpfs", "overlay"},
		"mountpoint": {"/", "/boot", "/var/lib/docker", "/run", "/home"},
	}
	req := &prompb.WriteRequest{Timeseries: make([]prompb.TimeSeries, 0, n)}
	for i := range n {
		f := families[i%len(families)]
		a, b, c := rng.IntN(256), rng.IntN(256), rng.IntN(256)
		host := fmt.Sprintf("ip-10-%d-%d-%d.eu-west-1.compute.internal", a, b, c)
		kv := map[string]string{
			"__name__":   f.name,
			"instance":   fmt.Sprintf("10.%d.%d.%d:9100", a, b, c),
			"job":        "node-exporter",
			"cluster":    "prod-eu-west-1-main",
			"namespace":  "monitoring",
			"pod":        fmt.Sprintf("node-exporter-%05x", rng.IntN(1<<20)),
			"node":       host,
			"container":  "node-exporter",
			"prometheus": "monitoring/k8s",
			"service":    "node-exporter",
			"endpoint":   "https",
			"os":         "linux",
		}
		for _, e := range f.extra {
			vs := values[e]
			kv[e] = vs[rng.IntN(len(vs))]
		}
		// Drop a few of the optional labels so series vary between 8 and 12.
		for _, opt := range []string{"endpoint", "os", "service", "prometheus"} {
			if len(kv) > 12 || len(kv) > 8 && rng.IntN(3) == 0 {
				delete(kv, opt)
			}
		}
		sb := labels.NewScratchBuilder(len(kv))
		for k, v := range kv {
			sb.Add(k, v)
		}
		sb.Sort()
		ts := prompb.TimeSeries{
			Labels:  prompb.FromLabels(sb.Labels(), nil),
			Samples: []prompb.Sample{{Value: rng.Float64() * 1e6, Timestamp: 1760000000000 + int64(i)}},
		}
		req.Timeseries = append(req.Timeseries, ts)
	}
	return req
}

func TestBenchRequestShape(t *testing.T) {
	req := benchRequest(2000)
	total := 0
	for _, ts := range req.Timeseries {
		size := 0
		for _, l := range ts.Labels {
			size += len(l.Name) + len(l.Value)
		}
		if n := len(ts.Labels); n < 8 || n > 12 || size < 150 || size > 300 {
			t.Fatalf("series with %d labels of %d bytes: %v", n, size, ts.Labels)
		}
		total += size
	}
	t.Logf("2000 series, %d label bytes on average", total/2000)
}

func BenchmarkDecode(b *testing.B) {
	body := mustMarshal(b, benchRequest(2000))
	b.Run("atoll", func(b *testing.B) {
		var r writeRequest
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if err := r.Decode(body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("prompb", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			// As Prometheus's receiver does: a fresh request each time.
			var req prompb.WriteRequest
			if err := req.Unmarshal(body); err != nil {
				b.Fatal(err)
			}
		}
	})
}
