// Command frontendbench measures what `atoll query-frontend` saves
// dashboards, against `atoll query` alone on the same data in the same run.
//
// It generates a filesystem bucket of 2h blocks reaching up to now (kept
// between runs while its parameters and its last block stay the same),
// serves it with `atoll store` behind `atoll query`, and puts frontends in
// front of that querier. Then:
//
//   - a 7-day dashboard of six range queries, asked at once as Grafana does:
//     first load through a frontend with an empty cache, second load (a
//     refresh, seconds later), and the querier alone, each round with a new
//     frontend;
//   - a 30-day range query: the querier alone, a frontend that splits it by
//     day without caching, and a frontend answering it from its cache.
//
// The queriers' caches are warmed first, so the figures compare the
// frontend's work with the querier's, not a cold disk with a warm one.
// Every frontend answer is checked against the querier's.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/atoll-metrics/atoll/bucket"
	"github.com/atoll-metrics/atoll/internal/apicompare"
	"github.com/atoll-metrics/atoll/internal/blockgen"
	"github.com/atoll-metrics/atoll/internal/localnet"
)

type config struct {
	atoll    string
	dir      string
	series   int
	days     int
	interval time.Duration
	rounds   int
	runs     int
	jsonOut  string
	timeout  time.Duration
}

func main() {
	var c config
	flag.StringVar(&c.atoll, "atoll", "bin/atoll", "Atoll binary.")
	flag.StringVar(&c.dir, "dir", "bin/bench-frontend", "Working directory: the generated bucket (reused while it matches the parameters) and the processes' data and logs.")
	flag.IntVar(&c.series, "series", 1000, "Float series (half counters, half gauges).")
	flag.IntVar(&c.days, "days", 30, "Days of data; the long query spans them all.")
	flag.DurationVar(&c.interval, "interval", time.Minute, "Time between two samples of a series.")
	flag.IntVar(&c.rounds, "rounds", 3, "Dashboard rounds, each with a new frontend (first load, second load, querier alone).")
	flag.IntVar(&c.runs, "runs", 3, "Measured runs of the long query per way of asking it.")
	flag.StringVar(&c.jsonOut, "json-out", "", "Also write the results as JSON to this file.")
	flag.DurationVar(&c.timeout, "timeout", 45*time.Minute, "Longest the whole run may take.")
	flag.Parse()

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, c.timeout)
	defer cancelTimeout()
	if err := run(ctx, c); err != nil {
		fmt.Fprintln(os.Stderr, "frontendbench:", err)
		os.Exit(1)
	}
}

// dashboard is six panels of a 7-day dashboard, as Grafana asks them at a
// 10m step (7 days over about 1000 pixels).
var dashboard = []string{
	`sum(rate(gen_requests_total[10m]))`,
	`sum by (instance) (rate(gen_requests_total[10m]))`,
	`topk(5, sum by (instance) (rate(gen_requests_total[10m])))`,
	`max(gen_temperature)`,
	`avg by (instance) (gen_temperature)`,
	`count(gen_temperature > 0)`,
}

const (
	dashboardRange = 7 * 24 * time.Hour
	dashboardStep  = 10 * time.Minute
	longQuery      = `sum by (instance) (rate(gen_requests_total[1h]))`
	longStep       = time.Hour
)

// Results are what the run measured, in seconds.
type Results struct {
	Series           int       `json:"series"`
	Days             int       `json:"days"`
	IntervalSeconds  float64   `json:"interval_seconds"`
	DashboardFirst   []float64 `json:"dashboard_first_load_seconds"`
	DashboardSecond  []float64 `json:"dashboard_second_load_seconds"`
	DashboardQuerier []float64 `json:"dashboard_querier_alone_seconds"`
	LongQuerier      []float64 `json:"long_querier_alone_seconds"`
	LongSplit        []float64 `json:"long_split_uncached_seconds"`
	LongCachedFirst  float64   `json:"long_cached_first_seconds"`
	LongCached       []float64 `json:"long_cached_seconds"`
}

func run(ctx context.Context, c config) error {
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return err
	}
	now := time.Now()
	// Whole 2h blocks from days ago up to the last block boundary before
	// now: the dashboard's window ends at now, as Grafana's does.
	end := now.Truncate(2 * time.Hour)
	cfg := blockgen.Config{
		Start:          end.Add(-time.Duration(c.days) * 24 * time.Hour),
		Duration:       time.Duration(c.days) * 24 * time.Hour,
		Interval:       c.interval,
		Series:         c.series,
		ExternalLabels: map[string]string{"tenant_id": "default-tenant"},
		Replicas:       []string{"a"},
		NoGaps:         true,
		Seed:           3,
	}.WithDefaults()
	bucketDir, err := filepath.Abs(filepath.Join(c.dir, "bucket"))
	if err != nil {
		return err
	}
	if err := ensureBucket(ctx, c, cfg, bucketDir); err != nil {
		return err
	}

	ports, err := localnet.FreePorts(3)
	if err != nil {
		return err
	}
	storeHTTP := fmt.Sprintf("127.0.0.1:%d", ports[0])
	storeGRPC := fmt.Sprintf("127.0.0.1:%d", ports[1])
	queryURL := fmt.Sprintf("http://127.0.0.1:%d", ports[2])
	store, err := startAtoll(c, "store", "store",
		"--data-dir="+filepath.Join(c.dir, "store"),
		fmt.Sprintf("--objstore.config=type: FILESYSTEM\nconfig:\n  directory: %s\n", bucketDir),
		"--http-address="+storeHTTP, "--grpc-address="+storeGRPC,
		"--ring.disable", "--log.level=warn")
	if err != nil {
		return err
	}
	defer store.stop()
	start := time.Now()
	if err := localnet.WaitReady(ctx, "http://"+storeHTTP+"/-/ready", 15*time.Minute, nil); err != nil {
		return fmt.Errorf("atoll store: %w (log in %s)", err, store.log)
	}
	fmt.Printf("atoll store ready in %s\n", time.Since(start).Round(time.Millisecond))
	query, err := startAtoll(c, "query", "query",
		"--http-address="+strings.TrimPrefix(queryURL, "http://"),
		"--store="+storeGRPC, "--store.check-interval=5s",
		"--ring.disable", "--query.timeout=10m", "--log.level=warn")
	if err != nil {
		return err
	}
	defer query.stop()
	if err := localnet.WaitReady(ctx, queryURL+"/-/ready", time.Minute, nil); err != nil {
		return fmt.Errorf("atoll query: %w (log in %s)", err, query.log)
	}
	if err := waitAnswers(ctx, queryURL); err != nil {
		return err
	}

	r := Results{Series: c.series, Days: c.days, IntervalSeconds: c.interval.Seconds()}
	// Warm the gateway's and querier's caches with everything asked later.
	fmt.Println("warming the store gateway's caches")
	if _, _, err := load(ctx, queryURL, dashboard, dashboardWindow(time.Now())); err != nil {
		return err
	}
	longWin := longWindow(cfg)
	if _, _, err := load(ctx, queryURL, []string{longQuery}, longWin); err != nil {
		return err
	}

	for round := range c.rounds {
		fe, feURL, err := startFrontend(ctx, c, fmt.Sprintf("frontend-%d", round), queryURL)
		if err != nil {
			return err
		}
		w := dashboardWindow(time.Now())
		first, firstAnswers, err := load(ctx, feURL, dashboard, w)
		if err != nil {
			fe.stop()
			return err
		}
		querierAlone, want, err := load(ctx, queryURL, dashboard, w)
		if err != nil {
			fe.stop()
			return err
		}
		// A refresh a little later: the window has moved on.
		time.Sleep(2 * time.Second)
		w2 := dashboardWindow(time.Now())
		second, secondAnswers, err := load(ctx, feURL, dashboard, w2)
		fe.stop()
		if err != nil {
			return err
		}
		if err := sameAnswers(firstAnswers, want); err != nil {
			return fmt.Errorf("dashboard, first load: %w", err)
		}
		if w2 == w {
			if err := sameAnswers(secondAnswers, want); err != nil {
				return fmt.Errorf("dashboard, second load: %w", err)
			}
		}
		r.DashboardFirst = append(r.DashboardFirst, first)
		r.DashboardSecond = append(r.DashboardSecond, second)
		r.DashboardQuerier = append(r.DashboardQuerier, querierAlone)
		fmt.Printf("dashboard round %d: first load %.3fs, second load %.3fs, querier alone %.3fs\n", round+1, first, second, querierAlone)
	}

	split, splitURL, err := startFrontend(ctx, c, "frontend-split", queryURL, "--no-query-range.cache-results")
	if err != nil {
		return err
	}
	defer split.stop()
	cached, cachedURL, err := startFrontend(ctx, c, "frontend-cached", queryURL)
	if err != nil {
		return err
	}
	defer cached.stop()
	_, want, err := load(ctx, queryURL, []string{longQuery}, longWin)
	if err != nil {
		return err
	}
	r.LongCachedFirst, _, err = load(ctx, cachedURL, []string{longQuery}, longWin)
	if err != nil {
		return err
	}
	for range c.runs {
		for _, m := range []struct {
			url  string
			into *[]float64
		}{{queryURL, &r.LongQuerier}, {splitURL, &r.LongSplit}, {cachedURL, &r.LongCached}} {
			secs, got, err := load(ctx, m.url, []string{longQuery}, longWin)
			if err != nil {
				return err
			}
			if err := sameAnswers(got, want); err != nil {
				return fmt.Errorf("30-day query through %s: %w", m.url, err)
			}
			*m.into = append(*m.into, secs)
		}
	}
	return report(c, r)
}

// window is the times of a range query.
type window struct{ start, end, step int64 }

// dashboardWindow is what Grafana asks for "last 7 days" at t: the range
// aligned to the step.
func dashboardWindow(t time.Time) window {
	step := dashboardStep.Milliseconds()
	end := t.UnixMilli() / step * step
	return window{end - dashboardRange.Milliseconds(), end, step}
}

func longWindow(cfg blockgen.Config) window {
	step := longStep.Milliseconds()
	return window{cfg.MinTime() + step, cfg.MaxTime() / step * step, step}
}

// load asks every query at once, as a dashboard does, and returns the
// wall time until the last answer and the answers.
func load(ctx context.Context, base string, queries []string, w window) (float64, [][]byte, error) {
	answers := make([][]byte, len(queries))
	errs := make([]error, len(queries))
	var wg sync.WaitGroup
	start := time.Now()
	for i, q := range queries {
		wg.Go(func() { answers[i], errs[i] = rangeQuery(ctx, base, q, w) })
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	return secs, answers, errors.Join(errs...)
}

func rangeQuery(ctx context.Context, base, q string, w window) ([]byte, error) {
	secs := func(ms int64) string { return strconv.FormatFloat(float64(ms)/1000, 'f', 3, 64) }
	form := url.Values{"query": {q}, "start": {secs(w.start)}, "end": {secs(w.end)}, "step": {secs(w.step)}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/v1/query_range", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s: %d %.300s", base, q, resp.StatusCode, body)
	}
	return body, nil
}

func sameAnswers(got, want [][]byte) error {
	for i := range want {
		if err := apicompare.Same(got[i], want[i]); err != nil {
			return fmt.Errorf("query %d: %w", i, err)
		}
	}
	return nil
}

// waitAnswers waits until the querier has the gateway's data.
func waitAnswers(ctx context.Context, base string) error {
	deadline := time.Now().Add(2 * time.Minute)
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

// bucketParams say what a generated bucket holds; a bucket made with other
// parameters (or ending at another block) is made again.
type bucketParams struct {
	Start           time.Time `json:"start"`
	Days            int       `json:"days"`
	Series          int       `json:"series"`
	IntervalSeconds float64   `json:"interval_seconds"`
	Seed            uint64    `json:"seed"`
}

func ensureBucket(ctx context.Context, c config, cfg blockgen.Config, bucketDir string) error {
	want := bucketParams{Start: cfg.Start.UTC(), Days: c.days, Series: c.series, IntervalSeconds: c.interval.Seconds(), Seed: cfg.Seed}
	paramsPath := filepath.Join(c.dir, "bucket.json")
	if data, err := os.ReadFile(paramsPath); err == nil {
		var have bucketParams
		if json.Unmarshal(data, &have) == nil && have == want {
			fmt.Printf("reusing the bucket in %s\n", bucketDir)
			return nil
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
	fmt.Printf("bucket: %d series, %d days at %s: generated %d blocks, %d samples in %s\n",
		c.series, c.days, c.interval, st.Blocks, st.Samples, time.Since(start).Round(time.Millisecond))
	data, _ := json.Marshal(want)
	return os.WriteFile(paramsPath, data, 0o644)
}

// process is an atoll process the benchmark started.
type process struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

func startAtoll(c config, name string, args ...string) (*process, error) {
	logPath := filepath.Join(c.dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(c.atoll, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, err
	}
	p := &process{cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *process) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// startFrontend runs a query-frontend with its defaults (in-memory cache,
// split by day) in front of the querier.
func startFrontend(ctx context.Context, c config, name, queryURL string, extra ...string) (*process, string, error) {
	ports, err := localnet.FreePorts(1)
	if err != nil {
		return nil, "", err
	}
	u := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	p, err := startAtoll(c, name, append([]string{"query-frontend",
		"--http-address=" + strings.TrimPrefix(u, "http://"),
		"--query-frontend.downstream-url=" + queryURL,
		"--log.level=warn"}, extra...)...)
	if err != nil {
		return nil, "", err
	}
	if err := localnet.WaitReady(ctx, u+"/-/ready", time.Minute, nil); err != nil {
		p.stop()
		return nil, "", fmt.Errorf("atoll query-frontend: %w (log in %s)", err, p.log)
	}
	return p, u, nil
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

func report(c config, r Results) error {
	first, second, alone := median(r.DashboardFirst), median(r.DashboardSecond), median(r.DashboardQuerier)
	longQ, longS, longC := median(r.LongQuerier), median(r.LongSplit), median(r.LongCached)
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "\t%d series, %d days, a sample every %s\t\t\n", c.series, c.days, c.interval)
	fmt.Fprintln(tw, "measurement\tseconds (median)\tratio\ttarget\t")
	fmt.Fprintf(tw, "7-day dashboard (6 queries), querier alone\t%.3f\t\t\t\n", alone)
	fmt.Fprintf(tw, "7-day dashboard, first load through the frontend\t%.3f\t%.2fx the querier\t\t\n", first, first/alone)
	fmt.Fprintf(tw, "7-day dashboard, second load through the frontend\t%.3f\t%.1fx faster than the first\t>= 10x\t\n", second, first/second)
	fmt.Fprintf(tw, "30-day query, querier alone\t%.3f\t\t\t\n", longQ)
	fmt.Fprintf(tw, "30-day query, split by day, no cache\t%.3f\t%.2fx the querier\t\t\n", longS, longS/longQ)
	fmt.Fprintf(tw, "30-day query, split by day, first into the cache\t%.3f\t%.2fx the querier\t\t\n", r.LongCachedFirst, r.LongCachedFirst/longQ)
	fmt.Fprintf(tw, "30-day query, split and cached\t%.3f\t%.3fx the querier\t<= 0.5x\t\n", longC, longC/longQ)
	if err := tw.Flush(); err != nil {
		return err
	}
	if c.jsonOut != "" {
		b, _ := json.MarshalIndent(r, "", "  ")
		return os.WriteFile(c.jsonOut, b, 0o644)
	}
	return nil
}
