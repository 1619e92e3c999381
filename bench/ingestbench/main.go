// Command ingestbench compares the remote-write ingest cost of Atoll,
// Prometheus and VictoriaMetrics on this machine.
//
// For each receiver, one at a time and each alone, it starts a fresh
// instance on free loopback ports with an empty data directory, runs the
// loadgen command against it (warm-up rounds that create the series, then
// steady rounds), checks that every series arrived, and stops it. A second
// fresh instance gets a larger number of series and reports its resident
// memory once the load stops. With -profile-out, a last Atoll instance is
// profiled under the steady load. The headline is samples per CPU-second of
// the receiver in the steady rounds, which does not depend on how much of
// the shared CPUs the load generator took.
package main

import (
	"cmp"
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
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/atoll-metrics/atoll/bench/procstat"
	"github.com/atoll-metrics/atoll/internal/localnet"
)

type config struct {
	atoll, prometheus, victoriaMetrics string
	loadgen                            string
	targets                            string
	series, warmupRounds, rounds       int
	batch, concurrency                 int
	rssSeries, rssRounds               int
	settle                             time.Duration
	profileOut                         string
	profileSeconds                     int
	profileRounds                      int
	jsonOut                            string
	keep                               bool
	timeout                            time.Duration
	waitIdle                           time.Duration
	repeat                             int
	idleBusy                           float64
}

func main() {
	var c config
	flag.StringVar(&c.atoll, "atoll", "bin/atoll", "Atoll binary.")
	flag.StringVar(&c.prometheus, "prometheus", "prometheus", "Prometheus binary.")
	flag.StringVar(&c.victoriaMetrics, "victoria-metrics", "victoria-metrics", "VictoriaMetrics single-node binary.")
	flag.StringVar(&c.loadgen, "loadgen", "bin/loadgen", "loadgen binary.")
	flag.StringVar(&c.targets, "targets", "prometheus,atoll,victoriametrics", "Receivers to measure, in order.")
	flag.IntVar(&c.series, "series", 100_000, "Series in the throughput run.")
	flag.IntVar(&c.warmupRounds, "warmup-rounds", 1, "Rounds that create the series in the throughput run.")
	flag.IntVar(&c.rounds, "rounds", 30, "Steady rounds in the throughput run.")
	flag.IntVar(&c.batch, "batch", 2000, "Samples per request.")
	flag.IntVar(&c.concurrency, "concurrency", 4, "Requests in flight at once.")
	flag.IntVar(&c.repeat, "repeat", 3, "Throughput runs per receiver; the table shows the median.")
	flag.IntVar(&c.rssSeries, "rss-series", 1_000_000, "Series in the memory run; 0 skips it.")
	flag.IntVar(&c.rssRounds, "rss-rounds", 3, "Rounds in the memory run, the first creating the series.")
	flag.DurationVar(&c.settle, "settle", 10*time.Second, "Wait after the memory run's load before reading resident memory.")
	flag.StringVar(&c.profileOut, "profile-out", "", "Write a CPU profile of Atoll under the steady load here; empty skips the profiling run.")
	flag.IntVar(&c.profileSeconds, "profile-seconds", 20, "Length of the CPU profile.")
	flag.IntVar(&c.profileRounds, "profile-rounds", 60, "Steady rounds in the profiling run; enough to outlast -profile-seconds.")
	flag.StringVar(&c.jsonOut, "json-out", "", "Also write every measurement as JSON here.")
	flag.BoolVar(&c.keep, "keep", false, "Keep data directories and logs.")
	flag.DurationVar(&c.timeout, "timeout", 30*time.Minute, "Give up after this long.")
	flag.DurationVar(&c.waitIdle, "wait-idle", 30*time.Second, "Before each instance, wait up to this long for other work on the machine to calm down.")
	flag.Float64Var(&c.idleBusy, "idle-busy", 0.15, "The machine counts as calm when less than this fraction of its CPU is busy.")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if err := run(ctx, c); err != nil {
		fmt.Fprintln(os.Stderr, "ingestbench:", err)
		os.Exit(1)
	}
}

// loadResult mirrors the JSON loadgen prints.
type loadResult struct {
	Series          int     `json:"series"`
	Metrics         int     `json:"metric_names"`
	AvgLabelBytes   float64 `json:"avg_label_bytes"`
	CompressedBytes int64   `json:"compressed_bytes"`
	LastTimestamp   int64   `json:"last_timestamp_ms"`
	Phases          []phase `json:"phases"`
	RSSBytes        int64   `json:"rss_bytes"`
	PeakRSSBytes    int64   `json:"peak_rss_bytes"`
}

type phase struct {
	Name            string         `json:"name"`
	Rounds          int            `json:"rounds"`
	Requests        int            `json:"requests"`
	SamplesSent     int            `json:"samples_sent"`
	SamplesAccepted int            `json:"samples_accepted"`
	Status          map[string]int `json:"status"`
	FirstError      string         `json:"first_error"`
	Wall            float64        `json:"wall_seconds"`
	TargetCPU       float64        `json:"target_cpu_seconds"`
	LoadgenCPU      float64        `json:"loadgen_cpu_seconds"`
	OtherCPU        float64        `json:"other_cpu_seconds"`
	SamplesPerSec   float64        `json:"samples_per_second"`
	SamplesPerCPU   float64        `json:"samples_per_cpu_second"`
}

func (p phase) errors() int {
	n := 0
	for k, v := range p.Status {
		if len(k) != 3 || k[0] != '2' {
			n += v
		}
	}
	return n
}

// instanceResult is one instance's measurements.
type instanceResult struct {
	Load        loadResult `json:"load"`
	SeriesFound int        `json:"series_found"` // -1 when the check failed
	LoadAvg     string     `json:"loadavg_before"`
}

// targetResult is everything measured for one receiver.
type targetResult struct {
	Target string `json:"target"`
	// Throughput holds one result per repetition.
	Throughput []*instanceResult `json:"throughput,omitempty"`
	Memory     *instanceResult   `json:"memory,omitempty"`
	Failures   []string          `json:"failures,omitempty"`
}

func (r *targetResult) fail(err error) {
	logf("%s: %v", r.Target, err)
	r.Failures = append(r.Failures, err.Error())
}

// median is the throughput run with the median steady samples per
// CPU-second (the lower one of the middle two for an even count), and the
// lowest and highest of that figure over the runs.
func (r *targetResult) median() (med *instanceResult, lo, hi float64) {
	if r == nil || len(r.Throughput) == 0 {
		return nil, 0, 0
	}
	runs := slices.Clone(r.Throughput)
	slices.SortFunc(runs, func(a, b *instanceResult) int {
		return cmp.Compare(a.steady().SamplesPerCPU, b.steady().SamplesPerCPU)
	})
	return runs[(len(runs)-1)/2], runs[0].steady().SamplesPerCPU, runs[len(runs)-1].steady().SamplesPerCPU
}

func (r *instanceResult) phase(name string) phase {
	if r != nil {
		for _, p := range r.Load.Phases {
			if p.Name == name {
				return p
			}
		}
	}
	return phase{}
}

func (r *instanceResult) steady() phase { return r.phase("steady") }
func (r *instanceResult) warmup() phase { return r.phase("warmup") }

func run(ctx context.Context, c config) error {
	all := map[string]target{
		"atoll":           atollTarget(c.atoll),
		"atoll-tls":       atollTLSTarget(c.atoll),
		"prometheus":      prometheusTarget(c.prometheus),
		"victoriametrics": victoriaMetricsTarget(c.victoriaMetrics),
	}
	var order []target
	for _, name := range strings.Split(c.targets, ",") {
		t, ok := all[strings.TrimSpace(name)]
		if !ok {
			return fmt.Errorf("unknown target %q", name)
		}
		path, err := exec.LookPath(t.bin)
		if err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		t.bin = path
		order = append(order, t)
	}
	if _, err := exec.LookPath(c.loadgen); err != nil {
		return fmt.Errorf("loadgen: %w", err)
	}
	work, err := os.MkdirTemp("", "atoll-ingestbench-")
	if err != nil {
		return err
	}
	failed := true
	defer func() {
		if c.keep || failed {
			logf("data and logs kept in %s", work)
			return
		}
		os.RemoveAll(work)
	}()
	b := &bench{c: c, work: work}

	results := make([]targetResult, len(order))
	// Repetitions take turns between receivers, so a burst of outside work
	// on the machine spoils one run of one receiver, not all of its runs.
	for i, t := range order {
		results[i].Target = t.name
	}
	for rep := range c.repeat {
		for i, t := range order {
			logf("=== %s: throughput %d/%d, %d series, %d warm-up + %d steady rounds", t.name, rep+1, c.repeat, c.series, c.warmupRounds, c.rounds)
			r, err := b.instance(ctx, t, true, func(endpoints) []string {
				return []string{
					"-series=" + strconv.Itoa(c.series),
					"-warmup-rounds=" + strconv.Itoa(c.warmupRounds),
					"-rounds=" + strconv.Itoa(c.rounds),
				}
			})
			if err != nil {
				// One broken instance must not cost the other receivers
				// their measurements.
				results[i].fail(fmt.Errorf("throughput run %d: %w", rep+1, err))
				continue
			}
			results[i].Throughput = append(results[i].Throughput, r)
		}
	}
	for i, t := range order {
		if c.rssSeries <= 0 {
			break
		}
		if t.noMemoryRun {
			continue
		}
		logf("=== %s: memory, %d series, %d rounds", t.name, c.rssSeries, c.rssRounds)
		r, err := b.instance(ctx, t, false, func(endpoints) []string {
			return []string{
				"-series=" + strconv.Itoa(c.rssSeries),
				"-warmup-rounds=1",
				"-rounds=" + strconv.Itoa(c.rssRounds-1),
				"-settle=" + c.settle.String(),
			}
		})
		if err != nil {
			results[i].fail(fmt.Errorf("memory run: %w", err))
			continue
		}
		results[i].Memory = r
	}

	printReport(os.Stdout, c, results)

	if c.jsonOut != "" {
		out, err := json.MarshalIndent(results, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(c.jsonOut, out, 0o644); err != nil {
			return err
		}
	}

	if c.profileOut != "" {
		if err := b.profileAtoll(ctx, all["atoll"]); err != nil {
			return fmt.Errorf("profiling atoll: %w", err)
		}
	}
	for _, r := range results {
		if len(r.Failures) > 0 {
			return fmt.Errorf("%s: %d runs failed", r.Target, len(r.Failures))
		}
	}
	failed = false
	return nil
}

type bench struct {
	c    config
	work string
	n    int
}

// instance runs one fresh instance of t under the load that loadArgs
// describes, and stops it.
func (b *bench) instance(ctx context.Context, t target, check bool, loadArgs func(endpoints) []string) (*instanceResult, error) {
	b.waitIdle(ctx)
	b.n++
	dir := filepath.Join(b.work, fmt.Sprintf("%02d-%s", b.n, t.name))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	args, ep, err := t.start(dir)
	if err != nil {
		return nil, err
	}
	logPath := dir + ".log"
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()

	cmd := exec.Command(t.bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	// exited closes once the process is gone; waitErr says how it ended.
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	stopped := false
	defer func() {
		if !stopped {
			_ = cmd.Process.Kill()
			<-exited
		}
	}()

	if err := localnet.WaitReadyWith(ctx, ep.httpClient(), ep.ready, 2*time.Minute, exited); err != nil {
		if errors.Is(err, localnet.ErrExited) {
			err = fmt.Errorf("%w: %v", err, waitErr)
		}
		return nil, fmt.Errorf("%w (log: %s)", err, logPath)
	}
	res := &instanceResult{LoadAvg: loadAvg(), SeriesFound: -1}

	largs := append([]string{
		"-url=" + ep.write,
		"-pid=" + strconv.Itoa(cmd.Process.Pid),
		"-batch=" + strconv.Itoa(b.c.batch),
		"-concurrency=" + strconv.Itoa(b.c.concurrency),
		"-json",
	}, append(ep.loadgen, loadArgs(ep)...)...)
	lg := exec.CommandContext(ctx, b.c.loadgen, largs...)
	lg.Stderr = os.Stderr
	out, err := lg.Output()
	if err != nil {
		return nil, fmt.Errorf("loadgen: %w (target log: %s)", err, logPath)
	}
	if err := json.Unmarshal(out, &res.Load); err != nil {
		return nil, fmt.Errorf("reading loadgen output: %w", err)
	}
	select {
	case <-exited:
		stopped = true
		return nil, fmt.Errorf("%s exited during the load: %v (log: %s)", t.name, waitErr, logPath)
	default:
	}

	if check {
		n, err := countSeries(ctx, ep, res.Load.LastTimestamp)
		if err != nil {
			logf("%s: counting series: %v", t.name, err)
		} else {
			res.SeriesFound = n
			logf("%s: %d of %d series queryable", t.name, n, res.Load.Series)
		}
	}

	t0 := time.Now()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		<-exited
	}
	stopped = true
	logf("%s stopped in %.1fs", t.name, time.Since(t0).Seconds())
	if !b.c.keep {
		os.RemoveAll(dir)
	}
	return res, nil
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

// profileAtoll profiles a fresh Atoll instance through the steady rounds.
func (b *bench) profileAtoll(ctx context.Context, t target) error {
	path, err := exec.LookPath(t.bin)
	if err != nil {
		return err
	}
	t.bin = path
	out, err := filepath.Abs(b.c.profileOut)
	if err != nil {
		return err
	}
	logf("=== atoll: CPU profile of %ds over %d steady rounds of %d series", b.c.profileSeconds, b.c.profileRounds, b.c.series)
	if _, err := b.instance(ctx, t, false, func(ep endpoints) []string {
		return []string{
			"-series=" + strconv.Itoa(b.c.series),
			"-warmup-rounds=" + strconv.Itoa(b.c.warmupRounds),
			"-rounds=" + strconv.Itoa(b.c.profileRounds),
			"-profile-url=" + ep.profile + "?seconds=" + strconv.Itoa(b.c.profileSeconds),
			"-profile-out=" + out,
		}
	}); err != nil {
		return err
	}
	for _, mode := range []string{"-top", "-top -cum"} {
		args := append([]string{"tool", "pprof"}, strings.Fields(mode)...)
		args = append(args, "-nodecount=20", t.bin, out)
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		fmt.Printf("\n== atoll CPU profile (go tool pprof %s) ==\n", mode)
		if err := cmd.Run(); err != nil {
			return err
		}
	}
	return nil
}

// countSeries asks the target how many series have a sample at ts (Unix
// milliseconds), to catch a receiver that answers 2xx but drops data.
func countSeries(ctx context.Context, ep endpoints, ts int64) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if ep.flush != "" {
		if err := get(ctx, ep.httpClient(), ep.flush, nil); err != nil {
			return 0, err
		}
	}
	q := url.Values{
		"query": {`count({__name__=~".+"})`},
		"time":  {strconv.FormatFloat(float64(ts)/1000, 'f', 3, 64)},
	}
	var body struct {
		Status string `json:"status"`
		Data   struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := get(ctx, ep.httpClient(), ep.query+"/query?"+q.Encode(), &body); err != nil {
		return 0, err
	}
	if body.Status != "success" || len(body.Data.Result) != 1 {
		return 0, fmt.Errorf("unexpected answer: %+v", body)
	}
	s, ok := body.Data.Result[0].Value[1].(string)
	if !ok {
		return 0, fmt.Errorf("unexpected value %v", body.Data.Result[0].Value[1])
	}
	return strconv.Atoi(s)
}

func get(ctx context.Context, client *http.Client, u string, into any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("GET %s: %s: %.200s", req.URL.Redacted(), resp.Status, b)
	}
	if into == nil {
		return nil
	}
	return json.Unmarshal(b, into)
}

// loadAvg is the machine's load average, recorded because other work on
// the machine skews wall-clock numbers (CPU-second numbers much less).
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func printReport(w io.Writer, c config, results []targetResult) {
	var base *targetResult
	for i := range results {
		if results[i].Target == "prometheus" {
			base = &results[i]
		}
	}
	ratio := func(v, ref float64) string {
		if ref <= 0 || v <= 0 {
			return "-"
		}
		return fmt.Sprintf("%.2fx", v/ref)
	}
	mib := func(b int64) string {
		if b <= 0 {
			return "-"
		}
		return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20))
	}

	var lb float64
	var metrics int
	if len(results) > 0 && len(results[0].Throughput) > 0 {
		lb, metrics = results[0].Throughput[0].Load.AvgLabelBytes, results[0].Throughput[0].Load.Metrics
	}
	fmt.Fprintf(w, "\nSteady state: %d existing series x %d rounds = %d samples per run (%d metric names, %.0f label bytes per series), %d samples per request, %d senders; median of %d runs per receiver.\n",
		c.series, c.rounds, c.series*c.rounds, metrics, lb, c.batch, c.concurrency, c.repeat)
	if c.rssSeries > 0 {
		fmt.Fprintf(w, "Memory: fresh instance, %d series x %d rounds, resident memory %v after the load stops.\n", c.rssSeries, c.rssRounds, c.settle)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "target\tsamples/s\ttarget CPU s\tsamples per CPU-second\t(min-max)\tratio vs Prometheus\tRSS at %s series\tRSS ratio vs Prometheus\tnon-2xx\tothers' CPU s\t\n", count(c.rssSeries))
	baseMed, _, _ := base.median()
	baseCPU := baseMed.steady().SamplesPerCPU
	var baseRSS int64
	if base != nil && base.Memory != nil {
		baseRSS = base.Memory.Load.RSSBytes
	}
	for _, r := range results {
		med, lo, hi := r.median()
		if med == nil {
			continue
		}
		p := med.steady()
		nonOK := 0
		for _, run := range r.Throughput {
			for _, ph := range run.Load.Phases {
				nonOK += ph.errors()
			}
		}
		var rss int64
		if r.Memory != nil {
			rss = r.Memory.Load.RSSBytes
			for _, ph := range r.Memory.Load.Phases {
				nonOK += ph.errors()
			}
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.2f\t%.0f\t(%.0f-%.0f)\t%s\t%s\t%s\t%d\t%.2f\t\n",
			r.Target, p.SamplesPerSec, p.TargetCPU, p.SamplesPerCPU, lo, hi, ratio(p.SamplesPerCPU, baseCPU),
			mib(rss), ratio(float64(rss), float64(baseRSS)), nonOK, p.OtherCPU)
	}
	tw.Flush()
	if cost, ok := tlsCost(results); ok {
		verdict := "within"
		if cost > 0.15 {
			verdict = "OVER"
		}
		fmt.Fprintf(w, "\nTLS and basic auth (atoll-tls against atoll, same run): %+.1f%% CPU per sample, %s the 15%% budget.\n", cost*100, verdict)
	}

	fmt.Fprintf(w, "\nSeries creation: the warm-up round of the median run (%d new series) and of the memory run (%d new series); CPU includes a short pause after it.\n\n", c.series, c.rssSeries)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "target\tnew series/s\ttarget CPU s\tseries per CPU-second\tat %s: new series/s\ttarget CPU s\tseries per CPU-second\tpeak RSS\tseries queryable\t\n", count(c.rssSeries))
	for _, r := range results {
		med, _, _ := r.median()
		wp := med.warmup()
		var mp phase
		var peak int64
		if r.Memory != nil {
			mp = r.Memory.warmup()
			peak = r.Memory.Load.PeakRSSBytes
		}
		found := "-"
		if med != nil && med.SeriesFound >= 0 {
			found = fmt.Sprintf("%d/%d", med.SeriesFound, med.Load.Series)
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.2f\t%.0f\t%.0f\t%.2f\t%.0f\t%s\t%s\t\n",
			r.Target, wp.SamplesPerSec, wp.TargetCPU, wp.SamplesPerCPU, mp.SamplesPerSec, mp.TargetCPU, mp.SamplesPerCPU, mib(peak), found)
	}
	tw.Flush()

	for _, r := range results {
		for _, inst := range append(slices.Clone(r.Throughput), r.Memory) {
			if inst == nil {
				continue
			}
			if inst.SeriesFound >= 0 && inst.SeriesFound != inst.Load.Series {
				fmt.Fprintf(w, "%s: only %d of %d series queryable after the load\n", r.Target, inst.SeriesFound, inst.Load.Series)
			}
			for _, p := range inst.Load.Phases {
				if p.errors() > 0 {
					fmt.Fprintf(w, "%s %s: status %v, first error: %s\n", r.Target, p.Name, p.Status, p.FirstError)
				}
			}
		}
		for _, f := range r.Failures {
			fmt.Fprintf(w, "%s FAILED: %s\n", r.Target, f)
		}
	}
}

// tlsCost is how much more CPU per steady sample atoll-tls took than
// atoll, as a fraction: samples per CPU-second of atoll over atoll-tls's,
// minus one.
func tlsCost(results []targetResult) (float64, bool) {
	var plain, secure float64
	for _, r := range results {
		med, _, _ := r.median()
		if med == nil {
			continue
		}
		switch r.Target {
		case "atoll":
			plain = med.steady().SamplesPerCPU
		case "atoll-tls":
			secure = med.steady().SamplesPerCPU
		}
	}
	if plain <= 0 || secure <= 0 {
		return 0, false
	}
	return plain/secure - 1, true
}

// count writes n the short way: 1M, 100k.
func count(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return strconv.Itoa(n/1_000_000) + "M"
	case n >= 1000 && n%1000 == 0:
		return strconv.Itoa(n/1000) + "k"
	}
	return strconv.Itoa(n)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
}
