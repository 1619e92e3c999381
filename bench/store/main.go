// Command storebench measures the store gateway: how fast `atoll store`
// streams a long-range Series request through the Store API, and how much
// memory it holds meanwhile.
//
// It generates a filesystem bucket of 2h blocks (by default 7 days of a few
// thousand series, kept between runs), starts `atoll store` over it, and
// streams Series requests over gRPC as a querier would: all series over the
// whole range, cold (index cache empty) and then warm, and a selective one.
// For each it reports series, chunks and samples per second, and the
// gateway's resident memory (now and peak).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/atoll-metrics/atoll/bench/procstat"
	"github.com/atoll-metrics/atoll/block"
	"github.com/atoll-metrics/atoll/bucket"
	"github.com/atoll-metrics/atoll/internal/blockgen"
	"github.com/atoll-metrics/atoll/internal/localnet"
	"github.com/atoll-metrics/atoll/storeapi"
	"github.com/atoll-metrics/atoll/tenant"
)

type config struct {
	atoll      string
	dir        string
	series     int
	days       int
	block      time.Duration
	interval   time.Duration
	indexCache string
	jsonOut    string
	timeout    time.Duration
}

func main() {
	var c config
	flag.StringVar(&c.atoll, "atoll", "bin/atoll", "Atoll binary.")
	flag.StringVar(&c.dir, "dir", "bin/bench-store", "Working directory: the generated bucket (reused when it matches the parameters) and the gateway's data.")
	flag.IntVar(&c.series, "series", 3000, "Series per block.")
	flag.IntVar(&c.days, "days", 7, "Days of data.")
	flag.DurationVar(&c.block, "block", 2*time.Hour, "Block length.")
	flag.DurationVar(&c.interval, "interval", 30*time.Second, "Scrape interval of the generated samples.")
	flag.StringVar(&c.indexCache, "index-cache-size", "256MiB", "The gateway's --index-cache-size.")
	flag.StringVar(&c.jsonOut, "json-out", "", "Also write the results as JSON to this file.")
	flag.DurationVar(&c.timeout, "timeout", 30*time.Minute, "Longest the whole run may take.")
	flag.Parse()

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, c.timeout)
	defer cancelTimeout()
	if err := run(ctx, c); err != nil {
		fmt.Fprintln(os.Stderr, "storebench:", err)
		os.Exit(1)
	}
}

// result is one measured Series request.
type result struct {
	Name          string  `json:"name"`
	Seconds       float64 `json:"seconds"`
	Series        int     `json:"series"`
	UniqueSeries  int     `json:"unique_series"`
	Chunks        int     `json:"chunks"`
	Samples       int64   `json:"samples"`
	SeriesPerSec  float64 `json:"series_per_second"`
	SamplesPerSec float64 `json:"samples_per_second"`
	RSSBytes      int64   `json:"rss_bytes"`
	PeakRSSBytes  int64   `json:"peak_rss_bytes"`
}

func run(ctx context.Context, c config) error {
	bucketDir := filepath.Join(c.dir, "bucket")
	start := time.Now()
	blocks, generated, err := ensureBucket(ctx, c, bucketDir)
	if err != nil {
		return err
	}
	if generated {
		fmt.Printf("generated %d blocks of %d series in %s\n", blocks, c.series, time.Since(start).Round(time.Second))
	} else {
		fmt.Printf("reusing %d blocks of %d series in %s\n", blocks, c.series, bucketDir)
	}

	storeDir := filepath.Join(c.dir, "store")
	if err := os.RemoveAll(storeDir); err != nil {
		return err
	}
	cfgPath := filepath.Join(c.dir, "bucket.yaml")
	abs, _ := filepath.Abs(bucketDir)
	if err := os.WriteFile(cfgPath, fmt.Appendf(nil, "type: FILESYSTEM\nconfig:\n  directory: %s\n", abs), 0o644); err != nil {
		return err
	}
	ports, err := localnet.FreePorts(2)
	if err != nil {
		return err
	}
	grpcAddr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	httpURL := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	logFile, err := os.Create(filepath.Join(c.dir, "store.log"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(c.atoll, "store",
		"--data-dir="+storeDir,
		"--objstore.config-file="+cfgPath,
		"--grpc-address="+grpcAddr,
		"--http-address="+strings.TrimPrefix(httpURL, "http://"),
		"--index-cache-size="+c.indexCache,
		"--ring.disable",
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	startStore := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}()
	if err := localnet.WaitReady(ctx, httpURL+"/-/ready", 10*time.Minute, nil); err != nil {
		return fmt.Errorf("atoll store: %w (log in %s)", err, logFile.Name())
	}
	ready := time.Since(startStore)
	pid := cmd.Process.Pid
	idleRSS, _, _ := procstat.ProcessMemory(pid)
	fmt.Printf("atoll store ready in %s (index headers built for %d blocks), RSS %d MiB\n", ready.Round(time.Millisecond), blocks, idleRSS>>20)

	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		return err
	}
	defer conn.Close()
	st := storeapi.NewRemote(grpcAddr, conn)

	mint := benchBase.UnixMilli()
	maxt := benchBase.Add(time.Duration(c.days) * 24 * time.Hour).UnixMilli()
	all := []*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, labels.MetricName, ".+")}
	selective := []*labels.Matcher{
		labels.MustNewMatcher(labels.MatchEqual, labels.MetricName, "bench_metric_3"),
		labels.MustNewMatcher(labels.MatchEqual, "job", "job-3"),
	}
	var results []result
	for _, q := range []struct {
		name string
		ms   []*labels.Matcher
	}{
		{"all series, 7d, cold cache", all},
		{"all series, 7d, warm cache", all},
		{"one metric of one job, 7d", selective},
	} {
		q.name = strings.Replace(q.name, "7d", fmt.Sprintf("%dd", c.days), 1)
		r, err := measure(ctx, st, pid, q.name, &storeapi.SeriesRequest{MinTime: mint, MaxTime: maxt, Matchers: q.ms})
		if err != nil {
			return fmt.Errorf("%s: %w", q.name, err)
		}
		results = append(results, r)
	}

	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "request\tseconds\tseries\tunique series\tchunks\tsamples\tseries/s\tsamples/s\tRSS MiB\tpeak RSS MiB\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%.2f\t%d\t%d\t%d\t%d\t%.0f\t%.0f\t%d\t%d\t\n", r.Name, r.Seconds, r.Series, r.UniqueSeries, r.Chunks, r.Samples,
			r.SeriesPerSec, r.SamplesPerSec, r.RSSBytes>>20, r.PeakRSSBytes>>20)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Println("series counts one series per block it lives in, as the gateway streams them; unique series merges them.")
	if c.jsonOut != "" {
		b, _ := json.MarshalIndent(map[string]any{
			"blocks": blocks, "series_per_block": c.series, "days": c.days, "interval_seconds": c.interval.Seconds(),
			"index_cache_size": c.indexCache, "ready_seconds": ready.Seconds(), "idle_rss_bytes": idleRSS, "results": results,
		}, "", "  ")
		return os.WriteFile(c.jsonOut, b, 0o644)
	}
	return nil
}

// measure streams one Series request, sampling the gateway's memory.
func measure(ctx context.Context, st storeapi.Store, pid int, name string, req *storeapi.SeriesRequest) (result, error) {
	r := result{Name: name}
	unique := map[string]struct{}{}
	stop := make(chan struct{})
	var (
		wg      sync.WaitGroup
		maxSeen int64
	)
	wg.Go(func() {
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			if rss, _, err := procstat.ProcessMemory(pid); err == nil && rss > maxSeen {
				maxSeen = rss
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	})
	start := time.Now()
	_, err := st.Series(ctx, req, func(s storeapi.Series) error {
		r.Series++
		unique[s.Labels.String()] = struct{}{}
		r.Chunks += len(s.Chunks)
		for _, c := range s.Chunks {
			r.Samples += int64(c.Chunk.NumSamples())
		}
		return nil
	})
	elapsed := time.Since(start)
	close(stop)
	wg.Wait()
	if err != nil {
		return r, err
	}
	r.Seconds = elapsed.Seconds()
	r.UniqueSeries = len(unique)
	r.SeriesPerSec = float64(r.Series) / r.Seconds
	r.SamplesPerSec = float64(r.Samples) / r.Seconds
	rss, peak, err := procstat.ProcessMemory(pid)
	if err != nil {
		return r, err
	}
	r.RSSBytes, r.PeakRSSBytes = rss, max(peak, maxSeen)
	return r, nil
}

// benchBase is where the generated data starts.
var benchBase = time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)

// ensureBucket generates the bucket unless one made with the same
// parameters is there.
func ensureBucket(ctx context.Context, c config, dir string) (int, bool, error) {
	blocks := int(time.Duration(c.days) * 24 * time.Hour / c.block)
	stamp := fmt.Sprintf("series=%d days=%d block=%s interval=%s v2\n", c.series, c.days, c.block, c.interval)
	stampPath := filepath.Join(dir, "storebench-params")
	if b, err := os.ReadFile(stampPath); err == nil && string(b) == stamp {
		return blocks, false, nil
	}
	if err := os.RemoveAll(dir); err != nil {
		return 0, false, err
	}
	bkt, err := bucket.NewFilesystem(dir)
	if err != nil {
		return 0, false, err
	}
	defer bkt.Close()
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "gen")
	if err != nil {
		return 0, false, err
	}
	defer os.RemoveAll(tmp)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0))
	for i := range blocks {
		g.Go(func() error {
			mint := benchBase.Add(time.Duration(i) * c.block).UnixMilli()
			return writeBlock(gctx, bkt, filepath.Join(tmp, fmt.Sprint(i)), c, mint, mint+c.block.Milliseconds())
		})
	}
	if err := g.Wait(); err != nil {
		return 0, false, err
	}
	return blocks, true, os.WriteFile(stampPath, []byte(stamp), 0o644)
}

// writeBlock writes one block of c.series series over [mint, maxt): ten
// metrics, counters and gauges, spread over jobs and instances, and uploads
// it as a receiver of the default tenant would have shipped it.
func writeBlock(ctx context.Context, bkt bucket.Bucket, dir string, c config, mint, maxt int64) error {
	step := c.interval.Milliseconds()
	data := make([]blockgen.SeriesData, 0, c.series)
	for i := range c.series {
		sd := blockgen.SeriesData{Labels: labels.FromStrings(
			labels.MetricName, fmt.Sprintf("bench_metric_%d", i%10),
			"job", fmt.Sprintf("job-%d", i%5),
			"instance", fmt.Sprintf("host-%05d:9100", i/10),
			"region", []string{"eu-west-1", "us-east-1", "ap-south-1"}[i%3],
		)}
		counter := i%10 < 5
		for ts := mint; ts < maxt; ts += step {
			k := float64(ts / step)
			v := 50 + 20*math.Sin(k/97+float64(i))
			if counter {
				v = k*float64(i%13+1) + float64(i)
			}
			sd.Floats = append(sd.Floats, blockgen.FloatSample{T: ts, V: v})
		}
		data = append(data, sd)
	}
	id := ulid.Make()
	// The block ends after its last sample, as one cut from a head does.
	last := mint + (maxt-1-mint)/step*step
	ext := map[string]string{tenant.Label: tenant.Default, "receive_replica": "bench"}
	meta, err := blockgen.WriteBlock(ctx, dir, id, mint, last+1, ext, data)
	if err != nil {
		return err
	}
	if _, err := block.Upload(ctx, bkt, filepath.Join(dir, id.String()), meta, nil); err != nil {
		return err
	}
	return os.RemoveAll(dir)
}
