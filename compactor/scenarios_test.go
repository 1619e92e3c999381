package compactor_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/atoll-metrics/atoll/block"
	"github.com/atoll-metrics/atoll/bucket"
	"github.com/atoll-metrics/atoll/bucket/buckettest"
	"github.com/atoll-metrics/atoll/compactor"
	"github.com/atoll-metrics/atoll/internal/blockgen"
)

func TestLeaseExclusion(t *testing.T) {
	ctx := testContext(t, time.Minute)
	bkt := newBucket(t)
	now := time.Now()
	optsFor := func(holder string) compactor.Options {
		o := testOptions(t, now)
		o.Now = time.Now
		o.LeaseHolder = holder
		return o
	}

	// A keeps running; B is refused while A holds the lease.
	a := optsFor("a")
	a.Interval = time.Hour
	ca, err := compactor.New(bkt, a, testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	actx, stopA := context.WithCancel(ctx)
	aDone := make(chan error, 1)
	go func() { aDone <- ca.Run(actx) }()
	waitFor(t, 10*time.Second, ca.Ready)

	cb, err := compactor.New(bkt, optsFor("b"), testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	err = cb.Run(ctx)
	var held *compactor.LeaseHeldError
	if !errors.Is(err, compactor.ErrLeaseHeld) || !errors.As(err, &held) || held.Holder != "a" {
		t.Fatalf("second compactor: %v, want ErrLeaseHeld naming holder a", err)
	}

	// A compactor with A's own holder id is refused too: A keeps renewing,
	// so it is not an earlier run of the same compactor.
	csame, err := compactor.New(bkt, optsFor("a"), testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	err = csame.Run(ctx)
	if !errors.As(err, &held) || held.Holder != "a" || !held.SameHolder {
		t.Fatalf("second compactor with the holder id of the running one: %v, want ErrLeaseHeld naming holder a", err)
	}
	if !ca.Ready() {
		t.Fatal("A no longer holds the lease after a compactor with its holder id tried to take it")
	}

	// Renewals keep the lease alive past its duration.
	time.Sleep(3 * time.Second)
	if err := cb.Run(ctx); !errors.Is(err, compactor.ErrLeaseHeld) {
		t.Fatalf("after A's lease duration passed: %v, want ErrLeaseHeld (A renews)", err)
	}

	// Another process overwriting the lease makes A stop writing. (A renewal
	// in flight may overwrite the forged record once, so forge until A
	// notices.)
	forged := `{"version":1,"holder":"intruder","session":"x","expires":"` + time.Now().Add(time.Hour).UTC().Format(time.RFC3339) + `"}`
	deadline := time.After(10 * time.Second)
forge:
	for {
		if err := bkt.Upload(ctx, compactor.LeaseObject, strings.NewReader(forged), int64(len(forged))); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-aDone:
			if !errors.Is(err, compactor.ErrLeaseLost) {
				t.Fatalf("A after its lease was taken: %v, want ErrLeaseLost", err)
			}
			break forge
		case <-deadline:
			t.Fatal("A kept running after losing its lease")
		case <-time.After(300 * time.Millisecond):
		}
	}
	stopA()

	// An expired lease is taken over; a released one too.
	expired := `{"version":1,"holder":"intruder","session":"x","expires":"` + time.Now().Add(-time.Second).UTC().Format(time.RFC3339) + `"}`
	if err := bkt.Upload(ctx, compactor.LeaseObject, strings.NewReader(expired), int64(len(expired))); err != nil {
		t.Fatal(err)
	}
	if err := cb.Run(ctx); err != nil {
		t.Fatalf("taking over an expired lease: %v", err)
	}
	if ok, _ := bkt.Exists(ctx, compactor.LeaseObject); ok {
		t.Error("lease object left behind after a one-pass run")
	}

	// The same holder restarted takes over its own live lease whose
	// renewals stopped, well before it expires: at once when the last
	// renewal is old, after two renewal intervals when it is fresh.
	renewed := time.Now()
	const crashedLease = 6 * time.Second // renewed every 1.5s
	fresh := `{"version":1,"holder":"b","session":"crashed","renewed":"` + renewed.UTC().Format(time.RFC3339Nano) + `","expires":"` + renewed.Add(crashedLease).UTC().Format(time.RFC3339Nano) + `"}`
	if err := bkt.Upload(ctx, compactor.LeaseObject, strings.NewReader(fresh), int64(len(fresh))); err != nil {
		t.Fatal(err)
	}
	cb3, err := compactor.New(bkt, optsFor("b"), testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cb3.Run(ctx); err != nil {
		t.Fatalf("restarted holder, lease renewed just before the crash: %v", err)
	}
	if took := time.Since(renewed); took < crashedLease/2 || took >= crashedLease {
		t.Errorf("took over a %v lease %v after its last renewal, want after two renewal intervals (%v), before expiry", crashedLease, took, crashedLease/2)
	}
	live := `{"version":1,"holder":"b","session":"old","expires":"` + time.Now().Add(time.Hour).UTC().Format(time.RFC3339) + `"}`
	if err := bkt.Upload(ctx, compactor.LeaseObject, strings.NewReader(live), int64(len(live))); err != nil {
		t.Fatal(err)
	}
	cb2, err := compactor.New(bkt, optsFor("b"), testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cb2.Run(ctx); err != nil {
		t.Fatalf("restarted holder: %v", err)
	}
}

func waitFor(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestBrokenBlockMarkedNoCompact breaks one block in different ways: the
// compactor marks it no-compact, compacts the rest and reports success.
func TestBrokenBlockMarkedNoCompact(t *testing.T) {
	for _, tc := range []struct {
		name   string
		breaks func(ctx context.Context, bkt bucket.Bucket, id ulid.ULID) error
	}{
		{"missing chunks", func(ctx context.Context, bkt bucket.Bucket, id ulid.ULID) error {
			return bkt.Delete(ctx, path.Join(id.String(), "chunks", "000001"))
		}},
		{"garbage index", func(ctx context.Context, bkt bucket.Bucket, id ulid.ULID) error {
			junk := bytes.Repeat([]byte{0xab}, 4096)
			return bkt.Upload(ctx, path.Join(id.String(), "index"), bytes.NewReader(junk), int64(len(junk)))
		}},
		{"truncated chunks", func(ctx context.Context, bkt bucket.Bucket, id ulid.ULID) error {
			name := path.Join(id.String(), "chunks", "000001")
			rc, err := bkt.Get(ctx, name)
			if err != nil {
				return err
			}
			data, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				return err
			}
			data = data[:len(data)/3]
			return bkt.Upload(ctx, name, bytes.NewReader(data), int64(len(data)))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testContext(t, time.Minute)
			bkt := newBucket(t)
			cfg := blockgen.Config{Duration: 24 * time.Hour, Interval: 5 * time.Minute, Series: 4, Seed: 2}
			generate(t, ctx, bkt, cfg)
			before := liveBlocks(t, ctx, bkt)[block.ResolutionRaw]
			broken := before[5].ID()
			if err := tc.breaks(ctx, bkt, broken); err != nil {
				t.Fatal(err)
			}
			cfg = cfg.WithDefaults()
			runCompactor(t, ctx, bkt, testOptions(t, time.UnixMilli(cfg.MaxTime()).Add(time.Hour)))

			set, err := block.NewFetcher(bkt, nil).Fetch(ctx)
			if err != nil {
				t.Fatal(err)
			}
			b := set.Blocks[broken]
			if b == nil || b.NoCompact == nil {
				t.Fatalf("broken block %s: %+v, want a no-compact mark", broken, b)
			}
			if b.NoCompact.Reason == "" || b.NoCompact.Details == "" {
				t.Errorf("no-compact mark without reason or details: %+v", b.NoCompact)
			}
			// The day's other blocks were compacted: three 8h blocks plus
			// the broken one, which stays readable.
			live := liveBlocks(t, ctx, bkt)[block.ResolutionRaw]
			if len(live) != 4 {
				t.Errorf("%d live raw blocks, want 3 compacted and the broken one", len(live))
			}
		})
	}
}

// TestRetentionDeletesExactlyWhatIsPast applies retention per resolution
// and checks marks, the delete delay, and what is left.
func TestRetentionDeletesExactlyWhatIsPast(t *testing.T) {
	ctx := testContext(t, time.Minute)
	bkt := newBucket(t)
	cfg := blockgen.Config{Duration: 6 * day, Interval: 5 * time.Minute, Series: 2, HistogramSeries: 1, Seed: 4}
	generate(t, ctx, bkt, cfg)
	cfg = cfg.WithDefaults()
	now := time.UnixMilli(cfg.MaxTime()).Add(12 * time.Hour)
	opts := testOptions(t, now)
	opts.DeleteDelay = time.Hour
	opts.RetentionRaw = 3 * day
	opts.Retention5m = 4 * day
	runCompactor(t, ctx, bkt, opts)

	set, err := block.NewFetcher(bkt, nil).Fetch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cutoff := map[int64]int64{
		block.ResolutionRaw: now.Add(-opts.RetentionRaw).UnixMilli(),
		block.Resolution5m:  now.Add(-opts.Retention5m).UnixMilli(),
	}
	marked := 0
	for _, b := range set.Visible(block.UnlessDeletionMarked(now, 0)) {
		if c, ok := cutoff[b.Resolution()]; ok && b.Meta.MaxTime <= c {
			t.Errorf("block %s (resolution %d) ends at %d, before the cutoff %d, yet is live", b.ID(), b.Resolution(), b.Meta.MaxTime, c)
		}
	}
	for _, b := range set.Blocks {
		if b.Deletion == nil || b.Deletion.Details != "retention" {
			continue
		}
		marked++
		if b.Meta.MaxTime > cutoff[b.Resolution()] {
			t.Errorf("block %s marked for retention but ends at %d, after the cutoff %d", b.ID(), b.Meta.MaxTime, cutoff[b.Resolution()])
		}
	}
	// Raw: [0,2d) is past 3 days; 5m: [0,2d) is past 4 days.
	if marked != 2 {
		t.Errorf("%d blocks marked for retention, want 2", marked)
	}

	// After the delete delay the marked blocks go.
	opts.Now = func() time.Time { return now.Add(2 * time.Hour) }
	opts.DataDir = t.TempDir()
	runCompactor(t, ctx, bkt, opts)
	set, err = block.NewFetcher(bkt, nil).Fetch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range set.Blocks {
		if b.Deletion != nil {
			t.Errorf("block %s still in the bucket after the delete delay", b.ID())
		}
		if c, ok := cutoff[b.Resolution()]; ok && b.Meta.MaxTime <= c {
			t.Errorf("block %s past retention still in the bucket", b.ID())
		}
	}
	if got := len(set.Blocks); got != 2+2 {
		for _, b := range set.Blocks {
			t.Logf("left: %s res %d [%d, %d) deletion %+v", b.ID(), b.Resolution(), b.Meta.MinTime-cfg.MinTime(), b.Meta.MaxTime-cfg.MinTime(), b.Deletion)
		}
		t.Errorf("%d blocks left, want 2 raw and 2 5m", got)
	}
}

// TestLateUploadIsDeduplicated compacts two days, then uploads blocks late:
// a re-shipment of data already compacted, and a third replica. Vertical
// compaction merges them without duplicating a sample.
func TestLateUploadIsDeduplicated(t *testing.T) {
	ctx := testContext(t, time.Minute)
	bkt := newBucket(t)
	cfg := blockgen.Config{Duration: 2 * day, Interval: time.Minute, Series: 4, HistogramSeries: 1, Seed: 5}
	generate(t, ctx, bkt, cfg)
	cfg = cfg.WithDefaults()
	now := time.UnixMilli(cfg.MaxTime()).Add(time.Hour)
	runCompactor(t, ctx, bkt, testOptions(t, now))
	if n := len(liveBlocks(t, ctx, bkt)[block.ResolutionRaw]); n != 1 {
		t.Fatalf("%d raw blocks after the first pass, want one 2d block", n)
	}

	// Replica c ships 6h late data straddling an 8h boundary, and replica a
	// ships one block again.
	late := cfg
	late.Replicas = []string{"c"}
	late.Duration = 6 * time.Hour
	late.Start = time.UnixMilli(cfg.MinTime() + (12 * time.Hour).Milliseconds())
	late.BlockDuration = 6 * time.Hour
	generate(t, ctx, bkt, late)
	again := cfg
	again.Replicas = []string{"a"}
	again.Start = time.UnixMilli(cfg.MinTime() + (30 * time.Hour).Milliseconds())
	again.Duration = 2 * time.Hour
	again.Seed = cfg.Seed
	generate(t, ctx, bkt, again)

	runCompactor(t, ctx, bkt, testOptions(t, now))
	live := liveBlocks(t, ctx, bkt)
	if n := len(live[block.ResolutionRaw]); n != 1 {
		dumpLive(t, live, cfg.MinTime())
		t.Fatalf("%d raw blocks after the late uploads, want them merged into one", n)
	}
	raw := readAll(t, ctx, blocksQueryable(openBlocks(t, ctx, bkt, live[block.ResolutionRaw]), ""), cfg.MinTime(), cfg.MaxTime())
	checkTruth(t, cfg, raw)
	// The 5m block was made again from the merged raw block; the old one is
	// superseded and gone.
	if n := len(live[block.Resolution5m]); n != 1 {
		t.Errorf("%d 5m blocks, want 1", n)
	}
}

// TestCrashAfterUploadBeforeMarks leaves a bucket as a crash between a
// compacted block's upload and its inputs' deletion marks would: readers
// must not double count, and the next pass marks the inputs.
func TestCrashAfterUploadBeforeMarks(t *testing.T) {
	ctx := testContext(t, time.Minute)
	src := newBucket(t)
	cfg := blockgen.Config{Duration: day, Interval: 2 * time.Minute, Series: 3, HistogramSeries: 1, Seed: 6}
	generate(t, ctx, src, cfg)
	cfg = cfg.WithDefaults()
	crashed := newBucket(t)
	copyBucket(t, ctx, src, crashed)

	// Compact src, keeping the inputs (marked) for an hour.
	now := time.UnixMilli(cfg.MaxTime()).Add(time.Hour)
	opts := testOptions(t, now)
	opts.DeleteDelay = time.Hour
	runCompactor(t, ctx, src, opts)
	// Copy the compacted blocks, without marks, next to the unmarked inputs.
	err := src.Iter(ctx, "", func(name string) error {
		if strings.HasSuffix(name, block.DeletionMarkFilename) {
			return nil
		}
		if ok, _ := crashed.Exists(ctx, name); ok {
			return nil
		}
		return copyObject(ctx, src, crashed, name)
	}, true)
	if err != nil {
		t.Fatal(err)
	}
	live := liveBlocks(t, ctx, crashed)
	if n := len(live[block.ResolutionRaw]); n != 3 {
		t.Fatalf("readers see %d raw blocks, want the 3 compacted ones only", n)
	}
	raw := readAll(t, ctx, blocksQueryable(openBlocks(t, ctx, crashed, live[block.ResolutionRaw]), ""), cfg.MinTime(), cfg.MaxTime())
	checkTruth(t, cfg, raw)

	runCompactor(t, ctx, crashed, testOptions(t, now))
	set, err := block.NewFetcher(crashed, nil).Fetch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(set.Blocks); n != 3 {
		t.Errorf("%d blocks after the next pass, want the 3 compacted ones", n)
	}
}

func copyBucket(t *testing.T, ctx context.Context, from, to bucket.Bucket) {
	t.Helper()
	err := from.Iter(ctx, "", func(name string) error { return copyObject(ctx, from, to, name) }, true)
	if err != nil {
		t.Fatal(err)
	}
}

func copyObject(ctx context.Context, from, to bucket.Bucket, name string) error {
	rc, err := from.Get(ctx, name)
	if err != nil {
		return err
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return err
	}
	return to.Upload(ctx, name, bytes.NewReader(data), int64(len(data)))
}

// TestPartialBlocksCleaned removes an abandoned upload and finishes an
// interrupted deletion, and leaves a fresh upload alone.
func TestPartialBlocksCleaned(t *testing.T) {
	ctx := testContext(t, time.Minute)
	bkt := newBucket(t)
	put := func(name string) {
		if err := bkt.Upload(ctx, name, strings.NewReader("x"), 1); err != nil {
			t.Fatal(err)
		}
	}
	abandoned, deleting := ulid.MustNew(1, nil).String(), ulid.MustNew(2, nil).String()
	put(abandoned + "/chunks/000001")
	put(deleting + "/index")
	put(deleting + "/" + block.DeletionMarkFilename)

	// An hour from now, the objects are older than the minimum age.
	opts := testOptions(t, time.Now().Add(2*time.Hour))
	runCompactor(t, ctx, bkt, opts)
	for _, id := range []string{abandoned, deleting} {
		n := 0
		_ = bkt.Iter(ctx, id+"/", func(string) error { n++; return nil }, true)
		if n != 0 {
			t.Errorf("partial block %s: %d objects left", id, n)
		}
	}

	fresh := ulid.MustNew(3, nil).String()
	put(fresh + "/chunks/000001")
	runCompactor(t, ctx, bkt, testOptions(t, time.Now()))
	if ok, _ := bkt.Exists(ctx, fresh+"/chunks/000001"); !ok {
		t.Error("a fresh partial upload was deleted")
	}
}

// TestPassOverS3 makes one pass over a real S3 server.
func TestPassOverS3(t *testing.T) {
	ctx := testContext(t, 2*time.Minute)
	srv := buckettest.StartS3Server(t)
	bkt, err := bucket.New(bucket.Config{Type: bucket.TypeS3, S3: srv.CreateBucket(t)}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer bkt.Close()
	cfg := blockgen.Config{Duration: 2 * day, Interval: 2 * time.Minute, Series: 4, HistogramSeries: 1, Seed: 8}
	generate(t, ctx, bkt, cfg)
	cfg = cfg.WithDefaults()
	runCompactor(t, ctx, bkt, testOptions(t, time.UnixMilli(cfg.MaxTime()).Add(time.Hour)))
	live := liveBlocks(t, ctx, bkt)
	if len(live[block.ResolutionRaw]) != 1 || len(live[block.Resolution5m]) != 1 {
		dumpLive(t, live, cfg.MinTime())
		t.Fatalf("want one 2d raw block and its 5m version")
	}
	raw := readAll(t, ctx, blocksQueryable(openBlocks(t, ctx, bkt, live[block.ResolutionRaw]), ""), cfg.MinTime(), cfg.MaxTime())
	checkTruth(t, cfg, raw)
	checkAggregates(t, ctx, cfg, openBlocks(t, ctx, bkt, live[block.Resolution5m]), block.Resolution5m, cfg.MinTime(), cfg.MaxTime())
}
