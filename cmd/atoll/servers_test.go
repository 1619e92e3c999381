package main

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/atoll-metrics/atoll/internal/e2eproc"
)

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
	srv := httptest.NewServer(recoverPanics(mux, "http", logger, panicCounter(reg)))
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/before")
	if err != nil {
		t.Fatalf("panic before the answer must still be answered: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError || resp.Header.Get("Content-Encoding") != "" || !strings.Contains(string(body), "/before") {
		t.Errorf("status %d, Content-Encoding %q, body %q; want a plain 500 naming the path", resp.StatusCode, resp.Header.Get("Content-Encoding"), body)
	}

	if resp, err := http.Get(srv.URL + "/after"); err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil {
			t.Errorf("a panic after the answer started must abort the response, got a complete one")
		}
	}

	// A second counter from the same registry is the same one.
	if got := testutil.ToFloat64(panicCounter(reg).WithLabelValues("http")); got != 2 {
		t.Errorf("atoll_http_panics_total{server=http} = %v, want 2", got)
	}
	if l := logs.String(); strings.Count(l, "HTTP handler panicked") != 2 || !strings.Contains(l, "aborted") || !strings.Contains(l, "nil map") || !strings.Contains(l, "stack=") {
		t.Errorf("log does not report both panics with their stacks:\n%s", l)
	}
}
