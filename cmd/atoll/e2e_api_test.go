package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/prometheus/prometheus/prompb"
	v1 "github.com/prometheus/prometheus/web/api/v1"
	"gopkg.in/yaml.v3"

	"github.com/atoll-metrics/atoll/bucket/buckettest"
	"github.com/atoll-metrics/atoll/internal/e2eproc"
)

// apiEndpoints lists every path under /api/v1/ with the methods it is
// served for: those of the OpenAPI document the API serves, and the ones it
// leaves out, so a new upstream endpoint is covered without a test change.
func apiEndpoints(t *testing.T, httpURL string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	add := func(path string, methods ...string) {
		for _, m := range methods {
			if !slices.Contains(out[path], m) {
				out[path] = append(out[path], m)
			}
		}
	}
	resp, err := http.Get(httpURL + "/api/v1/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var doc struct {
		Paths map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(body, &doc); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	if len(doc.Paths) < 10 {
		t.Fatalf("openapi.yaml lists only %d paths:\n%s", len(doc.Paths), tail(string(body), 2000))
	}
	for p, ops := range doc.Paths {
		p = strings.ReplaceAll(p, "{name}", "job")
		for m := range ops {
			add(p, strings.ToUpper(m))
		}
	}
	for _, p := range []string{
		"/query", "/query_range", "/query_exemplars", "/format_query", "/parse_query", "/labels", "/label/job/values",
		"/series", "/scrape_pools", "/scrape_pools/config", "/targets", "/targets/metadata", "/targets/relabel_steps",
		"/alertmanagers", "/metadata", "/status/config", "/status/runtimeinfo", "/status/buildinfo", "/status/flags",
		"/status/tsdb", "/status/tsdb/blocks", "/status/self_metrics", "/features", "/status/walreplay",
		"/notifications", "/notifications/live", "/rules", "/alerts", "/read", "/write", "/otlp/v1/metrics",
		"/search/metric_names", "/search/label_names", "/search/label_values",
		"/admin/tsdb/delete_series", "/admin/tsdb/clean_tombstones", "/admin/tsdb/snapshot", "/openapi.yaml",
		// The web UI's own.
		"/stores", "/tenants", "/blocks",
	} {
		add(p, http.MethodGet, http.MethodPost)
	}
	for p := range out {
		// Every endpoint is also asked with the other method, and with the
		// preflight a browser sends before a cross-origin call.
		add(p, http.MethodGet, http.MethodPost, http.MethodOptions)
	}
	return out
}

// TestAPIAnswersRequestsWithOrigin sends an Origin header, as every browser
// POST carries, to every /api/v1 endpoint with every method: each must
// answer (no dropped connection), never 500, and the query endpoints must
// allow the origin by default.
func TestAPIAnswersRequestsWithOrigin(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	a := startAtoll(t, t.TempDir())
	now := time.Now().UnixMilli()
	req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:  []prompb.Label{{Name: "__name__", Value: "origin_test"}, {Name: "job", Value: "j"}},
		Samples: []prompb.Sample{{Timestamp: now, Value: 1}},
	}}}
	if code, body := remoteWrite(t, a.writeURL, "", req); code != http.StatusNoContent {
		t.Fatalf("write: %d %s", code, body)
	}
	params := url.Values{
		"query": {"origin_test"}, "match[]": {"origin_test"}, "start": {fmt.Sprint(now/1000 - 60)},
		"end": {fmt.Sprint(now/1000 + 1)}, "step": {"15"}, "metric": {"origin_test"},
	}
	const origin = "http://dashboards.example"
	client := &http.Client{Timeout: 10 * time.Second}
	endpoints := apiEndpoints(t, a.httpURL)
	asked := 0
	for path, methods := range endpoints {
		for _, m := range methods {
			var body io.Reader
			target := a.httpURL + "/api/v1" + path
			if m == http.MethodPost {
				body = strings.NewReader(params.Encode())
			} else {
				target += "?" + params.Encode()
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			r, err := http.NewRequestWithContext(ctx, m, target, body)
			if err != nil {
				t.Fatal(err)
			}
			r.Header.Set("Origin", origin)
			if m == http.MethodPost {
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			if m == http.MethodOptions {
				r.Header.Set("Access-Control-Request-Method", http.MethodPost)
			}
			resp, err := client.Do(r)
			if err != nil {
				cancel()
				if path == "/notifications/live" && ctx.Err() != nil {
					continue // a stream that stays open is an answer
				}
				t.Errorf("%s %s with Origin: %v", m, path, err)
				continue
			}
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			cancel()
			asked++
			if resp.StatusCode >= 500 {
				t.Errorf("%s %s with Origin: status %d", m, path, resp.StatusCode)
			}
			if (path == "/query" || path == "/query_range" || path == "/series" || path == "/labels") &&
				resp.Header.Get("Access-Control-Allow-Origin") == "" {
				t.Errorf("%s %s: no Access-Control-Allow-Origin for %s under the default --web.cors.origin", m, path, origin)
			}
		}
	}
	if v := metricValue(t, a.httpURL, "atoll_http_panics_total"); v != 0 {
		t.Errorf("atoll_http_panics_total = %v after the sweep", v)
	}
	if strings.Contains(a.Output().String(), "panic") {
		t.Errorf("the log reports a panic:\n%s", tail(a.Output().String(), 4096))
	}
	t.Logf("%d requests with Origin to %d endpoints answered", asked, len(endpoints))
}

// TestCORSOriginFlag checks that --web.cors.origin restricts the origins
// allowed, fully anchored, as Prometheus's flag of the same name does.
func TestCORSOriginFlag(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	a := startAtoll(t, t.TempDir(), `--web.cors.origin=https?://grafana\.example`)
	for origin, allowed := range map[string]bool{
		"https://grafana.example":      true,
		"http://grafana.example":       true,
		"https://grafana.example.evil": false,
		"https://other.example":        false,
	} {
		r, _ := http.NewRequest(http.MethodGet, a.httpURL+"/api/v1/query?query=1", nil)
		r.Header.Set("Origin", origin)
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatalf("%s: %v", origin, err)
		}
		resp.Body.Close()
		got := resp.Header.Get("Access-Control-Allow-Origin")
		if resp.StatusCode != http.StatusOK || (got != "") != allowed {
			t.Errorf("Origin %s: status %d, Access-Control-Allow-Origin %q, want allowed=%v", origin, resp.StatusCode, got, allowed)
		}
	}
	out, err := exec.Command(atollBinary, "all", "--web.cors.origin=(", "--data-dir="+filepath.Join(t.TempDir(), "d"),
		"--http-address=127.0.0.1:0", "--remote-write.address=127.0.0.1:0", "--grpc-address=127.0.0.1:0").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--web.cors.origin") {
		t.Errorf("an invalid --web.cors.origin must stop the start and be named: err %v\n%s", err, out)
	}
}

// TestUIQueryPostsWithOrigin runs, in a real headless Chromium, a query of
// the bundled page long enough that the page POSTs it, so the browser sends
// Origin (the request that used to drop the connection): the result must
// show and the console stay clean.
func TestUIQueryPostsWithOrigin(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	chromium := findChromium()
	if chromium == "" {
		t.Skip("chromium not installed (apt-get install chromium; .ci/run installs it)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a := startAtoll(t, t.TempDir())
	req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:  []prompb.Label{{Name: "__name__", Value: "ui_post_metric"}, {Name: "job", Value: "browser"}},
		Samples: []prompb.Sample{{Timestamp: time.Now().UnixMilli(), Value: 42}},
	}}}
	if code, body := remoteWrite(t, a.writeURL, "", req); code != http.StatusNoContent {
		t.Fatalf("write: %d %s", code, body)
	}

	// The page sends expressions longer than 2000 characters as a POST.
	expr := "ui_post_metric" + strings.Repeat(" + 0", 500)
	b := newBrowser(ctx, t, chromium)
	b.do("open a panel with a long expression",
		chromedp.Navigate(a.httpURL+"/query?g0.tab=table&g0.expr="+url.QueryEscape(expr)),
		chromedp.WaitVisible(chromedp.CSS(`.editor textarea`)))
	b.waitCount(`.table-result tbody tr`, 1)
	if txt := b.text(`.table-result`); !strings.Contains(txt, `job="browser"`) || !strings.Contains(txt, "42") {
		t.Errorf("the page shows %q, want the series and its value 42", txt)
	}
	b.checkConsole()
	if v := metricValue(t, a.httpURL, "atoll_http_panics_total"); v != 0 {
		t.Errorf("atoll_http_panics_total = %v", v)
	}
}

// getBody fetches a URL with optional headers and returns status and body.
func getBody(t *testing.T, u string, header http.Header) (int, string) {
	t.Helper()
	r, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		r.Header[k] = v
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(r)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestStatusEndpointsTellTheTruth checks /api/v1/status/{config,flags,
// runtimeinfo,tsdb} of `atoll all` on an S3 bucket with a secret key: real
// configuration and runtime values, head cardinality per tenant, and the
// secret nowhere, neither in any API answer nor in the log.
func TestStatusEndpointsTellTheTruth(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	s3 := buckettest.StartS3Server(t)
	bc := s3.CreateBucket(t)
	secret := string(bc.SecretKey)
	inline := fmt.Sprintf("type: S3\nconfig: {bucket: %s, endpoint: %q, access_key: %s, secret_key: %s, insecure: true, bucket_lookup_type: path}\n",
		bc.Bucket, bc.Endpoint, bc.AccessKey, secret)
	dir := t.TempDir()
	limitsFile := filepath.Join(dir, "limits.yml")
	if err := os.WriteFile(limitsFile, []byte("default:\n  max_series: 1234\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a := startAtoll(t, filepath.Join(dir, "data"), "--objstore.config="+inline, "--receive.limits-config-file="+limitsFile, "--web.enable-pprof")
	now := time.Now().UnixMilli()
	req := &prompb.WriteRequest{}
	for i := range 7 {
		req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
			Labels:  []prompb.Label{{Name: "__name__", Value: "status_test"}, {Name: "i", Value: fmt.Sprint(i)}},
			Samples: []prompb.Sample{{Timestamp: now, Value: 1}},
		})
	}
	if code, body := remoteWrite(t, a.writeURL, "team-a", req); code != http.StatusNoContent {
		t.Fatalf("write: %d %s", code, body)
	}
	api := a.httpURL + "/api/v1"

	code, r := promAPI(t, api, "/status/config", nil, nil)
	var cfg struct {
		YAML string `json:"yaml"`
	}
	_ = json.Unmarshal(r.Data, &cfg)
	for _, want := range []string{"command: all", "data-dir: ", "web.cors.origin: .*", "bucket:", "type: S3", "bucket: " + bc.Bucket, "secret_key: <secret>", "max_series: 1234"} {
		if code != http.StatusOK || !strings.Contains(cfg.YAML, want) {
			t.Errorf("/status/config (%d) lacks %q:\n%s", code, want, cfg.YAML)
		}
	}
	if strings.Contains(cfg.YAML, "global:") || strings.Contains(cfg.YAML, "scrape_configs") {
		t.Errorf("/status/config shows a Prometheus config:\n%s", cfg.YAML)
	}

	code, r = promAPI(t, api, "/status/flags", nil, nil)
	var flags map[string]string
	_ = json.Unmarshal(r.Data, &flags)
	if code != http.StatusOK || flags["receive.limits-config-file"] != limitsFile || !strings.Contains(flags["objstore.config"], "secret_key: <secret>") {
		t.Errorf("/status/flags (%d): limits file %q, objstore.config %q", code, flags["receive.limits-config-file"], flags["objstore.config"])
	}

	code, r = promAPI(t, api, "/status/runtimeinfo", nil, nil)
	var rt v1.RuntimeInfo
	if err := json.Unmarshal(r.Data, &rt); err != nil || code != http.StatusOK {
		t.Fatalf("/status/runtimeinfo: %d %v", code, err)
	}
	host, _ := os.Hostname()
	cwd, _ := os.Getwd()
	switch {
	case rt.Hostname != host, rt.CWD != cwd:
		t.Errorf("runtimeinfo hostname %q CWD %q, want %q %q", rt.Hostname, rt.CWD, host, cwd)
	case time.Since(rt.ServerTime).Abs() > time.Minute, rt.StartTime.After(rt.ServerTime), time.Since(rt.StartTime) > 5*time.Minute:
		t.Errorf("runtimeinfo times: start %v, server %v", rt.StartTime, rt.ServerTime)
	case rt.GoroutineCount < 10, rt.GOMAXPROCS < 1, rt.GOGC == "", !rt.ReloadConfigSuccess, rt.LastConfigTime.IsZero():
		t.Errorf("runtimeinfo: %+v", rt)
	case !strings.Contains(rt.StorageRetention, "6h"):
		t.Errorf("runtimeinfo storage retention %q does not say 6h local", rt.StorageRetention)
	}

	code, r = promAPI(t, api, "/status/tsdb", url.Values{"limit": {"3"}}, http.Header{"X-Scope-Orgid": {"team-a"}})
	var st v1.TSDBStatus
	if err := json.Unmarshal(r.Data, &st); err != nil || code != http.StatusOK {
		t.Fatalf("/status/tsdb: %d %s %v", code, r.Error, err)
	}
	if st.HeadStats.NumSeries != 7 || st.HeadStats.ChunkCount != 7 || st.HeadStats.MinTime != now ||
		len(st.SeriesCountByMetricName) != 1 || st.SeriesCountByMetricName[0] != (v1.TSDBStat{Name: "status_test", Value: 7}) ||
		len(st.SeriesCountByLabelValuePair) != 3 {
		t.Errorf("/status/tsdb of team-a: %+v", st)
	}
	if code, r := promAPI(t, api, "/status/tsdb", nil, http.Header{"X-Scope-Orgid": {"nobody"}}); code != http.StatusNotFound {
		t.Errorf("/status/tsdb of a tenant without TSDB: %d %s", code, r.Error)
	}
	if code, r := promAPI(t, api, "/status/tsdb", url.Values{"limit": {"0"}}, http.Header{"X-Scope-Orgid": {"team-a"}}); code != http.StatusBadRequest {
		t.Errorf("/status/tsdb?limit=0: %d %s", code, r.Error)
	}

	// The secret is in no answer of the API, whatever the endpoint.
	for path, methods := range apiEndpoints(t, a.httpURL) {
		if !slices.Contains(methods, http.MethodGet) || path == "/notifications/live" {
			continue
		}
		_, body := getBody(t, api+path, http.Header{"X-Scope-Orgid": {"team-a"}})
		if strings.Contains(body, secret) {
			t.Errorf("GET /api/v1%s shows the S3 secret key", path)
		}
	}
	// Nor in the UI's pages, /metrics, the probes or pprof (enabled here).
	for _, p := range []string{"/metrics", "/debug/pprof/cmdline", "/-/ready", "/-/healthy",
		"/", "/query", "/graph", "/stores", "/tenants", "/blocks", "/status", "/ring"} {
		code, body := getBody(t, a.httpURL+p, nil)
		if strings.Contains(body, secret) {
			t.Errorf("GET %s shows the S3 secret key", p)
		}
		if p == "/debug/pprof/cmdline" && (code != http.StatusOK || !strings.Contains(body, "secret_key: <secret>")) {
			t.Errorf("GET %s: %d %q, want the command line with the secret masked", p, code, body)
		}
	}
	// Nor in the answers of remote write, refusals included.
	if _, body := postBody(t, a.writeURL, "team-a", []byte("not snappy")); strings.Contains(body, secret) {
		t.Error("a remote-write error shows the S3 secret key")
	}
	a.Stop(30 * time.Second)
	if strings.Contains(a.Output().String(), secret) {
		t.Error("the log shows the S3 secret key")
	}
	// atoll all says where it can be reached: here, the test's loopback
	// addresses only.
	if !strings.Contains(a.Output().String(), "atoll all is reachable from this host only") {
		t.Error("atoll all did not say at start-up that it serves this host only")
	}
}

// TestQueryStatusEndpoints: `atoll query` has no TSDB and no configuration
// file, and says so.
func TestQueryStatusEndpoints(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	port := e2eproc.Ports(t, 2)
	q := e2eproc.Start(t, "query", atollBinary, "query", "--ring.disable",
		fmt.Sprintf("--http-address=127.0.0.1:%d", port[0]), fmt.Sprintf("--grpc-address=127.0.0.1:%d", port[1]))
	base := fmt.Sprintf("http://127.0.0.1:%d", port[0])
	q.WaitReady(base+"/-/ready", 30*time.Second)
	if code, r := promAPI(t, base+"/api/v1", "/status/tsdb", nil, nil); code != http.StatusNotFound {
		t.Errorf("/status/tsdb of atoll query: %d %s, want 404", code, r.Error)
	}
	code, r := promAPI(t, base+"/api/v1", "/status/config", nil, nil)
	if code != http.StatusOK || !strings.Contains(string(r.Data), "command: query") {
		t.Errorf("/status/config of atoll query: %d %s", code, r.Data)
	}
	// Profiling is off unless --web.enable-pprof turns it on.
	for _, p := range []string{"/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/profile?seconds=1"} {
		if code, _ := getBody(t, base+p, nil); code != http.StatusNotFound {
			t.Errorf("GET %s without --web.enable-pprof: %d, want 404", p, code)
		}
	}
}
