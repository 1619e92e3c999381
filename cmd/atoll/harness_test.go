package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
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

// freePorts returns n TCP ports free at the time of the call.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ls []net.Listener
	var out []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("pick a port: %v", err)
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		_ = l.Close()
	}
	return out
}

// process is a program started by a test, stopped when the test ends.
type process struct {
	t    testing.TB
	name string
	cmd  *exec.Cmd
	log  *syncBuffer
	done chan struct{}
}

type syncBuffer struct {
	mtx sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mtx.Lock()
	defer b.mtx.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mtx.Lock()
	defer b.mtx.Unlock()
	return b.buf.String()
}

func startProcess(t testing.TB, name, bin string, args ...string) *process {
	t.Helper()
	p := &process{t: t, name: name, log: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop(10 * time.Second)
		if t.Failed() {
			t.Logf("--- %s log (last 4KiB) ---\n%s", name, tail(p.log.String(), 4096))
		}
	})
	return p
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// stop sends SIGTERM and waits, then SIGKILLs what is left.
func (p *process) stop(grace time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *process) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// atoll is a running `atoll all`.
type atoll struct {
	*process
	dataDir   string
	httpURL   string
	writeURL  string
	grpcAddr  string
	extraArgs []string
}

func startAtoll(t testing.TB, dataDir string, args ...string) *atoll {
	t.Helper()
	ports := freePorts(t, 3)
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
	a.process = startProcess(t, "atoll", atollBinary, all...)
	waitReady(t, a.process, a.httpURL+"/-/ready", 60*time.Second)
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
	a.process = startProcess(t, "atoll", atollBinary, all...)
	waitReady(t, a.process, a.httpURL+"/-/ready", 60*time.Second)
}

func waitReady(t testing.TB, p *process, url string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if p.exited() {
			t.Fatalf("%s exited before it was ready:\n%s", p.name, tail(p.log.String(), 4096))
		}
		resp, err := http.Get(url)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s not ready at %s within %s:\n%s", p.name, url, timeout, tail(p.log.String(), 4096))
}

// findTool locates a real program tests run against: PATH first, then
// GOPATH/bin, where `make tools` installs it.
func findTool(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	gopath, err := exec.Command("go", "env", "GOPATH").Output()
	if err == nil {
		p := filepath.Join(strings.TrimSpace(string(gopath)), "bin", name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatalf("%s not found in PATH or GOPATH/bin: run `make tools` (the tests use the real program)", name)
	return ""
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
