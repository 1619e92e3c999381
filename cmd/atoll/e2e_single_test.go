package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/prompb"

	"github.com/atoll-metrics/atoll/internal/e2eproc"
)

// TestPrometheusRemoteWriteMatchesPrometheus points a real Prometheus,
// scraping itself, at Atoll, then asks both the same questions: every answer
// must be identical.
func TestPrometheusRemoteWriteMatchesPrometheus(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	dir := t.TempDir()
	a := startAtoll(t, filepath.Join(dir, "atoll"))
	prom := e2eproc.FindTool(t, "prometheus")
	ports := e2eproc.Ports(t, 2)
	promAddr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	promData := filepath.Join(dir, "prometheus")

	cfg := fmt.Sprintf(`
global:
  scrape_interval: 1s
  scrape_native_histograms: true
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: [%q]
  - job_name: atoll
    static_configs:
      - targets: [%q]
remote_write:
  - url: %s
    send_native_histograms: true
    send_exemplars: true
    metadata_config:
      send_interval: 2s
    queue_config:
      batch_send_deadline: 500ms
      min_backoff: 50ms
      max_backoff: 1s
`, promAddr, strings.TrimPrefix(a.httpURL, "http://"), a.writeURL)
	cfgFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	p := e2eproc.Start(t, "prometheus", prom,
		"--config.file="+cfgFile,
		"--storage.tsdb.path="+promData,
		"--web.listen-address="+promAddr,
	)
	promURL := "http://" + promAddr
	p.WaitReady(promURL+"/-/ready", 60*time.Second)

	// Let a dozen scrapes of both targets reach Atoll.
	eventually(t, 60*time.Second, func() error {
		_, r := promAPI(t, a.httpURL, "/api/v1/query", url.Values{"query": {`count_over_time(up{job="prometheus"}[1m])`}}, nil)
		var v struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		}
		_ = json.Unmarshal(r.Data, &v)
		if len(v.Result) == 0 || mustFloat(v.Result[0].Value[1]) < 12 {
			return fmt.Errorf("waiting for 12 scrapes in atoll, have %s", r.Data)
		}
		return nil
	})
	// A clean stop flushes remote write; then Prometheus comes back without
	// scraping or writing, over the same data, to answer from what it stored.
	p.Stop(90 * time.Second)
	idle := filepath.Join(dir, "idle.yml")
	if err := os.WriteFile(idle, []byte("global:\n  scrape_interval: 1m\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	promAddr = fmt.Sprintf("127.0.0.1:%d", ports[1])
	promURL = "http://" + promAddr
	p = e2eproc.Start(t, "prometheus-reader", prom,
		"--config.file="+idle, "--storage.tsdb.path="+promData, "--web.listen-address="+promAddr)
	p.WaitReady(promURL+"/-/ready", 60*time.Second)

	// The window both hold: from the first scrape to a few seconds before
	// the last, away from shutdown staleness markers.
	first, last := sampleSpan(t, promURL, `up{job="prometheus"}`)
	if last-first < 8 {
		t.Fatalf("too few scrapes: %v..%v", first, last)
	}
	end := last - 3
	start := first + 2

	instant := []string{
		`up`,
		`prometheus_tsdb_head_series`,
		`go_goroutines`,
		`rate(prometheus_http_requests_total[5s])`,
		`sum by (handler) (rate(prometheus_http_requests_total[5s]))`,
		`count({__name__=~".+"})`,
		`count by (job) ({__name__=~".+"})`,
		`histogram_quantile(0.9, sum by (le) (rate(prometheus_http_request_duration_seconds_bucket[5s])))`,
		`histogram_quantile(0.9, sum(rate(prometheus_http_request_duration_seconds[5s])))`,
		`prometheus_http_request_duration_seconds{handler="/metrics"}`,
		`sum(atoll_ingest_samples_total)`,
		`max_over_time(go_memstats_alloc_bytes[10s])`,
		`topk(3, prometheus_tsdb_head_chunks)`,
	}
	for _, q := range instant {
		for _, at := range []float64{start + 3, (start + end) / 2, end} {
			params := url.Values{"query": {q}, "time": {strconv.FormatFloat(at, 'f', 3, 64)}}
			compareAPI(t, promURL, a.httpURL, "/api/v1/query", params)
		}
	}
	for _, q := range []string{`up`, `rate(prometheus_http_requests_total[5s])`, `sum by (job) (go_goroutines)`,
		`histogram_quantile(0.5, sum(rate(prometheus_http_request_duration_seconds[5s])))`} {
		params := url.Values{"query": {q},
			"start": {strconv.FormatFloat(start, 'f', 3, 64)},
			"end":   {strconv.FormatFloat(end, 'f', 3, 64)},
			"step":  {"1"}}
		compareAPI(t, promURL, a.httpURL, "/api/v1/query_range", params)
	}
	window := url.Values{"start": {strconv.FormatFloat(start, 'f', 3, 64)}, "end": {strconv.FormatFloat(end, 'f', 3, 64)}}
	series := url.Values{"match[]": {`up`, `prometheus_build_info`}, "start": window["start"], "end": window["end"]}
	compareAPI(t, promURL, a.httpURL, "/api/v1/series", series)
	compareAPI(t, promURL, a.httpURL, "/api/v1/labels", url.Values{"match[]": {`{job="prometheus"}`}, "start": window["start"], "end": window["end"]})
	compareAPI(t, promURL, a.httpURL, "/api/v1/label/job/values", window)

	// Remote write carries metadata: the API serves it in Prometheus's shape.
	eventually(t, 30*time.Second, func() error {
		_, r := promAPI(t, a.httpURL, "/api/v1/metadata", url.Values{"metric": {"go_goroutines"}}, nil)
		if !strings.Contains(string(r.Data), `"gauge"`) {
			return fmt.Errorf("metadata of go_goroutines: %s", r.Data)
		}
		return nil
	})
}

func mustFloat(v any) float64 {
	s, _ := v.(string)
	f, _ := strconv.ParseFloat(s, 64)
	return f
}

// sampleSpan returns the first and last sample times of a series.
func sampleSpan(t *testing.T, base, selector string) (float64, float64) {
	t.Helper()
	_, r := promAPI(t, base, "/api/v1/query", url.Values{"query": {selector + "[1h]"}}, nil)
	var m struct {
		Result []struct {
			Values [][2]any `json:"values"`
		} `json:"result"`
	}
	if err := json.Unmarshal(r.Data, &m); err != nil || len(m.Result) == 0 || len(m.Result[0].Values) == 0 {
		t.Fatalf("no samples of %s: %s", selector, r.Data)
	}
	v := m.Result[0].Values
	return v[0][0].(float64), v[len(v)-1][0].(float64)
}

// compareAPI asks Prometheus and Atoll the same thing and fails on any
// difference in the data.
func compareAPI(t *testing.T, promURL, atollURL, path string, params url.Values) {
	t.Helper()
	pc, pr := promAPI(t, promURL, path, params, nil)
	ac, ar := promAPI(t, atollURL, path, params, nil)
	if pc != http.StatusOK || ac != http.StatusOK {
		t.Fatalf("%s %v: prometheus %d %s, atoll %d %s %s", path, params, pc, pr.Error, ac, ar.ErrorType, ar.Error)
	}
	want, got := normalize(t, pr.Data), normalize(t, ar.Data)
	if !reflect.DeepEqual(want, got) {
		wj, _ := json.MarshalIndent(want, "", " ")
		gj, _ := json.MarshalIndent(got, "", " ")
		t.Errorf("%s %v differs\nprometheus: %s\natoll:      %s", path, params, tail(string(wj), 3000), tail(string(gj), 3000))
	}
}

// normalize decodes API data and sorts lists whose order the API leaves
// open, so equal answers compare equal.
func normalize(t *testing.T, raw json.RawMessage) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	var sortAny func(any) any
	sortAny = func(x any) any {
		switch x := x.(type) {
		case map[string]any:
			for k, e := range x {
				x[k] = sortAny(e)
			}
			if res, ok := x["result"].([]any); ok {
				sort.Slice(res, func(i, j int) bool {
					a, _ := json.Marshal(res[i])
					b, _ := json.Marshal(res[j])
					return string(a) < string(b)
				})
			}
			return x
		case []any:
			for i := range x {
				x[i] = sortAny(x[i])
			}
			// Series lists are sets of label maps.
			if len(x) > 0 {
				if _, ok := x[0].(map[string]any); ok {
					if _, hasResult := x[0].(map[string]any)["metric"]; !hasResult {
						sort.Slice(x, func(i, j int) bool {
							a, _ := json.Marshal(x[i])
							b, _ := json.Marshal(x[j])
							return string(a) < string(b)
						})
					}
				}
			}
			return x
		}
		return x
	}
	return sortAny(v)
}

// TestBadInput sends what a broken or hostile client sends; each gets the
// status code that makes Prometheus do the right thing and a one-line body
// that says what was wrong.
func TestBadInput(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	a := startAtoll(t, t.TempDir(), "--remote-write.max-request-size=1MiB", "--remote-write.max-decoded-size=4MiB")
	now := time.Now().UnixMilli()
	good := func(name string, ts int64, v float64) prompb.TimeSeries {
		return prompb.TimeSeries{
			Labels:  []prompb.Label{{Name: "__name__", Value: name}, {Name: "job", Value: "bad-input"}},
			Samples: []prompb.Sample{{Timestamp: ts, Value: v}},
		}
	}
	// A series to be out of order against.
	if code, body := remoteWrite(t, a.writeURL, "", &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{good("ooo_target", now, 1)}}); code != http.StatusNoContent {
		t.Fatalf("seed write: %d %s", code, body)
	}

	encode := func(req *prompb.WriteRequest) []byte {
		raw, err := req.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return snappy.Encode(nil, raw)
	}
	series := func(ls ...string) *prompb.WriteRequest {
		ts := prompb.TimeSeries{Samples: []prompb.Sample{{Timestamp: now, Value: 1}}}
		for i := 0; i < len(ls); i += 2 {
			ts.Labels = append(ts.Labels, prompb.Label{Name: ls[i], Value: ls[i+1]})
		}
		return &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{ts}}
	}
	// A snappy header claiming a 3 GiB body, followed by nothing.
	hugeClaim := []byte{0x80, 0x80, 0x80, 0x80, 0x0c}

	cases := []struct {
		name     string
		tenant   string
		body     []byte
		wantCode int
		wantBody string
	}{
		{"garbage bytes", "", []byte("this is not snappy at all \x00\xff"), 400, "snappy"},
		{"snappy of garbage protobuf", "", snappy.Encode(nil, []byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01}), 400, "malformed"},
		{"snappy header claims a huge body", "", hugeClaim, 413, "too large"},
		{"empty body", "", nil, 400, "empty"},
		{"tenant with a path separator", "../etc", encode(series("__name__", "x")), 400, "tenant"},
		{"tenant too long", strings.Repeat("t", 200), encode(series("__name__", "x")), 400, "tenant"},
		{"missing metric name", "", encode(series("job", "x")), 400, "metric name"},
		{"duplicate label name", "", encode(series("__name__", "x", "job", "a", "job", "b")), 400, "duplicate label name"},
		{"unsorted labels", "", encode(series("__name__", "x", "zone", "a", "job", "b")), 400, "not sorted"},
		{"invalid UTF-8", "", encode(series("__name__", "x", "job", "\xff\xfe")), 400, "UTF-8"},
		{"empty label name", "", encode(series("", "v", "__name__", "x")), 400, "empty label name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, body := postBody(t, a.writeURL, c.tenant, c.body)
			if code != c.wantCode || !strings.Contains(body, c.wantBody) {
				t.Fatalf("got %d %q, want %d with %q", code, body, c.wantCode, c.wantBody)
			}
			if strings.Count(body, "\n") > 0 {
				t.Fatalf("body is not one line: %q", body)
			}
		})
	}

	t.Run("Content-Length claims more than the limit", func(t *testing.T) {
		u, _ := url.Parse(a.writeURL)
		conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(conn, "POST /api/v1/receive HTTP/1.1\r\nHost: x\r\nContent-Encoding: snappy\r\nContent-Type: application/x-protobuf\r\nContent-Length: 10000000000\r\n\r\nabc")
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("got %d, want 413", resp.StatusCode)
		}
	})

	t.Run("out-of-order sample among good ones", func(t *testing.T) {
		req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
			good("ooo_good_a", now, 7),
			good("ooo_target", now-60_000, 2), // older than what the series has
			good("ooo_good_b", now, 8),
		}}
		code, body := remoteWrite(t, a.writeURL, "", req)
		if code != http.StatusConflict || !strings.Contains(body, "ooo_target") || !strings.Contains(body, "out of") {
			t.Fatalf("got %d %q, want 409 naming ooo_target", code, body)
		}
		for name, want := range map[string]string{"ooo_good_a": "7", "ooo_good_b": "8", "ooo_target": "1"} {
			_, r := promAPI(t, a.httpURL, "/api/v1/query", url.Values{"query": {name}, "time": {strconv.FormatInt(now/1000+1, 10)}}, nil)
			if !strings.Contains(string(r.Data), `"`+want+`"]`) {
				t.Fatalf("%s: want value %s, got %s", name, want, r.Data)
			}
		}
	})

	t.Run("remote write 2.0 is refused so Prometheus falls back", func(t *testing.T) {
		r, _ := http.NewRequest(http.MethodPost, a.writeURL, strings.NewReader("x"))
		r.Header.Set("Content-Type", "application/x-protobuf;proto=io.prometheus.write.v2.Request")
		r.Header.Set("Content-Encoding", "snappy")
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnsupportedMediaType {
			t.Fatalf("got %d, want 415", resp.StatusCode)
		}
	})

	t.Run("bad tenant on a query", func(t *testing.T) {
		code, r := promAPI(t, a.httpURL, "/api/v1/query", url.Values{"query": {"up"}}, http.Header{"X-Scope-Orgid": {"a/b"}})
		if code != http.StatusBadRequest || r.ErrorType != "bad_data" {
			t.Fatalf("got %d %+v", code, r)
		}
	})
	t.Run("bad PromQL", func(t *testing.T) {
		code, r := promAPI(t, a.httpURL, "/api/v1/query", url.Values{"query": {"sum("}}, nil)
		if code != http.StatusBadRequest || r.ErrorType != "bad_data" {
			t.Fatalf("got %d %+v", code, r)
		}
	})
}

// TestKillDuringIngestion kills Atoll with SIGKILL while a client writes;
// after a restart, every sample that got a 2xx is there.
func TestKillDuringIngestion(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	dir := t.TempDir()
	a := startAtoll(t, dir)

	const seriesPerRequest = 50
	type acked struct {
		series int
		ts     int64
	}
	var (
		mtx  sync.Mutex
		acks []acked
		stop = make(chan struct{})
		done = make(chan struct{})
	)
	base := time.Now().Add(-10 * time.Minute).UnixMilli()
	go func() {
		defer close(done)
		client := &http.Client{Timeout: 5 * time.Second}
		for round := 0; ; round++ {
			select {
			case <-stop:
				return
			default:
			}
			ts := base + int64(round)*100
			req := &prompb.WriteRequest{}
			for s := range seriesPerRequest {
				req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
					Labels:  []prompb.Label{{Name: "__name__", Value: "kill_test"}, {Name: "series", Value: strconv.Itoa(s)}},
					Samples: []prompb.Sample{{Timestamp: ts, Value: float64(round)}},
				})
			}
			raw, _ := req.Marshal()
			r, _ := http.NewRequest(http.MethodPost, a.writeURL, strings.NewReader(string(snappy.Encode(nil, raw))))
			r.Header.Set("Content-Encoding", "snappy")
			resp, err := client.Do(r)
			if err != nil {
				return // killed
			}
			resp.Body.Close()
			if resp.StatusCode/100 == 2 {
				mtx.Lock()
				for s := range seriesPerRequest {
					acks = append(acks, acked{s, ts})
				}
				mtx.Unlock()
			}
		}
	}()
	time.Sleep(3 * time.Second)
	a.Kill()
	close(stop)
	<-done
	mtx.Lock()
	defer mtx.Unlock()
	if len(acks) < 1000 {
		t.Fatalf("only %d samples acknowledged before the kill", len(acks))
	}

	a.restart(t)
	at := strconv.FormatFloat(float64(base)/1000+3600, 'f', 3, 64)
	_, r := promAPI(t, a.httpURL, "/api/v1/query", url.Values{"query": {"kill_test[2h]"}, "time": {at}}, nil)
	var m struct {
		Result []struct {
			Metric map[string]string `json:"metric"`
			Values [][2]any          `json:"values"`
		} `json:"result"`
	}
	if err := json.Unmarshal(r.Data, &m); err != nil {
		t.Fatal(err)
	}
	stored := map[acked]bool{}
	for _, s := range m.Result {
		n, _ := strconv.Atoi(s.Metric["series"])
		for _, v := range s.Values {
			stored[acked{n, int64(math.Round(v[0].(float64) * 1000))}] = true
		}
	}
	missing := 0
	for _, ack := range acks {
		if !stored[ack] {
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged samples lost after SIGKILL", missing, len(acks))
	}
	t.Logf("%d acknowledged samples all present after SIGKILL and restart (%d stored)", len(acks), len(stored))
}

// TestExemplarsHistogramsAndMetadata writes what remote write can carry
// besides floats and reads each back through the API.
func TestExemplarsHistogramsAndMetadata(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	a := startAtoll(t, t.TempDir())
	now := time.Now().UnixMilli()
	h := prompb.FromIntHistogram(now, &histogram.Histogram{
		Count: 5, Sum: 12.5, Schema: 0, ZeroThreshold: 0.001, ZeroCount: 1,
		PositiveSpans:   []histogram.Span{{Offset: 0, Length: 2}},
		PositiveBuckets: []int64{2, 0},
	})
	req := &prompb.WriteRequest{
		Timeseries: []prompb.TimeSeries{
			{
				Labels:    []prompb.Label{{Name: "__name__", Value: "requests_total"}, {Name: "job", Value: "ex"}},
				Samples:   []prompb.Sample{{Timestamp: now, Value: 10}},
				Exemplars: []prompb.Exemplar{{Labels: []prompb.Label{{Name: "trace_id", Value: "abc123"}}, Value: 1, Timestamp: now}},
			},
			{
				Labels:     []prompb.Label{{Name: "__name__", Value: "latency_seconds"}, {Name: "job", Value: "ex"}},
				Histograms: []prompb.Histogram{h},
			},
		},
		Metadata: []prompb.MetricMetadata{{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "requests_total", Help: "Requests served.", Unit: ""}},
	}
	if code, body := remoteWrite(t, a.writeURL, "", req); code != http.StatusNoContent {
		t.Fatalf("write: %d %s", code, body)
	}
	at := strconv.FormatFloat(float64(now)/1000+1, 'f', 3, 64)
	window := url.Values{"query": {"requests_total"}, "start": {strconv.FormatInt(now/1000-60, 10)}, "end": {strconv.FormatInt(now/1000+60, 10)}}
	_, r := promAPI(t, a.httpURL, "/api/v1/query_exemplars", window, nil)
	if !strings.Contains(string(r.Data), `"trace_id":"abc123"`) {
		t.Fatalf("exemplars: %s", r.Data)
	}
	_, r = promAPI(t, a.httpURL, "/api/v1/query", url.Values{"query": {"histogram_count(latency_seconds)"}, "time": {at}}, nil)
	if !strings.Contains(string(r.Data), `"5"]`) {
		t.Fatalf("native histogram: %s", r.Data)
	}
	_, r = promAPI(t, a.httpURL, "/api/v1/metadata", url.Values{}, nil)
	if !strings.Contains(string(r.Data), `"requests_total":[{"type":"counter","unit":"","help":"Requests served."}]`) {
		t.Fatalf("metadata: %s", r.Data)
	}
	_, r = promAPI(t, a.httpURL, "/api/v1/status/buildinfo", url.Values{}, nil)
	if !strings.Contains(string(r.Data), `"version"`) {
		t.Fatalf("buildinfo: %s", r.Data)
	}
}
