package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/atoll-metrics/atoll/bench/procstat"
	"github.com/atoll-metrics/atoll/bucket"
	"github.com/atoll-metrics/atoll/internal/blockgen"
	"github.com/atoll-metrics/atoll/internal/localnet"
	"github.com/atoll-metrics/atoll/tenant"
)

// The query benchmark: months of data compacted and downsampled, then one
// range query through `atoll query` and `atoll store`, read raw
// (max_source_resolution=0s) and as the querier picks by default (auto).

// queryConfig describes the query benchmark.
type queryConfig struct {
	atoll    string
	dir      string
	days     int
	series   int
	interval time.Duration
	runs     int
}

// queryBucketParams are what a kept bucket was made with; a bucket is
// reused only when they match.
type queryBucketParams struct {
	Days            int     `json:"days"`
	Series          int     `json:"series"`
	IntervalSeconds float64 `json:"interval_seconds"`
	Seed            uint64  `json:"seed"`
	Blocks          int     `json:"generated_blocks"`
	Samples         int64   `json:"generated_samples"`
	CompactSeconds  float64 `json:"compact_seconds"`
}

// queryResult is one query at one resolution.
type queryResult struct {
	Query      string `json:"query"`
	StepSecs   int64  `json:"step_seconds"`
	Resolution string `json:"max_source_resolution"`
	Runs       int    `json:"runs"`
	// WallSeconds is the median of the runs; CPUSeconds the median of the
	// querier's and the gateway's CPU time together.
	WallSeconds    float64 `json:"wall_seconds"`
	MinWallSeconds float64 `json:"min_wall_seconds"`
	MaxWallSeconds float64 `json:"max_wall_seconds"`
	CPUSeconds     float64 `json:"cpu_seconds"`
	// What one run made the gateway send and read.
	GatewaySeries  float64 `json:"gateway_series"`
	GatewayChunks  float64 `json:"gateway_chunks"`
	GatewaySamples float64 `json:"gateway_samples"`
	BucketBytes    float64 `json:"bucket_bytes_read"`
	// PromQLSamples is the engine's totalQueryableSamples: samples the
	// selectors loaded over all steps.
	PromQLSamples int64 `json:"promql_samples"`
	Points        int   `json:"points"`
	// WorstRelativeError compares an answer with the raw one, point by
	// point (0 for the raw answer itself).
	WorstRelativeError float64 `json:"worst_relative_error"`
}

// benchQuery is a query the benchmark runs, evaluated at a step over the
// whole bucket.
type benchQuery struct {
	expr string
	rng  time.Duration // of its range selector: the first step is one range in
	step time.Duration
}

func benchQueries(ctx context.Context, c queryConfig) ([]queryResult, error) {
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return nil, err
	}
	cfg := blockgen.Config{
		Duration: time.Duration(c.days) * 24 * time.Hour,
		Interval: c.interval,
		Series:   c.series,
		// The querier's default tenant, so queries need no header.
		ExternalLabels: map[string]string{tenant.Label: tenant.Default},
		Seed:           2,
	}.WithDefaults()
	bucketDir, err := filepath.Abs(filepath.Join(c.dir, "bucket"))
	if err != nil {
		return nil, err
	}
	if err := ensureQueryBucket(ctx, c, cfg, bucketDir); err != nil {
		return nil, err
	}
	objstore := fmt.Sprintf("type: FILESYSTEM\nconfig:\n  directory: %s\n", bucketDir)

	ports, err := localnet.FreePorts(3)
	if err != nil {
		return nil, err
	}
	storeHTTP := fmt.Sprintf("127.0.0.1:%d", ports[0])
	storeGRPC := fmt.Sprintf("127.0.0.1:%d", ports[1])
	queryHTTP := fmt.Sprintf("127.0.0.1:%d", ports[2])
	start := time.Now()
	store, err := startAtoll(c.atoll, filepath.Join(c.dir, "store.log"), "store",
		"--data-dir="+filepath.Join(c.dir, "store"),
		"--objstore.config="+objstore,
		"--http-address="+storeHTTP,
		"--grpc-address="+storeGRPC,
		"--ring.disable",
		"--log.level=warn",
	)
	if err != nil {
		return nil, err
	}
	defer store.stop()
	if err := localnet.WaitReady(ctx, "http://"+storeHTTP+"/-/ready", 10*time.Minute, nil); err != nil {
		return nil, fmt.Errorf("atoll store: %w (log in %s)", err, store.log)
	}
	fmt.Printf("atoll store ready in %s\n", time.Since(start).Round(time.Millisecond))
	query, err := startAtoll(c.atoll, filepath.Join(c.dir, "query.log"), "query",
		"--http-address="+queryHTTP,
		"--store="+storeGRPC,
		"--store.check-interval=1s",
		"--ring.disable",
		"--no-query.partial-response",
		"--query.timeout=10m",
		"--log.level=warn",
	)
	if err != nil {
		return nil, err
	}
	defer query.stop()
	queryURL := "http://" + queryHTTP
	if err := localnet.WaitReady(ctx, queryURL+"/-/ready", time.Minute, nil); err != nil {
		return nil, fmt.Errorf("atoll query: %w (log in %s)", err, query.log)
	}
	if err := waitAnswers(ctx, queryURL); err != nil {
		return nil, err
	}

	mint, maxt := cfg.MinTime(), cfg.MaxTime()
	var results []queryResult
	for _, bq := range []benchQuery{
		{fmt.Sprintf("sum by (job) (rate(%s[1h]))", blockgen.CounterMetric), time.Hour, time.Hour},
		{fmt.Sprintf("sum by (job) (rate(%s[6h]))", blockgen.CounterMetric), 6 * time.Hour, 6 * time.Hour},
	} {
		// Steps one millisecond before whole hours: every range covers
		// whole downsampling windows.
		from := mint + bq.rng.Milliseconds() - 1
		to := maxt - 1
		rs, err := measureQuery(ctx, c.runs, queryURL, "http://"+storeHTTP, store.pid(), query.pid(), bq, from, to)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", bq.expr, err)
		}
		results = append(results, rs...)
	}
	return results, nil
}

// ensureQueryBucket generates and compacts the bucket unless c.dir holds
// one made with the same parameters.
func ensureQueryBucket(ctx context.Context, c queryConfig, cfg blockgen.Config, bucketDir string) error {
	want := queryBucketParams{Days: c.days, Series: c.series, IntervalSeconds: c.interval.Seconds(), Seed: cfg.Seed}
	paramsPath := filepath.Join(c.dir, "bucket.json")
	if data, err := os.ReadFile(paramsPath); err == nil {
		var have queryBucketParams
		if json.Unmarshal(data, &have) == nil {
			made := have
			have.Blocks, have.Samples, have.CompactSeconds = 0, 0, 0
			if have == want {
				fmt.Printf("reusing the compacted bucket in %s (%d blocks, %d samples generated; compacted in %.1fs)\n", bucketDir, made.Blocks, made.Samples, made.CompactSeconds)
				return nil
			}
		}
	}
	for _, p := range []string{paramsPath, bucketDir, filepath.Join(c.dir, "store"), filepath.Join(c.dir, "scratch")} {
		if err := os.RemoveAll(p); err != nil {
			return err
		}
	}
	bkt, err := bucket.NewFilesystem(bucketDir)
	if err != nil {
		return err
	}
	defer bkt.Close()
	start := time.Now()
	st, err := blockgen.Generate(ctx, bkt, c.dir, cfg)
	if err != nil {
		return err
	}
	fmt.Printf("query bucket: %d series (half counters), %d days at %s: generated %d blocks, %d samples in %s\n",
		c.series, c.days, c.interval, st.Blocks, st.Samples, time.Since(start).Round(time.Millisecond))
	start = time.Now()
	cmd := exec.CommandContext(ctx, c.atoll, "compact",
		fmt.Sprintf("--objstore.config=type: FILESYSTEM\nconfig:\n  directory: %s\n", bucketDir),
		"--data-dir="+filepath.Join(c.dir, "scratch"),
		"--delete-delay=0s",
		"--log.level=warn",
	)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("atoll compact: %w", err)
	}
	want.Blocks, want.Samples, want.CompactSeconds = st.Blocks, st.Samples, time.Since(start).Seconds()
	fmt.Printf("compacted and downsampled in %s\n", time.Since(start).Round(time.Millisecond))
	data, _ := json.Marshal(want)
	return os.WriteFile(paramsPath, data, 0o644)
}

// measureQuery runs q raw and auto, alternating, after one unmeasured run
// of each that loads the index caches.
func measureQuery(ctx context.Context, runs int, queryURL, storeURL string, storePID, queryPID int, q benchQuery, from, to int64) ([]queryResult, error) {
	modes := []string{"0s", "auto"}
	walls := map[string][]float64{}
	cpus := map[string][]float64{}
	out := map[string]*queryResult{}
	answers := map[string]map[string][]float64{}
	for run := -1; run < runs; run++ {
		for _, mode := range modes {
			before, err := gatewayCounters(storeURL)
			if err != nil {
				return nil, err
			}
			cpu0 := cpuOf(storePID) + cpuOf(queryPID)
			t0 := time.Now()
			ans, err := rangeQuery(ctx, queryURL, q.expr, mode, from, to, q.step)
			if err != nil {
				return nil, err
			}
			wall := time.Since(t0).Seconds()
			cpu := cpuOf(storePID) + cpuOf(queryPID) - cpu0
			after, err := gatewayCounters(storeURL)
			if err != nil {
				return nil, err
			}
			if run < 0 {
				continue
			}
			walls[mode] = append(walls[mode], wall)
			cpus[mode] = append(cpus[mode], cpu)
			answers[mode] = ans.values
			out[mode] = &queryResult{
				Query: q.expr, StepSecs: int64(q.step.Seconds()), Resolution: mode, Runs: runs,
				GatewaySeries:  after["atoll_gateway_series_returned_total"] - before["atoll_gateway_series_returned_total"],
				GatewayChunks:  after["atoll_gateway_chunks_returned_total"] - before["atoll_gateway_chunks_returned_total"],
				GatewaySamples: after["atoll_gateway_samples_returned_total"] - before["atoll_gateway_samples_returned_total"],
				BucketBytes:    after["atoll_gateway_bucket_fetched_bytes_total"] - before["atoll_gateway_bucket_fetched_bytes_total"],
				PromQLSamples:  ans.samples,
				Points:         ans.points,
			}
		}
	}
	var results []queryResult
	for _, mode := range modes {
		r := out[mode]
		w := slices.Clone(walls[mode])
		slices.Sort(w)
		r.WallSeconds, r.MinWallSeconds, r.MaxWallSeconds = median(w), w[0], w[len(w)-1]
		r.CPUSeconds = median(cpus[mode])
		r.WorstRelativeError = worstRelativeError(answers[mode], answers["0s"])
		results = append(results, *r)
	}
	return results, nil
}

// printQueryResults prints the table and each query's raw/auto ratios.
func printQueryResults(results []queryResult) error {
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "query\tstep\tresolution\twall s (median)\tmin–max\tCPU s\tgateway series\tgateway samples\tbucket MB read\tPromQL samples\tpoints\tworst rel. diff\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.2f\t%.2f–%.2f\t%.2f\t%.0f\t%.0f\t%.1f\t%d\t%d\t%.2g\t\n", r.Query, stepName(r.StepSecs),
			r.Resolution, r.WallSeconds, r.MinWallSeconds, r.MaxWallSeconds, r.CPUSeconds, r.GatewaySeries, r.GatewaySamples,
			r.BucketBytes/1e6, r.PromQLSamples, r.Points, r.WorstRelativeError)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for i := 0; i+1 < len(results); i += 2 {
		raw, auto := results[i], results[i+1]
		fmt.Printf("%s, step %s: raw/auto wall %.1fx, CPU %.1fx, gateway samples %.1fx, PromQL samples %.1fx\n",
			raw.Query, stepName(raw.StepSecs), raw.WallSeconds/auto.WallSeconds, raw.CPUSeconds/auto.CPUSeconds,
			raw.GatewaySamples/auto.GatewaySamples, float64(raw.PromQLSamples)/float64(auto.PromQLSamples))
	}
	return nil
}

func stepName(secs int64) string {
	if secs%3600 == 0 {
		return fmt.Sprintf("%dh", secs/3600)
	}
	return (time.Duration(secs) * time.Second).String()
}

// queryAnswer is what the benchmark keeps of an answer.
type queryAnswer struct {
	values  map[string][]float64
	points  int
	samples int64
}

func rangeQuery(ctx context.Context, base, expr, res string, from, to int64, step time.Duration) (queryAnswer, error) {
	secs := func(ms int64) string { return strconv.FormatFloat(float64(ms)/1000, 'f', 3, 64) }
	params := url.Values{
		"query": {expr}, "start": {secs(from)}, "end": {secs(to)}, "step": {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)},
		"max_source_resolution": {res}, "stats": {"all"},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/v1/query_range", strings.NewReader(params.Encode()))
	if err != nil {
		return queryAnswer{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return queryAnswer{}, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Values [][2]any          `json:"values"`
			} `json:"result"`
			Stats struct {
				Samples struct {
					TotalQueryableSamples int64 `json:"totalQueryableSamples"`
				} `json:"samples"`
			} `json:"stats"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return queryAnswer{}, fmt.Errorf("status %d: %w", resp.StatusCode, err)
	}
	if body.Status != "success" {
		return queryAnswer{}, fmt.Errorf("status %d: %s", resp.StatusCode, body.Error)
	}
	a := queryAnswer{values: map[string][]float64{}, samples: body.Data.Stats.Samples.TotalQueryableSamples}
	for _, s := range body.Data.Result {
		key, _ := json.Marshal(s.Metric)
		for _, p := range s.Values {
			str, _ := p[1].(string)
			v, err := strconv.ParseFloat(str, 64)
			if err != nil {
				return queryAnswer{}, err
			}
			a.values[string(key)] = append(a.values[string(key)], v)
			a.points++
		}
	}
	return a, nil
}

// worstRelativeError compares answers point by point; a series or point
// missing from got counts as an error of 1.
func worstRelativeError(got, want map[string][]float64) float64 {
	worst := 0.0
	for k, w := range want {
		g := got[k]
		if len(g) != len(w) {
			return 1
		}
		for i := range w {
			if d := math.Abs(g[i] - w[i]); d > 0 {
				worst = max(worst, d/math.Max(math.Abs(w[i]), math.SmallestNonzeroFloat64))
			}
		}
	}
	return worst
}

// waitAnswers waits until the querier has the gateway's data.
func waitAnswers(ctx context.Context, base string) error {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		resp, err := http.Get(base + "/api/v1/label/__name__/values")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(b), blockgen.CounterMetric) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return errors.New("the querier does not see the gateway's series")
}

// gatewayCounters reads the gateway's atoll_gateway_* counters, summed
// over their labels.
func gatewayCounters(base string) (map[string]float64, error) {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "atoll_gateway_") {
			continue
		}
		name, _, _ := strings.Cut(line, "{")
		name, _, _ = strings.Cut(name, " ")
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			out[name] += v
		}
	}
	return out, nil
}

func cpuOf(pid int) float64 {
	d, _ := procstat.ProcessCPU(pid)
	return d.Seconds()
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// atollProcess is an atoll server the benchmark started.
type atollProcess struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

func startAtoll(bin, logPath string, args ...string) (*atollProcess, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, err
	}
	p := &atollProcess{cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *atollProcess) pid() int { return p.cmd.Process.Pid }

// stop sends SIGTERM and waits up to 15s before killing.
func (p *atollProcess) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}
