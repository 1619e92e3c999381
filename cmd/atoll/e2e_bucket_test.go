package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"

	"github.com/atoll-metrics/atoll/block"
	"github.com/atoll-metrics/atoll/bucket"
	"github.com/atoll-metrics/atoll/bucket/buckettest"
)

// history writes series samples every 15s over span ending now, in order,
// in requests of a few minutes each.
type history struct {
	series int
	start  int64
	end    int64
}

func newHistory(series int, span time.Duration) history {
	end := time.Now().Truncate(15 * time.Second).UnixMilli()
	return history{series: series, start: end - span.Milliseconds(), end: end}
}

// write sends the samples of [from, to) and fails on anything but 204.
func (h history) write(t *testing.T, writeURL string, from, to int64) {
	t.Helper()
	const step = 15_000
	for ts := from; ts < to; {
		req := &prompb.WriteRequest{}
		batchEnd := min(ts+20*step, to)
		for s := range h.series {
			series := prompb.TimeSeries{Labels: []prompb.Label{
				{Name: "__name__", Value: "bucket_test_total"}, {Name: "job", Value: fmt.Sprintf("job-%d", s%3)}, {Name: "series", Value: strconv.Itoa(s)},
			}}
			for t := ts; t < batchEnd; t += step {
				series.Samples = append(series.Samples, prompb.Sample{Timestamp: t, Value: float64((t - h.start) / step * int64(s+1))})
			}
			req.Timeseries = append(req.Timeseries, series)
		}
		if code, body := remoteWrite(t, writeURL, "", req); code != http.StatusNoContent {
			t.Fatalf("write at %d: %d %s", ts, code, body)
		}
		ts = batchEnd
	}
}

// answers asks the same questions over the whole history.
func (h history) answers(t *testing.T, httpURL string) map[string]any {
	t.Helper()
	out := map[string]any{}
	start := strconv.FormatInt(h.start/1000, 10)
	end := strconv.FormatInt((h.end-15_000)/1000, 10)
	for _, q := range []string{
		`sum by (job) (bucket_test_total)`,
		`sum(rate(bucket_test_total[5m]))`,
		`count(bucket_test_total)`,
		`max_over_time(bucket_test_total{series="7"}[20m])`,
	} {
		code, r := promAPI(t, httpURL, "/api/v1/query_range", url.Values{"query": {q}, "start": {start}, "end": {end}, "step": {"60"}, "max_source_resolution": {"0s"}}, nil)
		if code != http.StatusOK {
			t.Fatalf("%s: %d %s", q, code, r.Error)
		}
		out[q] = normalize(t, r.Data)
	}
	return out
}

func countBlocks(t *testing.T, bkt bucket.Bucket) int {
	t.Helper()
	set, err := block.NewFetcher(bkt, nil).Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return len(set.Blocks)
}

// TestAllShipsToBucketAndAnswersFromIt writes hours of history to `atoll
// all`, waits for the blocks in the bucket, then deletes the data dir and
// starts again on the same bucket: the answers must not change.
func TestAllShipsToBucketAndAnswersFromIt(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	dir := t.TempDir()
	bucketDir := filepath.Join(dir, "bucket")
	cfg := filepath.Join(dir, "bucket.yml")
	if err := os.WriteFile(cfg, []byte("type: FILESYSTEM\nconfig:\n  directory: "+bucketDir+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bkt, err := bucket.NewFilesystem(bucketDir)
	if err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(dir, "data")
	args := []string{"--tsdb.block-duration=20m", "--shipper.interval=2s", "--objstore.config-file=" + cfg}
	a := startAtoll(t, dataDir, args...)

	h := newHistory(30, 3*time.Hour)
	h.write(t, a.writeURL, h.start, h.end)
	// Heads are cut into 20m blocks as the history advances; they ship
	// within the shipping interval.
	eventually(t, 90*time.Second, func() error {
		if n := countBlocks(t, bkt); n < 4 {
			return fmt.Errorf("%d blocks in the bucket", n)
		}
		return nil
	})
	want := h.answers(t, a.httpURL)

	a.Stop(60 * time.Second)
	if err := os.RemoveAll(dataDir); err != nil {
		t.Fatal(err)
	}
	a.restart(t)
	eventually(t, 60*time.Second, func() error {
		got := h.answers(t, a.httpURL)
		if !reflect.DeepEqual(want, got) {
			wj, _ := json.Marshal(want)
			gj, _ := json.Marshal(got)
			return fmt.Errorf("answers from the bucket differ:\nbefore: %s\nafter:  %s", tail(string(wj), 1500), tail(string(gj), 1500))
		}
		return nil
	})
	t.Logf("%d blocks in the bucket answer exactly as the receiver did", countBlocks(t, bkt))
}

// TestS3OutageDelaysShippingOnly ships to a real S3 server, stops the
// server while writes go on, starts it again: every block arrives and the
// answers cover the whole history.
func TestS3OutageDelaysShippingOnly(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	s3 := buckettest.StartS3Server(t)
	bc := s3.CreateBucket(t)
	bc.MaxRetries = 1
	yml := fmt.Sprintf("type: S3\nconfig:\n  bucket: %s\n  endpoint: %s\n  region: %s\n  access_key: %s\n  secret_key: %s\n  insecure: true\n  bucket_lookup_type: path\n  max_retries: 1\n",
		bc.Bucket, bc.Endpoint, bc.Region, bc.AccessKey, bc.SecretKey)
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "s3.yml")
	if err := os.WriteFile(cfgFile, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := bucket.ParseConfig([]byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	bkt, err := bucket.New(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer bkt.Close()

	a := startAtoll(t, filepath.Join(dir, "data"), "--tsdb.block-duration=20m", "--shipper.interval=2s", "--objstore.config-file="+cfgFile)
	h := newHistory(20, 3*time.Hour)
	mid := h.start + (h.end-h.start)/2
	h.write(t, a.writeURL, h.start, mid)
	eventually(t, 90*time.Second, func() error {
		if n := countBlocks(t, bkt); n < 2 {
			return fmt.Errorf("%d blocks in S3", n)
		}
		return nil
	})
	before := countBlocks(t, bkt)

	s3.Stop()
	// Writes go on while the bucket is away: they are answered 204.
	h.write(t, a.writeURL, mid, h.end)
	eventually(t, 60*time.Second, func() error {
		if v := metricValue(t, a.httpURL, "atoll_shipper_upload_failures_total"); v == 0 {
			return fmt.Errorf("no shipping failure counted yet")
		}
		return nil
	})
	s3.Start()
	eventually(t, 120*time.Second, func() error {
		if n := countBlocks(t, bkt); n <= before+2 {
			return fmt.Errorf("%d blocks in S3, had %d before the outage", n, before)
		}
		return nil
	})
	// Everything is queryable, and after a clean stop everything, heads
	// included, is in S3.
	want := h.answers(t, a.httpURL)
	a.Stop(60 * time.Second)
	set, err := block.NewFetcher(bkt, nil).Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var samples uint64
	for _, b := range set.Blocks {
		samples += b.Meta.Stats.NumSamples
	}
	if total := uint64(h.series) * uint64((h.end-h.start)/15_000); samples < total {
		t.Fatalf("S3 holds %d samples, %d were written", samples, total)
	}
	if !strings.Contains(fmt.Sprint(want), "job-2") {
		t.Fatalf("answers: %v", want)
	}
	t.Logf("%d blocks, %d samples in S3 after an outage in the middle", len(set.Blocks), samples)
}
