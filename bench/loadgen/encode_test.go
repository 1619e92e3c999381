package main

import (
	"testing"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
)

// TestEncodeRoundsDecodes checks the hand-written encoding against
// Prometheus's own generated decoder.
func TestEncodeRoundsDecodes(t *testing.T) {
	cat := NewCatalog()
	const series, batch = 5000, 700
	timestamps := []int64{1_700_000_000_000, 1_700_000_015_000, 1_700_000_030_000}
	order := sendOrder(series, 7)
	rounds, st := EncodeRounds(cat, order, batch, timestamps, 0)
	if st.Samples != series*len(timestamps) {
		t.Fatalf("encoded %d samples, want %d", st.Samples, series*len(timestamps))
	}
	wantRequests := (series + batch - 1) / batch
	var ls []Label
	for r, round := range rounds {
		if len(round.Requests) != wantRequests {
			t.Fatalf("round %d has %d requests, want %d", r, len(round.Requests), wantRequests)
		}
		seen := map[string]bool{}
		for q, req := range round.Requests {
			raw, err := snappy.Decode(nil, req.Body)
			if err != nil {
				t.Fatalf("round %d request %d: snappy: %v", r, q, err)
			}
			var wr prompb.WriteRequest
			if err := wr.Unmarshal(raw); err != nil {
				t.Fatalf("round %d request %d: protobuf: %v", r, q, err)
			}
			if len(wr.Timeseries) != req.Samples {
				t.Fatalf("round %d request %d: %d series, Samples says %d", r, q, len(wr.Timeseries), req.Samples)
			}
			for k, ts := range wr.Timeseries {
				i := int(order[q*batch+k])
				ls = cat.Labels(ls[:0], i)
				if len(ts.Labels) != len(ls) {
					t.Fatalf("series %d: %d labels decoded, want %d", i, len(ts.Labels), len(ls))
				}
				for j, l := range ts.Labels {
					if l.Name != ls[j].Name || l.Value != ls[j].Value {
						t.Fatalf("series %d label %d: got %s=%q, want %s=%q", i, j, l.Name, l.Value, ls[j].Name, ls[j].Value)
					}
				}
				if len(ts.Samples) != 1 || ts.Samples[0].Timestamp != timestamps[r] || ts.Samples[0].Value != cat.Value(i, r) {
					t.Fatalf("series %d round %d: samples %v, want one at %d = %v", i, r, ts.Samples, timestamps[r], cat.Value(i, r))
				}
				key := ""
				for _, l := range ts.Labels {
					key += l.Name + "\x00" + l.Value + "\x00"
				}
				if seen[key] {
					t.Fatalf("round %d sends %s twice", r, key)
				}
				seen[key] = true
			}
		}
		if len(seen) != series {
			t.Fatalf("round %d covers %d series, want %d", r, len(seen), series)
		}
	}
}

func BenchmarkEncodeRound(b *testing.B) {
	cat := NewCatalog()
	order := sendOrder(100_000, 1)
	b.ReportAllocs()
	for i := range b.N {
		_, st := EncodeRounds(cat, order, 2000, []int64{int64(i)}, i)
		b.SetBytes(st.RawBytes)
	}
}
