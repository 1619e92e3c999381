package deploytest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"

	"github.com/atoll-metrics/atoll/internal/e2eproc"
)

// repoRoot is the module root, two levels above this package.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found at %s: %v", root, err)
	}
	return root
}

func deployPath(t testing.TB, elem ...string) string {
	return filepath.Join(append([]string{repoRoot(t), "deploy"}, elem...)...)
}

var atollBuild struct {
	once sync.Once
	path string
	err  error
}

// atollBinary builds cmd/atoll once per test binary.
func atollBinary(t testing.TB) string {
	t.Helper()
	atollBuild.once.Do(func() {
		dir, err := os.MkdirTemp("", "atoll-deploytest")
		if err != nil {
			atollBuild.err = err
			return
		}
		atollBuild.path = filepath.Join(dir, "atoll")
		cmd := exec.Command("go", "build", "-o", atollBuild.path, "./cmd/atoll")
		cmd.Dir = repoRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			atollBuild.err = fmt.Errorf("go build ./cmd/atoll: %v\n%s", err, out)
		}
	})
	if atollBuild.err != nil {
		t.Fatal(atollBuild.err)
	}
	return atollBuild.path
}

func TestMain(m *testing.M) {
	code := m.Run()
	if atollBuild.path != "" {
		_ = os.RemoveAll(filepath.Dir(atollBuild.path))
	}
	os.Exit(code)
}

// startProcess starts a program for the test and kills it when the test
// ends: these tests check what runs, not how it stops.
func startProcess(t testing.TB, name, bin string, args ...string) *e2eproc.Process {
	t.Helper()
	p := e2eproc.Start(t, name, bin, args...)
	t.Cleanup(p.Kill)
	return p
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// eventually retries f until it returns nil or timeout passes, then fails
// the test with f's last error.
func eventually(t testing.TB, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

var httpClient = &http.Client{Timeout: 15 * time.Second}

// get fetches url and returns the body of a 200 answer.
func get(url string) ([]byte, error) { return getAccept(url, "") }

// getAccept is get with an Accept header, for pages that also speak JSON.
func getAccept(url, accept string) ([]byte, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return body, fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return body, nil
}

// remoteWrite posts a remote-write 1.0 request and returns the answer's
// status code, or an error when no answer came.
func remoteWrite(ctx context.Context, url string, req *prompb.WriteRequest) (int, string, error) {
	raw, err := req.Marshal()
	if err != nil {
		return 0, "", err
	}
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(snappy.Encode(nil, raw)))
	if err != nil {
		return 0, "", err
	}
	r.Header.Set("Content-Encoding", "snappy")
	r.Header.Set("Content-Type", "application/x-protobuf")
	r.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	resp, err := httpClient.Do(r)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(body)), nil
}

// vectorSample is one element of an instant query's vector result.
type vectorSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

func (s vectorSample) float() (float64, error) {
	str, ok := s.Value[1].(string)
	if !ok {
		return 0, fmt.Errorf("sample value %v is not a string", s.Value[1])
	}
	var f float64
	_, err := fmt.Sscan(str, &f)
	return f, err
}

// instantQuery runs a PromQL instant query against a Prometheus HTTP API.
func instantQuery(base, query string) ([]vectorSample, []string, error) {
	body, err := get(base + "/api/v1/query?" + url.Values{"query": {query}}.Encode())
	if err != nil {
		return nil, nil, err
	}
	var resp struct {
		Status   string `json:"status"`
		Warnings []string
		Data     struct {
			ResultType string         `json:"resultType"`
			Result     []vectorSample `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return nil, nil, fmt.Errorf("query %q: %w: %s", query, err, body)
	}
	if resp.Status != "success" || resp.Data.ResultType != "vector" {
		return nil, nil, fmt.Errorf("query %q: %s", query, body)
	}
	return resp.Data.Result, resp.Warnings, nil
}

// metricNames scrapes a /metrics endpoint and returns the metric family
// names in it (histogram and summary series under their family name).
func metricNames(url string) (map[string]bool, error) {
	body, err := get(url)
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for line := range strings.SplitSeq(string(body), "\n") {
		switch {
		case strings.HasPrefix(line, "# TYPE "):
			if f := strings.Fields(line); len(f) >= 3 {
				names[f[2]] = true
			}
		case line != "" && !strings.HasPrefix(line, "#"):
			name, _, _ := strings.Cut(line, "{")
			name, _, _ = strings.Cut(name, " ")
			names[name] = true
		}
	}
	return names, nil
}

// metricValue scrapes url and sums the samples of the series named name
// (any labels), reporting whether there was one.
func metricValue(url, name string) (float64, bool, error) {
	body, err := get(url)
	if err != nil {
		return 0, false, err
	}
	var sum float64
	found := false
	for line := range strings.SplitSeq(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		series, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if n, _, _ := strings.Cut(series, "{"); n != name {
			continue
		}
		var f float64
		if _, err := fmt.Sscan(strings.Fields(value)[0], &f); err != nil {
			return 0, false, fmt.Errorf("%s: %q: %w", url, line, err)
		}
		sum += f
		found = true
	}
	return sum, found, nil
}
