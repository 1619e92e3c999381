// Command clusterbench measures what clustering costs Atoll on this machine:
// remote-write ingest through a ring of three `atoll receive` processes with
// replication factor 3 and with 1, and PromQL through `atoll query` fanning
// out over them, each next to a single `atoll all` holding the same data.
//
// Every setup starts fresh: new processes on free loopback ports, empty
// data directories, default settings. The bench/loadgen command sends the
// load, either all of it to one receiver (one Prometheus with one URL) or
// spread request by request over the three. The headline is samples per
// CPU-second of all receiving processes together in the steady rounds,
// when every series exists; the warm-up round that creates the series is
// reported apart. After the RF=3, RF=1 and single-node ingest runs, a
// querier is started and the same queries are timed on each.
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/atoll-metrics/atoll/bench/procstat"
	"github.com/atoll-metrics/atoll/internal/localnet"
)

type config struct {
	atoll, loadgen       string
	series, warmupRounds int
	rounds, batch        int
	concurrency          int
	receivers            int
	rfs                  string
	spread, single       bool
	repeat               int
	queryRuns            int
	selector, rateMetric string
	profileDir           string
	profileSeconds       int
	jsonOut              string
	keep                 bool
	timeout              time.Duration
	waitIdle             time.Duration
	idleBusy             float64
}

func main() {
	var c config
	flag.StringVar(&c.atoll, "atoll", "bin/atoll", "Atoll binary.")
	flag.StringVar(&c.loadgen, "loadgen", "bin/loadgen", "loadgen binary (bench/loadgen).")
	flag.IntVar(&c.series, "series", 100_000, "Series of the load.")
	flag.IntVar(&c.warmupRounds, "warmup-rounds", 1, "Rounds that create the series, reported apart.")
	flag.IntVar(&c.rounds, "rounds", 30, "Steady rounds, 15s of sample time apart. Queries read the last 5m, so warm-up plus steady rounds should be 25 or more.")
	flag.IntVar(&c.batch, "batch", 2000, "Samples per request.")
	flag.IntVar(&c.concurrency, "concurrency", 4, "Requests in flight at once.")
	flag.IntVar(&c.receivers, "receivers", 3, "Receivers in the ring.")
	flag.StringVar(&c.rfs, "replication-factors", "3,1", "Replication factors to measure, in order; queries run on every one.")
	flag.BoolVar(&c.spread, "spread", true, "Also measure each replication factor with the load spread over all receivers.")
	flag.BoolVar(&c.single, "single", true, "Also measure a single `atoll all` with the same load and queries.")
	flag.IntVar(&c.repeat, "repeat", 1, "Ingest runs per setup, taking turns; the table shows the median. Queries run after the first.")
	flag.IntVar(&c.queryRuns, "query-runs", 10, "Timed runs of each query, after one cold run reported apart.")
	flag.StringVar(&c.selector, "selector", `{job=~".+"}`, "Selector covering every series of the load.")
	flag.StringVar(&c.rateMetric, "rate-metric", "node_cpu_seconds_total", "Metric of the rate() query; empty skips it.")
	flag.StringVar(&c.profileDir, "profile-dir", "", "Write CPU profiles here (a receiver under RF=3 steady load, the querier and a receiver under the first query, atoll all under it) and print their top functions; empty skips.")
	flag.IntVar(&c.profileSeconds, "profile-seconds", 10, "Length of each CPU profile.")
	flag.StringVar(&c.jsonOut, "json-out", "", "Also write every measurement as JSON here.")
	flag.BoolVar(&c.keep, "keep", false, "Keep data directories and logs.")
	flag.DurationVar(&c.timeout, "timeout", 30*time.Minute, "Give up after this long.")
	flag.DurationVar(&c.waitIdle, "wait-idle", 5*time.Second, "Before each setup, wait up to this long for other work on the machine to calm down.")
	flag.Float64Var(&c.idleBusy, "idle-busy", 0.15, "The machine counts as calm when less than this fraction of its CPU is busy.")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if err := run(ctx, c); err != nil {
		fmt.Fprintln(os.Stderr, "clusterbench:", err)
		os.Exit(1)
	}
}

// setup is one way of running Atoll under the load.
type setup struct {
	Key    string `json:"key"`
	Title  string `json:"title"`
	RF     int    `json:"replication_factor"` // 0 for the single node
	Spread bool   `json:"spread"`
	Query  bool   `json:"query"`
}

func (s setup) single() bool { return s.RF == 0 }

func setups(c config) ([]setup, error) {
	var rfs []int
	for _, f := range strings.Split(c.rfs, ",") {
		rf, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || rf < 1 || rf > c.receivers {
			return nil, fmt.Errorf("replication factor %q: want 1 to %d", f, c.receivers)
		}
		rfs = append(rfs, rf)
	}
	var out []setup
	for _, rf := range rfs {
		out = append(out, setup{Key: fmt.Sprintf("rf%d-one", rf), Title: fmt.Sprintf("RF=%d one URL", rf), RF: rf, Query: true})
	}
	if c.spread {
		for _, rf := range rfs {
			out = append(out, setup{Key: fmt.Sprintf("rf%d-spread", rf), Title: fmt.Sprintf("RF=%d spread", rf), RF: rf, Spread: true})
		}
	}
	if c.single {
		out = append(out, setup{Key: "single", Title: "atoll all", Query: true})
	}
	return out, nil
}

// runResult is one setup's measurements in one repetition.
type runResult struct {
	Setup  setup      `json:"setup"`
	Rep    int        `json:"repetition"`
	Load   loadResult `json:"load"`
	Warmup cpuWindow  `json:"warmup"`
	Steady cpuWindow  `json:"steady"`
	// TailSeconds is how long after the last answer every replica was
	// stored; it is inside the steady CPU window, not its wall time.
	TailSeconds       float64   `json:"tail_seconds"`
	Appended          float64   `json:"samples_appended"`
	SeriesPerReceiver []float64 `json:"series_per_receiver"`
	RSSBytes          int64     `json:"rss_bytes"` // all receiving processes after the load
	// Forwarded counts writes receivers sent to their peers; a failed one
	// is a replica missing even when the client got 2xx at quorum.
	Forwarded     float64 `json:"forwarded"`
	ForwardFailed float64 `json:"forward_failed"`
	// OutOfOrder counts samples a TSDB refused as older than its series'
	// newest: loadgen sends in order, so these are replicas overtaken by
	// the next round.
	OutOfOrder float64       `json:"out_of_order"`
	Spread     *spreadResult `json:"spread,omitempty"`
	Queries    []queryResult `json:"queries,omitempty"`
	Logs       []logFinding  `json:"logs,omitempty"`
	Profiles   []string      `json:"profiles,omitempty"`
	Failure    string        `json:"failure,omitempty"`
}

type spreadResult struct {
	Requests   []int          `json:"requests_per_receiver"`
	Status     map[string]int `json:"status"`
	FirstError string         `json:"first_error,omitempty"`
}

func (r *runResult) steadyPerCPU() float64 {
	if r == nil || r.Steady.Receivers <= 0 {
		return 0
	}
	return float64(r.Load.phase("steady").SamplesAccepted) / r.Steady.Receivers
}

func run(ctx context.Context, c config) error {
	ss, err := setups(c)
	if err != nil {
		return err
	}
	if c.warmupRounds < 1 {
		return errors.New("need at least one warm-up round: it creates the series")
	}
	for _, bin := range []*string{&c.atoll, &c.loadgen} {
		p, err := exec.LookPath(*bin)
		if err != nil {
			return err
		}
		if *bin, err = filepath.Abs(p); err != nil {
			return err
		}
	}
	if c.profileDir != "" {
		if err := os.MkdirAll(c.profileDir, 0o755); err != nil {
			return err
		}
	}
	work, err := os.MkdirTemp("", "atoll-clusterbench-")
	if err != nil {
		return err
	}
	b := &bench{c: c, work: work}
	defer func() {
		if c.keep || b.failed {
			logf("data and logs kept in %s", work)
			return
		}
		os.RemoveAll(work)
	}()

	var results []*runResult
	// Repetitions take turns between setups, so a burst of outside work
	// spoils one run of one setup, not all of its runs.
	for rep := range c.repeat {
		for _, s := range ss {
			r := b.runSetup(ctx, s, rep, rep == 0 && s.Query)
			results = append(results, r)
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
	}

	printReport(os.Stdout, c, ss, results)
	if c.jsonOut != "" {
		out, err := json.MarshalIndent(results, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(c.jsonOut, out, 0o644); err != nil {
			return err
		}
	}
	for _, r := range results {
		for _, p := range r.Profiles {
			printProfile(ctx, c.atoll, p)
		}
	}
	for _, r := range results {
		if r.Failure != "" {
			return fmt.Errorf("%s: run %d failed", r.Setup.Title, r.Rep+1)
		}
	}
	return nil
}

type bench struct {
	c      config
	work   string
	n      int
	failed bool // keeps the work directory, with the logs, for a look
}

// runSetup starts setup s fresh, loads it, optionally queries it, and
// stops it. A failure is recorded in the result, so the other setups still
// get measured.
func (b *bench) runSetup(ctx context.Context, s setup, rep int, query bool) *runResult {
	b.waitIdle(ctx)
	logf("=== %s (run %d of %d): %d series, %d warm-up + %d steady rounds", s.Title, rep+1, b.c.repeat, b.c.series, b.c.warmupRounds, b.c.rounds)
	var res *runResult
	// A port picked free can be taken by someone else before the process
	// binds it; such a start is tried again with new ports.
	for attempt := 1; ; attempt++ {
		res = &runResult{Setup: s, Rep: rep}
		b.n++
		dir := filepath.Join(b.work, fmt.Sprintf("%02d-%s", b.n, s.Key))
		err := os.MkdirAll(dir, 0o755)
		if err == nil {
			err = b.measure(ctx, s, dir, query, res)
		}
		if err == nil {
			if !b.c.keep {
				os.RemoveAll(dir)
			}
			return res
		}
		res.Failure = err.Error()
		if errors.Is(err, errStart) && attempt < 3 && ctx.Err() == nil {
			logf("%s: %v; starting again", s.Title, err)
			continue
		}
		b.failed = true
		logf("%s FAILED: %v", s.Title, err)
		return res
	}
}

// errStart marks a setup whose processes did not start; nothing was
// measured yet.
var errStart = errors.New("start")

func (b *bench) measure(ctx context.Context, s setup, dir string, query bool, res *runResult) error {
	// The processes that receive and store the load, and later serve
	// queries; for a cluster the querier joins them.
	var (
		cl      *cluster
		single  *process
		targets []*process
	)
	if s.single() {
		p, err := startSingle(ctx, b.c.atoll, dir)
		if err != nil {
			return fmt.Errorf("%w: %w", errStart, err)
		}
		single, targets = p, []*process{p}
	} else {
		var err error
		if cl, err = startCluster(ctx, b.c.atoll, dir, b.c.receivers, s.RF); err != nil {
			return fmt.Errorf("%w: %w", errStart, err)
		}
		targets = cl.receivers
	}
	defer func() {
		if cl != nil {
			cl.stop()
			for _, p := range cl.all() {
				res.Logs = append(res.Logs, scanLog(p)...)
			}
		}
		if single != nil {
			single.stop()
			res.Logs = append(res.Logs, scanLog(single)...)
		}
	}()
	pids := make([]int, len(targets))
	metricsURLs := make([]string, len(targets))
	for i, p := range targets {
		pids[i], metricsURLs[i] = p.pid(), p.httpURL
	}
	dead := func() string {
		for _, p := range targets {
			if !p.alive() {
				return fmt.Sprintf("%s exited: %v (log: %s)", p.name, p.waitErr, p.logPath)
			}
		}
		if cl != nil {
			return cl.dead()
		}
		return ""
	}

	writeURL := targets[0].writeURL
	var sp *spreader
	if s.Spread {
		urls := make([]string, len(targets))
		for i, p := range targets {
			urls[i] = p.writeURL
		}
		var err error
		if sp, err = newSpreader(urls, b.c.concurrency); err != nil {
			return err
		}
		defer sp.Close()
		writeURL = sp.URL()
	}

	var profiles []chan string
	onSteady := func() {}
	if b.c.profileDir != "" && rep0(res) && s.RF > 1 && !s.Spread {
		onSteady = func() {
			for _, p := range targets[:min(2, len(targets))] {
				profiles = append(profiles, b.profile(ctx, p, s.Key+"-ingest-"+p.name))
			}
		}
	}
	out, err := b.runLoad(ctx, writeURL, pids, metricsURLs, max(s.RF, 1), onSteady)
	for _, ch := range profiles {
		if path := <-ch; path != "" {
			res.Profiles = append(res.Profiles, path)
		}
	}
	if sp != nil {
		reqs, status, first := sp.stats()
		res.Spread = &spreadResult{Requests: reqs, Status: status, FirstError: first}
	}
	if err != nil {
		if d := dead(); d != "" {
			return fmt.Errorf("%w; %s", err, d)
		}
		return err
	}
	res.Load, res.Warmup, res.Steady = out.load, out.warmup, out.steady
	res.TailSeconds, res.Appended = out.tail.Seconds(), out.appended
	if d := dead(); d != "" {
		return errors.New(d)
	}
	res.RSSBytes = rssOf(pids)
	for _, u := range metricsURLs {
		m, err := scrape(ctx, u, "atoll_tsdb_head_series", forwardOK, forwardFailed, outOfOrder)
		if err != nil {
			return err
		}
		res.SeriesPerReceiver = append(res.SeriesPerReceiver, m["atoll_tsdb_head_series"])
		res.Forwarded += m[forwardOK] + m[forwardFailed]
		res.ForwardFailed += m[forwardFailed]
		res.OutOfOrder += m[outOfOrder]
	}
	st := res.Load.phase("steady")
	logf("%s: steady %.0f samples/s, receivers %.2f CPU s -> %.0f samples/CPU-s; last replica %.2fs after the last answer; series per receiver %v",
		s.Title, st.SamplesPerSec, res.Steady.Receivers, res.steadyPerCPU(), res.TailSeconds, res.SeriesPerReceiver)

	if !query {
		return nil
	}
	var queryURL, querierURL string
	queryPIDs := pids
	if single != nil {
		queryURL = single.httpURL
	} else {
		if err := cl.startQuerier(ctx, b.c.atoll); err != nil {
			return fmt.Errorf("querier: %w", err)
		}
		queryURL, querierURL = cl.querier.httpURL, cl.querier.httpURL
		queryPIDs = append([]int{cl.querier.pid()}, pids...)
	}
	at := time.UnixMilli(res.Load.LastTimestamp)
	for i, spec := range querySpecs(b.c.selector, b.c.rateMetric) {
		var chs []chan string
		if b.c.profileDir != "" && i == 0 {
			procs := targets[:1]
			if cl != nil {
				procs = []*process{cl.querier, targets[0]}
			}
			for _, p := range procs {
				chs = append(chs, b.profile(ctx, p, s.Key+"-query-"+p.name))
			}
		}
		logf("%s: timing %s", s.Title, spec.Expr)
		qr := timeQuery(ctx, queryURL, at, spec, b.c.queryRuns, queryPIDs, querierURL)
		logf("%s: median %.3fs, p90 %.3fs, cold %.3fs, %.2f CPU s per query, %d series, %d errors %s",
			s.Title, qr.Median, qr.P90, qr.Cold, qr.CPU, qr.Series, qr.Errors, qr.FirstError)
		res.Queries = append(res.Queries, qr)
		for _, ch := range chs {
			if path := <-ch; path != "" {
				res.Profiles = append(res.Profiles, path)
			}
		}
	}
	if d := dead(); d != "" {
		return errors.New(d)
	}
	return nil
}

func rep0(r *runResult) bool { return r.Rep == 0 }

const (
	forwardOK     = `atoll_ingest_forward_requests_total{outcome="success"`
	forwardFailed = `atoll_ingest_forward_requests_total{outcome="failure"`
	outOfOrder    = "prometheus_tsdb_out_of_order_samples_total"
)

// profile fetches a CPU profile of p in the background; the channel yields
// its path, or "" when it failed.
func (b *bench) profile(ctx context.Context, p *process, name string) chan string {
	ch := make(chan string, 1)
	path := filepath.Join(b.c.profileDir, name+".pprof")
	go func() {
		if err := localnet.FetchProfile(ctx, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", p.httpURL, b.c.profileSeconds), path); err != nil {
			logf("profiling %s: %v", p.name, err)
			ch <- ""
			return
		}
		ch <- path
	}()
	return ch
}

func printProfile(ctx context.Context, bin, path string) {
	fmt.Printf("\n== %s (go tool pprof -top) ==\n", filepath.Base(path))
	cmd := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-nodecount=18", bin, path)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Printf("pprof: %v\n", err)
	}
}

// waitIdle waits, up to -wait-idle, until other processes leave the CPUs
// mostly idle, so they do not skew the next measurement.
func (b *bench) waitIdle(ctx context.Context) {
	deadline := time.Now().Add(b.c.waitIdle)
	for {
		busy, err := procstat.MachineBusy(time.Second)
		if err != nil || busy < b.c.idleBusy {
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			logf("machine still %.0f%% busy with other work after %v; measuring anyway (see others' CPU s)", busy*100, b.c.waitIdle)
			return
		}
	}
}

// median is the run of a setup with the median steady samples per
// CPU-second (the lower middle one for an even count), nil if none
// succeeded.
func median(results []*runResult, key string) *runResult {
	var runs []*runResult
	for _, r := range results {
		if r.Setup.Key == key && r.Failure == "" {
			runs = append(runs, r)
		}
	}
	if len(runs) == 0 {
		return nil
	}
	slices.SortFunc(runs, func(a, b *runResult) int { return cmp.Compare(a.steadyPerCPU(), b.steadyPerCPU()) })
	return runs[(len(runs)-1)/2]
}

// queried is the run of a setup that holds its query results.
func queried(results []*runResult, key string) *runResult {
	for _, r := range results {
		if r.Setup.Key == key && len(r.Queries) > 0 {
			return r
		}
	}
	return nil
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
}
