package web

import (
	"context"
	"encoding/json"
	"errors"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	v1 "github.com/prometheus/prometheus/web/api/v1"
)

func serve(t *testing.T, o Options, extra func(mux *http.ServeMux)) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	if extra != nil {
		extra(mux)
	}
	New(o).Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

var configAttr = regexp.MustCompile(`data-config="([^"]*)"`)

// pageConfig reads the config a page was served with.
func pageConfig(t *testing.T, body []byte) config {
	t.Helper()
	m := configAttr.FindSubmatch(body)
	if m == nil {
		t.Fatalf("no config in page:\n%s", body)
	}
	var c config
	if err := json.Unmarshal([]byte(html.UnescapeString(string(m[1]))), &c); err != nil {
		t.Fatalf("config: %v", err)
	}
	return c
}

func TestPagesFollowTheComponent(t *testing.T) {
	noStores := func(context.Context) []StoreStatus { return nil }
	noTenants := func(context.Context) ([]TenantStatus, error) { return nil, nil }
	noBlocks := func(context.Context) (*BlockList, error) { return &BlockList{}, nil }
	for _, tc := range []struct {
		name    string
		opts    Options
		home    string
		pages   []string
		missing []string
	}{
		{"all", Options{Component: "all", QueryAPI: true, Stores: noStores, Tenants: noTenants, Blocks: noBlocks},
			"/query", []string{"/query", "/stores", "/ring", "/tenants", "/blocks", "/status"}, nil},
		{"receive", Options{Component: "receive", Tenants: noTenants, Ring: http.NotFoundHandler()},
			"/tenants", []string{"/ring", "/tenants", "/status"}, []string{"/query", "/stores", "/blocks", "/graph"}},
		{"bucket web", Options{Component: "bucket web", Blocks: noBlocks},
			"/blocks", []string{"/ring", "/blocks", "/status"}, []string{"/query", "/tenants"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := serve(t, tc.opts, nil)
			resp, body := get(t, srv.URL+"/")
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("/: %s", resp.Status)
			}
			if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "connect-src 'self'") || !strings.Contains(csp, "script-src 'self'") {
				t.Errorf("CSP %q does not keep the page to this process", csp)
			}
			c := pageConfig(t, body)
			if c.Page != tc.home || c.Component != tc.opts.Component {
				t.Errorf("/ shows page %q of %q, want %q of %q", c.Page, c.Component, tc.home, tc.opts.Component)
			}
			var nav []string
			for _, p := range c.Pages {
				nav = append(nav, p.Path)
			}
			if strings.Join(nav, " ") != strings.Join(tc.pages, " ") {
				t.Errorf("nav = %v, want %v", nav, tc.pages)
			}
			for _, p := range tc.pages {
				if resp, _ := get(t, srv.URL+p); resp.StatusCode != http.StatusOK {
					t.Errorf("%s: %s", p, resp.Status)
				}
			}
			for _, p := range tc.missing {
				if resp, _ := get(t, srv.URL+p); resp.StatusCode != http.StatusNotFound {
					t.Errorf("%s: %s, want 404", p, resp.Status)
				}
			}
		})
	}
}

func TestStaticFilesRevalidateByContent(t *testing.T) {
	srv := serve(t, Options{}, nil)
	resp, body := get(t, srv.URL+"/static/js/main.js")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/javascript") || len(body) == 0 {
		t.Fatalf("main.js: %s %q, %d bytes", resp.Status, resp.Header.Get("Content-Type"), len(body))
	}
	etag := resp.Header.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	if resp, _ := get(t, srv.URL+"/static/js/main.js", "If-None-Match", etag); resp.StatusCode != http.StatusNotModified {
		t.Errorf("revalidation: %s, want 304", resp.Status)
	}
	for _, p := range []string{"/static/nope.js", "/static/index.html", "/static/../web.go"} {
		if resp, _ := get(t, srv.URL+p); resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %s, want 404", p, resp.Status)
		}
	}
	if resp, _ := get(t, srv.URL+"/favicon.ico"); resp.StatusCode != http.StatusOK {
		t.Errorf("favicon: %s", resp.Status)
	}
}

// TestPagesLoadOnlyEmbeddedFiles checks that the document and the modules
// refer to nothing but this process's own files.
func TestPagesLoadOnlyEmbeddedFiles(t *testing.T) {
	srv := serve(t, Options{QueryAPI: true}, nil)
	_, body := get(t, srv.URL+"/query")
	for _, m := range regexp.MustCompile(`(?:src|href)="(/static/[^"]+)"`).FindAllSubmatch(body, -1) {
		if resp, _ := get(t, srv.URL+string(m[1])); resp.StatusCode != http.StatusOK {
			t.Errorf("page refers to %s: %s", m[1], resp.Status)
		}
	}
	imports := regexp.MustCompile(`(?:from |import\()'(\./[^']+)'`)
	for name := range etagsOf(t) {
		if !strings.HasSuffix(name, ".js") {
			continue
		}
		b, _ := assets.ReadFile(name)
		if strings.Contains(string(b), "http://") || strings.Contains(string(b), "https://") {
			for _, line := range strings.Split(string(b), "\n") {
				if strings.Contains(line, "://") && !strings.Contains(line, "http://${") && !strings.Contains(line, "w3.org/2000/svg") {
					t.Errorf("%s refers elsewhere: %s", name, strings.TrimSpace(line))
				}
			}
		}
		for _, m := range imports.FindAllStringSubmatch(string(b), -1) {
			if _, err := assets.ReadFile("ui/js/" + strings.TrimPrefix(m[1], "./")); err != nil {
				t.Errorf("%s imports %s, which is not embedded", name, m[1])
			}
		}
	}
}

func etagsOf(t *testing.T) map[string]string {
	t.Helper()
	return New(Options{}).etags
}

func TestStoresInThanosShape(t *testing.T) {
	checked := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	srv := serve(t, Options{Stores: func(context.Context) []StoreStatus {
		return []StoreStatus{
			{Name: "10.0.0.2:10901", Component: "receive", Healthy: true, Source: SourceRing, LastCheck: checked,
				LabelSets: []labels.Labels{labels.FromStrings("tenant_id", "a", "receive_replica", "r1")}, MinTime: 1, MaxTime: 2},
			{Name: "10.0.0.1:10901", Component: "receive", Healthy: true, Source: SourceRing, LastCheck: checked},
			{Name: "10.0.0.9:10901", Source: SourceStatic, LastCheck: checked, LastError: errors.New("connection refused")},
		}
	}}, nil)
	_, body := get(t, srv.URL+"/api/v1/stores")
	var got struct {
		Status string
		Data   map[string][]map[string]any
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if got.Status != "success" || len(got.Data["receive"]) != 2 || len(got.Data["unknown"]) != 1 {
		t.Fatalf("stores = %s", body)
	}
	first := got.Data["receive"][0]
	for _, k := range []string{"name", "lastCheck", "lastError", "labelSets", "minTime", "maxTime"} {
		if _, ok := first[k]; !ok {
			t.Errorf("entry lacks Thanos's %q: %v", k, first)
		}
	}
	if first["name"] != "10.0.0.1:10901" || first["lastError"] != nil {
		t.Errorf("first receive entry = %v, want the lower address without error", first)
	}
	if ls := got.Data["receive"][1]["labelSets"].([]any); len(ls) != 1 || ls[0].(map[string]any)["tenant_id"] != "a" {
		t.Errorf("label sets = %v", ls)
	}
	if e := got.Data["unknown"][0]["lastError"]; e != "connection refused" {
		t.Errorf("lastError = %v", e)
	}
}

type testMeta struct {
	ULID    string `json:"ulid"`
	MinTime int64  `json:"minTime"`
}

func TestBlocksInThanosShapeWithMarks(t *testing.T) {
	var listings atomic.Int32
	srv := serve(t, Options{BlocksMaxAge: time.Hour, Blocks: func(context.Context) (*BlockList, error) {
		listings.Add(1)
		var none *testMeta
		return &BlockList{
			Label: "bucket-1",
			Blocks: []Block{
				{Meta: testMeta{ULID: "A", MinTime: 5}, Deletion: map[string]any{"deletion_time": 7}},
				{Meta: testMeta{ULID: "B"}, NoCompact: none},
			},
			Partial: []string{"C"},
		}, nil
	}}, nil)
	var got struct {
		Data struct {
			Label       string           `json:"label"`
			Blocks      []map[string]any `json:"blocks"`
			RefreshedAt time.Time        `json:"refreshedAt"`
			Err         *string          `json:"err"`
			Partial     []string         `json:"partial"`
		}
	}
	_, body := get(t, srv.URL+"/api/v1/blocks")
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	d := got.Data
	if d.Label != "bucket-1" || d.Err != nil || d.RefreshedAt.IsZero() || len(d.Blocks) != 2 || len(d.Partial) != 1 {
		t.Fatalf("blocks = %s", body)
	}
	if d.Blocks[0]["ulid"] != "A" || d.Blocks[0]["deletionMark"] == nil {
		t.Errorf("first block = %v, want its meta and deletion mark", d.Blocks[0])
	}
	if _, ok := d.Blocks[1]["noCompactMark"]; ok {
		t.Errorf("a nil mark shows: %v", d.Blocks[1])
	}
	get(t, srv.URL+"/api/v1/blocks")
	if n := listings.Load(); n != 1 {
		t.Errorf("bucket listed %d times for two requests within the max age", n)
	}
	get(t, srv.URL+"/api/v1/blocks?refresh=true")
	if n := listings.Load(); n != 2 {
		t.Errorf("refresh=true did not list the bucket again")
	}
}

func TestBlocksListingErrorIsShown(t *testing.T) {
	srv := serve(t, Options{Blocks: func(context.Context) (*BlockList, error) { return nil, errors.New("bucket unreachable") }}, nil)
	resp, body := get(t, srv.URL+"/api/v1/blocks")
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"err":"bucket unreachable"`) {
		t.Errorf("blocks with a failing bucket: %s %s", resp.Status, body)
	}
}

func TestTenantRates(t *testing.T) {
	r := newTenantRates()
	t0 := time.Unix(1000, 0)
	list := []TenantStatus{{ID: "a", SamplesAppended: 100}}
	r.fill(t0, list)
	if list[0].SamplesPerSecond != nil {
		t.Fatalf("a rate from one reading: %v", *list[0].SamplesPerSecond)
	}
	list = []TenantStatus{{ID: "a", SamplesAppended: 300}, {ID: "b", SamplesAppended: 5}}
	r.fill(t0.Add(10*time.Second), list)
	if p := list[0].SamplesPerSecond; p == nil || *p != 20 {
		t.Errorf("rate of a = %v, want 20", p)
	}
	if list[1].SamplesPerSecond != nil {
		t.Errorf("b has a rate from one reading")
	}
	// A counter that went down (the TSDB was reopened) has no rate.
	list = []TenantStatus{{ID: "a", SamplesAppended: 10}}
	r.fill(t0.Add(20*time.Second), list)
	if list[0].SamplesPerSecond != nil {
		t.Errorf("rate across a reset: %v", *list[0].SamplesPerSecond)
	}
	// Readings older than the window are dropped.
	list = []TenantStatus{{ID: "a", SamplesAppended: 70}}
	r.fill(t0.Add(20*time.Second+2*rateWindow), list)
	if list[0].SamplesPerSecond != nil {
		t.Errorf("rate from a reading older than the window")
	}
}

// TestTenantsGatheredFromReceivers runs two receivers' UIs and a querier's
// over real HTTP: the querier lists both receivers' tenants, and a receiver
// that does not answer with its error.
func TestTenantsGatheredFromReceivers(t *testing.T) {
	receiver := func(name string, series uint64) *httptest.Server {
		return serve(t, Options{Component: "receive", InstanceID: name, Tenants: func(context.Context) ([]TenantStatus, error) {
			return []TenantStatus{{ID: "team-a", HeadSeries: series, Limits: TenantLimit{MaxSeries: 100}}}, nil
		}}, nil)
	}
	r1, r2 := receiver("r1", 10), receiver("r2", 20)
	dead := httptest.NewServer(http.NotFoundHandler())
	deadAddr := strings.TrimPrefix(dead.URL, "http://")
	dead.Close()
	q := serve(t, Options{Component: "query", Receivers: func() []Receiver {
		return []Receiver{
			{Name: "r2", Address: strings.TrimPrefix(r2.URL, "http://")},
			{Name: "r1", Address: strings.TrimPrefix(r1.URL, "http://")},
			{Name: "r3", Address: deadAddr},
		}
	}}, nil)
	_, body := get(t, q.URL+"/api/v1/tenants")
	var got struct {
		Data tenantsJSON `json:"data"`
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	rs := got.Data.Receivers
	if len(rs) != 3 || rs[0].Name != "r1" || rs[1].Name != "r2" || rs[2].Name != "r3" {
		t.Fatalf("receivers = %s", body)
	}
	if len(rs[0].Tenants) != 1 || rs[0].Tenants[0].HeadSeries != 10 || rs[1].Tenants[0].HeadSeries != 20 || rs[1].Tenants[0].Limits.MaxSeries != 100 {
		t.Errorf("tenants = %s", body)
	}
	if rs[2].Error == "" || len(rs[2].Tenants) != 0 {
		t.Errorf("dead receiver = %+v, want its error", rs[2])
	}
	// scope=local: a querier has no tenants of its own.
	_, body = get(t, q.URL+"/api/v1/tenants?scope=local")
	if !strings.Contains(string(body), `"receivers":[]`) {
		t.Errorf("scope=local on a querier = %s", body)
	}
}

func TestOptionalEndpointsFollowTheirAnswers(t *testing.T) {
	srv := serve(t, Options{QueryAPI: true}, func(mux *http.ServeMux) {
		mux.HandleFunc("/api/v1/rules", func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, `{"status":"success","data":{"groups":[]}}`)
		})
		mux.HandleFunc("/api/v1/", http.NotFound)
	})
	_, body := get(t, srv.URL+"/status")
	c := pageConfig(t, body)
	if !c.Optional["rules"] || c.Optional["alerts"] || c.Optional["tsdb"] {
		t.Errorf("optional endpoints = %v, want rules only", c.Optional)
	}
}

func TestStatusEndpointsWithoutQueryAPI(t *testing.T) {
	srv := serve(t, Options{Component: "store", Flags: map[string]string{"data-dir": "/d"}, BuildInfo: v1.PrometheusVersion{Version: "1.2.3"}}, nil)
	for path, want := range map[string]string{
		"/api/v1/status/buildinfo":   `"version":"1.2.3"`,
		"/api/v1/status/flags":       `"data-dir":"/d"`,
		"/api/v1/status/runtimeinfo": `"GOMAXPROCS":`,
	} {
		resp, body := get(t, srv.URL+path)
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) || !strings.Contains(string(body), `"status":"success"`) {
			t.Errorf("%s: %s %s, want %s", path, resp.Status, body, want)
		}
	}
}

func TestRingPage(t *testing.T) {
	ring := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.Header.Get("Accept"), "application/json") {
			_, _ = io.WriteString(w, `{"members":[]}`)
			return
		}
		_, _ = io.WriteString(w, "<html>plain ring</html>")
	})
	srv := serve(t, Options{Component: "receive", Ring: ring}, nil)
	if _, body := get(t, srv.URL+"/ring", "Accept", "application/json"); string(body) != `{"members":[]}` {
		t.Errorf("ring JSON = %s", body)
	}
	if _, body := get(t, srv.URL+"/ring?plain"); string(body) != "<html>plain ring</html>" {
		t.Errorf("plain ring page = %s", body)
	}
	if _, body := get(t, srv.URL+"/ring"); pageConfig(t, body).Page != "/ring" || !pageConfig(t, body).Ring {
		t.Errorf("ring page in the UI = %s", body)
	}
}
