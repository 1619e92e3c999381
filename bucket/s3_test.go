package bucket_test

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/atoll-metrics/atoll/bucket"
	"github.com/atoll-metrics/atoll/bucket/buckettest"
)

func newS3Bucket(t *testing.T, cfg bucket.S3Config) bucket.Bucket {
	t.Helper()
	bkt, err := bucket.New(bucket.Config{Type: bucket.TypeS3, S3: cfg}, nil, nil)
	if err != nil {
		t.Fatalf("NewBucket: %v", err)
	}
	t.Cleanup(func() { _ = bkt.Close() })
	return bkt
}

func TestS3BucketConformance(t *testing.T) {
	srv := buckettest.StartS3Server(t)
	buckettest.Conformance(t, func(t *testing.T) bucket.Bucket {
		return newS3Bucket(t, srv.CreateBucket(t))
	})
}

// Block chunk files are hundreds of MiB; they must go up in parts, and the
// store gateway reads them back by range, across part boundaries.
func TestS3MultipartUploadAndRangeReads(t *testing.T) {
	srv := buckettest.StartS3Server(t)
	cfg := srv.CreateBucket(t)
	cfg.PartSize = 5 << 20
	bkt := newS3Bucket(t, cfg)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	const size = 70 << 20
	data := make([]byte, size)
	rng := rand.NewChaCha8([32]byte{1})
	_, _ = rng.Read(data)
	path := filepath.Join(t.TempDir(), "000001")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := bkt.Upload(ctx, "blk/chunks/000001", f, size); err != nil {
		t.Fatalf("Upload: %v", err)
	}

	attrs, err := bkt.Attributes(ctx, "blk/chunks/000001")
	if err != nil || attrs.Size != size {
		t.Fatalf("Attributes = %+v, %v; want size %d", attrs, err, size)
	}
	// A multipart ETag ends in "-<parts>"; this proves the upload was split.
	if etag := rawETag(t, cfg, "blk/chunks/000001"); !strings.HasSuffix(etag, "-14") {
		t.Errorf("ETag %q does not show a 14-part upload", etag)
	}

	rc, err := bkt.Get(ctx, "blk/chunks/000001")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Get returned %d bytes (err %v), content equal: %v", len(got), err, bytes.Equal(got, data))
	}

	part := int64(cfg.PartSize)
	for _, r := range []struct{ off, length int64 }{
		{0, 100},
		{part - 10, 20},          // across the first part boundary
		{3*part - 1, 2*part + 2}, // spans whole parts
		{size - 7, 7},
		{size - 7, -1},
		{size - 3, 100}, // runs past the end
	} {
		rc, err := bkt.GetRange(ctx, "blk/chunks/000001", r.off, r.length)
		if err != nil {
			t.Fatalf("GetRange(%d, %d): %v", r.off, r.length, err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		end := int64(size)
		if r.length >= 0 {
			end = min(r.off+r.length, size)
		}
		if err != nil || !bytes.Equal(got, data[r.off:end]) {
			t.Errorf("GetRange(%d, %d) = %d bytes (err %v), want bytes [%d:%d]", r.off, r.length, len(got), err, r.off, end)
		}
	}

	// Unknown size: buffered part by part, never the whole object.
	small := data[:12<<20]
	if err := bkt.Upload(ctx, "blk/unknown-size", io.MultiReader(bytes.NewReader(small)), -1); err != nil {
		t.Fatalf("Upload(size -1): %v", err)
	}
	if etag := rawETag(t, cfg, "blk/unknown-size"); !strings.HasSuffix(etag, "-3") {
		t.Errorf("ETag %q does not show a 3-part upload", etag)
	}
	if attrs, err := bkt.Attributes(ctx, "blk/unknown-size"); err != nil || attrs.Size != int64(len(small)) {
		t.Errorf("Attributes = %+v, %v; want size %d", attrs, err, len(small))
	}
}

// rawETag asks S3 directly, since the Bucket interface rightly hides ETags.
func rawETag(t *testing.T, cfg bucket.S3Config, name string) string {
	t.Helper()
	c, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:        credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Region:       cfg.Region,
		BucketLookup: minio.BucketLookupPath,
	})
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.StatObject(t.Context(), cfg.Bucket, name, minio.StatObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return info.ETag
}

// Deployments on AWS pass credentials by environment or IAM role, never in
// the config file.
func TestS3CredentialsFromEnvironment(t *testing.T) {
	srv := buckettest.StartS3Server(t)
	cfg := srv.CreateBucket(t)
	t.Setenv("AWS_ACCESS_KEY_ID", cfg.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", cfg.SecretKey)
	cfg.AccessKey, cfg.SecretKey = "", ""
	bkt := newS3Bucket(t, cfg)
	ctx := t.Context()
	if err := bkt.Upload(ctx, "x", strings.NewReader("env"), 3); err != nil {
		t.Fatalf("Upload with environment credentials: %v", err)
	}

	t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong")
	bad := newS3Bucket(t, cfg)
	_, err := bad.Get(ctx, "x")
	if err == nil || bucket.IsNotFound(err) {
		t.Errorf("Get with wrong credentials: %v, want an access error (not 'not found')", err)
	}
}

// An unreachable endpoint is an error, never "not found": the shipper must
// not conclude a block is missing (or present) while the bucket is down.
func TestS3UnreachableIsNotNotFound(t *testing.T) {
	srv := buckettest.StartS3Server(t)
	cfg := srv.CreateBucket(t)
	cfg.MaxRetries = 1
	bkt := newS3Bucket(t, cfg)
	srv.Stop()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	ok, err := bkt.Exists(ctx, "anything")
	if err == nil || ok || bucket.IsNotFound(err) {
		t.Errorf("Exists against a stopped server = %v, %v; want an error", ok, err)
	}
	if _, err := bkt.Get(ctx, "anything"); err == nil || bucket.IsNotFound(err) {
		t.Errorf("Get against a stopped server = %v; want an error other than not found", err)
	}
}
