package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/crypto/bcrypt"

	"github.com/atoll-metrics/atoll/internal/certgen"
	"github.com/atoll-metrics/atoll/internal/e2eproc"
)

// serve runs h behind ListenHTTP on a free loopback port until the test
// ends and returns its address.
func serve(t *testing.T, h http.Handler, opts HTTPOptions, reg prometheus.Registerer, logger *slog.Logger) string {
	t.Helper()
	s, err := ListenHTTP("test", "127.0.0.1:0", h, opts, logger, reg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s.Addr().String()
}

func hello(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "hello") }

// writeWebConfig writes an exporter-toolkit web config with TLS from certs
// and the given users (name: password).
func writeWebConfig(t *testing.T, certs *certgen.Set, users map[string]string) string {
	t.Helper()
	cfg := "tls_server_config:\n  cert_file: " + certs.ServerCert + "\n  key_file: " + certs.ServerKey + "\n"
	if len(users) > 0 {
		cfg += "basic_auth_users:\n"
		for u, p := range users {
			h, err := bcrypt.GenerateFromPassword([]byte(p), bcrypt.MinCost)
			if err != nil {
				t.Fatal(err)
			}
			cfg += fmt.Sprintf("  %s: %s\n", u, h)
		}
	}
	f := filepath.Join(t.TempDir(), "web.yml")
	if err := os.WriteFile(f, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func tlsClient(t *testing.T, caFile string) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

func get(t *testing.T, c *http.Client, url, user, pass string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestHTTPWebConfig: a web config file with TLS and basic auth, the one
// Prometheus and its exporters read, is what every listener serves by.
func TestHTTPWebConfig(t *testing.T) {
	certs, err := certgen.Write(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	opts := DefaultHTTPOptions()
	opts.WebConfigFile = writeWebConfig(t, certs, map[string]string{"alice": "s3cret"})
	sec, err := opts.Check()
	if err != nil || !sec.TLS || !sec.BasicAuth {
		t.Fatalf("Check = %v, %v; want TLS and basic auth", sec, err)
	}
	addr := serve(t, http.HandlerFunc(hello), opts, prometheus.NewRegistry(), nil)
	c := tlsClient(t, certs.CAFile)
	for _, tc := range []struct {
		url, user, pass string
		code            int
	}{
		{"https://" + addr + "/", "alice", "s3cret", http.StatusOK},
		{"https://" + addr + "/", "", "", http.StatusUnauthorized},
		{"https://" + addr + "/", "alice", "wrong", http.StatusUnauthorized},
		{"https://" + addr + "/", "bob", "s3cret", http.StatusUnauthorized},
		{"http://" + addr + "/", "alice", "s3cret", http.StatusBadRequest}, // plain HTTP to a TLS port
	} {
		if code, body := get(t, c, tc.url, tc.user, tc.pass); code != tc.code {
			t.Errorf("GET %s as %q: %d %q, want %d", tc.url, tc.user, code, body, tc.code)
		}
	}
	// A client that does not trust the CA fails the handshake.
	if code, _ := get(t, &http.Client{Timeout: 5 * time.Second}, "https://"+addr+"/", "alice", "s3cret"); code != 0 {
		t.Errorf("a client without the CA got %d, want a failed handshake", code)
	}

	broken := filepath.Join(t.TempDir(), "web.yml")
	if err := os.WriteFile(broken, []byte("tls_server_config:\n  cert_file: /nonexistent\n  key_file: /nonexistent\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := (HTTPOptions{WebConfigFile: broken}).Check(); err == nil {
		t.Error("Check accepted a web config whose certificate does not exist")
	}
}

// TestHTTPSlowClients: a client that trickles its headers a byte at a
// time is cut off after the read-header timeout, the listener keeps at
// most MaxConnections open however many such clients come, and a
// thousand of them cost little memory.
func TestHTTPSlowClients(t *testing.T) {
	if testing.Short() {
		t.Skip("opens a thousand connections")
	}
	opts := DefaultHTTPOptions()
	opts.MaxConnections = 100
	opts.ReadHeaderTimeout = time.Second
	reg := prometheus.NewRegistry()
	addr := serve(t, http.HandlerFunc(hello), opts, reg, nil)
	open := func() float64 { return testutil.ToFloat64(httpMetricsFor(reg).open.WithLabelValues("test")) }

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	const clients = 1000
	var (
		wg     sync.WaitGroup
		mtx    sync.Mutex
		closed []time.Duration // how long each accepted trickler was held
	)
	stop := make(chan struct{})
	peak := 0.0
	for range clients {
		wg.Go(func() {
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				return
			}
			defer c.Close()
			start := time.Now()
			_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n")
			tick := time.NewTicker(200 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				if _, err := io.WriteString(c, "X"); err != nil {
					break
				}
				_ = c.SetReadDeadline(time.Now().Add(time.Millisecond))
				var b [1]byte
				if _, err := c.Read(b[:]); err != nil && !os.IsTimeout(err) {
					break // the server closed it
				}
			}
			mtx.Lock()
			closed = append(closed, time.Since(start))
			mtx.Unlock()
		})
	}
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		peak = max(peak, open())
		time.Sleep(50 * time.Millisecond)
	}
	runtime.GC()
	var during runtime.MemStats
	runtime.ReadMemStats(&during)
	close(stop)
	wg.Wait()

	if peak > float64(opts.MaxConnections) || peak < float64(opts.MaxConnections)/2 {
		t.Errorf("peak open connections %v, want at most (and near) %d", peak, opts.MaxConnections)
	}
	if len(closed) < opts.MaxConnections {
		t.Errorf("the server cut off %d trickling clients within 3s, want at least %d (one per slot)", len(closed), opts.MaxConnections)
	}
	// Server and clients share this process: everything they hold counts.
	grown := int64(during.HeapInuse+during.StackInuse) - int64(before.HeapInuse+before.StackInuse)
	if grown > 64<<20 {
		t.Errorf("%d slow clients grew heap and stacks by %d MiB, want under 64", clients, grown>>20)
	}
	t.Logf("peak %v open, %d cut off, heap+stack grew %d KiB", peak, len(closed), grown>>10)

	// Once the slow ones are gone, the listener serves again.
	if code, body := get(t, &http.Client{Timeout: 5 * time.Second}, "http://"+addr+"/", "", ""); code != http.StatusOK {
		t.Errorf("after the slow clients: %d %s", code, body)
	}
}

// TestRecoverPanics: a panicking handler is answered 500, counted and
// logged, whatever headers it had set; one that had started its answer
// aborts the connection but is still counted.
func TestRecoverPanics(t *testing.T) {
	reg := prometheus.NewRegistry()
	var logs e2eproc.Output
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	mux := http.NewServeMux()
	mux.HandleFunc("/before", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Encoding", "gzip")
		var m map[string]int
		m["x"]++ // nil map: panics
	})
	mux.HandleFunc("/after", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "partial")
		w.(http.Flusher).Flush()
		panic("late")
	})
	addr := serve(t, mux, DefaultHTTPOptions(), reg, logger)

	resp, err := http.Get("http://" + addr + "/before")
	if err != nil {
		t.Fatalf("panic before the answer must still be answered: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError || resp.Header.Get("Content-Encoding") != "" || !strings.Contains(string(body), "/before") {
		t.Errorf("status %d, Content-Encoding %q, body %q; want a plain 500 naming the path", resp.StatusCode, resp.Header.Get("Content-Encoding"), body)
	}

	if resp, err := http.Get("http://" + addr + "/after"); err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil {
			t.Errorf("a panic after the answer started must abort the response, got a complete one")
		}
	}

	// A second listener of the same process shares the counter.
	if got := testutil.ToFloat64(httpMetricsFor(reg).panics.WithLabelValues("test")); got != 2 {
		t.Errorf("atoll_http_panics_total{server=test} = %v, want 2", got)
	}
	if l := logs.String(); strings.Count(l, "HTTP handler panicked") != 2 || !strings.Contains(l, "aborted") || !strings.Contains(l, "nil map") || !strings.Contains(l, "stack=") {
		t.Errorf("log does not report both panics with their stacks:\n%s", l)
	}
}
