// Command loadgen replays pre-encoded Prometheus remote-write 1.0 traffic
// against one receiver as fast as it takes it, and reports samples per second
// and samples per CPU-second of the receiver's process.
//
// It builds every request before sending any, so its own cost while
// measuring is an HTTP round trip per request, not label formatting,
// protobuf or snappy. The load is a number of rounds; in each, every series
// gets one sample, and a round is fully answered before the next starts, so
// receivers that refuse out-of-order samples accept all of them. The first
// rounds (warm-up) create the series and are reported apart from the steady
// rounds that follow; the pause between them (-warmup-linger) is charged to
// the warm-up's CPU time, so indexing a receiver defers does not land in the
// steady rounds. With -settle, it then waits and reports the receiver's
// resident memory.
//
// Example, against a receiver already running as process 1234:
//
//	loadgen -url=http://127.0.0.1:19291/api/v1/receive -pid=1234 -series=100000 -rounds=20
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/atoll-metrics/atoll/bench/procstat"
	"github.com/atoll-metrics/atoll/internal/localnet"
	"github.com/atoll-metrics/atoll/tenant"
)

type config struct {
	url          string
	tenantHeader string
	tenant       string
	pid          int
	series       int
	warmupRounds int
	warmupLinger time.Duration
	rounds       int
	batch        int
	concurrency  int
	interval     time.Duration
	start        int64
	seed         uint64
	timeout      time.Duration
	maxFailures  int
	readyURL     string
	readyTimeout time.Duration
	settle       time.Duration
	profileURL   string
	profileOut   string
	jsonOut      bool
	caFile       string
	user         string
	passwordFile string
}

// Result is what a run reports with -json.
type Result struct {
	Series           int           `json:"series"`
	Metrics          int           `json:"metric_names"`
	SeriesPerTarget  int           `json:"series_per_target"`
	AvgLabelBytes    float64       `json:"avg_label_bytes"`
	RequestsPerRound int           `json:"requests_per_round"`
	RawBytes         int64         `json:"raw_bytes"`
	CompressedBytes  int64         `json:"compressed_bytes"`
	EncodeSeconds    float64       `json:"encode_seconds"`
	FirstTimestamp   int64         `json:"first_timestamp_ms"`
	LastTimestamp    int64         `json:"last_timestamp_ms"`
	Phases           []PhaseResult `json:"phases"`
	RSSBytes         int64         `json:"rss_bytes,omitempty"`
	PeakRSSBytes     int64         `json:"peak_rss_bytes,omitempty"`
}

func main() {
	var c config
	flag.StringVar(&c.url, "url", "", "Remote-write URL to post to (required).")
	flag.StringVar(&c.tenantHeader, "tenant-header", tenant.HeaderThanos, "Header carrying the tenant, sent when -tenant is set.")
	flag.StringVar(&c.tenant, "tenant", "", "Tenant to write as; empty sends no tenant header.")
	flag.IntVar(&c.pid, "pid", 0, "Process id of the receiver, to measure its CPU time and memory. 0 measures only throughput.")
	flag.IntVar(&c.series, "series", 100_000, "Number of series.")
	flag.IntVar(&c.warmupRounds, "warmup-rounds", 1, "Rounds that create the series, reported apart.")
	flag.DurationVar(&c.warmupLinger, "warmup-linger", 3*time.Second, "Pause between warm-up and steady rounds, so work the receiver defers after creating series is charged to the warm-up, not to the steady rounds.")
	flag.IntVar(&c.rounds, "rounds", 20, "Steady rounds after the warm-up: every series exists already.")
	flag.IntVar(&c.batch, "batch", 2000, "Samples per request (Prometheus's max_samples_per_send).")
	flag.IntVar(&c.concurrency, "concurrency", 4, "Requests in flight at once.")
	flag.DurationVar(&c.interval, "interval", 15*time.Second, "Timestamp step between rounds.")
	flag.Int64Var(&c.start, "start", 0, "Timestamp of the first round in Unix milliseconds; 0 picks one so the last round is now.")
	flag.Uint64Var(&c.seed, "seed", 1, "Seed of the order series are sent in.")
	flag.DurationVar(&c.timeout, "timeout", 30*time.Second, "Longest one request may take.")
	flag.IntVar(&c.maxFailures, "max-failures", 20, "Give up after this many failed requests in one phase; 0 never gives up.")
	flag.StringVar(&c.readyURL, "ready-url", "", "URL to poll until it answers 200 before sending.")
	flag.DurationVar(&c.readyTimeout, "ready-timeout", 2*time.Minute, "How long to wait for -ready-url.")
	flag.DurationVar(&c.settle, "settle", 0, "After the load, wait this long and report the receiver's resident memory (needs -pid). 0 skips.")
	flag.StringVar(&c.profileURL, "profile-url", "", "URL of a CPU profile to fetch while the steady rounds run, e.g. http://host/debug/pprof/profile?seconds=30.")
	flag.StringVar(&c.profileOut, "profile-out", "cpu.pprof", "Where to write the profile fetched from -profile-url.")
	flag.BoolVar(&c.jsonOut, "json", false, "Print the result as JSON on standard output.")
	flag.StringVar(&c.caFile, "ca-file", "", "CA that signed the receiver's certificate, for an https -url.")
	flag.StringVar(&c.user, "basic-auth-user", "", "Basic-auth user to send, with -basic-auth-password-file.")
	flag.StringVar(&c.passwordFile, "basic-auth-password-file", "", "File holding the basic-auth password.")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, c); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, c config) error {
	switch {
	case c.url == "":
		return errors.New("-url is required")
	case c.series <= 0 || c.batch <= 0 || c.concurrency <= 0:
		return errors.New("-series, -batch and -concurrency must be positive")
	case c.warmupRounds < 0 || c.rounds < 0 || c.warmupRounds+c.rounds == 0:
		return errors.New("need at least one round")
	case c.settle > 0 && c.pid == 0:
		return errors.New("-settle needs -pid")
	}

	cat := NewCatalog()
	total := c.warmupRounds + c.rounds
	start := c.start
	if start == 0 {
		start = time.Now().Add(-time.Duration(total-1) * c.interval).UnixMilli()
	}
	timestamps := make([]int64, total)
	for r := range timestamps {
		timestamps[r] = start + int64(r)*c.interval.Milliseconds()
	}

	t0 := time.Now()
	rounds, st := EncodeRounds(cat, sendOrder(c.series, c.seed), c.batch, timestamps, 0)
	res := Result{
		Series:           c.series,
		Metrics:          cat.Metrics(),
		SeriesPerTarget:  cat.SeriesPerTarget(),
		AvgLabelBytes:    float64(st.LabelBytes) / float64(st.Series),
		RequestsPerRound: len(rounds[0].Requests),
		RawBytes:         st.RawBytes,
		CompressedBytes:  st.CompressedBytes,
		EncodeSeconds:    time.Since(t0).Seconds(),
		FirstTimestamp:   timestamps[0],
		LastTimestamp:    timestamps[total-1],
	}
	logf("encoded %d series x %d rounds: %d requests, %.1f MiB (%.1f MiB before snappy), %.0f label bytes per series, %d metric names, in %.1fs",
		c.series, total, st.Requests, mib(st.CompressedBytes), mib(st.RawBytes), res.AvgLabelBytes, res.Metrics, res.EncodeSeconds)

	if c.readyURL != "" {
		if err := localnet.WaitReady(ctx, c.readyURL, c.readyTimeout, nil); err != nil {
			return err
		}
	}

	header := http.Header{}
	if c.tenant != "" {
		header.Set(c.tenantHeader, c.tenant)
	}
	if c.user != "" {
		pw, err := os.ReadFile(c.passwordFile)
		if err != nil {
			return fmt.Errorf("-basic-auth-password-file: %w", err)
		}
		header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(c.user+":"+strings.TrimSpace(string(pw)))))
	}
	sender := NewSender(c.url, header, c.concurrency, c.timeout)
	if c.caFile != "" {
		pem, err := os.ReadFile(c.caFile)
		if err != nil {
			return fmt.Errorf("-ca-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("-ca-file %s holds no certificate", c.caFile)
		}
		sender.UseTLS(&tls.Config{RootCAs: pool})
	}
	sender.MaxFailures = c.maxFailures
	defer sender.Close()

	phases := []struct {
		name   string
		rounds []Round
	}{
		{"warmup", rounds[:c.warmupRounds]},
		{"steady", rounds[c.warmupRounds:]},
	}
	profileDone := make(chan error, 1)
	profiling := false
	for _, ph := range phases {
		if len(ph.rounds) == 0 {
			continue
		}
		if ph.name == "steady" && c.profileURL != "" {
			profiling = true
			go func() { profileDone <- localnet.FetchProfile(ctx, c.profileURL, c.profileOut) }()
		}
		var linger time.Duration
		if ph.name == "warmup" && c.rounds > 0 {
			linger = c.warmupLinger
		}
		pr, err := sender.Replay(ctx, ph.name, ph.rounds, c.pid, linger)
		if err != nil {
			return fmt.Errorf("%s: %w", ph.name, err)
		}
		res.Phases = append(res.Phases, pr)
		logf("%-6s %3d rounds %6d requests %9d samples in %6.2fs: %10.0f samples/s, target CPU %6.2fs -> %9.0f samples/CPU-s, loadgen CPU %5.2fs, others' CPU %5.2fs, status %v%s",
			pr.Name, pr.Rounds, pr.Requests, pr.SamplesAccepted, pr.Wall, pr.SamplesPerSec, pr.TargetCPU, pr.SamplesPerCPU, pr.LoadgenCPU, pr.OtherCPU, pr.Status, firstError(pr))
	}
	if profiling {
		if err := <-profileDone; err != nil {
			return fmt.Errorf("CPU profile: %w", err)
		}
		logf("CPU profile written to %s", c.profileOut)
	}

	if c.settle > 0 {
		sender.Close()
		select {
		case <-time.After(c.settle):
		case <-ctx.Done():
			return ctx.Err()
		}
		rss, peak, err := procstat.ProcessMemory(c.pid)
		if err != nil {
			return fmt.Errorf("reading target memory: %w", err)
		}
		res.RSSBytes, res.PeakRSSBytes = rss, peak
		logf("target resident memory after %v: %.0f MiB (peak %.0f MiB) with %d series", c.settle, mib(rss), mib(peak), c.series)
	}

	if c.jsonOut {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	return nil
}

func firstError(p PhaseResult) string {
	if p.FirstError == "" {
		return ""
	}
	return ", first error " + p.FirstError
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
