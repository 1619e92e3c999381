package main

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"

	"github.com/atoll-metrics/atoll/internal/e2eproc"
)

// receiver is a running `atoll receive`.
type receiver struct {
	*e2eproc.Process
	id       string
	dataDir  string
	args     []string
	httpURL  string
	writeURL string
	gossip   string
}

// gossipFlags make failure detection fast enough for tests.
var gossipFlags = []string{
	"--ring.heartbeat-period=500ms",
	"--ring.heartbeat-timeout=5s",
	"--ring.forget-after=2m",
	"--log.level=info",
}

func startReceiver(t testing.TB, id, dataDir, join string, extra ...string) *receiver {
	t.Helper()
	ports := e2eproc.Ports(t, 4)
	r := &receiver{
		id:       id,
		dataDir:  dataDir,
		httpURL:  fmt.Sprintf("http://127.0.0.1:%d", ports[0]),
		writeURL: fmt.Sprintf("http://127.0.0.1:%d/api/v1/receive", ports[2]),
		gossip:   fmt.Sprintf("127.0.0.1:%d", ports[3]),
	}
	if join == "" {
		join = r.gossip
	}
	r.args = append([]string{"receive",
		"--data-dir=" + dataDir,
		fmt.Sprintf("--http-address=127.0.0.1:%d", ports[0]),
		fmt.Sprintf("--grpc-address=127.0.0.1:%d", ports[1]),
		fmt.Sprintf("--remote-write.address=127.0.0.1:%d", ports[2]),
		"--ring.listen-address=" + r.gossip,
		"--ring.join=" + join,
		"--ring.instance-id=" + id,
		"--receive.replication-factor=3",
		"--receive.forward-timeout=2s",
	}, append(gossipFlags, extra...)...)
	r.Process = e2eproc.Start(t, id, atollBinary, r.args...)
	r.Process.WaitReady(r.httpURL+"/-/ready", 60*time.Second)
	return r
}

func (r *receiver) restart(t testing.TB) {
	t.Helper()
	r.Process = e2eproc.Start(t, r.id, atollBinary, r.args...)
	r.Process.WaitReady(r.httpURL+"/-/ready", 60*time.Second)
}

func startQuerier(t *testing.T, join string, extra ...string) (*e2eproc.Process, string) {
	t.Helper()
	ports := e2eproc.Ports(t, 2)
	httpURL := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	args := append([]string{"query",
		fmt.Sprintf("--http-address=127.0.0.1:%d", ports[0]),
		fmt.Sprintf("--ring.listen-address=127.0.0.1:%d", ports[1]),
		"--ring.join=" + join,
		"--ring.instance-id=querier",
		"--store.check-interval=1s",
		"--query.store-timeout=5s",
	}, append(gossipFlags, extra...)...)
	p := e2eproc.Start(t, "querier", atollBinary, args...)
	p.WaitReady(httpURL+"/-/ready", 60*time.Second)
	return p, httpURL
}

// ringMember is one row of the /ring JSON page.
type ringMember struct {
	ID      string `json:"id"`
	Role    string `json:"role"`
	State   string `json:"state"`
	Healthy bool   `json:"healthy"`
}

func ringView(t *testing.T, httpURL string) map[string]ringMember {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, httpURL+"/ring", nil)
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var page struct {
		Members []ringMember `json:"members"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		return nil
	}
	out := map[string]ringMember{}
	for _, m := range page.Members {
		out[m.ID] = m
	}
	return out
}

// waitRing waits until the member at httpURL sees want receivers healthy
// and ACTIVE.
func waitRing(t *testing.T, httpURL string, want ...string) {
	t.Helper()
	eventually(t, 60*time.Second, func() error {
		v := ringView(t, httpURL)
		healthy := 0
		for _, m := range v {
			if m.Role == "receiver" && m.Healthy && m.State == "ACTIVE" {
				healthy++
			}
		}
		for _, id := range want {
			if m, ok := v[id]; !ok || !m.Healthy || m.State != "ACTIVE" {
				return fmt.Errorf("%s not healthy and ACTIVE: %+v", id, v)
			}
		}
		if healthy != len(want) {
			return fmt.Errorf("want %d healthy receivers, view %+v", len(want), v)
		}
		return nil
	})
}

// loadWriter sends fresh samples for a fixed set of series, round after
// round, and remembers which samples were acknowledged.
type loadWriter struct {
	t      *testing.T
	url    string
	name   string
	series int

	mtx      sync.Mutex
	acked    map[[2]int64]bool // {series, timestamp}
	codes    map[int]int
	rounds   int
	lastCode int

	base int64
	stop chan struct{}
	done chan struct{}
}

func newLoadWriter(t *testing.T, url, name string, series int) *loadWriter {
	return &loadWriter{
		t: t, url: url, name: name, series: series,
		acked: map[[2]int64]bool{}, codes: map[int]int{},
		base: time.Now().Add(-90 * time.Minute).UnixMilli(),
	}
}

// send writes one round and records the answer.
func (w *loadWriter) send(client *http.Client, offset int) int {
	w.mtx.Lock()
	round := w.rounds
	w.rounds++
	w.mtx.Unlock()
	ts := w.base + int64(round)*1000
	req := &prompb.WriteRequest{}
	for s := range w.series {
		req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
			Labels: []prompb.Label{
				{Name: "__name__", Value: w.name},
				{Name: "job", Value: "cluster-test"},
				{Name: "series", Value: strconv.Itoa(s + offset)},
			},
			Samples: []prompb.Sample{{Timestamp: ts, Value: float64(round)}},
		})
	}
	raw, _ := req.Marshal()
	r, _ := http.NewRequest(http.MethodPost, w.url, strings.NewReader(string(snappy.Encode(nil, raw))))
	r.Header.Set("Content-Encoding", "snappy")
	resp, err := client.Do(r)
	code := 0
	if err == nil {
		code = resp.StatusCode
		resp.Body.Close()
	}
	w.mtx.Lock()
	defer w.mtx.Unlock()
	w.codes[code]++
	w.lastCode = code
	if code/100 == 2 {
		for s := range w.series {
			w.acked[[2]int64{int64(s + offset), ts}] = true
		}
	}
	return code
}

func (w *loadWriter) start() {
	w.stop, w.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(w.done)
		client := &http.Client{Timeout: 10 * time.Second}
		for {
			select {
			case <-w.stop:
				return
			default:
			}
			w.send(client, 0)
			time.Sleep(20 * time.Millisecond)
		}
	}()
}

func (w *loadWriter) halt() {
	close(w.stop)
	<-w.done
}

func (w *loadWriter) statusCounts() map[int]int {
	w.mtx.Lock()
	defer w.mtx.Unlock()
	out := map[int]int{}
	for k, v := range w.codes {
		out[k] = v
	}
	return out
}

func (w *loadWriter) resetCounts() {
	w.mtx.Lock()
	defer w.mtx.Unlock()
	w.codes = map[int]int{}
}

// verify reads every sample of the writer's series through the querier and
// fails if an acknowledged one is missing or a sample appears twice.
func (w *loadWriter) verify(t *testing.T, queryURL string) {
	t.Helper()
	w.mtx.Lock()
	defer w.mtx.Unlock()
	at := strconv.FormatFloat(float64(w.base)/1000+float64(w.rounds)+60, 'f', 3, 64)
	code, r := promAPI(t, queryURL, "/api/v1/query", url.Values{"query": {w.name + "[3h]"}, "time": {at}}, nil)
	if code != http.StatusOK {
		t.Fatalf("query: %d %s", code, r.Error)
	}
	var m struct {
		Result []struct {
			Metric map[string]string `json:"metric"`
			Values [][2]any          `json:"values"`
		} `json:"result"`
	}
	if err := json.Unmarshal(r.Data, &m); err != nil {
		t.Fatal(err)
	}
	seen := map[[2]int64]int{}
	seriesSeen := map[string]bool{}
	for _, s := range m.Result {
		if _, ok := s.Metric["receive_replica"]; ok {
			t.Fatalf("replica label not removed: %v", s.Metric)
		}
		key := fmt.Sprint(s.Metric)
		if seriesSeen[key] {
			t.Fatalf("series returned twice: %v", s.Metric)
		}
		seriesSeen[key] = true
		n, _ := strconv.Atoi(s.Metric["series"])
		for _, v := range s.Values {
			seen[[2]int64{int64(n), int64(math.Round(v[0].(float64) * 1000))}]++
		}
	}
	missing := 0
	for k := range w.acked {
		if seen[k] == 0 {
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged samples missing through the querier", missing, len(w.acked))
	}
	t.Logf("all %d acknowledged samples present once through the querier (%d series)", len(w.acked), len(seriesSeen))
}

func metricValue(t *testing.T, httpURL, name string) float64 {
	t.Helper()
	resp, err := http.Get(httpURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.WriteString(string(buf[:n]))
		if err != nil {
			break
		}
	}
	total := 0.0
	for _, line := range strings.Split(b.String(), "\n") {
		if strings.HasPrefix(line, name+"{") || strings.HasPrefix(line, name+" ") {
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			total += v
		}
	}
	return total
}

// TestCluster runs three receivers with RF=3 and a querier, then puts them
// through what production does to them: a hung node, a killed node and its
// restart, a fourth node joining under load, and the loss of a quorum.
func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	dir := t.TempDir()
	// Processes started inside subtests belong to the whole test: their
	// cleanup must not run when the subtest ends.
	top := t
	r1 := startReceiver(t, "r1", filepath.Join(dir, "r1"), "")
	r2 := startReceiver(t, "r2", filepath.Join(dir, "r2"), r1.gossip)
	r3 := startReceiver(t, "r3", filepath.Join(dir, "r3"), r1.gossip)
	waitRing(t, r1.httpURL, "r1", "r2", "r3")
	_, qURL := startQuerier(t, r1.gossip)

	const series = 200
	w := newLoadWriter(t, r1.writeURL, "cluster_test", series)

	t.Run("replicated writes, deduplicated reads", func(t *testing.T) {
		client := &http.Client{Timeout: 10 * time.Second}
		for range 20 {
			if code := w.send(client, 0); code != http.StatusNoContent {
				t.Fatalf("write: %d", code)
			}
		}
		for _, r := range []*receiver{r1, r2, r3} {
			if got := metricValue(t, r.httpURL, "atoll_tsdb_head_series"); got != series {
				t.Fatalf("%s holds %v series, want all %d (RF=3 on 3 receivers)", r.id, got, series)
			}
		}
		at := url.Values{"time": {strconv.FormatFloat(float64(w.base)/1000+20, 'f', 3, 64)}}
		query := func(q string, extra ...string) url.Values {
			v := url.Values{"query": {q}, "time": at["time"]}
			for i := 0; i < len(extra); i += 2 {
				v.Set(extra[i], extra[i+1])
			}
			return v
		}
		eventually(t, 30*time.Second, func() error {
			_, res := promAPI(t, qURL, "/api/v1/query", query("count(cluster_test)"), nil)
			if !strings.Contains(string(res.Data), fmt.Sprintf(`"%d"`, series)) {
				return fmt.Errorf("count(cluster_test) = %s", res.Data)
			}
			return nil
		})
		// sum() must not count a replica twice: every series has value 19.
		_, res := promAPI(t, qURL, "/api/v1/query", query("sum(cluster_test)"), nil)
		if !strings.Contains(string(res.Data), fmt.Sprintf(`"%d"`, 19*series)) {
			t.Fatalf("sum(cluster_test) = %s, want %d", res.Data, 19*series)
		}
		_, res = promAPI(t, qURL, "/api/v1/query", query("count(cluster_test)", "dedup", "false"), nil)
		if !strings.Contains(string(res.Data), fmt.Sprintf(`"%d"`, 3*series)) {
			t.Fatalf("count without dedup = %s, want %d", res.Data, 3*series)
		}
		w.verify(t, qURL)
	})

	w.start()
	t.Run("a hung receiver does not stop writes", func(t *testing.T) {
		if err := r3.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		w.resetCounts()
		time.Sleep(4 * time.Second)
		counts := w.statusCounts()
		if counts[http.StatusNoContent] < 10 || len(counts) != 1 {
			t.Fatalf("writes while r3 hangs: %v", counts)
		}
		if err := r3.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		waitRing(t, r1.httpURL, "r1", "r2", "r3")
	})

	t.Run("a killed receiver loses nothing acknowledged", func(t *testing.T) {
		w.resetCounts()
		r3.Kill()
		time.Sleep(3 * time.Second)
		counts := w.statusCounts()
		if counts[http.StatusNoContent] < 10 {
			t.Fatalf("writes after r3 died: %v", counts)
		}
		for code := range counts {
			if code != http.StatusNoContent {
				t.Fatalf("writes after r3 died got %d: %v", code, counts)
			}
		}
		r3.restart(top)
		waitRing(t, r1.httpURL, "r1", "r2", "r3")
		eventually(t, 30*time.Second, func() error {
			if v := ringView(t, r3.httpURL)["r3"]; v.State != "ACTIVE" {
				return fmt.Errorf("r3 sees itself %+v", v)
			}
			return nil
		})
	})

	var r4 *receiver
	t.Run("a fourth receiver joins under load", func(t *testing.T) {
		before := w.statusCounts()[http.StatusNoContent]
		r4 = startReceiver(top, "r4", filepath.Join(dir, "r4"), r1.gossip)
		waitRing(t, r1.httpURL, "r1", "r2", "r3", "r4")
		waitRing(t, r2.httpURL, "r1", "r2", "r3", "r4")
		// New series written from now on spread over four receivers.
		client := &http.Client{Timeout: 10 * time.Second}
		const fresh = 2000
		nw := newLoadWriter(t, r2.writeURL, "scale_out_test", fresh)
		for range 3 {
			if code := nw.send(client, 0); code != http.StatusNoContent {
				t.Fatalf("write after scale-out: %d", code)
			}
		}
		share := metricValue(t, r4.httpURL, "atoll_tsdb_head_series") / fresh
		// Each series has 3 owners among 4 receivers: r4 holds about 3/4.
		if share < 0.6 || share > 0.9 {
			t.Fatalf("r4 holds %.2f of the new series, want about 0.75", share)
		}
		t.Logf("r4 holds %.1f%% of the series created after it joined (RF=3 of 4 receivers: 75%% expected)", share*100)
		nw.verify(t, qURL)
		if w.statusCounts()[http.StatusNoContent] <= before {
			t.Fatal("writes stopped while r4 joined")
		}
	})

	w.halt()
	t.Run("every acknowledged sample is there", func(t *testing.T) {
		w.verify(t, qURL)
	})

	t.Run("losing a quorum answers 503", func(t *testing.T) {
		if r4 == nil {
			t.Skip("needs the fourth receiver")
		}
		// With three of four receivers gone, one healthy owner is left for
		// any series: fewer than the quorum of two.
		r2.Kill()
		r3.Kill()
		r4.Kill()
		client := &http.Client{Timeout: 10 * time.Second}
		eventually(t, 30*time.Second, func() error {
			if code := w.send(client, 0); code != http.StatusServiceUnavailable {
				return fmt.Errorf("write with 2 of 4 receivers dead: %d", code)
			}
			return nil
		})
		for range 5 {
			if code := w.send(client, 0); code != http.StatusServiceUnavailable {
				t.Fatalf("write with quorum lost: %d, want 503", code)
			}
		}
	})
}
