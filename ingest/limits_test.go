package ingest

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"

	"github.com/atoll-metrics/atoll/tenant"
	"github.com/atoll-metrics/atoll/tsdbshard"
)

func TestParseLimitsConfig(t *testing.T) {
	c, err := ParseLimitsConfig([]byte(`
default:
  ingestion_rate: 100
  max_series: 10
tenants:
  big:
    ingestion_rate: 1000
  unlimited:
    max_series: 0
`))
	if err != nil {
		t.Fatal(err)
	}
	for tenant, want := range map[string]Limits{
		"other":     {IngestionRate: 100, MaxSeries: 10},
		"big":       {IngestionRate: 1000, MaxSeries: 10},
		"unlimited": {IngestionRate: 100, MaxSeries: 0},
	} {
		if got := c.For(tenant); got != want {
			t.Errorf("%s: %+v, want %+v", tenant, got, want)
		}
	}
	for _, bad := range []string{
		"default:\n  ingestion_rat: 1\n",
		"default:\n  max_series: -1\n",
		"tenants:\n  a:\n    ingestion_rate: -5\n",
		"nonsense",
	} {
		if _, err := ParseLimitsConfig([]byte(bad)); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
	if _, err := ParseLimitsConfig(nil); err != nil {
		t.Errorf("empty file: %v", err)
	}
}

func TestRateLimiter(t *testing.T) {
	now := time.Unix(1000, 0)
	r := newRateLimiter(LimitsConfig{Default: Limits{IngestionRate: 100, IngestionBurst: 200}})
	r.now = func() time.Time { return now }
	if ok, _ := allowN(r, "a", 150); !ok {
		t.Fatal("first request within the burst refused")
	}
	ok, wait := allowN(r, "a", 100)
	if ok || wait < time.Second {
		t.Fatalf("over the burst: ok=%v wait=%s", ok, wait)
	}
	if ok, _ := allowN(r, "b", 150); !ok {
		t.Fatal("tenants share a bucket")
	}
	now = now.Add(time.Second)
	if ok, _ := allowN(r, "a", 100); !ok {
		t.Fatal("refilled bucket refused")
	}
	// A request larger than the burst passes on a full bucket, then waits.
	now = now.Add(time.Minute)
	if ok, _ := allowN(r, "a", 5000); !ok {
		t.Fatal("oversized request refused on a full bucket")
	}
	if ok, _ := allowN(r, "a", 1); ok {
		t.Fatal("bucket should be in debt after an oversized request")
	}
}

func TestLimitsThroughTheHandler(t *testing.T) {
	m := openShards(t)
	limits := LimitsConfig{Tenants: map[string]limitsOverride{
		"slow":  {IngestionRate: ptr(10.0), IngestionBurst: ptr(10)},
		"small": {MaxSeries: ptr(3)},
	}}
	h := NewHandler(NewRouter(m, nil, RouterOptions{Limits: limits}, nil, prometheus.NewRegistry()),
		HandlerOptions{Limits: limits}, nil, prometheus.NewRegistry())
	now := time.Now().UnixMilli()
	var many []prompb.TimeSeries
	for i := range 8 {
		many = append(many, series("m", now, 1, "i", string(rune('a'+i))))
	}

	if code, body := post(t, h, "slow", &prompb.WriteRequest{Timeseries: many}); code != http.StatusNoContent {
		t.Fatalf("first write within the burst: %d %s", code, body)
	}
	raw, _ := (&prompb.WriteRequest{Timeseries: many}).Marshal()
	r := httptest.NewRequest(http.MethodPost, "/api/v1/receive", bytes.NewReader(snappy.Encode(nil, raw)))
	r.Header.Set("X-Scope-OrgID", "slow")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" || !strings.Contains(w.Body.String(), "rate limit") {
		t.Fatalf("over the rate: %d %q Retry-After=%q", w.Code, w.Body, w.Header().Get("Retry-After"))
	}

	// Three series fit; the rest of the request is refused with 429 while
	// the three are stored, and known series keep being accepted.
	code, body := post(t, h, "small", &prompb.WriteRequest{Timeseries: many})
	if code != http.StatusTooManyRequests || !strings.Contains(body, "limit of series") {
		t.Fatalf("over max series: %d %s", code, body)
	}
	if got := len(read(t, m, "small", "m")); got != 3 {
		t.Fatalf("%d series stored, want 3", got)
	}
	if code, body := post(t, h, "small", &prompb.WriteRequest{Timeseries: many[:3]}); code != http.StatusNoContent {
		t.Fatalf("known series at the limit: %d %s", code, body)
	}
}

func ptr[T any](v T) *T { return &v }

func TestSameLabels(t *testing.T) {
	wire := func(kv ...string) []label {
		var out []label
		for i := 0; i < len(kv); i += 2 {
			out = append(out, label{Name: []byte(kv[i]), Value: []byte(kv[i+1])})
		}
		return out
	}
	stored := labelsFromStrings("__name__", "up", "job", "a")
	for _, c := range []struct {
		wire []label
		want bool
	}{
		{wire("__name__", "up", "job", "a"), true},
		{wire("__name__", "up"), false},
		{wire("__name__", "up", "job", "a", "x", "y"), false},
		{wire("__name__", "up", "job", "b"), false},
		{wire(), false},
	} {
		if got := sameLabels(stored, c.wire); got != c.want {
			t.Errorf("%s: got %v", labelsString(c.wire), got)
		}
	}
}

var labelsFromStrings = labels.FromStrings

// TestForwardedCopiesMayBeOvertaken: client writes keep refusing
// out-of-order samples, while a replica's copy that a newer write overtook
// still lands within the TSDB's window.
func TestForwardedCopiesMayBeOvertaken(t *testing.T) {
	o := tsdbshard.DefaultOptions()
	o.Dir = t.TempDir()
	o.OutOfOrderTimeWindow = 5 * time.Minute
	m, err := tsdbshard.Open(o, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	router := NewRouter(m, nil, RouterOptions{RejectOutOfOrder: true}, nil, prometheus.NewRegistry())
	h := NewHandler(router, HandlerOptions{}, nil, prometheus.NewRegistry())
	now := time.Now().UnixMilli()
	if code, body := post(t, h, "", &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series("x", now, 2)}}); code != http.StatusNoContent {
		t.Fatalf("%d %s", code, body)
	}
	if code, _ := post(t, h, "", &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series("x", now-60_000, 1)}}); code != http.StatusConflict {
		t.Fatalf("client out-of-order write: %d, want 409", code)
	}
	raw, _ := (&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series("x", now-15_000, 1.5)}}).Marshal()
	var wr writeRequest
	if err := wr.Decode(raw); err != nil {
		t.Fatal(err)
	}
	res, err := router.writeLocal(t.Context(), tenant.Default, &wr)
	if err != nil || res.outcome != outcomeStored {
		t.Fatalf("overtaken replica copy: %v %+v", err, res)
	}
	got := read(t, m, tenant.Default, "x")
	if vs := got[`{__name__="x"}`]; len(vs) != 2 || vs[0] != 1.5 || vs[1] != 2 {
		t.Fatalf("samples %v, want [1.5 2]", got)
	}
}

func allowN(r *rateLimiter, tenant string, n int) (bool, time.Duration) {
	ok, _, wait := r.allow(tenant, func() int { return n })
	return ok, wait
}
