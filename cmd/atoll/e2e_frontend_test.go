package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"

	"github.com/atoll-metrics/atoll/internal/apicompare"
	"github.com/atoll-metrics/atoll/internal/e2eproc"
	"github.com/atoll-metrics/atoll/internal/rwhistory"
)

// frontendQueries are asked of Prometheus, of the querier alone and of
// query-frontends in front of it: aggregations the frontend shards, and
// what it must leave whole.
var frontendQueries = []string{
	`sum(rate(fe_requests_total[5m]))`,
	`sum by (job) (increase(fe_requests_total[1h]))`,
	`count by (code) (fe_requests_total)`,
	`max by (job) (fe_temperature)`,
	`min without (instance) (fe_temperature)`,
	`avg(fe_temperature)`,
	`group by (job) (fe_requests_total)`,
	`histogram_quantile(0.9, sum by (le) (rate(fe_latency_bucket[10m])))`,
	`sum(rate(fe_native_seconds[5m]))`,
	`topk(2, sum by (instance) (rate(fe_requests_total[5m])))`,
	`sum(rate(fe_requests_total[5m])) / sum(rate(fe_requests_total{code="200"}[5m]))`,
	`resets(fe_requests_total[2h])`,
	`quantile(0.5, fe_temperature)`,
	`fe_temperature @ start()`,
	`count(fe_requests_total offset 1h)`,
	`max_over_time(sum(rate(fe_requests_total[5m]))[30m:5m])`,
	`absent(fe_nonexistent)`,
}

// apiGet asks base for path?params and returns the status and raw body.
func apiGet(t *testing.T, base, path string, params url.Values, header http.Header) (int, []byte) {
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
	return resp.StatusCode, b
}

// TestQueryFrontend holds two days of data in Atoll and in Prometheus and
// asks the same range queries of Prometheus, of `atoll query` alone, of
// `atoll query-frontend` in front of it (memcached, vertical shards spread
// over two queriers, split every 12h) and of the frontend built into `atoll
// all`, each cold and cached, over midnight and the freshness boundary:
// every answer must be Prometheus's. Then one store dies: the frontend
// answers with a partial response it does not cache, or 503 when partial
// responses are off; a tenant's sample limit is refused by the querier.
func TestQueryFrontend(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	dir := t.TempDir()
	prom := e2eproc.FindTool(t, "prometheus")
	promAddr := fmt.Sprintf("127.0.0.1:%d", e2eproc.Ports(t, 1)[0])
	promCfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(promCfg, []byte("global:\n  scrape_interval: 1m\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := e2eproc.Start(t, "prometheus", prom, "--config.file="+promCfg, "--storage.tsdb.path="+filepath.Join(dir, "prometheus"),
		"--storage.tsdb.retention.time=30d", "--web.listen-address="+promAddr, "--web.enable-remote-write-receiver")
	promURL := "http://" + promAddr
	p.WaitReady(promURL+"/-/ready", 60*time.Second)

	// The store holding the data answers through a frontend of its own too.
	a := startAtoll(t, filepath.Join(dir, "a"), "--compact.disable", "--tsdb.retention=30d",
		"--query-frontend.enabled", "--query-frontend.vertical-shards=2")
	// A second store, with data of its own, to be killed.
	b := startAtoll(t, filepath.Join(dir, "b"), "--compact.disable")

	ctx := context.Background()
	now := time.Now()
	h := rwhistory.New(now, 2*24*time.Hour)
	for _, u := range []string{promURL + "/api/v1/write", a.writeURL} {
		if err := h.Write(ctx, u, h.Start, h.End); err != nil {
			t.Fatal(err)
		}
	}
	other := []prompb.TimeSeries{{
		Labels:  []prompb.Label{{Name: "__name__", Value: "fe_other"}},
		Samples: []prompb.Sample{{Timestamp: h.End - 10*60_000, Value: 1}, {Timestamp: h.End, Value: 2}},
	}}
	if err := rwhistory.Send(ctx, b.writeURL, "", other); err != nil {
		t.Fatal(err)
	}

	// Two queriers over both stores; stores are checked rarely, so a
	// store that dies is still asked, and fails, as one that just died.
	var queriers []string
	for range 2 {
		port := e2eproc.Ports(t, 1)[0]
		u := fmt.Sprintf("http://127.0.0.1:%d", port)
		q := e2eproc.Start(t, "querier", atollBinary, "query", "--ring.disable",
			fmt.Sprintf("--http-address=127.0.0.1:%d", port),
			"--store="+a.grpcAddr, "--store="+b.grpcAddr,
			"--store.check-interval=10m", "--query.store-timeout=10s")
		q.WaitReady(u+"/-/ready", 60*time.Second)
		queriers = append(queriers, u)
	}

	mc := e2eproc.Memcached(t)
	limits := filepath.Join(dir, "limits.yml")
	if err := os.WriteFile(limits, []byte("tenants:\n  default-tenant:\n    max_samples: 500\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fePort := e2eproc.Ports(t, 1)[0]
	feURL := fmt.Sprintf("http://127.0.0.1:%d", fePort)
	fe := e2eproc.Start(t, "query-frontend", atollBinary, "query-frontend",
		fmt.Sprintf("--http-address=127.0.0.1:%d", fePort),
		"--query-frontend.downstream-url="+queriers[0], "--query-frontend.downstream-url="+queriers[1],
		"--query-range.response-cache-config=type: MEMCACHED\nconfig:\n  addresses: ["+mc+"]\n  max_item_size: 4MiB\n",
		"--query-range.split-interval=12h",
		"--query-frontend.vertical-shards=3",
		"--query-frontend.limits-config-file="+limits,
		"--query-frontend.log-queries-longer-than=-1ms",
		"--query-frontend.downstream-check-interval=1s",
	)
	fe.WaitReady(feURL+"/-/ready", 30*time.Second)

	nowMs := now.UnixMilli()
	midnight := nowMs / 86_400_000 * 86_400_000
	if nowMs-midnight < 2*3_600_000 {
		midnight -= 86_400_000
	}
	type window struct {
		name             string
		start, end, step int64
	}
	aligned := func(name string, start, end, step int64) window {
		return window{name, start / step * step, end / step * step, step}
	}
	windows := []window{
		aligned("two days to now", h.Start, nowMs, 10*60_000),
		aligned("last hour, over the freshness boundary", nowMs-3_600_000, nowMs, 60_000),
		aligned("around midnight", midnight-3*3_600_000, midnight+3*3_600_000, 45_000),
	}
	params := func(q string, w window) url.Values {
		return url.Values{"query": {q}, "start": {strconv.FormatInt(w.start/1000, 10)},
			"end": {strconv.FormatInt(w.end/1000, 10)}, "step": {strconv.FormatInt(w.step/1000, 10)}}
	}
	targets := []struct{ name, url string }{
		{"querier alone", queriers[0]},
		{"query-frontend", feURL},
		{"atoll all's frontend", a.httpURL},
	}
	for _, w := range windows {
		for _, q := range frontendQueries {
			code, want := apiGet(t, promURL, "/api/v1/query_range", params(q, w), nil)
			if code != http.StatusOK {
				t.Fatalf("prometheus: %s: %d %s", q, code, want)
			}
			for _, tg := range targets {
				for _, round := range []string{"cold", "cached"} {
					code, got := apiGet(t, tg.url, "/api/v1/query_range", params(q, w), nil)
					if err := apicompare.Same(got, want); code != http.StatusOK || err != nil {
						t.Errorf("%s (%s), %s, %s: %d %v\nprometheus: %s\natoll:      %s", tg.name, round, w.name, q, code, err, tail(string(want), 600), tail(string(got), 600))
					}
				}
			}
		}
	}
	// Instant queries, sharded and not.
	at := url.Values{"time": {strconv.FormatInt((nowMs-5*60_000)/1000, 10)}}
	for _, q := range frontendQueries {
		ps := url.Values{"query": {q}, "time": at["time"]}
		_, want := apiGet(t, promURL, "/api/v1/query", ps, nil)
		for _, tg := range targets[1:] {
			if code, got := apiGet(t, tg.url, "/api/v1/query", ps, nil); code != http.StatusOK || apicompare.Same(got, want) != nil {
				t.Errorf("%s, instant %s: %d %v\nprometheus: %s\natoll:      %s", tg.name, q, code, apicompare.Same(got, want), want, got)
			}
		}
	}
	for _, c := range []struct {
		url, metric string
	}{
		{feURL, "atoll_frontend_sharded_queries_total"},
		{feURL, "atoll_frontend_shard_fallbacks_total"},
		{feURL, "atoll_frontend_split_queries_total"},
		{a.httpURL, "atoll_frontend_sharded_queries_total"},
	} {
		if v := metricValue(t, c.url, c.metric); v == 0 {
			t.Errorf("%s: %s is 0", c.url, c.metric)
		}
	}
	if hits := metricValue(t, feURL, `atoll_frontend_results_cache_lookups_total{result="hit"}`); hits == 0 {
		t.Error("memcached: no piece answered from the cache")
	}

	t.Run("a tenant's sample limit is passed to the querier", func(t *testing.T) {
		w := windows[0]
		code, body := apiGet(t, feURL, "/api/v1/query_range", params(`sum(fe_requests_total)`, w), http.Header{"X-Scope-Orgid": {"default-tenant"}})
		if code != http.StatusUnprocessableEntity || !strings.Contains(string(body), `"errorType":"cost_limit"`) {
			t.Fatalf("got %d %s, want 422 cost_limit", code, body)
		}
	})

	t.Run("the frontend is a component like the others", func(t *testing.T) {
		for path, want := range map[string]string{
			"/":                             "<html",
			"/-/healthy":                    "healthy",
			"/api/v1/status/flags":          "query-frontend.downstream-url",
			"/api/v1/status/config":         "results_cache",
			"/api/v1/status/buildinfo":      `"version"`,
			"/metrics":                      "atoll_frontend_request_duration_seconds",
			"/api/v1/label/job/values":      `"api"`,
			"/api/v1/series?match[]=up":     `"status":"success"`,
			"/api/v1/query?query=vector(1)": `"1"`,
		} {
			u, _ := url.Parse(feURL + path)
			code, body := apiGet(t, feURL, u.Path, u.Query(), nil)
			if code != http.StatusOK || !strings.Contains(string(body), want) {
				t.Errorf("%s: %d %s, want %q", path, code, tail(string(body), 300), want)
			}
		}
		if !strings.Contains(fe.Output().String(), `msg="slow query"`) {
			t.Error("no slow query logged with --query-frontend.log-queries-longer-than=-1ms")
		}
	})

	t.Run("a store fails", func(t *testing.T) {
		b.Kill()
		w := aligned("last 2h", nowMs-2*3_600_000, nowMs, 60_000)
		q := `max by (job) (fe_temperature)`
		_, want := apiGet(t, promURL, "/api/v1/query_range", params(q, w), nil)
		before := metricValue(t, feURL, `atoll_frontend_results_cache_not_stored_total{reason="warnings"}`)
		for range 2 {
			code, got := apiGet(t, feURL, "/api/v1/query_range", params(q, w), nil)
			var r struct {
				Warnings []string `json:"warnings"`
			}
			_ = json.Unmarshal(got, &r)
			if code != http.StatusOK || len(r.Warnings) == 0 || !strings.Contains(r.Warnings[0], "partial response") {
				t.Fatalf("want a partial response: %d %s", code, tail(string(got), 600))
			}
			if err := apicompare.Same(withoutWarnings(t, got), want); err != nil {
				t.Fatalf("partial response data: %v", err)
			}
		}
		if after := metricValue(t, feURL, `atoll_frontend_results_cache_not_stored_total{reason="warnings"}`); after <= before {
			t.Error("a partial response was cached")
		}
		ps := params(q, w)
		ps.Set("partial_response", "false")
		code, body := apiGet(t, feURL, "/api/v1/query_range", ps, nil)
		if code != http.StatusServiceUnavailable {
			t.Fatalf("without partial response: %d %s, want 503", code, body)
		}
		if metricValue(t, feURL, "atoll_frontend_retries_total") == 0 {
			t.Error("the querier's 503 was not retried")
		}
	})
}

// withoutWarnings drops the warnings of an API answer.
func withoutWarnings(t *testing.T, body []byte) []byte {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	delete(m, "warnings")
	out, _ := json.Marshal(m)
	return out
}
