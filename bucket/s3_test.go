package bucket_test

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/prometheus/common/model"

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
		Creds:        credentials.NewStaticV4(cfg.AccessKey, string(cfg.SecretKey), ""),
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
	t.Setenv("AWS_SECRET_ACCESS_KEY", string(cfg.SecretKey))
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

// A prefix keeps every object of the bucket under it, for every operation,
// while callers use the same names as without one.
func TestS3Prefix(t *testing.T) {
	srv := buckettest.StartS3Server(t)
	prefixed := func(t *testing.T, cfg bucket.S3Config, prefix string) bucket.Bucket {
		bkt, err := bucket.New(bucket.Config{Type: bucket.TypeS3, S3: cfg, Prefix: prefix}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = bkt.Close() })
		return bkt
	}
	buckettest.Conformance(t, func(t *testing.T) bucket.Bucket {
		return prefixed(t, srv.CreateBucket(t), "team-a/atoll")
	})

	ctx := t.Context()
	cfg := srv.CreateBucket(t)
	pb := prefixed(t, cfg, "/team-a/atoll/")
	plain := newS3Bucket(t, cfg)
	for _, name := range []string{"01J5/meta.json", "01J5/chunks/000001", "atoll-compactor-lease.json"} {
		if err := pb.Upload(ctx, name, strings.NewReader(name), int64(len(name))); err != nil {
			t.Fatal(err)
		}
	}
	if err := plain.Upload(ctx, "outside", strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}
	var raw []string
	if err := plain.Iter(ctx, "", func(n string) error { raw = append(raw, n); return nil }, true); err != nil {
		t.Fatal(err)
	}
	slices.Sort(raw)
	want := []string{"outside", "team-a/atoll/01J5/chunks/000001", "team-a/atoll/01J5/meta.json", "team-a/atoll/atoll-compactor-lease.json"}
	if !slices.Equal(raw, want) {
		t.Errorf("objects in the bucket: %q, want %q", raw, want)
	}
	var seen []string
	if err := pb.Iter(ctx, "", func(n string) error { seen = append(seen, n); return nil }, false); err != nil {
		t.Fatal(err)
	}
	slices.Sort(seen)
	if !slices.Equal(seen, []string{"01J5/", "atoll-compactor-lease.json"}) {
		t.Errorf("the prefixed bucket lists %q", seen)
	}
	if ok, _ := pb.Exists(ctx, "outside"); ok {
		t.Error("the prefixed bucket sees an object outside its prefix")
	}
	if !strings.HasSuffix(pb.Name(), "/team-a/atoll") {
		t.Errorf("Name() = %q does not show the prefix", pb.Name())
	}
}

// http_config reaches the transport: a server whose certificate is not
// trusted is refused, unless insecure_skip_verify or the CA in tls_config
// says otherwise.
func TestS3HTTPConfigTLS(t *testing.T) {
	srv := buckettest.StartTLSS3Server(t)
	cfg := srv.CreateBucket(t)
	cfg.MaxRetries = 1
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := newS3Bucket(t, cfg).Upload(ctx, "x", strings.NewReader("x"), 1); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("upload to a server with an untrusted certificate: %v, want a certificate error", err)
	}
	for name, hc := range map[string]bucket.S3HTTPConfig{
		"insecure_skip_verify": {InsecureSkipVerify: true},
		"tls_config ca_file":   {TLSConfig: bucket.S3TLSConfig{CAFile: srv.CAFile}, ResponseHeaderTimeout: model.Duration(10 * time.Second), MaxIdleConns: 2},
	} {
		c := cfg
		c.HTTPConfig = hc
		bkt := newS3Bucket(t, c)
		if err := bkt.Upload(ctx, name, strings.NewReader(name), int64(len(name))); err != nil {
			t.Errorf("%s: upload: %v", name, err)
		}
	}
}

// Server-side encryption reaches the wire: every upload asks the server to
// encrypt, with the KMS key and context of SSE-KMS. (versitygw ignores the
// headers, so they are read on the way, by a proxy in front of it.)
func TestS3ServerSideEncryptionIsSent(t *testing.T) {
	srv := buckettest.StartS3Server(t)
	target, err := url.Parse("http://" + srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mtx  sync.Mutex
		puts []http.Header
	)
	rp := httputil.NewSingleHostReverseProxy(target)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			mtx.Lock()
			puts = append(puts, r.Header.Clone())
			mtx.Unlock()
		}
		rp.ServeHTTP(w, r)
	}))
	defer proxy.Close()

	for _, tc := range []struct {
		sse  bucket.S3SSEConfig
		want map[string]string
	}{
		{bucket.S3SSEConfig{Type: bucket.SSES3}, map[string]string{"X-Amz-Server-Side-Encryption": "AES256"}},
		{bucket.S3SSEConfig{Type: bucket.SSEKMS, KMSKeyID: "key-1"}, map[string]string{
			"X-Amz-Server-Side-Encryption": "aws:kms", "X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id": "key-1",
		}},
	} {
		cfg := srv.CreateBucket(t)
		cfg.Endpoint = strings.TrimPrefix(proxy.URL, "http://")
		cfg.SSEConfig = tc.sse
		mtx.Lock()
		puts = nil
		mtx.Unlock()
		if err := newS3Bucket(t, cfg).Upload(t.Context(), "enc", strings.NewReader("secret data"), 11); err != nil {
			t.Fatalf("%s: upload: %v", tc.sse.Type, err)
		}
		mtx.Lock()
		if len(puts) != 1 {
			t.Fatalf("%s: %d PUT requests seen", tc.sse.Type, len(puts))
		}
		for k, v := range tc.want {
			if got := puts[0].Get(k); got != v {
				t.Errorf("%s: upload header %s = %q, want %q", tc.sse.Type, k, got, v)
			}
		}
		mtx.Unlock()
	}
}

// CheckBucket tells a bucket that does not exist and a server that cannot
// be reached from a usable bucket, in words an operator can act on.
func TestCheckBucket(t *testing.T) {
	srv := buckettest.StartS3Server(t)
	cfg := srv.CreateBucket(t)
	cfg.MaxRetries = 1
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := bucket.Check(ctx, newS3Bucket(t, cfg)); err != nil {
		t.Fatalf("existing empty bucket: %v", err)
	}
	missing := cfg
	missing.Bucket = "no-such-bucket"
	if err := bucket.Check(ctx, newS3Bucket(t, missing)); err == nil || !strings.Contains(err.Error(), `the bucket "no-such-bucket" does not exist`) {
		t.Errorf("missing bucket: %v", err)
	}
	bkt := newS3Bucket(t, cfg)
	srv.Stop()
	if err := bucket.Check(ctx, bkt); err == nil || !strings.Contains(err.Error(), "cannot reach the S3 endpoint") {
		t.Errorf("stopped server: %v", err)
	}
}
