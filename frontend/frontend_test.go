package frontend

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/prompb"

	"github.com/atoll-metrics/atoll/internal/apicompare"
	"github.com/atoll-metrics/atoll/internal/e2eproc"
	"github.com/atoll-metrics/atoll/internal/rwhistory"
)

// startPrometheus runs a real Prometheus that receives remote writes and
// scrapes nothing, and returns its URL.
func startPrometheus(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte("global:\n  scrape_interval: 1m\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", e2eproc.Ports(t, 1)[0])
	p := e2eproc.Start(t, "prometheus", e2eproc.FindTool(t, "prometheus"),
		"--config.file="+cfg,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--storage.tsdb.retention.time=30d",
		"--web.listen-address="+addr,
		"--web.enable-remote-write-receiver",
	)
	p.WaitReady("http://"+addr+"/-/ready", 60*time.Second)
	return "http://" + addr
}

// get asks base for path?params and returns the status and body.
func get(t *testing.T, base, path string, params url.Values, header http.Header) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path+"?"+params.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		r.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, bytes.TrimSpace(b)
}

// testFrontend is a Frontend served over HTTP with its own registry.
type testFrontend struct {
	name string
	url  string
	reg  *prometheus.Registry
	fe   *Frontend
}

func newTestFrontend(t *testing.T, name string, opts Options) *testFrontend {
	t.Helper()
	reg := prometheus.NewRegistry()
	fe, err := New(opts, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(fe)
	t.Cleanup(srv.Close)
	return &testFrontend{name: name, url: srv.URL, reg: reg, fe: fe}
}

func (f *testFrontend) counter(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue metrics
				}
			}
			total += m.GetCounter().GetValue()
		}
	}
	return total
}

func downstreamsOf(t *testing.T, urls ...string) []Downstream {
	var out []Downstream
	for _, s := range urls {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, Downstream{URL: u})
	}
	return out
}

var rangeQueries = []string{
	`fe_requests_total`,
	`rate(fe_requests_total[5m])`,
	`sum by (job) (rate(fe_requests_total[5m]))`,
	`increase(fe_requests_total[1h])`,
	`resets(fe_requests_total[2h])`,
	`avg(fe_temperature)`,
	`max_over_time(fe_temperature[30m])`,
	`stddev by (job) (fe_temperature)`,
	`quantile(0.5, fe_temperature)`,
	`topk(2, fe_temperature)`,
	`-fe_temperature > -25`,
	`deriv(fe_temperature[15m])`,
	`predict_linear(fe_temperature[1h], 3600)`,
	`changes(fe_temperature[1h])`,
	`label_replace(fe_temperature, "host", "$1", "instance", "(.*)")`,
	`timestamp(fe_temperature)`,
	`histogram_quantile(0.9, sum by (le) (rate(fe_latency_bucket[10m])))`,
	`rate(fe_native_seconds[5m])`,
	`histogram_quantile(0.5, rate(fe_native_seconds[10m]))`,
	`count(fe_requests_total offset 1h)`,
	`fe_temperature @ start()`,
	`sum(fe_requests_total) / count(fe_requests_total)`,
	`max_over_time(rate(fe_requests_total[5m])[30m:1m])`,
	`absent(fe_nonexistent)`,
	`vector(1)`,
	`time()`,
	`quantile(1.5, fe_temperature)`,
}

// TestFrontendMatchesPrometheus puts frontends of every kind (no cache,
// in-memory cache, memcached, no splitting) in front of a real Prometheus
// holding three days of data and asks them and Prometheus the same range
// queries, over days and over the freshness boundary, cold and cached:
// every answer must be Prometheus's, byte for byte.
func TestFrontendMatchesPrometheus(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Prometheus and memcached")
	}
	promURL := startPrometheus(t)
	mc := e2eproc.Memcached(t)
	now := time.Now()
	data := rwhistory.New(now, 3*24*time.Hour)
	if err := data.Write(context.Background(), promURL+"/api/v1/write", data.Start, data.End); err != nil {
		t.Fatal(err)
	}

	memcached, err := NewCache(CacheConfig{Type: CacheMemcached, Config: CacheBackendCfg{
		Addresses: []string{mc}, Timeout: 0, MaxIdleConnections: 4, MaxItemSize: 4 << 20,
	}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	opts := func(split time.Duration, cache Cache) Options {
		o := DefaultOptions()
		o.Downstreams = downstreamsOf(t, promURL)
		o.SplitInterval = split
		o.Cache = cache
		return o
	}
	frontends := []*testFrontend{
		newTestFrontend(t, "no cache", opts(24*time.Hour, nil)),
		newTestFrontend(t, "memory", opts(24*time.Hour, newMemoryCache(64<<20, 0, nil))),
		newTestFrontend(t, "memcached", opts(6*time.Hour, memcached)),
		newTestFrontend(t, "memory, unsplit", opts(0, newMemoryCache(64<<20, 0, nil))),
	}

	nowMs := now.UnixMilli()
	midnight := nowMs / day * day
	if nowMs-midnight < 2*hour {
		midnight -= day
	}
	type window struct {
		name             string
		start, end, step int64
	}
	aligned := func(name string, start, end, step int64) window {
		return window{name, floorDiv(start, step) * step, floorDiv(end, step) * step, step}
	}
	windows := []window{
		aligned("three days to now", data.Start, nowMs, 10*minute),
		aligned("last hour, over the freshness boundary", nowMs-hour, nowMs, minute),
		aligned("around midnight, odd step", midnight-2*hour, midnight+2*hour, 37_000),
		aligned("one point at midnight", midnight, midnight, minute),
	}
	ask := func(t *testing.T, base string, q string, w window) (int, []byte) {
		return get(t, base, "/api/v1/query_range", url.Values{
			"query": {q},
			"start": {formatMs(w.start)}, "end": {formatMs(w.end)}, "step": {formatMs(w.step)},
		}, nil)
	}
	for _, w := range windows {
		for _, q := range rangeQueries {
			wantCode, want := ask(t, promURL, q, w)
			if wantCode != http.StatusOK {
				t.Fatalf("prometheus: %s %s: %d %s", w.name, q, wantCode, want)
			}
			for _, f := range frontends {
				for _, round := range []string{"cold", "cached"} {
					code, got := ask(t, f.url, q, w)
					if err := apicompare.Same(got, want); code != wantCode || err != nil {
						t.Errorf("%s, %s, %s, %s: %v\nprometheus %d: %s\nfrontend   %d: %s", f.name, round, w.name, q, err, wantCode, clip(want), code, clip(got))
					}
				}
			}
		}
	}
	for _, f := range frontends[1:] {
		if hits := f.counter(t, "atoll_frontend_results_cache_lookups_total", "result", "hit"); hits == 0 {
			t.Errorf("%s: no cache hit", f.name)
		}
		if n := f.counter(t, "atoll_frontend_results_cache_not_stored_total", "reason", "warnings"); n == 0 {
			t.Errorf("%s: the answers with warnings were stored", f.name)
		}
	}

	t.Run("unaligned queries are answered on the step's grid", func(t *testing.T) {
		w := windows[0]
		for _, q := range rangeQueries[:5] {
			_, want := ask(t, promURL, q, w)
			_, got := ask(t, frontends[1].url, q, window{w.name, w.start + 13_000, w.end + 17_000, w.step})
			if err := apicompare.Same(got, want); err != nil {
				t.Errorf("%s: got %s, want %s", q, clip(got), clip(want))
			}
		}
	})

	t.Run("a cache hit is never older than the stores for the recent window", func(t *testing.T) {
		q := `sum by (job) (fe_temperature)`
		w := aligned("last 20m", nowMs-20*minute, time.Now().UnixMilli(), 15_000)
		for _, f := range frontends[1:] {
			ask(t, f.url, q, w)
		}
		// Samples that arrive now, newer than anything cached: every
		// frontend must show them at once.
		fresh := time.Now().UnixMilli() - 45_000
		for ts := fresh; ts <= time.Now().UnixMilli(); ts += 15_000 {
			var series []prompb.TimeSeries
			for _, s := range data.Series(ts) {
				if len(s.Samples) > 0 {
					s.Samples = []prompb.Sample{{Timestamp: ts, Value: 1000 + float64(ts%100_000)}}
					series = append(series, s)
				}
			}
			if err := rwhistory.Send(context.Background(), promURL+"/api/v1/write", "", series); err != nil {
				t.Fatal(err)
			}
		}
		w = aligned("last 20m", nowMs-20*minute, time.Now().UnixMilli(), 15_000)
		_, want := ask(t, promURL, q, w)
		a, err := decodeAnswer(want)
		if err != nil || len(a.series) == 0 || a.series[0].floats[len(a.series[0].floats)-1].F < 1000 {
			t.Fatalf("the fresh samples are not in Prometheus's answer: %s", clip(want))
		}
		for _, f := range frontends {
			if _, got := ask(t, f.url, q, w); apicompare.Same(got, want) != nil {
				t.Errorf("%s: %v\nprometheus: %s\nfrontend:   %s", f.name, apicompare.Same(got, want), clip(want), clip(got))
			}
		}
	})

	t.Run("other endpoints are passed through", func(t *testing.T) {
		window := url.Values{"start": {formatMs(nowMs - day)}, "end": {formatMs(nowMs)}}
		for _, c := range []struct {
			path   string
			params url.Values
		}{
			{"/api/v1/series", url.Values{"match[]": {`fe_temperature`}, "start": window["start"], "end": window["end"]}},
			{"/api/v1/labels", window},
			{"/api/v1/label/job/values", window},
			{"/api/v1/query", url.Values{"query": {`sum by (job) (fe_temperature)`}, "time": {formatMs(nowMs - hour)}}},
			{"/api/v1/query", url.Values{"query": {`sum(`}}},
			{"/api/v1/query_range", url.Values{"query": {`sum(`}, "start": {"0"}, "end": {"60"}, "step": {"15"}}},
			{"/api/v1/query_range", url.Values{"query": {`up`}, "start": {"60"}, "end": {"0"}, "step": {"15"}}},
			{"/api/v1/query_range", url.Values{"query": {`up`}, "start": {"0"}, "end": {"600000"}, "step": {"1"}}},
			{"/api/v1/query_range", url.Values{"query": {`fe_temperature`}, "start": window["start"], "end": window["end"], "step": {"3600"}, "limit": {"2"}}},
			{"/api/v1/status/buildinfo", nil},
			{"/api/v1/nonexistent", nil},
		} {
			wc, want := get(t, promURL, c.path, c.params, nil)
			gc, got := get(t, frontends[1].url, c.path, c.params, nil)
			if wc != gc || !bytes.Equal(got, want) {
				t.Errorf("%s %v:\nprometheus %d: %s\nfrontend   %d: %s", c.path, c.params, wc, clip(want), gc, clip(got))
			}
		}
	})

	t.Run("a querier that does not answer is retried on the next", func(t *testing.T) {
		dead := fmt.Sprintf("http://127.0.0.1:%d", e2eproc.Ports(t, 1)[0])
		o := DefaultOptions()
		o.Downstreams = downstreamsOf(t, dead, promURL)
		f := newTestFrontend(t, "dead first", o)
		w := windows[0]
		for _, q := range rangeQueries[:4] {
			_, want := ask(t, promURL, q, w)
			if _, got := ask(t, f.url, q, w); apicompare.Same(got, want) != nil {
				t.Errorf("%s: got %s", q, clip(got))
			}
		}
		if n := f.counter(t, "atoll_frontend_retries_total"); n == 0 {
			t.Error("no retry counted")
		}
		o.Downstreams = downstreamsOf(t, dead)
		o.MaxRetries = 2
		f = newTestFrontend(t, "dead only", o)
		code, body := ask(t, f.url, "up", w)
		if code != http.StatusServiceUnavailable || !bytes.Contains(body, []byte(`"errorType":"unavailable"`)) {
			t.Errorf("no querier: got %d %s", code, body)
		}
	})

	t.Run("limits", func(t *testing.T) {
		limits, err := ParseLimits([]byte(`
default:
  max_query_length: 4d
tenants:
  small:
    max_query_length: 1h
  recent:
    max_query_lookback: 2d
`))
		if err != nil {
			t.Fatal(err)
		}
		o := DefaultOptions()
		o.Downstreams = downstreamsOf(t, promURL)
		o.Limits = limits
		o.TenantFromHeader = func(h http.Header) string { return h.Get("X-Scope-OrgID") }
		f := newTestFrontend(t, "limits", o)
		params := url.Values{"query": {"fe_temperature"}, "start": {formatMs(data.Start)}, "end": {formatMs(nowMs)}, "step": {"3600"}}
		for _, c := range []struct {
			tenant string
			code   int
			msg    string
		}{
			{"", http.StatusOK, ""},
			{"small", http.StatusBadRequest, "exceeds the limit (query length: 3d"},
			{"recent", http.StatusBadRequest, "further back than the limit (max query lookback: 2d)"},
		} {
			code, body := get(t, f.url, "/api/v1/query_range", params, http.Header{"X-Scope-Orgid": {c.tenant}})
			if code != c.code || !bytes.Contains(body, []byte(c.msg)) {
				t.Errorf("tenant %q: got %d %s, want %d with %q", c.tenant, code, body, c.code, c.msg)
			}
			if code != http.StatusOK && !bytes.Contains(body, []byte(`"status":"error","errorType":"bad_data"`)) {
				t.Errorf("tenant %q: not Prometheus's error shape: %s", c.tenant, body)
			}
		}
		if n := f.counter(t, "atoll_frontend_refused_queries_total"); n != 2 {
			t.Errorf("%v refusals counted, want 2", n)
		}
	})
}

func clip(b []byte) string {
	if len(b) > 1500 {
		return string(b[:700]) + " ... " + string(b[len(b)-700:])
	}
	return string(b)
}

func TestTenantQueues(t *testing.T) {
	var q tenantQueues
	l := TenantLimits{MaxConcurrentQueries: 2, MaxQueuedQueries: 1}
	ctx := context.Background()
	_, r1, err := q.acquire(ctx, "a", l)
	if err != nil {
		t.Fatal(err)
	}
	_, r2, err := q.acquire(ctx, "a", l)
	if err != nil {
		t.Fatal(err)
	}
	// Another tenant is not held up.
	_, rb, err := q.acquire(ctx, "b", l)
	if err != nil {
		t.Fatal(err)
	}
	rb()
	var wg sync.WaitGroup
	var waited time.Duration
	wg.Go(func() {
		var r3 func()
		waited, r3, err = q.acquire(ctx, "a", l)
		if err == nil {
			r3()
		}
	})
	// Wait for the third to queue, then a fourth finds the queue full.
	for {
		q.mtx.Lock()
		w := q.queues["a"].waiting
		q.mtx.Unlock()
		if w == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if _, _, err := q.acquire(ctx, "a", l); err != errQueueFull {
		t.Fatalf("fourth query: %v, want errQueueFull", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	time.Sleep(10 * time.Millisecond)
	r1()
	wg.Wait()
	if err != nil || waited < 10*time.Millisecond {
		t.Fatalf("queued query: err %v after %s", err, waited)
	}
	r2()
	r1() // a second release is harmless
	if _, _, err := q.acquire(cctx, "a", TenantLimits{MaxConcurrentQueries: 1}); err != nil {
		t.Fatalf("free slot refused: %v", err)
	}
	q.mtx.Lock()
	n := len(q.queues)
	q.mtx.Unlock()
	if n != 1 {
		t.Fatalf("%d tenant queues left, want the one in use", n)
	}
}
