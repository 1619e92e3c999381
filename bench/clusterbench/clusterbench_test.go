package main

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/atoll-metrics/atoll/internal/localnet"
)

func TestSpreaderTakesTurns(t *testing.T) {
	var mtx sync.Mutex
	got := map[int][]string{}
	var urls []string
	for i := range 3 {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			mtx.Lock()
			got[i] = append(got[i], r.Header.Get("Content-Encoding")+":"+string(body))
			mtx.Unlock()
			if i == 2 {
				http.Error(w, "quorum not reached", http.StatusServiceUnavailable)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		}))
		t.Cleanup(srv.Close)
		urls = append(urls, srv.URL+"/api/v1/receive")
	}
	s, err := newSpreader(urls, 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })

	var codes []int
	for i := range 6 {
		req, _ := http.NewRequest(http.MethodPost, s.URL(), bytes.NewReader([]byte{byte('a' + i)}))
		req.Header.Set("Content-Encoding", "snappy")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		codes = append(codes, resp.StatusCode)
	}
	if want := []int{204, 204, 503, 204, 204, 503}; !slices.Equal(codes, want) {
		t.Fatalf("answers %v, want %v: the receiver's status must reach the client", codes, want)
	}
	for i, want := range [][]string{{"snappy:a", "snappy:d"}, {"snappy:b", "snappy:e"}, {"snappy:c", "snappy:f"}} {
		if !slices.Equal(got[i], want) {
			t.Errorf("receiver %d got %v, want %v", i, got[i], want)
		}
	}
	sent, status, first := s.stats()
	if !slices.Equal(sent, []int{2, 2, 2}) || status["204"] != 4 || status["503"] != 2 || !strings.Contains(first, "quorum not reached") {
		t.Fatalf("stats: sent %v, status %v, first %q", sent, status, first)
	}
}

func TestSumMetrics(t *testing.T) {
	page := `# HELP x
atoll_tsdb_head_series{tenant="a"} 3
atoll_tsdb_head_series{tenant="b"} 4
atoll_tsdb_head_series_created_total 100
atoll_ingest_forward_requests_total{outcome="failure"} 2
atoll_ingest_forward_requests_total{outcome="success"} 40
bare 1.5
bare_total 7
`
	for _, tc := range []struct {
		name string
		want float64
	}{
		{"atoll_tsdb_head_series", 7},
		{`atoll_ingest_forward_requests_total{outcome="failure"`, 2},
		{"atoll_ingest_forward_requests_total", 42},
		{"bare", 1.5},
		{"missing", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := sumMetrics(strings.NewReader(page), []string{tc.name})
			if err != nil {
				t.Fatal(err)
			}
			if got[tc.name] != tc.want {
				t.Fatalf("got %v, want %v", got[tc.name], tc.want)
			}
		})
	}
}

func TestQuantile(t *testing.T) {
	for _, tc := range []struct {
		xs   []float64
		q    float64
		want float64
	}{
		{nil, 0.5, 0},
		{[]float64{3}, 0.9, 3},
		{[]float64{5, 1, 4, 2, 3}, 0.5, 3},
		{[]float64{10, 1, 2, 3, 4, 5, 6, 7, 8, 9}, 0.5, 5},
		{[]float64{10, 1, 2, 3, 4, 5, 6, 7, 8, 9}, 0.9, 9},
	} {
		if got := quantile(tc.xs, tc.q); got != tc.want {
			t.Errorf("quantile(%v, %v) = %v, want %v", tc.xs, tc.q, got, tc.want)
		}
	}
}

func TestSameAnswer(t *testing.T) {
	a := map[string]float64{`{job="x"}`: 1e12, `{job="y"}`: 2}
	for _, tc := range []struct {
		name string
		b    map[string]float64
		want bool
	}{
		{"equal", map[string]float64{`{job="x"}`: 1e12, `{job="y"}`: 2}, true},
		{"summation order", map[string]float64{`{job="x"}`: 1e12 + 1e-4, `{job="y"}`: 2}, true},
		{"different value", map[string]float64{`{job="x"}`: 1e12, `{job="y"}`: 2.5}, false},
		{"missing series", map[string]float64{`{job="x"}`: 1e12}, false},
		{"empty", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := sameAnswer(a, tc.b); got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestColumns(t *testing.T) {
	ss, err := setups(config{rfs: "3,1", receivers: 3, spread: true, single: true})
	if err != nil {
		t.Fatal(err)
	}
	var titles []string
	for _, c := range columns(ss) {
		titles = append(titles, c.title)
	}
	want := []string{"RF=3 one URL", "RF=1 one URL", "RF=3/RF=1", "RF=3 spread", "RF=1 spread", "RF=3/RF=1", "atoll all", "RF=3 one URL / atoll all"}
	if !slices.Equal(titles, want) {
		t.Fatalf("columns %q, want %q", titles, want)
	}
	if _, err := setups(config{rfs: "4", receivers: 3}); err == nil {
		t.Fatal("RF above the receiver count accepted")
	}
}

func TestScanLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.log")
	log := `time=t1 level=INFO msg=ready
time=t2 level=WARN msg="cannot join the ring yet; retrying" attempts=1
time=t3 level=WARN msg="cannot join the ring yet; retrying" attempts=2
time=t4 level=DEBUG msg="replica failed" err="forward to r2: deadline exceeded"
time=t5 level=DEBUG msg="dropping a gossip message"
time=t6 level=ERROR msg=boom
`
	if err := os.WriteFile(path, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	got := scanLog(&process{name: "r", logPath: path})
	var keys []string
	for _, f := range got {
		keys = append(keys, f.Level+" "+f.Msg+" "+string(rune('0'+f.Count)))
	}
	want := []string{"WARN cannot join the ring yet; retrying 2", "DEBUG replica failed 1", "ERROR boom 1"}
	if !slices.Equal(keys, want) {
		t.Fatalf("findings %q, want %q", keys, want)
	}
}

func TestFreePortsServeTCPAndUDP(t *testing.T) {
	ports, err := localnet.FreePorts(4)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if seen[p] {
			t.Fatalf("port %d handed out twice: %v", p, ports)
		}
		seen[p] = true
		l, err := net.Listen("tcp", addr(p))
		if err != nil {
			t.Fatalf("TCP %d: %v", p, err)
		}
		u, err := net.ListenPacket("udp", addr(p))
		if err != nil {
			l.Close()
			t.Fatalf("UDP %d: %v", p, err)
		}
		l.Close()
		u.Close()
	}
}
