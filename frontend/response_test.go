package frontend

import (
	"bytes"
	"math"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	v1 "github.com/prometheus/prometheus/web/api/v1"
)

// TestAnswerRoundTripsPrometheusJSON decodes what Prometheus's own API
// encoder writes and writes it again: the bytes must be the same, so
// clients see no difference between the frontend and a querier.
func TestAnswerRoundTripsPrometheusJSON(t *testing.T) {
	h := &histogram.FloatHistogram{
		Count: 12, Sum: 33.5, Schema: 1, ZeroThreshold: 0.001, ZeroCount: 2,
		PositiveSpans:   []histogram.Span{{Offset: 0, Length: 2}, {Offset: 1, Length: 1}},
		PositiveBuckets: []float64{3, 4, 3},
	}
	mat := promql.Matrix{
		{Metric: labels.FromStrings("__name__", "a", "job", `x"<&>`+"\u00e9\n"), Floats: []promql.FPoint{
			{T: -1500, F: 1}, {T: 0, F: 0.1}, {T: 1001, F: math.Inf(1)}, {T: 2002, F: math.Inf(-1)},
			{T: 3003, F: math.NaN()}, {T: 1700000000123, F: 1e-7}, {T: 1700000001000, F: 1.5e22}, {T: 1700000002000, F: -123456.789},
		}},
		{Metric: labels.FromStrings("job", "h"), Histograms: []promql.HPoint{{T: 1000, H: h}, {T: 2000, H: h}}},
		{Metric: labels.EmptyLabels(), Floats: []promql.FPoint{{T: 5, F: math.Float64frombits(value.StaleNaN)}}},
	}
	vec := promql.Vector{
		{Metric: labels.FromStrings("a", "b"), T: 1234, F: 42},
		{Metric: labels.FromStrings("a", "c"), T: 1234, H: h},
	}
	for name, resp := range map[string]*v1.Response{
		"matrix": {Status: "success", Data: &v1.QueryData{ResultType: parser.ValueTypeMatrix, Result: mat}, Warnings: []string{"w1", "w2"}, Infos: []string{"i"}},
		"vector": {Status: "success", Data: &v1.QueryData{ResultType: parser.ValueTypeVector, Result: vec}},
		"scalar": {Status: "success", Data: &v1.QueryData{ResultType: parser.ValueTypeScalar, Result: promql.Scalar{T: 17, V: 0.25}}},
		"empty":  {Status: "success", Data: &v1.QueryData{ResultType: parser.ValueTypeMatrix, Result: promql.Matrix{}}},
	} {
		t.Run(name, func(t *testing.T) {
			want, err := v1.JSONCodec{}.Encode(resp)
			if err != nil {
				t.Fatal(err)
			}
			a, err := decodeAnswer(want)
			if err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			if err := writeAnswer(&got, a); err != nil {
				t.Fatal(err)
			}
			if g := bytes.TrimSuffix(got.Bytes(), []byte("\n")); !bytes.Equal(g, want) {
				t.Fatalf("re-encoded answer differs\nprometheus: %s\nfrontend:   %s", want, g)
			}
		})
	}
}

func TestDecodeErrorAnswer(t *testing.T) {
	_, err := decodeAnswer([]byte(`{"status":"error","errorType":"bad_data","error":"parse error"}`))
	ae, ok := err.(*apiError)
	if !ok || ae.errorType != "bad_data" || ae.msg != "parse error" {
		t.Fatalf("got %v", err)
	}
	if _, err := decodeAnswer([]byte(`{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"x"]]}]}}`)); err == nil {
		t.Fatal("a value that is no number decoded")
	}
}

func TestParseTimestamp(t *testing.T) {
	for in, want := range map[string]int64{
		"0": 0, "1": 1000, "1.5": 1500, "1.05": 1050, "1.005": 1005, "-1.5": -1500, "-0.001": -1,
		"1700000000.123": 1700000000123, "1e3": 1_000_000, "1.0005": 1001,
	} {
		got, err := parseTimestamp(in)
		if err != nil || got != want {
			t.Errorf("%s: got %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "x", "1.x", "--1"} {
		if _, err := parseTimestamp(in); err == nil {
			t.Errorf("%q parsed", in)
		}
	}
}
