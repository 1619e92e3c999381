package ingest

import (
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/protobuf/encoding/protowire"
)

// FuzzDecode checks Decode against prompb.WriteRequest.Unmarshal: both accept
// the same inputs, and on accepted ones they agree on every field Decode
// exposes. It also checks validateSeries against referenceValidate on every
// decoded series, and that nothing panics. Run it with
//
//	go test -run '^$' -fuzz FuzzDecode ./ingest
func FuzzDecode(f *testing.F) {
	ih, fh := testIntHistogram(), testFloatHistogram()
	seeds := []*prompb.WriteRequest{
		{},
		benchRequest(3),
		{Timeseries: []prompb.TimeSeries{{
			Labels:     testLabels("__name__", "h", "le", "ü"),
			Histograms: []prompb.Histogram{prompb.FromIntHistogram(1, ih), prompb.FromFloatHistogram(2, fh)},
			Exemplars:  []prompb.Exemplar{{Labels: testLabels("trace_id", "abc"), Value: 1, Timestamp: 2}},
		}}},
		{
			Timeseries: []prompb.TimeSeries{{Labels: testLabels("job", "x", "__name__", "")}, {}},
			Metadata:   []prompb.MetricMetadata{{Type: prompb.MetricMetadata_SUMMARY, MetricFamilyName: "s", Help: "h", Unit: "u"}},
		},
	}
	for _, s := range seeds {
		f.Add(mustMarshal(f, s))
	}
	f.Add(cat(unknownFields(), msg(nil, 1, cat(unknownFields(), msg(nil, 1, labelBytes("__name__", "x"))))))
	f.Add(msg(nil, 1, msg(nil, 4, []byte{0x62, 0x01, 0x80, 0x01})))             // packed deltas crossing their end
	f.Add(msg(nil, 1, msg(nil, 4, []byte{0x6a, 0x01, 1, 2, 3, 4, 5, 6, 7, 8}))) // packed doubles likewise
	f.Add(cat(protowire.AppendVarint(nil, (1<<32|1)<<3|2), []byte{0}))
	f.Add([]byte{0x0a, 0x05, 0x00})

	warm := mustMarshal(f, benchRequest(5))
	f.Fuzz(func(t *testing.T, data []byte) {
		var r writeRequest
		// Decode into a used writeRequest, so the reset is fuzzed too.
		if err := r.Decode(warm); err != nil {
			t.Fatal(err)
		}
		err := r.Decode(data)
		var ref prompb.WriteRequest
		refErr := ref.Unmarshal(data)
		switch {
		case err != nil && refErr == nil:
			t.Fatalf("Decode rejects what prompb accepts: %v", err)
		case err == nil && refErr != nil:
			t.Fatalf("Decode accepts what prompb rejects: %v", refErr)
		case err != nil:
			if !errors.Is(err, errMalformedRequest) {
				t.Fatalf("error %v does not match ErrMalformedRequest", err)
			}
			return
		}
		if err := diffWithPrompb(&r, &ref); err != nil {
			t.Fatal(err)
		}

		sb := labels.NewScratchBuilder(0)
		for i := range r.Timeseries {
			ts := &r.Timeseries[i]
			err := validateSeries(ts)
			want := referenceValidate(ts)
			var ise *invalidSeriesError
			switch {
			case want == "" && err != nil:
				t.Fatalf("series %d: ValidateSeries = %v, want nil", i, err)
			case want != "" && (!errors.As(err, &ise) || ise.Reason != want || !errors.Is(err, errInvalidSeries)):
				t.Fatalf("series %d: ValidateSeries = %v, want reason %s", i, err, want)
			case err != nil && strings.Contains(err.Error(), "\n"):
				t.Fatalf("series %d: message spans lines: %q", i, err)
			case err == nil:
				ls := ts.BuildLabels(&sb)
				if ls.Len() != len(ts.Labels) || ls.Get("__name__") == "" {
					t.Fatalf("series %d: BuildLabels = %v from %s", i, ls, labelsString(ts.Labels))
				}
			}
		}
	})
}

// FuzzValidate builds well-formed requests from fuzzed label names and values,
// which random bytes rarely reach, and checks validateSeries on the decoded
// series against referenceValidate, and LabelsHash and buildLabels on the way.
func FuzzValidate(f *testing.F) {
	f.Add("__name__", "up", "job", "node", "", uint8(0))
	f.Add("__name__", "", "a", "\xff", "x", uint8(1))
	f.Add("job", "ü", "instance", strings.Repeat("v", 130), "trace_id", uint8(2))
	f.Add("__name__", "up", "__name__", "up", "\xc3", uint8(7))
	f.Fuzz(func(t *testing.T, n1, v1, n2, v2, ev string, shape uint8) {
		ls := testLabels(n1, v1, n2, v2)
		if shape&1 != 0 {
			ls = append(testLabels("__name__", "m"), ls...)
		}
		if shape&2 != 0 {
			ls[0], ls[len(ls)-1] = ls[len(ls)-1], ls[0]
		}
		ts := prompb.TimeSeries{Labels: ls, Samples: []prompb.Sample{{Value: 1, Timestamp: 2}}}
		if shape&4 != 0 {
			ts.Exemplars = []prompb.Exemplar{{Labels: testLabels("trace_id", ev)}}
		}
		body := mustMarshal(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{ts}})
		var r writeRequest
		if err := r.Decode(body); err != nil {
			t.Fatal(err)
		}
		got := &r.Timeseries[0]
		if h := referenceHash(ls); got.LabelsHash != h {
			t.Fatalf("LabelsHash %x, want %x", got.LabelsHash, h)
		}
		err := validateSeries(got)
		want := referenceValidate(got)
		var ise *invalidSeriesError
		switch {
		case want == "" && err != nil:
			t.Fatalf("ValidateSeries = %v, want nil", err)
		case want != "" && (!errors.As(err, &ise) || ise.Reason != want):
			t.Fatalf("ValidateSeries = %v, want reason %s", err, want)
		case err != nil && strings.Contains(err.Error(), "\n"):
			t.Fatalf("message spans lines: %q", err)
		case err == nil:
			sb := labels.NewScratchBuilder(0)
			built := got.BuildLabels(&sb)
			// Empty values stay, as in Prometheus's own receiver.
			var want []labels.Label
			for _, l := range ls {
				want = append(want, labels.Label{Name: l.Name, Value: l.Value})
			}
			if !labels.Equal(built, labels.New(want...)) {
				t.Fatalf("BuildLabels = %v, want %v", built, want)
			}
		}
	})
}
