package main

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
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"

	"github.com/atoll-metrics/atoll/internal/e2eproc"
)

// The end-to-end tests run the real binary, as users do: TestMain builds it
// once, and every test starts its own processes on ports picked at run time.
var atollBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "atoll-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	atollBinary = filepath.Join(dir, "atoll")
	build := exec.Command("go", "build", "-o", atollBinary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building atoll:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// atoll is a running `atoll all`.
type atoll struct {
	*e2eproc.Process
	dataDir   string
	httpURL   string
	writeURL  string
	grpcAddr  string
	extraArgs []string
}

func startAtoll(t testing.TB, dataDir string, args ...string) *atoll {
	t.Helper()
	ports := e2eproc.Ports(t, 3)
	a := &atoll{
		dataDir:   dataDir,
		httpURL:   fmt.Sprintf("http://127.0.0.1:%d", ports[0]),
		writeURL:  fmt.Sprintf("http://127.0.0.1:%d/api/v1/receive", ports[1]),
		grpcAddr:  fmt.Sprintf("127.0.0.1:%d", ports[2]),
		extraArgs: args,
	}
	all := append([]string{"all",
		"--data-dir=" + dataDir,
		fmt.Sprintf("--http-address=127.0.0.1:%d", ports[0]),
		fmt.Sprintf("--remote-write.address=127.0.0.1:%d", ports[1]),
		fmt.Sprintf("--grpc-address=127.0.0.1:%d", ports[2]),
		"--ring.instance-id=e2e",
		"--log.level=debug",
	}, args...)
	a.Process = e2eproc.Start(t, "atoll", atollBinary, all...)
	a.Process.WaitReady(a.httpURL+"/-/ready", 60*time.Second)
	return a
}

// restart starts a stopped atoll again on the same data dir and ports.
func (a *atoll) restart(t testing.TB) {
	t.Helper()
	u, _ := url.Parse(a.httpURL)
	w, _ := url.Parse(a.writeURL)
	all := append([]string{"all",
		"--data-dir=" + a.dataDir,
		"--http-address=" + u.Host,
		"--remote-write.address=" + w.Host,
		"--grpc-address=" + a.grpcAddr,
		"--ring.instance-id=e2e",
		"--log.level=debug",
	}, a.extraArgs...)
	a.Process = e2eproc.Start(t, "atoll", atollBinary, all...)
	a.Process.WaitReady(a.httpURL+"/-/ready", 60*time.Second)
}

// remoteWrite posts a remote-write 1.0 request and returns the status and
// body of the answer.
func remoteWrite(t testing.TB, url, tenant string, req *prompb.WriteRequest) (int, string) {
	t.Helper()
	raw, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return postBody(t, url, tenant, snappy.Encode(nil, raw))
}

func postBody(t testing.TB, url, tenant string, body []byte) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Content-Encoding", "snappy")
	r.Header.Set("Content-Type", "application/x-protobuf")
	r.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	if tenant != "" {
		r.Header.Set("THANOS-TENANT", tenant)
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatalf("remote write: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// apiResponse is the Prometheus HTTP API envelope.
type apiResponse struct {
	Status    string          `json:"status"`
	Data      json.RawMessage `json:"data"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Warnings  []string        `json:"warnings"`
}

// promAPI queries a Prometheus HTTP API (Atoll's or Prometheus's own).
func promAPI(t testing.TB, base, path string, params url.Values, header http.Header) (int, apiResponse) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// GET works for every endpoint (label values take no POST).
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path+"?"+params.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		r.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatalf("query %s: %v", path, err)
	}
	defer resp.Body.Close()
	var out apiResponse
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("query %s: status %d, body not JSON: %s", path, resp.StatusCode, b)
	}
	return resp.StatusCode, out
}

// eventually retries f until it returns nil or the timeout passes.
func eventually(t testing.TB, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("condition not met within %s: %v", timeout, err)
}
