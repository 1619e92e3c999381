package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/atoll-metrics/atoll/bench/procstat"
	"github.com/atoll-metrics/atoll/block"
	"github.com/atoll-metrics/atoll/bucket"
	"github.com/atoll-metrics/atoll/internal/blockgen"
	"github.com/atoll-metrics/atoll/internal/e2eproc"
	"github.com/atoll-metrics/atoll/internal/promqltest"
	"github.com/atoll-metrics/atoll/tenant"
)

// gwBase is the start of the generated data: fixed, so that answers do not
// depend on the clock.
var gwBase = time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC).UnixMilli()

const gwHour = int64(time.Hour / time.Millisecond)

// gwBucket is a filesystem bucket of generated blocks, with the same
// blocks kept open locally as the reference.
type gwBucket struct {
	dir    string
	bkt    bucket.Bucket
	config string // objstore config file
	local  []*tsdb.Block
}

func newGWBucket(t *testing.T) *gwBucket {
	t.Helper()
	dir := t.TempDir()
	b := &gwBucket{dir: filepath.Join(dir, "bucket"), config: filepath.Join(dir, "bucket.yaml")}
	var err error
	if b.bkt, err = bucket.NewFilesystem(b.dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(b.config, fmt.Appendf(nil, "type: FILESYSTEM\nconfig:\n  directory: %s\n", b.dir), 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

// addBlock writes a block of series counters and gauges over [mint, maxt)
// with blockgen, as a receiver of the default tenant would have shipped
// it, and uploads it (meta.json last).
func (b *gwBucket) addBlock(t *testing.T, series int, mint, maxt, step int64, keepOpen bool) (ulid.ULID, string) {
	t.Helper()
	ctx := context.Background()
	var data []blockgen.SeriesData
	for i := range series {
		counter := blockgen.SeriesData{Labels: labels.FromStrings("__name__", "gw_requests_total", "job", fmt.Sprintf("job-%d", i%4), "instance", fmt.Sprintf("host-%04d", i))}
		gauge := blockgen.SeriesData{Labels: labels.FromStrings("__name__", "gw_temperature", "job", fmt.Sprintf("job-%d", i%4), "instance", fmt.Sprintf("host-%04d", i))}
		for ts := mint; ts < maxt; ts += step {
			k := (ts - gwBase) / step
			// Counters grow by a per-series amount and reset every 500 steps.
			counter.Floats = append(counter.Floats, blockgen.FloatSample{T: ts, V: float64((k%500)*int64(i%7+1)) + 0.5})
			gauge.Floats = append(gauge.Floats, blockgen.FloatSample{T: ts, V: 20 + 5*math.Sin(float64(k)/37+float64(i))})
		}
		data = append(data, counter, gauge)
	}
	dir := t.TempDir()
	id := ulid.Make()
	// The block ends after its last sample, as one cut from a head does.
	last := mint + (maxt-1-mint)/step*step
	meta, err := blockgen.WriteBlock(ctx, dir, id, mint, last+1, map[string]string{tenant.Label: tenant.Default, "receive_replica": "r1"}, data)
	if err != nil {
		t.Fatal(err)
	}
	blockDir := filepath.Join(dir, id.String())
	if _, err := block.Upload(ctx, b.bkt, blockDir, meta, nil); err != nil {
		t.Fatal(err)
	}
	if keepOpen {
		blk, err := tsdb.OpenBlock(slog.New(slog.DiscardHandler), blockDir, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = blk.Close() })
		b.local = append(b.local, blk)
	}
	return id, blockDir
}

// Queryable is the reference: the local blocks merged, as one Prometheus
// would hold them.
func (b *gwBucket) Querier(mint, maxt int64) (storage.Querier, error) {
	var qs []storage.Querier
	for _, blk := range b.local {
		q, err := tsdb.NewBlockQuerier(blk, mint, maxt)
		if err != nil {
			return nil, err
		}
		qs = append(qs, q)
	}
	return storage.NewMergeQuerier(qs, nil, storage.ChainedSeriesMerge), nil
}

// startStoreGateway runs `atoll store` over the bucket and returns its
// process, gRPC address and HTTP URL. It stays out of the gossip ring
// unless extra has ring flags.
func startStoreGateway(t *testing.T, b *gwBucket, extra ...string) (*e2eproc.Process, string, string) {
	t.Helper()
	if !slices.ContainsFunc(extra, func(a string) bool { return strings.HasPrefix(a, "--ring.") }) {
		extra = append(extra, "--ring.disable")
	}
	ports := e2eproc.Ports(t, 2)
	grpcAddr := fmt.Sprintf("127.0.0.1:%d", ports[1])
	httpURL := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	p := e2eproc.Start(t, "store", atollBinary, append([]string{"store",
		"--data-dir=" + t.TempDir(),
		"--objstore.config-file=" + b.config,
		fmt.Sprintf("--http-address=127.0.0.1:%d", ports[0]),
		"--grpc-address=" + grpcAddr,
		"--sync-block-duration=1s",
	}, extra...)...)
	p.WaitReady(httpURL+"/-/ready", 60*time.Second)
	return p, grpcAddr, httpURL
}

// startStoreQuerier runs `atoll query` over one store and waits until the
// store's data answers.
func startStoreQuerier(t *testing.T, store string) string {
	t.Helper()
	ports := e2eproc.Ports(t, 1)
	httpURL := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	p := e2eproc.Start(t, "query", atollBinary, "query",
		fmt.Sprintf("--http-address=127.0.0.1:%d", ports[0]),
		"--store="+store,
		"--store.check-interval=500ms",
		"--ring.disable",
		"--no-query.partial-response",
	)
	p.WaitReady(httpURL+"/-/ready", 60*time.Second)
	eventually(t, 30*time.Second, func() error {
		code, r := promAPI(t, httpURL, "/api/v1/label/job/values", url.Values{}, nil)
		if code != http.StatusOK || string(r.Data) == "[]" {
			return fmt.Errorf("store not queried yet: %d %s %s", code, r.Data, r.Error)
		}
		return nil
	})
	return httpURL
}

// gwPoint is one sample of an API answer, as the API renders it.
type gwPoint struct {
	t int64
	v string
}

// apiMatrix decodes a vector or matrix answer into samples by series.
func apiMatrix(t *testing.T, r apiResponse) map[string][]gwPoint {
	t.Helper()
	var data struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Value  []any             `json:"value"`
			Values [][]any           `json:"values"`
		} `json:"result"`
	}
	if err := json.Unmarshal(r.Data, &data); err != nil {
		t.Fatalf("decode %s: %v", r.Data, err)
	}
	out := map[string][]gwPoint{}
	for _, s := range data.Result {
		key := labels.FromMap(s.Metric).String()
		vals := s.Values
		if s.Value != nil {
			vals = [][]any{s.Value}
		}
		for _, v := range vals {
			out[key] = append(out[key], gwPoint{t: int64(math.Round(v[0].(float64) * 1000)), v: v[1].(string)})
		}
	}
	return out
}

// promqlMatrix evaluates a query with the PromQL engine over the local
// blocks and renders it as the API does.
func promqlMatrix(t *testing.T, q storage.Queryable, query string, start, end, step int64) map[string][]gwPoint {
	t.Helper()
	eng := promql.NewEngine(promql.EngineOpts{MaxSamples: 50_000_000, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
	var (
		qry promql.Query
		err error
	)
	if step == 0 {
		qry, err = eng.NewInstantQuery(context.Background(), q, nil, query, time.UnixMilli(start))
	} else {
		qry, err = eng.NewRangeQuery(context.Background(), q, nil, query, time.UnixMilli(start), time.UnixMilli(end), time.Duration(step)*time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer qry.Close()
	res := qry.Exec(context.Background())
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	out := map[string][]gwPoint{}
	add := func(ls labels.Labels, ts int64, v float64) {
		out[ls.String()] = append(out[ls.String()], gwPoint{t: ts, v: strconv.FormatFloat(v, 'f', -1, 64)})
	}
	ng := promqltest.NewEngine(t)
	if step == 0 {
		for _, s := range promqltest.Instant(t, context.Background(), ng, q, query, time.UnixMilli(start)) {
			add(s.Metric, s.T, s.F)
		}
		return out
	}
	for _, s := range promqltest.Range(t, context.Background(), ng, q, query, time.UnixMilli(start), time.UnixMilli(end), time.Duration(step)*time.Millisecond) {
		for _, p := range s.Floats {
			add(s.Metric, p.T, p.F)
		}
	}
	return out
}

func TestStoreGatewayAnswersLikeTheBlocks(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	b := newGWBucket(t)
	for i := range int64(3) {
		b.addBlock(t, 40, gwBase+i*2*gwHour, gwBase+(i+1)*2*gwHour, 30_000, true)
	}
	_, grpcAddr, storeURL := startStoreGateway(t, b, "--log.level=debug")
	queryURL := startStoreQuerier(t, grpcAddr)

	start, end := gwBase, gwBase+6*gwHour-1
	for _, tc := range []struct {
		query string
		step  int64 // 0: instant query at end
	}{
		{`gw_temperature{job="job-1"}`, 0},
		{`gw_requests_total`, 5 * 60_000},
		{`rate(gw_requests_total[5m])`, 60_000},
		{`sum by (job) (rate(gw_requests_total[10m]))`, 60_000},
		{`max_over_time(gw_temperature{instance=~"host-000.*"}[1h])`, 15 * 60_000},
		{`count({__name__=~"gw_.+", job!="job-3"})`, 0},
		{`avg(gw_temperature) by (job)`, 7 * 60_000},
	} {
		t.Run(tc.query, func(t *testing.T) {
			params := url.Values{"query": {tc.query}}
			apiPath := "/api/v1/query"
			if tc.step == 0 {
				params.Set("time", strconv.FormatFloat(float64(end)/1000, 'f', -1, 64))
			} else {
				apiPath = "/api/v1/query_range"
				params.Set("start", strconv.FormatFloat(float64(start)/1000, 'f', -1, 64))
				params.Set("end", strconv.FormatFloat(float64(end)/1000, 'f', -1, 64))
				params.Set("step", strconv.FormatFloat(float64(tc.step)/1000, 'f', -1, 64))
			}
			code, r := promAPI(t, queryURL, apiPath, params, nil)
			if code != http.StatusOK {
				t.Fatalf("%d %s: %s", code, r.ErrorType, r.Error)
			}
			got := apiMatrix(t, r)
			qStart := start
			if tc.step == 0 {
				qStart = end
			}
			want := promqlMatrix(t, b, tc.query, qStart, end, tc.step)
			if len(want) == 0 {
				t.Fatal("reference answer is empty")
			}
			if len(got) != len(want) {
				t.Fatalf("%d series, want %d", len(got), len(want))
			}
			for k, w := range want {
				if !slices.Equal(got[k], w) {
					t.Fatalf("%s: got %d points (first %v), want %d (first %v)", k, len(got[k]), firstPoints(got[k]), len(w), firstPoints(w))
				}
			}
		})
	}

	t.Run("label values", func(t *testing.T) {
		code, r := promAPI(t, queryURL, "/api/v1/label/instance/values", url.Values{"match[]": {`gw_requests_total{job="job-2"}`}}, nil)
		if code != http.StatusOK {
			t.Fatalf("%d %s", code, r.Error)
		}
		var got []string
		if err := json.Unmarshal(r.Data, &got); err != nil {
			t.Fatal(err)
		}
		if len(got) != 10 || got[0] != "host-0002" {
			t.Errorf("instances of job-2: %q", got)
		}
	})
	if v := metricValue(t, storeURL, "atoll_gateway_blocks_loaded"); v != 3 {
		t.Errorf("gateway serves %v blocks, want 3", v)
	}

	t.Run("discovered through the ring", func(t *testing.T) {
		gossip := fmt.Sprintf("127.0.0.1:%d", e2eproc.Ports(t, 1)[0])
		startStoreGateway(t, b, append([]string{"--ring.listen-address=" + gossip, "--ring.join=" + gossip, "--ring.instance-id=gateway"}, gossipFlags...)...)
		_, ringQueryURL := startQuerier(t, gossip)
		eventually(t, 30*time.Second, func() error {
			code, r := promAPI(t, ringQueryURL, "/api/v1/query", url.Values{
				"query": {`count(gw_temperature)`},
				"time":  {strconv.FormatFloat(float64(end)/1000, 'f', -1, 64)},
			}, nil)
			if code != http.StatusOK {
				return fmt.Errorf("%d %s", code, r.Error)
			}
			if got := apiMatrix(t, r); len(got) != 1 || got["{}"][0].v != "40" {
				return fmt.Errorf("count(gw_temperature) = %v, want 40", got)
			}
			return nil
		})
	})
}

func firstPoints(p []gwPoint) []gwPoint {
	if len(p) > 3 {
		return p[:3]
	}
	return p
}

// TestStoreGatewayMemory checks that the gateway's memory does not grow
// with the bucket: 200 blocks, a query reading all of them, and a resident
// set that stays under gwMemoryBound. The bound leaves room for the Go
// runtime, gRPC and the 32MiB index cache of the test; what it rules out
// is holding indexes or chunks of many blocks at once.
func TestStoreGatewayMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	const (
		blocks        = 200
		gwMemoryBound = 128 << 20
	)
	b := newGWBucket(t)
	genStart := time.Now()
	for i := range int64(blocks) {
		b.addBlock(t, 25, gwBase+i*2*gwHour, gwBase+(i+1)*2*gwHour, 60_000, false)
	}
	t.Logf("generated %d blocks in %s", blocks, time.Since(genStart).Round(time.Millisecond))

	startUp := time.Now()
	store, grpcAddr, storeURL := startStoreGateway(t, b, "--index-cache-size=32MiB")
	t.Logf("store ready after %s", time.Since(startUp).Round(time.Millisecond))
	queryURL := startStoreQuerier(t, grpcAddr)

	end := gwBase + blocks*2*gwHour - 1
	params := url.Values{
		"query": {`sum by (job) (rate(gw_requests_total[10m]))`},
		"start": {strconv.FormatInt(gwBase/1000, 10)},
		"end":   {strconv.FormatInt(end/1000, 10)},
		"step":  {"3600"},
	}
	qStart := time.Now()
	code, r := promAPI(t, queryURL, "/api/v1/query_range", params, nil)
	if code != http.StatusOK {
		t.Fatalf("%d %s: %s", code, r.ErrorType, r.Error)
	}
	t.Logf("first query over %d blocks took %s", blocks, time.Since(qStart).Round(time.Millisecond))
	if got := apiMatrix(t, r); len(got) != 4 {
		t.Fatalf("%d series, want 4 jobs", len(got))
	}
	if v := metricValue(t, storeURL, "atoll_gateway_blocks_loaded"); v != blocks {
		t.Fatalf("gateway serves %v blocks, want %d", v, blocks)
	}
	rss, peak, err := procstat.ProcessMemory(store.Pid())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("store gateway RSS %d MiB after the query (peak %d MiB), samples returned %.0f",
		rss>>20, peak>>20, metricValue(t, storeURL, "atoll_gateway_samples_returned_total"))
	if rss > gwMemoryBound {
		t.Errorf("store gateway RSS %d MiB exceeds the bound of %d MiB", rss>>20, gwMemoryBound>>20)
	}
}

// TestBucketTools runs `atoll bucket ls`, `inspect` and `verify` against a
// bucket with an overlap and a broken block.
func TestBucketTools(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	b := newGWBucket(t)
	first, _ := b.addBlock(t, 5, gwBase, gwBase+2*gwHour, 60_000, false)
	second, _ := b.addBlock(t, 5, gwBase+2*gwHour, gwBase+4*gwHour, 60_000, false)

	bucketCmd := func(args ...string) (string, int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, atollBinary, append([]string{"bucket", "--objstore.config-file=" + b.config}, args...)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		var exit *exec.ExitError
		switch {
		case errors.As(err, &exit):
			return string(out), exit.ExitCode()
		case err != nil:
			t.Fatalf("atoll bucket %v: %v\n%s", args, err, stderr.String())
		}
		return string(out), 0
	}

	out, code := bucketCmd("verify", "--deep")
	if code != 0 {
		t.Fatalf("verify of a healthy bucket exited %d:\n%s", code, out)
	}
	out, code = bucketCmd("ls")
	if code != 0 || !strings.Contains(out, first.String()) || !strings.Contains(out, second.String()) || !strings.Contains(out, `receive_replica="r1"`) {
		t.Fatalf("ls exited %d:\n%s", code, out)
	}
	out, code = bucketCmd("inspect", first.String(), "--top=3")
	if code != 0 || !strings.Contains(out, "Index series") || !strings.Contains(out, "instance") {
		t.Fatalf("inspect exited %d:\n%s", code, out)
	}

	overlap, _ := b.addBlock(t, 5, gwBase+gwHour, gwBase+3*gwHour, 60_000, false)
	broken, brokenDir := b.addBlock(t, 5, gwBase+10*gwHour, gwBase+12*gwHour, 60_000, false)
	idx, err := os.ReadFile(filepath.Join(brokenDir, "index"))
	if err != nil {
		t.Fatal(err)
	}
	idx[len(idx)-100] ^= 0xff
	if err := b.bkt.Upload(context.Background(), path.Join(broken.String(), "index"), bytes.NewReader(idx), int64(len(idx))); err != nil {
		t.Fatal(err)
	}

	out, code = bucketCmd("verify")
	t.Logf("verify:\n%s", out)
	if code != 1 {
		t.Errorf("verify exited %d, want 1", code)
	}
	for _, want := range []string{"overlap " + first.String() + "," + overlap.String(), "corrupt-index " + broken.String()} {
		if !strings.Contains(out, want) {
			t.Errorf("verify output lacks %q", want)
		}
	}
	out, code = bucketCmd("ls", "-o", "json")
	if code != 0 || !strings.Contains(out, overlap.String()) || !strings.Contains(out, `"blocks"`) {
		t.Errorf("ls -o json exited %d:\n%s", code, out)
	}
}
