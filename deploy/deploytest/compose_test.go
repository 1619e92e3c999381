package deploytest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"

	"github.com/atoll-metrics/atoll/internal/e2eproc"
)

// The compose test's load: a few series written in rounds (value = round),
// after a history that makes the receivers cut, ship and serve blocks.
const (
	composeSeries    = 20
	historySamples   = 45
	historyStep      = 15 * time.Second
	roundMetric      = "atoll_deploytest_round"
	historyMetric    = "atoll_deploytest_history"
	composeTimeout   = 6 * time.Minute
	composeReadyWait = 90 * time.Second
)

// composeStack is one copy of deploy/docker-compose.yml running under its
// own project name, images and host ports.
type composeStack struct {
	t       testing.TB
	compose []string // the compose command: docker-compose, or docker compose
	file    string
	env     []string
	project string
	// Host ports, by service and container port.
	writeURL map[string]string // receive-N -> remote-write URL
	httpURL  map[string]string // service -> base URL of its HTTP server
}

// TestComposeSurvivesAnyOneContainer brings the whole compose stack up on its
// own network, writes and reads through it, then kills one container of each
// kind in turn (a receiver, the S3 server, the store gateway, a querier, the
// compactor) and checks that every remaining receiver still takes writes and
// every remaining querier still answers with all the data, before starting
// the container again.
func TestComposeSurvivesAnyOneContainer(t *testing.T) {
	s := startCompose(t)
	ctx, cancel := context.WithTimeout(context.Background(), composeTimeout)
	defer cancel()

	s.waitRing(t)

	// History first: on a fresh TSDB it is in order, and spanning several
	// block periods it makes every receiver cut blocks, ship them to S3,
	// and the gateway load them.
	historyStart := time.Now().Add(-historyStep * historySamples).Truncate(time.Second)
	s.writeHistory(ctx, t, historyStart)
	eventually(t, 90*time.Second, "the store gateway loads blocks the receivers shipped to S3", func() error {
		n, _, err := metricValue(s.httpURL["store"]+"/metrics", "atoll_gateway_blocks_loaded")
		if err == nil && n < 1 {
			err = errors.New("atoll_gateway_blocks_loaded is 0")
		}
		return err
	})
	eventually(t, 60*time.Second, "the compactor passes over the bucket", func() error {
		n, _, err := metricValue(s.httpURL["compact"]+"/metrics", "atoll_compactor_passes_total")
		if err == nil && n < 1 {
			err = errors.New("atoll_compactor_passes_total is 0")
		}
		return err
	})

	w := &roundWriter{s: s}
	w.writeEachReceiver(ctx, t, nil)
	s.checkReads(t, w.round, nil)

	for _, victim := range []string{"receive-1", "s3", "store", "query-1", "compact"} {
		t.Logf("killing %s", victim)
		start := time.Now()
		id := s.containerID(t, victim)
		s.docker(t, "kill", id)
		down := map[string]bool{victim: true}
		w.writeEachReceiver(ctx, t, down)
		wrote := time.Since(start)
		s.checkReads(t, w.round, down)
		t.Logf("with %s killed: writes continued (%s), reads continued (%s)", victim,
			wrote.Round(time.Millisecond), (time.Since(start) - wrote).Round(time.Millisecond))

		s.docker(t, "start", id)
		s.waitServiceBack(t, victim)
		w.writeEachReceiver(ctx, t, nil)
	}
	s.checkReads(t, w.round, nil)
}

// startCompose builds the images with `make docker-images`, starts the stack
// under a unique project name with ports picked now, and tears everything
// down (containers, network, volumes, images) when the test ends.
func startCompose(t *testing.T) *composeStack {
	t.Helper()
	compose := composeCommand(t)
	root := repoRoot(t)

	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	project := "atolltest" + hex.EncodeToString(suffix[:])
	atollImage, s3Image := "atoll-deploytest:"+project, "atoll-deploytest-s3:"+project

	build := exec.Command("make", "--no-print-directory", "docker-images",
		"ATOLL_IMAGE="+atollImage, "ATOLL_S3_IMAGE="+s3Image, "DOCKER_STAGE="+t.TempDir())
	build.Dir = root
	t.Cleanup(func() {
		_ = exec.Command("docker", "rmi", "--force", atollImage, s3Image).Run()
	})
	start := time.Now()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("make docker-images: %v\n%s", err, tail(string(out), 4096))
	}
	t.Logf("images built in %s", time.Since(start).Round(time.Millisecond))

	s := &composeStack{
		t:        t,
		compose:  compose,
		file:     deployPath(t, "docker-compose.yml"),
		project:  project,
		writeURL: map[string]string{},
		httpURL:  map[string]string{},
	}
	bind := func(v string, port int) string { return fmt.Sprintf("%s=127.0.0.1:%d", v, port) }
	ports := e2eproc.Ports(t, 10)
	s.env = append(os.Environ(),
		"COMPOSE_PROJECT_NAME="+project,
		"ATOLL_IMAGE="+atollImage,
		"ATOLL_S3_IMAGE="+s3Image,
		// Short periods, so blocks are cut, shipped, loaded and compacted
		// while the test runs.
		"ATOLL_BLOCK_DURATION=2m",
		"ATOLL_SHIPPER_INTERVAL=2s",
		"ATOLL_STORE_SYNC_INTERVAL=3s",
		"ATOLL_COMPACT_INTERVAL=5s",
		"ATOLL_COMPACT_RANGES=2m,8m",
		// A killed compactor restarted under its own holder takes its lease over once renewals
		// have stopped for half the lease: 30s here, not the default 2.5m.
		"ATOLL_COMPACT_LEASE_DURATION=1m",
	)
	for i := 1; i <= 3; i++ {
		svc := fmt.Sprintf("receive-%d", i)
		w, h := ports[2*i-2], ports[2*i-1]
		s.env = append(s.env, bind(fmt.Sprintf("RECEIVE_%d_WRITE", i), w), bind(fmt.Sprintf("RECEIVE_%d_HTTP", i), h))
		s.writeURL[svc] = fmt.Sprintf("http://127.0.0.1:%d/api/v1/receive", w)
		s.httpURL[svc] = fmt.Sprintf("http://127.0.0.1:%d", h)
	}
	for i, svc := range []string{"query-1", "query-2", "store", "compact"} {
		v := strings.ToUpper(strings.ReplaceAll(svc, "-", "_")) + "_HTTP"
		s.env = append(s.env, bind(v, ports[6+i]))
		s.httpURL[svc] = fmt.Sprintf("http://127.0.0.1:%d", ports[6+i])
	}

	t.Cleanup(func() {
		if t.Failed() {
			out, _ := s.run("logs", "--no-color", "--tail=60")
			t.Logf("compose logs:\n%s", tail(out, 24<<10))
		}
		if out, err := s.run("down", "--volumes", "--remove-orphans", "--timeout", "5"); err != nil {
			t.Errorf("compose down: %v\n%s", err, out)
		}
	})
	start = time.Now()
	if out, err := s.run("up", "-d", "--no-build"); err != nil {
		t.Fatalf("compose up: %v\n%s", err, out)
	}
	for svc, base := range s.httpURL {
		eventually(t, composeReadyWait, svc+" ready", func() error {
			_, err := get(base + "/-/ready")
			return err
		})
	}
	t.Logf("stack %s up and ready in %s", project, time.Since(start).Round(time.Millisecond))
	return s
}

// composeCommand finds docker and a compose implementation, skipping the
// test where there is no Docker to run it on.
func composeCommand(t *testing.T) []string {
	t.Helper()
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skip("docker not installed: the compose stack cannot be run here")
	}
	if out, err := exec.Command("docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		t.Skipf("no Docker daemon reachable: %v: %s", err, strings.TrimSpace(string(out)))
	}
	if p, err := exec.LookPath("docker-compose"); err == nil {
		return []string{p}
	}
	if exec.Command("docker", "compose", "version").Run() == nil {
		return []string{"docker", "compose"}
	}
	t.Fatal("Docker is here but neither docker-compose nor `docker compose` is: install docker-compose")
	return nil
}

func (s *composeStack) run(args ...string) (string, error) {
	full := append(append(s.compose[1:len(s.compose):len(s.compose)], "-f", s.file), args...)
	cmd := exec.Command(s.compose[0], full...)
	cmd.Env = s.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (s *composeStack) docker(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("docker", args...).CombinedOutput(); err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func (s *composeStack) containerID(t testing.TB, service string) string {
	t.Helper()
	out, err := s.run("ps", "-q", service)
	id := strings.TrimSpace(out)
	if err != nil || id == "" || strings.Contains(id, "\n") {
		t.Fatalf("container of %s: %v: %q", service, err, out)
	}
	return id
}

// waitRing waits until every receiver's ring view has the three receivers
// healthy and every querier uses the three receivers and the gateway.
func (s *composeStack) waitRing(t testing.TB) {
	t.Helper()
	for _, svc := range []string{"receive-1", "receive-2", "receive-3"} {
		eventually(t, 60*time.Second, svc+" sees three healthy receivers", func() error {
			return s.healthyReceivers(svc, 3)
		})
	}
	for _, svc := range []string{"query-1", "query-2"} {
		eventually(t, 60*time.Second, svc+" uses three receivers and the store gateway", func() error {
			n, _, err := metricValue(s.httpURL[svc]+"/metrics", "atoll_querier_endpoints_healthy")
			if err == nil && n < 4 {
				err = fmt.Errorf("%v healthy store endpoints, want 4", n)
			}
			return err
		})
	}
}

func (s *composeStack) healthyReceivers(svc string, want int) error {
	body, err := getAccept(s.httpURL[svc]+"/ring", "application/json")
	if err != nil {
		return err
	}
	var ring struct {
		Members []struct {
			ID      string `json:"id"`
			Role    string `json:"role"`
			Healthy bool   `json:"healthy"`
		} `json:"members"`
	}
	if err := json.Unmarshal(body, &ring); err != nil {
		return fmt.Errorf("ring of %s: %w: %.200s", svc, err, body)
	}
	var healthy []string
	for _, m := range ring.Members {
		if m.Role == "receiver" && m.Healthy {
			healthy = append(healthy, m.ID)
		}
	}
	if len(healthy) != want {
		return fmt.Errorf("%s sees healthy receivers %v, want %d", svc, healthy, want)
	}
	return nil
}

// waitServiceBack waits until a restarted container serves again and the
// stack is whole, so the next kill is again the only failure.
func (s *composeStack) waitServiceBack(t testing.TB, svc string) {
	t.Helper()
	if base, ok := s.httpURL[svc]; ok {
		eventually(t, composeReadyWait, svc+" ready again", func() error {
			_, err := get(base + "/-/ready")
			return err
		})
	}
	switch {
	case strings.HasPrefix(svc, "receive-"):
		s.waitRing(t)
	case svc == "store":
		s.waitRing(t)
	case svc == "s3":
		eventually(t, 60*time.Second, "the gateway syncs with the restarted S3 server", func() error {
			before, _, err := metricValue(s.httpURL["store"]+"/metrics", "atoll_gateway_syncs_total")
			if err != nil {
				return err
			}
			time.Sleep(4 * time.Second)
			after, _, err := metricValue(s.httpURL["store"]+"/metrics", "atoll_gateway_syncs_total")
			if err == nil && after <= before {
				err = errors.New("no successful sync since the restart")
			}
			return err
		})
	}
}

func seriesLabels(metric string, i int) []prompb.Label {
	return []prompb.Label{
		{Name: "__name__", Value: metric},
		{Name: "job", Value: "deploytest"},
		{Name: "series", Value: fmt.Sprint(i)},
	}
}

// writeHistory writes historySamples samples per series, historyStep apart,
// from start on, through receive-2.
func (s *composeStack) writeHistory(ctx context.Context, t testing.TB, start time.Time) {
	t.Helper()
	req := &prompb.WriteRequest{}
	for i := range composeSeries {
		ts := prompb.TimeSeries{Labels: seriesLabels(historyMetric, i)}
		for j := range historySamples {
			ts.Samples = append(ts.Samples, prompb.Sample{
				Timestamp: start.Add(time.Duration(j) * historyStep).UnixMilli(),
				Value:     float64(j),
			})
		}
		req.Timeseries = append(req.Timeseries, ts)
	}
	code, body, err := remoteWrite(ctx, s.writeURL["receive-2"], req)
	if err != nil || code/100 != 2 {
		t.Fatalf("write history: %d %s %v", code, body, err)
	}
}

// roundWriter writes rounds: every series gets the round number as value,
// at a timestamp later than any before.
type roundWriter struct {
	s      *composeStack
	round  int
	lastTS int64
}

// writeEachReceiver writes one round through every receiver not down. Like
// Prometheus, it retries a 5xx or a failed connection; a round must be
// acknowledged within 20 seconds.
func (w *roundWriter) writeEachReceiver(ctx context.Context, t testing.TB, down map[string]bool) {
	t.Helper()
	for _, svc := range []string{"receive-1", "receive-2", "receive-3"} {
		if down[svc] {
			continue
		}
		w.round++
		ts := max(time.Now().UnixMilli(), w.lastTS+1)
		w.lastTS = ts
		req := &prompb.WriteRequest{}
		for i := range composeSeries {
			req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
				Labels:  seriesLabels(roundMetric, i),
				Samples: []prompb.Sample{{Timestamp: ts, Value: float64(w.round)}},
			})
		}
		start := time.Now()
		attempts := 0
		eventually(t, 20*time.Second, fmt.Sprintf("round %d acknowledged by %s", w.round, svc), func() error {
			attempts++
			code, body, err := remoteWrite(ctx, w.s.writeURL[svc], req)
			if err == nil && code/100 != 2 {
				err = fmt.Errorf("%d: %s", code, body)
				if code/100 == 4 {
					t.Fatalf("round %d refused by %s: %v", w.round, svc, err)
				}
			}
			return err
		})
		if attempts > 1 {
			t.Logf("round %d through %s: acknowledged after %d attempts (%s)", w.round, svc, attempts, time.Since(start).Round(time.Millisecond))
		}
	}
}

// checkReads asks every querier not down for the newest round and for the
// whole history; both must be complete. Warnings (a store that failed) are
// logged: they are what partial responses are for.
func (s *composeStack) checkReads(t testing.TB, round int, down map[string]bool) {
	t.Helper()
	for _, svc := range []string{"query-1", "query-2"} {
		if down[svc] {
			continue
		}
		base := s.httpURL[svc]
		var warnings []string
		eventually(t, 30*time.Second, fmt.Sprintf("%s answers round %d for every series", svc, round), func() error {
			res, warns, err := instantQuery(base, roundMetric)
			warnings = warns
			if err != nil {
				return err
			}
			if len(res) != composeSeries {
				return fmt.Errorf("%d series, want %d", len(res), composeSeries)
			}
			for _, r := range res {
				if v, err := r.float(); err != nil || v != float64(round) {
					return fmt.Errorf("series %v: value %v (%v), want %d", r.Metric, r.Value[1], err, round)
				}
			}
			return nil
		})
		eventually(t, 30*time.Second, svc+" answers the whole history", func() error {
			q := fmt.Sprintf("count_over_time(%s[1h])", historyMetric)
			res, warns, err := instantQuery(base, q)
			warnings = append(warnings, warns...)
			if err != nil {
				return err
			}
			if len(res) != composeSeries {
				return fmt.Errorf("%s: %d series, want %d", q, len(res), composeSeries)
			}
			for _, r := range res {
				if v, err := r.float(); err != nil || v != historySamples {
					return fmt.Errorf("%s: series %v has %v samples (%v), want %d", q, r.Metric, r.Value[1], err, historySamples)
				}
			}
			return nil
		})
		if len(warnings) > 0 {
			t.Logf("%s answered with warnings: %v", svc, warnings)
		}
	}
}
