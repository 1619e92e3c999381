package bucket_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atoll-metrics/atoll/bucket"
	"github.com/atoll-metrics/atoll/bucket/buckettest"
)

func TestPrefixedFilesystemBucketConformance(t *testing.T) {
	buckettest.Conformance(t, func(t *testing.T) bucket.Bucket {
		cfg := bucket.ConfigForDir(filepath.Join(t.TempDir(), "bucket"))
		cfg.Prefix = "a/b"
		bkt, err := bucket.New(cfg, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		return bkt
	})
}

func TestFilesystemBucketConformance(t *testing.T) {
	buckettest.Conformance(t, func(t *testing.T) bucket.Bucket {
		bkt, err := bucket.NewFilesystem(filepath.Join(t.TempDir(), "bucket"))
		if err != nil {
			t.Fatal(err)
		}
		return bkt
	})
}

func TestFilesystemBucketStaysInsideRoot(t *testing.T) {
	ctx := t.Context()
	parent := t.TempDir()
	root := filepath.Join(parent, "bucket")
	bkt, err := bucket.NewFilesystem(root)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(parent, "secret"), []byte("s"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"../secret", "a/../../secret", filepath.Join(parent, "secret")} {
		if rc, err := bkt.Get(ctx, name); err == nil {
			rc.Close()
			t.Errorf("Get(%q) read outside the bucket root", name)
		}
		if err := bkt.Upload(ctx, name, strings.NewReader("x"), 1); err == nil {
			t.Errorf("Upload(%q) wrote outside the bucket root", name)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(parent, "secret")); string(got) != "s" {
		t.Errorf("file outside the root changed to %q", got)
	}
}

// A failed upload must leave neither a partial object nor a stray file.
func TestFilesystemBucketFailedUploadLeavesNothing(t *testing.T) {
	root := t.TempDir()
	bkt, err := bucket.NewFilesystem(root)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := bkt.Upload(ctx, "blk/index", strings.NewReader("short"), 100); err == nil {
		t.Fatal("Upload with a short reader succeeded")
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if err := bkt.Upload(canceled, "blk/index", strings.NewReader("x"), 1); err == nil {
		t.Fatal("Upload with a canceled context succeeded")
	}
	if ok, err := bkt.Exists(ctx, "blk/index"); ok || err != nil {
		t.Errorf("Exists after failed uploads = %v, %v", ok, err)
	}
	var names []string
	err = bkt.Iter(ctx, "", func(n string) error { names = append(names, n); return nil }, true)
	if err != nil || len(names) != 0 {
		t.Errorf("Iter after failed uploads = %q, %v; want nothing", names, err)
	}
	staged, _ := os.ReadDir(filepath.Join(root, ".atoll-uploads"))
	if len(staged) != 0 {
		t.Errorf("%d staged files left behind", len(staged))
	}
}

// Crashes leave staged uploads behind; reopening the bucket clears old ones
// and keeps recent ones, which may belong to another live process.
func TestFilesystemBucketRemovesStaleUploads(t *testing.T) {
	root := t.TempDir()
	staging := filepath.Join(root, ".atoll-uploads")
	if err := os.MkdirAll(staging, 0o755); err != nil {
		t.Fatal(err)
	}
	old, recent := filepath.Join(staging, "upload-old"), filepath.Join(staging, "upload-recent")
	for _, p := range []string{old, recent} {
		if err := os.WriteFile(p, []byte("partial"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	longAgo := time.Now().Add(-48 * time.Hour)
	if err := os.Chtimes(old, longAgo, longAgo); err != nil {
		t.Fatal(err)
	}
	if _, err := bucket.NewFilesystem(root); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Errorf("stale staged upload survived: %v", err)
	}
	if _, err := os.Stat(recent); err != nil {
		t.Errorf("recent staged upload removed: %v", err)
	}
}
