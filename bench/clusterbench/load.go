package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/atoll-metrics/atoll/bench/procstat"
)

// loadResult mirrors the JSON loadgen prints.
type loadResult struct {
	Series          int     `json:"series"`
	Metrics         int     `json:"metric_names"`
	AvgLabelBytes   float64 `json:"avg_label_bytes"`
	CompressedBytes int64   `json:"compressed_bytes"`
	LastTimestamp   int64   `json:"last_timestamp_ms"`
	Phases          []phase `json:"phases"`
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
	LoadgenCPU      float64        `json:"loadgen_cpu_seconds"`
	SamplesPerSec   float64        `json:"samples_per_second"`
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

func (r loadResult) phase(name string) phase {
	for _, p := range r.Phases {
		if p.Name == name {
			return p
		}
	}
	return phase{}
}

// cpuWindow is the CPU time spent over one phase.
type cpuWindow struct {
	Seconds   float64 `json:"seconds"`              // length of the window
	Receivers float64 `json:"receiver_cpu_seconds"` // every receiving process together
	Loadgen   float64 `json:"loadgen_cpu_seconds"`
	Spreader  float64 `json:"spreader_cpu_seconds"` // this program, forwarding requests
	Others    float64 `json:"other_cpu_seconds"`    // everything else on the machine
}

type snapshot struct {
	at       time.Time
	targets  float64
	self     float64
	machine  float64
	machErr  error
	procsErr error
}

func takeSnapshot(pids []int) snapshot {
	s := snapshot{at: time.Now(), self: procstat.SelfCPU().Seconds()}
	s.targets, s.procsErr = cpuOf(pids)
	var busy time.Duration
	busy, _, s.machErr = procstat.MachineCPU()
	s.machine = busy.Seconds()
	return s
}

func window(a, b snapshot, loadgenCPU float64) cpuWindow {
	w := cpuWindow{
		Seconds:   b.at.Sub(a.at).Seconds(),
		Receivers: b.targets - a.targets,
		Loadgen:   loadgenCPU,
		Spreader:  b.self - a.self,
	}
	if a.machErr == nil && b.machErr == nil {
		w.Others = max(0, b.machine-a.machine-w.Receivers-w.Loadgen-w.Spreader)
	}
	return w
}

// loadOutcome is what one loadgen run measured.
type loadOutcome struct {
	load   loadResult
	warmup cpuWindow
	steady cpuWindow
	// tail is how long after the last answer the last replica was stored:
	// a write is answered at quorum, and the remaining replica's work is
	// charged to the steady phase.
	tail time.Duration
	// appended is the samples the receivers' TSDBs appended, replicas
	// counted apart.
	appended float64
}

// runLoad drives loadgen at writeURL and charges the CPU time of the
// processes pids to the warm-up and steady phases. loadgen measures only
// one process, so this reads its log lines as they come to learn where the
// phases start and end: "encoded" precedes the first request, the warm-up
// line follows the warm-up's linger, the steady line its last answer.
// onSteady, if set, runs when the steady phase starts.
func (b *bench) runLoad(ctx context.Context, writeURL string, pids []int, metricsURLs []string, rf int, onSteady func()) (*loadOutcome, error) {
	args := []string{
		"-url=" + writeURL,
		"-series=" + strconv.Itoa(b.c.series),
		"-warmup-rounds=" + strconv.Itoa(b.c.warmupRounds),
		"-rounds=" + strconv.Itoa(b.c.rounds),
		"-batch=" + strconv.Itoa(b.c.batch),
		"-concurrency=" + strconv.Itoa(b.c.concurrency),
		"-json",
	}
	cmd := exec.CommandContext(ctx, b.c.loadgen, args...)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start loadgen: %w", err)
	}
	marks := map[string]snapshot{}
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		line := sc.Text()
		fmt.Fprintln(os.Stderr, "  loadgen: "+line)
		// Lines start with the time of day, "15:04:05 ".
		_, rest, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		for _, mark := range []string{"encoded", "warmup", "steady"} {
			if strings.HasPrefix(rest, mark+" ") {
				marks[mark] = takeSnapshot(pids)
				if mark == "warmup" && onSteady != nil {
					onSteady()
				}
			}
		}
	}
	if err := cmd.Wait(); err != nil {
		return nil, fmt.Errorf("loadgen: %w", err)
	}
	out := &loadOutcome{}
	if err := json.Unmarshal(stdout.Bytes(), &out.load); err != nil {
		return nil, fmt.Errorf("reading loadgen output: %w", err)
	}
	for _, m := range []string{"encoded", "warmup", "steady"} {
		if _, ok := marks[m]; !ok {
			return nil, fmt.Errorf("loadgen never logged its %q line", m)
		}
		if err := marks[m].procsErr; err != nil {
			return nil, fmt.Errorf("reading receivers' CPU: %w", err)
		}
	}

	accepted := out.load.phase("warmup").SamplesAccepted + out.load.phase("steady").SamplesAccepted
	out.appended, out.tail = waitReplicas(ctx, metricsURLs, float64(rf*accepted), marks["steady"].at)
	end := takeSnapshot(pids)
	if end.procsErr != nil {
		return nil, fmt.Errorf("reading receivers' CPU: %w", end.procsErr)
	}
	out.warmup = window(marks["encoded"], marks["warmup"], out.load.phase("warmup").LoadgenCPU)
	out.steady = window(marks["warmup"], end, out.load.phase("steady").LoadgenCPU)
	return out, nil
}

// waitReplicas waits until the receivers together have appended want
// samples, or their count has not moved for two seconds, and returns what
// they appended and how long after since that was.
func waitReplicas(ctx context.Context, metricsURLs []string, want float64, since time.Time) (float64, time.Duration) {
	var last float64
	lastMove := time.Now()
	for {
		total, err := appendedSamples(ctx, metricsURLs)
		if err == nil && total >= want {
			return total, time.Since(since)
		}
		if total != last {
			last, lastMove = total, time.Now()
		}
		if time.Since(lastMove) > 2*time.Second || ctx.Err() != nil {
			logf("receivers appended %.0f samples, %.0f expected; not waiting longer (%v)", total, want, err)
			return total, lastMove.Sub(since)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func appendedSamples(ctx context.Context, metricsURLs []string) (float64, error) {
	total := 0.0
	for _, u := range metricsURLs {
		m, err := scrape(ctx, u, "prometheus_tsdb_head_samples_appended_total")
		if err != nil {
			return total, err
		}
		total += m["prometheus_tsdb_head_samples_appended_total"]
	}
	return total, nil
}
