package ingest

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	remoteapi "github.com/prometheus/client_golang/exp/api/remote"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/atoll-metrics/atoll/tenant"
	"github.com/atoll-metrics/atoll/tsdbshard"
)

func openShards(t testing.TB) *tsdbshard.MultiTSDB {
	t.Helper()
	o := tsdbshard.DefaultOptions()
	o.Dir = t.TempDir()
	m, err := tsdbshard.Open(o, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

func post(t testing.TB, h http.Handler, tenant string, req *prompb.WriteRequest) (int, string) {
	t.Helper()
	raw, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodPost, "/api/v1/receive", bytes.NewReader(snappy.Encode(nil, raw)))
	r.Header.Set("Content-Encoding", "snappy")
	r.Header.Set("Content-Type", "application/x-protobuf")
	if tenant != "" {
		r.Header.Set("X-Scope-OrgID", tenant)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Code, strings.TrimSpace(w.Body.String())
}

func series(name string, ts int64, v float64, kv ...string) prompb.TimeSeries {
	s := prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: name}}, Samples: []prompb.Sample{{Timestamp: ts, Value: v}}}
	for i := 0; i < len(kv); i += 2 {
		s.Labels = append(s.Labels, prompb.Label{Name: kv[i], Value: kv[i+1]})
	}
	return s
}

// read returns every float sample of tenant's series named name.
func read(t testing.TB, m *tsdbshard.MultiTSDB, tenant, name string) map[string][]float64 {
	t.Helper()
	tn, err := m.Tenant(tenant)
	if err != nil {
		t.Fatal(err)
	}
	q, err := tn.Querier(0, 1<<62)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	set := q.Select(context.Background(), true, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", name))
	out := map[string][]float64{}
	for set.Next() {
		it := set.At().Iterator(nil)
		for it.Next() != 0 {
			_, v := it.At()
			out[set.At().Labels().String()] = append(out[set.At().Labels().String()], v)
		}
	}
	if err := set.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestHandlerOutcomes(t *testing.T) {
	m := openShards(t)
	h := NewHandler(NewRouter(m, nil, RouterOptions{}, nil, prometheus.NewRegistry()), HandlerOptions{}, nil, prometheus.NewRegistry())
	now := time.Now().UnixMilli()

	if code, body := post(t, h, "", &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series("a", now, 1), series("b", now, 2)}}); code != http.StatusNoContent {
		t.Fatalf("good write: %d %s", code, body)
	}
	// The same samples again are accepted: retries are idempotent.
	if code, body := post(t, h, "", &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series("a", now, 1)}}); code != http.StatusNoContent {
		t.Fatalf("retry: %d %s", code, body)
	}
	cases := []struct {
		name     string
		req      *prompb.WriteRequest
		wantCode int
		wantBody string
		stored   map[string]int // series name -> samples stored after the request
	}{
		{"duplicate timestamp, new value", &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series("a", now, 5), series("c", now, 3)}},
			http.StatusConflict, "duplicate sample", map[string]int{"a": 1, "c": 1}},
		{"out of order among good ones", &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series("b", now-60_000, 1), series("d", now, 1)}},
			http.StatusConflict, "out of order", map[string]int{"b": 1, "d": 1}},
		{"invalid series among good ones", &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series("e", now, 1), {Labels: []prompb.Label{{Name: "job", Value: "x"}}, Samples: []prompb.Sample{{Timestamp: now, Value: 1}}}}},
			http.StatusBadRequest, "missing metric name", map[string]int{"e": 1}},
		{"invalid outranks conflict", &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series("a", now, 9), series("f", now, 1, "z", "1", "y", "2")}},
			http.StatusBadRequest, "not sorted", map[string]int{"a": 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, body := post(t, h, "", c.req)
			if code != c.wantCode || !strings.Contains(body, c.wantBody) {
				t.Fatalf("got %d %q, want %d with %q", code, body, c.wantCode, c.wantBody)
			}
			for name, n := range c.stored {
				got := 0
				for _, vs := range read(t, m, tenant.Default, name) {
					got += len(vs)
				}
				if got != n {
					t.Fatalf("%s has %d samples, want %d", name, got, n)
				}
			}
		})
	}

	t.Run("tenants are kept apart", func(t *testing.T) {
		if code, body := post(t, h, "team-b", &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series("a", now, 42)}}); code != http.StatusNoContent {
			t.Fatalf("%d %s", code, body)
		}
		if got := read(t, m, "team-b", "a"); len(got) != 1 {
			t.Fatalf("team-b: %v", got)
		}
		for _, vs := range read(t, m, tenant.Default, "a") {
			for _, v := range vs {
				if v == 42 {
					t.Fatal("team-b's sample landed in the default tenant")
				}
			}
		}
	})

	t.Run("reserved labels are refused, not shadowed", func(t *testing.T) {
		h := NewHandler(NewRouter(m, nil, RouterOptions{ReservedLabels: []string{tenant.Label, "receive_replica", "replica"}}, nil, prometheus.NewRegistry()), HandlerOptions{}, nil, prometheus.NewRegistry())
		for _, name := range []string{tenant.Label, "receive_replica", "replica"} {
			code, body := post(t, h, "", &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series("g", now, 1), series("h", now, 1, name, "x")}})
			if code != http.StatusBadRequest || !strings.Contains(body, "reserved") || !strings.Contains(body, name) {
				t.Errorf("series with %s: %d %q, want 400 naming it reserved", name, code, body)
			}
		}
		if got := read(t, m, tenant.Default, "h"); len(got) != 0 {
			t.Errorf("a series with a reserved label was stored: %v", got)
		}
		if code, body := post(t, h, "", &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series("h", now, 1, "replica_set", "x")}}); code != http.StatusNoContent {
			t.Errorf("a label merely starting like a reserved one: %d %s", code, body)
		}
	})

	t.Run("bad tenant ids get 400", func(t *testing.T) {
		for _, id := range []string{"..", "a/b", "a b", "team\u202ea", "zero\u200bwidth", "ünï", strings.Repeat("x", tenant.MaxLength+1)} {
			if code, body := post(t, h, id, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series("a", now, 1)}}); code != http.StatusBadRequest {
				t.Errorf("tenant %q: %d %s, want 400", id, code, body)
			}
		}
	})

	t.Run("not ready", func(t *testing.T) {
		h := NewHandler(NewRouter(m, nil, RouterOptions{}, nil, prometheus.NewRegistry()), HandlerOptions{Ready: func() bool { return false }}, nil, prometheus.NewRegistry())
		if code, _ := post(t, h, "", &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series("a", now+1, 1)}}); code != http.StatusServiceUnavailable {
			t.Fatalf("got %d, want 503", code)
		}
	})
	t.Run("closed TSDB answers 503", func(t *testing.T) {
		m2 := openShards(t)
		h := NewHandler(NewRouter(m2, nil, RouterOptions{}, nil, prometheus.NewRegistry()), HandlerOptions{}, nil, prometheus.NewRegistry())
		_ = m2.Close()
		if code, _ := post(t, h, "", &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series("a", now, 1)}}); code != http.StatusServiceUnavailable {
			t.Fatalf("got %d, want 503", code)
		}
	})
}

// TestRefCacheCollision makes two different series share a hash: the
// second must not be appended to the first's ref.
func TestRefCacheCollision(t *testing.T) {
	m := openShards(t)
	w := newLocalWriter(m, LimitsConfig{}, nil)
	tn, err := m.Tenant("t")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UnixMilli()
	var wr writeRequest
	raw, _ := (&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series("one", now, 1)}}).Marshal()
	if err := wr.Decode(raw); err != nil {
		t.Fatal(err)
	}
	if _, err := w.write(context.Background(), "t", &wr, nil, false); err != nil {
		t.Fatal(err)
	}
	// Plant series "one"'s cache entry under the hash of series "two".
	raw2, _ := (&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series("two", now, 2)}}).Marshal()
	var wr2 writeRequest
	if err := wr2.Decode(raw2); err != nil {
		t.Fatal(err)
	}
	ref, lset, ok := tn.SeriesRefs().Get(wr.Timeseries[0].LabelsHash)
	if !ok {
		t.Fatal("first series not cached")
	}
	tn.SeriesRefs().Put(wr2.Timeseries[0].LabelsHash, ref, lset)
	res, err := w.write(context.Background(), "t", &wr2, nil, false)
	if err != nil || res.outcome != outcomeStored {
		t.Fatalf("%v %+v", err, res)
	}
	if got := read(t, m, "t", "two"); len(got) != 1 {
		t.Fatalf("series two: %v", got)
	}
	if got := read(t, m, "t", "one"); len(got["{__name__=\"one\"}"]) != 1 {
		t.Fatalf("series one got another sample: %v", got)
	}
}

// benchWriteRequests returns rounds of a request of n series, one sample
// each, timestamps advancing by 15s per round.
func benchWriteRequests(b *testing.B, n, rounds int) [][]byte {
	b.Helper()
	base := benchRequest(n)
	start := time.Now().Add(-time.Hour).UnixMilli()
	out := make([][]byte, rounds)
	for r := range rounds {
		for i := range base.Timeseries {
			base.Timeseries[i].Samples = []prompb.Sample{{Timestamp: start + int64(r)*15_000, Value: float64(r)}}
			base.Timeseries[i].Histograms = nil
			base.Timeseries[i].Exemplars = nil
		}
		raw, err := base.Marshal()
		if err != nil {
			b.Fatal(err)
		}
		out[r] = snappy.Encode(nil, raw)
	}
	return out
}

// BenchmarkIngest compares the steady state (series already in the head) of
// Atoll's write path with Prometheus's own remote-write handler over the
// same TSDB code, request by request.
func BenchmarkIngest(b *testing.B) {
	const seriesPerRequest = 2000
	const rounds = 200
	bodies := benchWriteRequests(b, seriesPerRequest, rounds)
	serve := func(b *testing.B, h http.Handler) {
		// Warm up: the first round creates the series.
		for _, body := range bodies[:1] {
			r := httptest.NewRequest(http.MethodPost, "/api/v1/write", bytes.NewReader(body))
			r.Header.Set("Content-Encoding", "snappy")
			r.Header.Set("Content-Type", "application/x-protobuf")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code/100 != 2 {
				b.Fatalf("warm-up: %d %s", w.Code, w.Body)
			}
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			body := bodies[1+i%(rounds-1)]
			if i > 0 && i%(rounds-1) == 0 {
				b.StopTimer()
				b.Skip("ran out of pre-encoded rounds; raise rounds")
			}
			r := httptest.NewRequest(http.MethodPost, "/api/v1/write", bytes.NewReader(body))
			r.Header.Set("Content-Encoding", "snappy")
			r.Header.Set("Content-Type", "application/x-protobuf")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code/100 != 2 {
				b.Fatalf("%d %s", w.Code, w.Body)
			}
		}
		b.ReportMetric(float64(b.N*seriesPerRequest)/b.Elapsed().Seconds(), "samples/s")
	}
	b.Run("atoll", func(b *testing.B) {
		m := openShards(b)
		serve(b, NewHandler(NewRouter(m, nil, RouterOptions{}, nil, prometheus.NewRegistry()), HandlerOptions{}, nil, prometheus.NewRegistry()))
	})
	b.Run("prometheus", func(b *testing.B) {
		opts := tsdb.DefaultOptions()
		db, err := tsdb.Open(b.TempDir(), nil, prometheus.NewRegistry(), opts, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		h := remote.NewWriteHandler(slog.New(slog.DiscardHandler), prometheus.NewRegistry(), db, remoteapi.MessageTypes{remoteapi.WriteV1MessageType}, false, false)
		serve(b, h)
	})
}

var _ storage.Appendable = (*tsdb.DB)(nil)
var _ = fmt.Sprint
