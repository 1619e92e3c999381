// Command compact measures `atoll compact` on a synthetic bucket: how many
// raw samples it brings in order per second of wall time and per CPU-second.
// Then it measures what downsampling buys queries: a range query over
// months through `atoll query` and `atoll store`, raw and with the
// resolution the querier picks (auto).
//
// It fills a filesystem bucket with blockgen (2h blocks of two replicas with
// gaps, float counters and gauges and native histograms), then runs the real
// binary for one pass, twice on fresh buckets: compaction and deduplication
// only, then with downsampling. The CPU time is the compactor process's own
// (user plus system), read from its rusage when it exits.
//
// The query benchmark compacts and downsamples a bucket of -query-days
// (kept in -query-dir and reused while its parameters stay the same), runs
// `atoll store` over it and `atoll query` in front, and times
// sum by (job) (rate(gen_requests_total[1h])) at a 1h step over the whole
// bucket (auto reads 5m data), and the same with 6h (auto reads 1h data),
// with max_source_resolution=0s and auto, alternating, after a warm-up run
// of each. Besides wall time it reports the CPU time of both processes,
// what the gateway sent (series, samples) and read from the bucket, the
// samples PromQL loaded (stats=all), and how far the auto answer is from
// the raw one.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"time"

	"github.com/atoll-metrics/atoll/bucket"
	"github.com/atoll-metrics/atoll/internal/blockgen"
)

type result struct {
	Name            string  `json:"name"`
	RawSamples      int64   `json:"raw_samples"`
	InputBlocks     int     `json:"input_blocks"`
	BucketBytesIn   int64   `json:"bucket_bytes_in"`
	BucketBytesOut  int64   `json:"bucket_bytes_out"`
	WallSeconds     float64 `json:"wall_seconds"`
	CPUSeconds      float64 `json:"cpu_seconds"`
	SamplesPerSec   float64 `json:"samples_per_second"`
	SamplesPerCPUs  float64 `json:"samples_per_cpu_second"`
	MaxRSSMegabytes float64 `json:"max_rss_mb"`
}

func main() {
	var (
		atoll       = flag.String("atoll", "bin/atoll", "atoll binary")
		series      = flag.Int("series", 2000, "float series (half counters, half gauges)")
		histograms  = flag.Int("histograms", 100, "native histogram series")
		days        = flag.Int("days", 14, "days of data")
		interval    = flag.Duration("interval", 30*time.Second, "scrape interval")
		concurrency = flag.Int("concurrency", 1, "--compact.concurrency")
		workdir     = flag.String("workdir", "", "directory for buckets and scratch (default: a temporary one)")
		jsonOut     = flag.String("json-out", "", "also write the results as JSON here")

		queryDays     = flag.Int("query-days", 90, "days of data for the query benchmark; 0 skips it")
		querySeries   = flag.Int("query-series", 200, "float series of the query benchmark (half counters)")
		queryInterval = flag.Duration("query-interval", time.Minute, "scrape interval of the query benchmark")
		queryRuns     = flag.Int("query-runs", 5, "measured runs of each query and resolution")
		queryDir      = flag.String("query-dir", "bin/bench-compact-query", "directory keeping the query benchmark's compacted bucket between runs")
		queryJSON     = flag.String("query-json-out", "", "also write the query results as JSON here")
	)
	flag.Parse()
	log.SetFlags(0)
	if *days > 0 {
		compaction(*workdir, *atoll, *series, *histograms, *days, *interval, *concurrency, *jsonOut)
	}
	if *queryDays > 0 {
		if *queryRuns < 1 {
			log.Fatal("-query-runs must be at least 1")
		}
		fmt.Println()
		results, err := benchQueries(context.Background(), queryConfig{
			atoll: *atoll, dir: *queryDir, days: *queryDays, series: *querySeries, interval: *queryInterval, runs: *queryRuns,
		})
		if err != nil {
			log.Fatalf("query benchmark: %v", err)
		}
		fmt.Println()
		if err := printQueryResults(results); err != nil {
			log.Fatal(err)
		}
		if *queryJSON != "" {
			data, _ := json.MarshalIndent(results, "", "  ")
			if err := os.WriteFile(*queryJSON, data, 0o644); err != nil {
				log.Fatal(err)
			}
		}
	}
}

// compaction measures one compaction pass without and with downsampling.
func compaction(workdir, atoll string, series, histograms, days int, interval time.Duration, concurrency int, jsonOut string) {
	dir := workdir
	if dir == "" {
		d, err := os.MkdirTemp("", "bench-compact-")
		if err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(d)
		dir = d
	}
	cfg := blockgen.Config{
		Duration:        time.Duration(days) * 24 * time.Hour,
		Interval:        interval,
		Series:          series,
		HistogramSeries: histograms,
		Seed:            1,
	}
	fmt.Printf("bucket: %d float + %d histogram series, %d days at %s, replicas a and b, 2h blocks; %d CPUs\n",
		series, histograms, days, interval, runtime.NumCPU())

	var results []result
	for _, run := range []struct {
		name  string
		extra []string
	}{
		{"compact+dedup", []string{"--downsampling.disable"}},
		{"compact+dedup+downsample", nil},
	} {
		r, err := measure(dir, run.name, atoll, cfg, concurrency, run.extra)
		if err != nil {
			log.Fatalf("%s: %v", run.name, err)
		}
		results = append(results, r)
	}
	fmt.Printf("\n%-26s %14s %8s %10s %10s %16s %18s %9s %12s\n", "run", "raw samples", "blocks", "wall s", "CPU s", "samples/s", "samples/CPU-s", "RSS MB", "bytes in→out")
	for _, r := range results {
		fmt.Printf("%-26s %14d %8d %10.2f %10.2f %16.0f %18.0f %9.0f %5.0fM→%.0fM\n", r.Name, r.RawSamples, r.InputBlocks,
			r.WallSeconds, r.CPUSeconds, r.SamplesPerSec, r.SamplesPerCPUs, r.MaxRSSMegabytes,
			float64(r.BucketBytesIn)/1e6, float64(r.BucketBytesOut)/1e6)
	}
	if jsonOut != "" {
		data, _ := json.MarshalIndent(results, "", "  ")
		if err := os.WriteFile(jsonOut, data, 0o644); err != nil {
			log.Fatal(err)
		}
	}
}

func measure(dir, name, atoll string, cfg blockgen.Config, concurrency int, extra []string) (result, error) {
	r := result{Name: name}
	bucketDir := filepath.Join(dir, "bucket")
	scratch := filepath.Join(dir, "scratch")
	for _, d := range []string{bucketDir, scratch} {
		if err := os.RemoveAll(d); err != nil {
			return r, err
		}
	}
	bkt, err := bucket.NewFilesystem(bucketDir)
	if err != nil {
		return r, err
	}
	defer bkt.Close()
	start := time.Now()
	st, err := blockgen.Generate(context.Background(), bkt, dir, cfg)
	if err != nil {
		return r, err
	}
	r.RawSamples, r.InputBlocks = st.Samples, st.Blocks
	r.BucketBytesIn = dirSize(bucketDir)
	fmt.Printf("%s: generated %d blocks, %d samples in %s\n", name, st.Blocks, st.Samples, time.Since(start).Round(time.Millisecond))

	args := append([]string{"compact",
		fmt.Sprintf("--objstore.config=type: FILESYSTEM\nconfig:\n  directory: %s\n", bucketDir),
		"--data-dir=" + scratch,
		"--delete-delay=0s",
		fmt.Sprintf("--compact.concurrency=%d", concurrency),
		"--log.level=warn",
	}, extra...)
	cmd := exec.Command(atoll, args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	start = time.Now()
	if err := cmd.Run(); err != nil {
		return r, err
	}
	r.WallSeconds = time.Since(start).Seconds()
	ps := cmd.ProcessState
	r.CPUSeconds = (ps.UserTime() + ps.SystemTime()).Seconds()
	r.MaxRSSMegabytes = maxRSS(ps) / 1e6
	r.SamplesPerSec = float64(r.RawSamples) / r.WallSeconds
	r.SamplesPerCPUs = float64(r.RawSamples) / r.CPUSeconds
	r.BucketBytesOut = dirSize(bucketDir)
	return r, nil
}

func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}
