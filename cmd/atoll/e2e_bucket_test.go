package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/prometheus/prometheus/prompb"

	"github.com/atoll-metrics/atoll/block"
	"github.com/atoll-metrics/atoll/bucket"
	"github.com/atoll-metrics/atoll/bucket/buckettest"
	"github.com/atoll-metrics/atoll/internal/e2eproc"
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

// withoutReplicaLabel decodes an API answer and removes the replica label
// from every series in it, so a dedup=false answer over one replica can be
// compared with the dedup=true one.
func withoutReplicaLabel(t *testing.T, raw json.RawMessage) json.RawMessage {
	t.Helper()
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	var strip func(any)
	strip = func(x any) {
		switch x := x.(type) {
		case map[string]any:
			delete(x, "receive_replica")
			for _, e := range x {
				strip(e)
			}
		case []any:
			for _, e := range x {
				strip(e)
			}
		}
	}
	strip(v)
	out, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// dedupAnswers asks series, instant and range queries over the history
// with the given dedup parameter, replica labels removed.
func (h history) dedupAnswers(t *testing.T, httpURL, dedup string) map[string]string {
	t.Helper()
	start := strconv.FormatInt(h.start/1000, 10)
	end := strconv.FormatInt((h.end-15_000)/1000, 10)
	mid := strconv.FormatInt((h.start+(h.end-h.start)/2)/1000, 10)
	out := map[string]string{}
	ask := func(name, path string, params url.Values) {
		params.Set("dedup", dedup)
		code, r := promAPI(t, httpURL, path, params, nil)
		if code != http.StatusOK {
			t.Fatalf("%s with dedup=%s: %d %s", name, dedup, code, r.Error)
		}
		b, _ := json.Marshal(normalize(t, withoutReplicaLabel(t, r.Data)))
		out[name] = string(b)
	}
	ask("series", "/api/v1/series", url.Values{"match[]": {"bucket_test_total"}, "start": {start}, "end": {end}})
	ask("series count", "/api/v1/query", url.Values{"query": {"count(count by (series, job) (bucket_test_total))"}, "time": {mid}})
	ask("instant", "/api/v1/query", url.Values{"query": {"bucket_test_total"}, "time": {mid}})
	ask("count_over_time", "/api/v1/query", url.Values{"query": {"count_over_time(bucket_test_total[3h])"}, "time": {end}})
	ask("range", "/api/v1/query_range", url.Values{"query": {"bucket_test_total"}, "start": {start}, "end": {end}, "step": {"300"}, "max_source_resolution": {"0s"}})
	ask("rate range", "/api/v1/query_range", url.Values{"query": {"sum by (job) (rate(bucket_test_total[10m]))"}, "start": {start}, "end": {end}, "step": {"300"}, "max_source_resolution": {"0s"}})
	return out
}

// TestDedupFalseOverShippedBlocks: with one replica, dedup=false answers
// as dedup=true does, once the replica label is set aside, after blocks are
// shipped: a series stored in several consecutive blocks is one series,
// and a block both on local disk and in the bucket is read once, with the
// local TSDB's blocks (restart on the same data dir) and without them
// (data dir lost, everything from the bucket).
func TestDedupFalseOverShippedBlocks(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "bucket.yml")
	if err := os.WriteFile(cfg, []byte("type: FILESYSTEM\nconfig:\n  directory: "+filepath.Join(dir, "bucket")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bkt, err := bucket.NewFilesystem(filepath.Join(dir, "bucket"))
	if err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(dir, "data")
	// The compactor would merge the blocks into deduplicated ones without
	// the replica label; this test is about the querier and the stores.
	a := startAtoll(t, dataDir, "--tsdb.block-duration=20m", "--shipper.interval=1s", "--objstore.config-file="+cfg, "--compact.disable")
	h := newHistory(10, 3*time.Hour)
	h.write(t, a.writeURL, h.start, h.end)
	eventually(t, 90*time.Second, func() error {
		if n := countBlocks(t, bkt); n < 6 {
			return fmt.Errorf("%d blocks in the bucket", n)
		}
		return nil
	})

	compare := func(when string) {
		t.Helper()
		want := h.dedupAnswers(t, a.httpURL, "true")
		got := h.dedupAnswers(t, a.httpURL, "false")
		for k := range want {
			if got[k] != want[k] {
				t.Errorf("%s: %s with dedup=false differs from dedup=true:\ndedup=true:  %s\ndedup=false: %s", when, k, tail(want[k], 600), tail(got[k], 600))
			}
		}
		if !strings.Contains(want["series count"], `"10"`) {
			t.Errorf("%s: %d series expected, answer %s", when, h.series, want["series count"])
		}
	}
	// The restarted process finds its blocks on disk and the same blocks in
	// the bucket at its first sync.
	a.Stop(60 * time.Second)
	a.restart(t)
	compare("local blocks and bucket")
	// Every block of the bucket is also on disk: the gateway loaded them
	// all and read none.
	if n := metricValue(t, a.httpURL, "atoll_gateway_blocks_loaded"); n < 6 {
		t.Errorf("the gateway loaded %v blocks after the restart, want every shipped block", n)
	}
	if n := metricValue(t, a.httpURL, "atoll_gateway_blocks_queried_sum"); n != 0 {
		t.Errorf("the gateway read %v blocks that the local TSDB serves", n)
	}

	a.Stop(60 * time.Second)
	if err := os.RemoveAll(dataDir); err != nil {
		t.Fatal(err)
	}
	a.restart(t)
	compare("bucket only")
	if n := metricValue(t, a.httpURL, "atoll_gateway_blocks_queried_sum"); n == 0 {
		t.Error("without local blocks the gateway read none")
	}
}

// TestBucketUnusableKeepsNotReady starts `atoll all` on an S3 bucket that
// does not exist, and on a server that is down: /-/ready stays 503 and
// says why, the log says it too, and the process becomes ready once the
// bucket answers.
func TestBucketUnusableKeepsNotReady(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	s3 := buckettest.StartS3Server(t)
	bc := s3.CreateBucket(t)
	for _, tc := range []struct {
		name, bucket, reason, logged string
		fix                          func()
	}{
		{"missing bucket", "not-created-yet", `the bucket "not-created-yet" does not exist`, "does not exist", nil},
		{"server down", bc.Bucket, "cannot reach the S3 endpoint", "cannot reach the S3 endpoint", s3.Start},
	} {
		t.Run(tc.name, func(t *testing.T) {
			yml := fmt.Sprintf("type: S3\nconfig:\n  bucket: %s\n  endpoint: %s\n  access_key: %s\n  secret_key: %s\n  insecure: true\n  bucket_lookup_type: path\n  max_retries: 1\n",
				tc.bucket, bc.Endpoint, bc.AccessKey, bc.SecretKey)
			dir := t.TempDir()
			cfgFile := filepath.Join(dir, "s3.yml")
			if err := os.WriteFile(cfgFile, []byte(yml), 0o600); err != nil {
				t.Fatal(err)
			}
			if tc.fix != nil {
				s3.Stop()
			}
			ports := e2eproc.Ports(t, 3)
			httpURL := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
			p := e2eproc.Start(t, "atoll", atollBinary, "all", "--data-dir="+filepath.Join(dir, "data"),
				fmt.Sprintf("--http-address=127.0.0.1:%d", ports[0]), fmt.Sprintf("--remote-write.address=127.0.0.1:%d", ports[1]),
				fmt.Sprintf("--grpc-address=127.0.0.1:%d", ports[2]), "--objstore.config-file="+cfgFile)
			eventually(t, 30*time.Second, func() error {
				resp, err := http.Get(httpURL + "/-/ready")
				if err != nil {
					return err
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), tc.reason) {
					return fmt.Errorf("/-/ready: %d %q, want 503 saying %q", resp.StatusCode, body, tc.reason)
				}
				return nil
			})
			if !strings.Contains(p.Output().String(), tc.logged) || !strings.Contains(p.Output().String(), "level=ERROR") {
				t.Errorf("the log does not report the bucket as an error:\n%s", tail(p.Output().String(), 2000))
			}
			time.Sleep(2 * time.Second)
			if resp, err := http.Get(httpURL + "/-/ready"); err != nil || resp.StatusCode != http.StatusServiceUnavailable {
				t.Fatalf("ready while the bucket is unusable: %v %v", resp, err)
			}
			if tc.fix != nil {
				tc.fix()
			} else {
				fixed := bc
				fixed.Bucket = tc.bucket
				createBucket(t, fixed)
			}
			p.WaitReady(httpURL+"/-/ready", 30*time.Second)
			if strings.Contains(p.Output().String(), string(bc.SecretKey)) {
				t.Error("the log shows the S3 secret key")
			}
		})
	}
}

// createBucket creates the bucket of cfg on its server.
func createBucket(t *testing.T, cfg bucket.S3Config) {
	t.Helper()
	c, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds: credentials.NewStaticV4(cfg.AccessKey, string(cfg.SecretKey), ""), Region: cfg.Region, BucketLookup: minio.BucketLookupPath,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.MakeBucket(t.Context(), cfg.Bucket, minio.MakeBucketOptions{Region: cfg.Region}); err != nil {
		t.Fatal(err)
	}
}
