package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/atoll-metrics/atoll/block"
	"github.com/atoll-metrics/atoll/bucket"
	"github.com/atoll-metrics/atoll/internal/blockgen"
	"github.com/atoll-metrics/atoll/internal/e2eproc"
)

// TestCompactSurvivesKill9 SIGKILLs `atoll compact` at random points of its
// work several times, restarts it, lets a last run finish, and checks the
// bucket: no overlapping live blocks in any group and resolution, every
// generated sample present exactly once, downsampled counts adding up to
// the raw samples.
func TestCompactSurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bucketDir := filepath.Join(dir, "bucket")
	bkt, err := bucket.NewFilesystem(bucketDir)
	if err != nil {
		t.Fatal(err)
	}
	defer bkt.Close()
	cfg := blockgen.Config{Duration: 15 * 24 * time.Hour, Interval: 2 * time.Minute, Series: 6, HistogramSeries: 2, Seed: 3}
	if _, err := blockgen.Generate(ctx, bkt, t.TempDir(), cfg); err != nil {
		t.Fatal(err)
	}
	cfg = cfg.WithDefaults()
	objstore := filepath.Join(dir, "bucket.yml")
	if err := os.WriteFile(objstore, fmt.Appendf(nil, "type: FILESYSTEM\nconfig:\n  directory: %s\n", bucketDir), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"compact",
		"--objstore.config-file=" + objstore,
		"--data-dir=" + filepath.Join(dir, "scratch"),
		"--delete-delay=0s",
		"--lease.duration=10s",
		"--lease.holder=e2e",
		"--log.level=debug",
	}

	rng := rand.New(rand.NewPCG(1, 2))
	killed := 0
	for i := range 6 {
		p := e2eproc.Start(t, fmt.Sprintf("compact-%d", i), atollBinary, args...)
		select {
		case <-p.Done():
			t.Logf("run %d finished before the kill", i)
		case <-time.After(time.Duration(300+rng.IntN(2500)) * time.Millisecond):
			p.Kill()
			killed++
		}
	}
	if killed == 0 {
		t.Fatal("no run was killed mid-way; the bucket is too small for this test")
	}
	for i := range 2 {
		// The last run finishes the work; one more finds nothing to do.
		out, err := exec.CommandContext(ctx, atollBinary, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("final run %d: %v\n%s", i, err, tail(string(out), 4096))
		}
	}

	set, err := block.NewFetcher(bkt, nil).Fetch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	live := set.Visible(block.UnlessDeletionMarked(time.Now(), 0))
	byRes := map[int64][]*block.Block{}
	groups := map[string][]*block.Block{}
	for _, b := range live {
		if b.NoCompact != nil {
			t.Errorf("block %s marked no-compact: %+v", b.ID(), b.NoCompact)
		}
		byRes[b.Resolution()] = append(byRes[b.Resolution()], b)
		// A group: the external labels without the replica label, and
		// the resolution.
		g := fmt.Sprintf("%s@%d", labels.NewBuilder(b.Meta.ExternalLabels()).Del("receive_replica").Labels(), b.Resolution())
		groups[g] = append(groups[g], b)
	}
	for g, bs := range groups {
		slices.SortFunc(bs, func(a, b *block.Block) int { return int(a.Meta.MinTime - b.Meta.MinTime) })
		for i := 1; i < len(bs); i++ {
			if bs[i].Meta.MinTime < bs[i-1].Meta.MaxTime {
				t.Errorf("group %s: live blocks %s and %s overlap", g, bs[i-1].ID(), bs[i].ID())
			}
		}
	}
	if len(byRes[block.Resolution5m]) == 0 || len(byRes[block.Resolution1h]) == 0 {
		t.Errorf("downsampling incomplete: %d 5m and %d 1h blocks", len(byRes[block.Resolution5m]), len(byRes[block.Resolution1h]))
	}

	raw := readBlocks(t, ctx, bkt, byRes[block.ResolutionRaw], nil)
	for _, s := range cfg.AllSeries() {
		var want []int64
		iv := cfg.Interval.Milliseconds()
		for ts := cfg.MinTime(); ts < cfg.MaxTime(); ts += iv {
			if cfg.InTruth(ts) {
				want = append(want, ts)
			}
		}
		got := raw[s.Labels.String()]
		if !slices.Equal(got.ts, want) {
			t.Errorf("series %s: %d samples, want %d (each generated scrape once)", s.Labels, len(got.ts), len(want))
			continue
		}
		for i, ts := range got.ts {
			if s.Kind == blockgen.Histogram {
				if got.counts[i] != float64(cfg.Histogram(s, ts).Count) {
					t.Errorf("series %s at %d: histogram count %v, want %v", s.Labels, ts, got.counts[i], cfg.Histogram(s, ts).Count)
					break
				}
			} else if got.counts[i] != cfg.Float(s, ts) {
				t.Errorf("series %s at %d: %v, want %v", s.Labels, ts, got.counts[i], cfg.Float(s, ts))
				break
			}
		}
		// Downsampled counts add up to the raw samples they cover.
		for _, res := range []int64{block.Resolution5m, block.Resolution1h} {
			counts := readBlocks(t, ctx, bkt, byRes[res], labels.MustNewMatcher(labels.MatchEqual, block.AggregateLabel, block.AggrCount))
			c := counts[s.Labels.String()]
			var sum float64
			for _, v := range c.counts {
				sum += v
			}
			var covered float64
			for _, b := range byRes[res] {
				for _, ts := range want {
					if ts >= b.Meta.MinTime && ts < b.Meta.MaxTime {
						covered++
					}
				}
			}
			if sum != covered {
				t.Errorf("series %s resolution %d: counts add up to %v, raw samples covered %v", s.Labels, res, sum, covered)
			}
		}
	}
}

// TestCompactRefusesSecondCompactor starts a compactor that keeps running,
// then a second one on the same bucket: it must exit non-zero and say why.
func TestCompactRefusesSecondCompactor(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	dir := t.TempDir()
	bucketDir := filepath.Join(dir, "bucket")
	inline := fmt.Sprintf("type: FILESYSTEM\nconfig:\n  directory: %s\n", bucketDir)
	port := e2eproc.Ports(t, 1)[0]
	first := e2eproc.Start(t, "compact-first", atollBinary, "compact", "--wait", "--wait-interval=1s",
		"--objstore.config="+inline, "--data-dir="+filepath.Join(dir, "a"),
		fmt.Sprintf("--http-address=127.0.0.1:%d", port), "--lease.holder=first", "--lease.duration=30s")
	first.WaitReady(fmt.Sprintf("http://127.0.0.1:%d/-/ready", port), 30*time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, atollBinary, "compact", "--objstore.config="+inline,
		"--data-dir="+filepath.Join(dir, "b"), "--lease.holder=second").CombinedOutput()
	var ee *exec.ExitError
	if err == nil || !errors.As(err, &ee) || ee.ExitCode() == 0 {
		t.Fatalf("second compactor: err %v, want a non-zero exit\n%s", err, out)
	}
	if !strings.Contains(string(out), "another compactor is running on this bucket") || !strings.Contains(string(out), `holder \"first\"`) {
		t.Errorf("second compactor's message does not say who holds the bucket:\n%s", out)
	}
	first.Stop(10 * time.Second)
}

// TestCompactRefusesSecondCompactorOnSameHost runs two compactors on one
// host with their default holder id (the host name): the second must not
// take the lease the first keeps renewing, and must exit non-zero naming
// it. Once the first is SIGKILLed, a third one with the same id takes the
// lease over as soon as its renewals have stopped, before it expires.
func TestCompactRefusesSecondCompactorOnSameHost(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	host := defaultInstanceID()
	dir := t.TempDir()
	inline := fmt.Sprintf("type: FILESYSTEM\nconfig:\n  directory: %s\n", filepath.Join(dir, "bucket"))
	port := e2eproc.Ports(t, 1)[0]
	const leaseDuration = 8 * time.Second
	first := e2eproc.Start(t, "compact-first", atollBinary, "compact", "--wait", "--wait-interval=1s",
		"--objstore.config="+inline, "--data-dir="+filepath.Join(dir, "a"),
		fmt.Sprintf("--http-address=127.0.0.1:%d", port), "--lease.duration="+leaseDuration.String())
	readyURL := fmt.Sprintf("http://127.0.0.1:%d/-/ready", port)
	first.WaitReady(readyURL, 30*time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, atollBinary, "compact", "--objstore.config="+inline,
		"--data-dir="+filepath.Join(dir, "b")).CombinedOutput()
	var ee *exec.ExitError
	if err == nil || !errors.As(err, &ee) || ee.ExitCode() == 0 {
		t.Fatalf("second compactor on the same host: err %v, want a non-zero exit\n%s", err, out)
	}
	if !strings.Contains(string(out), "another compactor is running on this bucket") || !strings.Contains(string(out), fmt.Sprintf(`holder \"%s\"`, host)) {
		t.Errorf("second compactor's message does not name the live holder %q:\n%s", host, out)
	}
	if first.Exited() {
		t.Fatalf("the first compactor stopped:\n%s", tail(first.Output().String(), 2048))
	}
	first.WaitReady(readyURL, 5*time.Second)

	first.Kill()
	killed := time.Now()
	out, err = exec.CommandContext(ctx, atollBinary, "compact", "--objstore.config="+inline,
		"--data-dir="+filepath.Join(dir, "c")).CombinedOutput()
	if err != nil {
		t.Fatalf("compactor restarted after a SIGKILL: %v\n%s", err, out)
	}
	if took := time.Since(killed); took >= leaseDuration {
		t.Errorf("the restarted compactor took %v to take over, the whole lease duration: renewals stopping should be enough", took)
	}
	if !strings.Contains(string(out), "renewals stopped") {
		t.Errorf("the restarted compactor does not say it took over a stale lease of its own:\n%s", out)
	}
}

type seriesValues struct {
	ts     []int64
	counts []float64 // float values, or histogram counts
}

// readBlocks reads every generated series of the blocks, keyed by labels
// without __aggr__. matcher narrows the series (nil reads raw series).
func readBlocks(t *testing.T, ctx context.Context, bkt bucket.Bucket, bs []*block.Block, matcher *labels.Matcher) map[string]seriesValues {
	t.Helper()
	dir := t.TempDir()
	var qs []storage.Querier
	for _, b := range bs {
		d, err := block.Download(ctx, bkt, b.ID(), dir)
		if err != nil {
			t.Fatal(err)
		}
		ob, err := tsdb.OpenBlock(nil, d, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ob.Close()
		q, err := tsdb.NewBlockQuerier(ob, b.Meta.MinTime, b.Meta.MaxTime)
		if err != nil {
			t.Fatal(err)
		}
		qs = append(qs, q)
	}
	q := storage.NewMergeQuerier(qs, nil, storage.ChainedSeriesMerge)
	defer q.Close()
	ms := []*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, "series", ".+")}
	if matcher != nil {
		ms = append(ms, matcher)
	}
	set := q.Select(ctx, true, nil, ms...)
	out := map[string]seriesValues{}
	var it chunkenc.Iterator
	for set.Next() {
		s := set.At()
		var sv seriesValues
		it = s.Iterator(it)
		for typ := it.Next(); typ != chunkenc.ValNone; typ = it.Next() {
			if typ == chunkenc.ValFloat {
				ts, v := it.At()
				sv.ts, sv.counts = append(sv.ts, ts), append(sv.counts, v)
			} else {
				ts, h := it.AtFloatHistogram(nil)
				sv.ts, sv.counts = append(sv.ts, ts), append(sv.counts, h.Count)
			}
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
		out[labels.NewBuilder(s.Labels()).Del(block.AggregateLabel).Labels().String()] = sv
	}
	if err := set.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
