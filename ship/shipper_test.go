package ship_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/atoll-metrics/atoll/block"
	"github.com/atoll-metrics/atoll/bucket"
	"github.com/atoll-metrics/atoll/bucket/buckettest"
	"github.com/atoll-metrics/atoll/internal/e2eproc"
	"github.com/atoll-metrics/atoll/internal/metrictest"
	"github.com/atoll-metrics/atoll/ship"
)

// blockRange is the test TSDB's block length; samples use synthetic
// timestamps, so an hour of data costs nothing.
const blockRange = time.Hour

// openTSDB opens a TSDB that cuts level-1 blocks of blockRange and never
// compacts them further, as a receiver runs it.
func openTSDB(t *testing.T) *tsdb.DB {
	t.Helper()
	opts := tsdb.DefaultOptions()
	opts.MinBlockDuration = blockRange.Milliseconds()
	opts.MaxBlockDuration = blockRange.Milliseconds()
	db, err := tsdb.Open(t.TempDir(), slog.New(slog.DiscardHandler), nil, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.DisableCompactions()
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// appendAndCut appends a sample per minute for three series over [from, to)
// and persists every block the head has ready. TSDB keeps the last 1.5 block
// ranges in the head, so data up to 4.5h yields blocks up to 3h.
func appendAndCut(t *testing.T, db *tsdb.DB, from, to time.Duration) {
	t.Helper()
	app := db.AppenderV2(t.Context())
	for ts := from; ts < to; ts += time.Minute {
		for i := range 3 {
			ls := labels.FromStrings("__name__", "up", "instance", fmt.Sprintf("host-%d", i))
			if _, err := app.Append(0, ls, 0, ts.Milliseconds(), float64(ts/time.Minute), nil, nil, storage.AppendV2Options{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := db.Compact(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func localBlockIDs(t *testing.T, db *tsdb.DB) []ulid.ULID {
	t.Helper()
	var ids []ulid.ULID
	for _, b := range db.Blocks() {
		ids = append(ids, b.Meta().ULID)
	}
	slices.SortFunc(ids, ulid.ULID.Compare)
	return ids
}

// recordingBucket wraps a real bucket to see what the shipper uploads, and
// lets a test act right after an upload (to cut the bucket off mid-block).
type recordingBucket struct {
	bucket.Bucket
	mu          sync.Mutex
	uploads     []string
	afterUpload func(name string)
}

func (b *recordingBucket) Upload(ctx context.Context, name string, r io.Reader, size int64) error {
	err := b.Bucket.Upload(ctx, name, r, size)
	if err == nil {
		b.mu.Lock()
		b.uploads = append(b.uploads, name)
		hook := b.afterUpload
		b.mu.Unlock()
		if hook != nil {
			hook(name)
		}
	}
	return err
}

func (b *recordingBucket) uploaded() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.uploads)
}

func shippedIDs(s *ship.Shipper) []ulid.ULID {
	var ids []ulid.ULID
	for id := range s.Shipped() {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, ulid.ULID.Compare)
	return ids
}

func mustSync(t *testing.T, s *ship.Shipper) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	n, err := s.Sync(ctx)
	if err != nil {
		t.Fatalf("Sync: %v", err)
	}
	return n
}

// checkBlockInBucket compares a shipped block with its local directory:
// same files and bytes, and a meta.json with the thanos section filled in.
func checkBlockInBucket(t *testing.T, bkt bucket.Bucket, tsdbDir string, id ulid.ULID, ext labels.Labels) {
	t.Helper()
	ctx := t.Context()
	blockDir := filepath.Join(tsdbDir, id.String())

	var local []string
	err := filepath.WalkDir(blockDir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(blockDir, p)
		local = append(local, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var remote []string
	if err := bkt.Iter(ctx, id.String(), func(name string) error {
		remote = append(remote, strings.TrimPrefix(name, id.String()+"/"))
		return nil
	}, true); err != nil {
		t.Fatal(err)
	}
	slices.Sort(local)
	slices.Sort(remote)
	if !slices.Equal(local, remote) {
		t.Fatalf("block %s: bucket has %q, local dir has %q", id, remote, local)
	}
	for _, rel := range local {
		if rel == block.MetaFilename {
			continue
		}
		want, err := os.ReadFile(filepath.Join(blockDir, filepath.FromSlash(rel)))
		if err != nil {
			t.Fatal(err)
		}
		rc, err := bkt.Get(ctx, path.Join(id.String(), rel))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("block %s: %s differs from the local file (err %v)", id, rel, err)
		}
	}

	localMeta, err := block.ReadMetaFromDir(blockDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(localMeta.Thanos.Labels) != 0 || localMeta.Thanos.Source != "" {
		t.Errorf("block %s: the shipper modified the local meta.json: %+v", id, localMeta.Thanos)
	}
	set, err := block.NewFetcher(bkt, nil).Fetch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	shipped, ok := set.Blocks[id]
	if !ok {
		t.Fatalf("block %s not in the bucket", id)
	}
	m := shipped.Meta
	if m.ULID != id || m.MinTime != localMeta.MinTime || m.MaxTime != localMeta.MaxTime || m.Stats != localMeta.Stats {
		t.Errorf("block %s: bucket meta %+v differs from local %+v", id, m.BlockMeta, localMeta.BlockMeta)
	}
	if !labels.Equal(m.ExternalLabels(), ext) {
		t.Errorf("block %s: external labels %s, want %s", id, m.ExternalLabels(), ext)
	}
	if m.Thanos.Source != block.SourceReceive || m.Thanos.Downsample.Resolution != block.ResolutionRaw || m.Thanos.Version != 1 {
		t.Errorf("block %s: thanos section %+v", id, m.Thanos)
	}
	var files []string
	for _, f := range m.Thanos.Files {
		files = append(files, f.RelPath)
		if f.RelPath == block.MetaFilename {
			continue
		}
		fi, err := os.Stat(filepath.Join(blockDir, filepath.FromSlash(f.RelPath)))
		if err != nil || fi.Size() != f.SizeBytes {
			t.Errorf("block %s: files lists %s with %d bytes, local file: %v", id, f.RelPath, f.SizeBytes, fi)
		}
	}
	if !slices.Equal(files, local) {
		t.Errorf("block %s: files lists %q, want %q", id, files, local)
	}
	if !slices.Equal(m.Thanos.SegmentFiles, []string{"000001"}) {
		t.Errorf("block %s: segment_files %q", id, m.Thanos.SegmentFiles)
	}
}

// checkMetaLast verifies that, per block, meta.json was the last upload.
func checkMetaLast(t *testing.T, uploads []string) {
	t.Helper()
	last := map[string]string{}
	for _, name := range uploads {
		id, rel, _ := strings.Cut(name, "/")
		if prev, ok := last[id]; ok && prev == block.MetaFilename {
			t.Errorf("block %s: %s uploaded after meta.json", id, rel)
		}
		last[id] = rel
	}
	for id, rel := range last {
		if rel != block.MetaFilename {
			t.Errorf("block %s: last upload was %s, want meta.json", id, rel)
		}
	}
}

func TestShipperShipsEachBlockOnce(t *testing.T) {
	db := openTSDB(t)
	appendAndCut(t, db, 0, 4*time.Hour+30*time.Minute)
	ids := localBlockIDs(t, db)
	if len(ids) != 3 {
		t.Fatalf("TSDB cut %d blocks, want 3", len(ids))
	}
	removeDecoys := addDecoyBlocks(t, db.Dir())

	fsBucket, err := bucket.NewFilesystem(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	bkt := &recordingBucket{Bucket: fsBucket}
	ext := labels.FromStrings("tenant", "team-a", "replica", "r1")
	newShipper := func(reg prometheus.Registerer) *ship.Shipper {
		s, err := ship.NewShipper(bkt, db.Dir(), nil, reg,
			ship.WithExternalLabels(ext))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	reg := prometheus.NewPedanticRegistry()
	s := newShipper(reg)
	if n := mustSync(t, s); n != 3 {
		t.Fatalf("first Sync uploaded %d blocks, want 3", n)
	}
	if got := shippedIDs(s); !slices.Equal(got, ids) {
		t.Fatalf("Shipped() = %v, want %v", got, ids)
	}
	for _, id := range ids {
		checkBlockInBucket(t, bkt, db.Dir(), id, ext)
	}
	checkMetaLast(t, bkt.uploaded())
	if got := metrictest.Value(t, reg, "atoll_shipper_uploads_total"); got != 3 {
		t.Errorf("atoll_shipper_uploads_total = %v, want 3", got)
	}
	if got := metrictest.Value(t, reg, "atoll_shipper_last_successful_upload_time_seconds"); got < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("atoll_shipper_last_successful_upload_time_seconds = %v", got)
	}
	uploadsAfterFirst := len(bkt.uploaded())

	steps := []struct {
		name    string
		prepare func()
	}{
		{"same shipper again", func() {}},
		{"restarted shipper", func() { s = newShipper(nil) }},
		{"restarted shipper without its state file", func() {
			if err := os.Remove(filepath.Join(db.Dir(), "atoll-shipper.json")); err != nil {
				t.Fatal(err)
			}
			s = newShipper(nil)
			if len(s.Shipped()) != 0 {
				t.Fatalf("Shipped() = %v without a state file, want empty before Sync", s.Shipped())
			}
		}},
	}
	for _, step := range steps {
		step.prepare()
		if n := mustSync(t, s); n != 0 {
			t.Errorf("%s: Sync uploaded %d blocks, want 0", step.name, n)
		}
		if got := len(bkt.uploaded()); got != uploadsAfterFirst {
			t.Errorf("%s: %d uploads, want none beyond the first Sync's %d", step.name, got, uploadsAfterFirst)
		}
		if got := shippedIDs(s); !slices.Equal(got, ids) {
			t.Errorf("%s: Shipped() = %v, want %v", step.name, got, ids)
		}
	}

	// New data: only the new block goes up. TSDB would refuse to
	// reload with the decoys in place.
	removeDecoys()
	appendAndCut(t, db, 4*time.Hour+30*time.Minute, 5*time.Hour+30*time.Minute)
	all := localBlockIDs(t, db)
	if len(all) != 4 {
		t.Fatalf("TSDB has %d blocks, want 4", len(all))
	}
	if n := mustSync(t, s); n != 1 {
		t.Errorf("Sync after a new block uploaded %d, want 1", n)
	}
	checkBlockInBucket(t, bkt, db.Dir(), all[3], ext)

	// The owner deletes a shipped block; the shipper forgets it.
	if err := os.RemoveAll(filepath.Join(db.Dir(), all[0].String())); err != nil {
		t.Fatal(err)
	}
	mustSync(t, s)
	if got := shippedIDs(newShipper(nil)); !slices.Equal(got, all[1:]) {
		t.Errorf("after local deletion, persisted Shipped() = %v, want %v", got, all[1:])
	}
}

// addDecoyBlocks adds directories the shipper must leave alone: a block TSDB
// is still writing, a ULID directory without meta.json, a block compacted
// beyond level 1, and a block without samples. It returns a func removing
// them.
func addDecoyBlocks(t *testing.T, dir string) (remove func()) {
	t.Helper()
	newID := func() ulid.ULID { return ulid.Make() }
	var dirs []string
	writeBlock := func(name string, meta *block.Meta) {
		bd := filepath.Join(dir, name)
		dirs = append(dirs, bd)
		if err := os.MkdirAll(filepath.Join(bd, "chunks"), 0o755); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"chunks/000001", "index"} {
			if err := os.WriteFile(filepath.Join(bd, f), []byte("decoy"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if meta != nil {
			if err := block.WriteMetaToDir(bd, meta); err != nil {
				t.Fatal(err)
			}
		}
	}
	meta := func(id ulid.ULID, level int, samples uint64) *block.Meta {
		return &block.Meta{BlockMeta: tsdb.BlockMeta{
			ULID: id, MinTime: 0, MaxTime: 1, Version: 1,
			Stats:      tsdb.BlockStats{NumSamples: samples},
			Compaction: tsdb.BlockMetaCompaction{Level: level},
		}}
	}
	inProgress := newID()
	writeBlock(inProgress.String()+".tmp-for-creation", meta(inProgress, 1, 10))
	writeBlock(newID().String(), nil)
	compacted := newID()
	writeBlock(compacted.String(), meta(compacted, 2, 10))
	empty := newID()
	writeBlock(empty.String(), meta(empty, 1, 0))
	return func() {
		for _, d := range dirs {
			if err := os.RemoveAll(d); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// A bucket outage in the middle of a block delays shipping but loses
// nothing, and the half-uploaded block stays invisible to readers.
func TestShipperSurvivesBucketOutage(t *testing.T) {
	srv := buckettest.StartS3Server(t)
	cfg := srv.CreateBucket(t)
	cfg.MaxRetries = 1 // fail fast while the server is down
	s3, err := bucket.New(bucket.Config{Type: bucket.TypeS3, S3: cfg}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s3.Close()
	bkt := &recordingBucket{Bucket: s3}

	var logs e2eproc.Output
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	reg := prometheus.NewPedanticRegistry()
	db := openTSDB(t)
	ext := labels.FromStrings("tenant", "t1")
	s, err := ship.NewShipper(bkt, db.Dir(), logger, reg, ship.WithExternalLabels(ext))
	if err != nil {
		t.Fatal(err)
	}

	appendAndCut(t, db, 0, 3*time.Hour+30*time.Minute)
	before := localBlockIDs(t, db)
	if n := mustSync(t, s); n != 2 || len(before) != 2 {
		t.Fatalf("Sync uploaded %d of %d blocks, want 2 of 2", n, len(before))
	}

	appendAndCut(t, db, 3*time.Hour+30*time.Minute, 6*time.Hour+30*time.Minute)
	all := localBlockIDs(t, db)
	if len(all) != 5 {
		t.Fatalf("TSDB has %d blocks, want 5", len(all))
	}
	// The server dies right after the first chunk file of the next block.
	var once sync.Once
	bkt.mu.Lock()
	bkt.afterUpload = func(name string) {
		if strings.HasSuffix(name, "/chunks/000001") {
			once.Do(srv.Stop)
		}
	}
	bkt.mu.Unlock()

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	n, err := s.Sync(ctx)
	if err == nil || n != 0 {
		t.Fatalf("Sync during the outage = %d, %v; want 0 and an error", n, err)
	}
	if got := shippedIDs(s); !slices.Equal(got, before) {
		t.Errorf("Shipped() during the outage = %v, want only %v", got, before)
	}
	if got := metrictest.Value(t, reg, "atoll_shipper_upload_failures_total"); got != 3 {
		t.Errorf("atoll_shipper_upload_failures_total = %v, want 3 (one per pending block)", got)
	}
	if !strings.Contains(logs.String(), "block upload failed") {
		t.Errorf("no log line for the failed upload; logs:\n%s", logs.String())
	}

	srv.Start()
	partial := all[2]
	if ok, err := bkt.Exists(ctx, partial.String()+"/chunks/000001"); !ok || err != nil {
		t.Fatalf("the interrupted block's chunks should be in the bucket: %v, %v", ok, err)
	}
	if ok, err := bkt.Exists(ctx, partial.String()+"/meta.json"); ok || err != nil {
		t.Errorf("the interrupted block has a meta.json (%v, %v): readers would see a partial block", ok, err)
	}

	// A restart in between must not matter either.
	s, err = ship.NewShipper(bkt, db.Dir(), logger, nil, ship.WithExternalLabels(ext))
	if err != nil {
		t.Fatal(err)
	}
	if n := mustSync(t, s); n != 3 {
		t.Errorf("Sync after the outage uploaded %d blocks, want 3", n)
	}
	if got := shippedIDs(s); !slices.Equal(got, all) {
		t.Errorf("Shipped() = %v, want %v", got, all)
	}
	for _, id := range all {
		checkBlockInBucket(t, bkt, db.Dir(), id, ext)
	}
}

func TestShipperRun(t *testing.T) {
	db := openTSDB(t)
	bkt, err := bucket.NewFilesystem(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ship.NewShipper(bkt, db.Dir(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Run(t.Context(), 0); err == nil {
		t.Error("Run with a zero interval succeeded")
	}

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, 10*time.Millisecond) }()

	appendAndCut(t, db, 0, 4*time.Hour+30*time.Minute)
	want := localBlockIDs(t, db)
	deadline := time.After(30 * time.Second)
	for !slices.Equal(shippedIDs(s), want) {
		select {
		case <-deadline:
			t.Fatalf("Run shipped %v, want %v", shippedIDs(s), want)
		case <-time.After(10 * time.Millisecond):
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run returned %v after cancel, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}
