package buckettest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"go/build"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/atoll-metrics/atoll/bucket"
)

// versitygwInstall is how developers and CI get the S3 server binary.
const versitygwInstall = "go install github.com/versity/versitygw/cmd/versitygw@v1.8.0"

// S3Server is a real S3-compatible server (versitygw serving a temporary
// directory) for tests that exercise S3 over the wire. Each bucket is a
// folder of the directory, so a stopped and restarted server keeps its
// objects, which lets tests simulate a bucket outage.
type S3Server struct {
	// Endpoint is host:port of the plain-http S3 API.
	Endpoint string
	// AccessKey and SecretKey are the server's root credentials.
	AccessKey string
	SecretKey string

	tb  testing.TB
	bin string
	dir string

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	output  *syncBuffer
	buckets atomic.Int32
}

// StartS3Server starts a versitygw process on a free loopback port, waits
// until it answers, and stops it when the test ends. The binary is looked up
// in PATH and in $(go env GOPATH)/bin; the test fails if it is missing.
func StartS3Server(tb testing.TB) *S3Server {
	tb.Helper()
	bin, err := findVersitygw()
	if err != nil {
		tb.Fatalf("S3 tests need versitygw: %v; `make tools` installs it (%s)", err, versitygwInstall)
	}
	s := &S3Server{
		Endpoint:  freeLoopbackAddr(tb),
		AccessKey: "atoll-test",
		SecretKey: "atoll-test-secret",
		tb:        tb,
		bin:       bin,
		dir:       tb.TempDir(),
	}
	tb.Cleanup(func() {
		s.Stop()
		if tb.Failed() {
			tb.Logf("versitygw output:\n%s", s.output)
		}
	})
	s.Start()
	return s
}

// Start (re)starts the server on the same address and directory. It fails
// the test if the server does not answer within 20 seconds.
func (s *S3Server) Start() {
	s.tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		s.tb.Fatal("S3 server already running")
	}
	cmd := exec.Command(s.bin, "--quiet", "--port", s.Endpoint, "posix", s.dir)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+s.AccessKey, "ROOT_SECRET_KEY="+s.SecretKey)
	if s.output == nil {
		s.output = &syncBuffer{}
	}
	cmd.Stdout, cmd.Stderr = s.output, s.output
	if err := cmd.Start(); err != nil {
		s.tb.Fatalf("start versitygw: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.cmd, s.exited = cmd, exited

	deadline := time.Now().Add(20 * time.Second)
	client := &http.Client{Timeout: time.Second}
	for {
		// Any HTTP answer, even 403 to an unsigned request, means ready.
		resp, err := client.Get("http://" + s.Endpoint + "/")
		if err == nil {
			_ = resp.Body.Close()
			if server := resp.Header.Get("Server"); !strings.EqualFold(server, "versitygw") {
				s.tb.Fatalf("%s answered by %q, not versitygw; port taken by another process", s.Endpoint, server)
			}
			return
		}
		select {
		case <-exited:
			s.cmd = nil
			s.tb.Fatalf("versitygw exited at startup:\n%s", s.output)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.tb.Fatalf("versitygw on %s not ready after 20s: %v\n%s", s.Endpoint, err, s.output)
		}
	}
}

// Stop kills the server, as an outage would; objects stay on disk. Stopping
// a stopped server does nothing.
func (s *S3Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
}

// CreateBucket creates a new, empty bucket and returns a config for it:
// plain http, path-style lookup and the root credentials. Tests adjust the
// remaining fields (PartSize, MaxRetries) as they need.
func (s *S3Server) CreateBucket(tb testing.TB) bucket.S3Config {
	tb.Helper()
	cfg := bucket.S3Config{
		Bucket:           fmt.Sprintf("atoll-test-%d", s.buckets.Add(1)),
		Endpoint:         s.Endpoint,
		Region:           "us-east-1",
		AccessKey:        s.AccessKey,
		SecretKey:        s.SecretKey,
		Insecure:         true,
		BucketLookupType: "path",
	}
	client, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:        credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Region:       cfg.Region,
		BucketLookup: minio.BucketLookupPath,
	})
	if err != nil {
		tb.Fatalf("S3 client: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := client.MakeBucket(ctx, cfg.Bucket, minio.MakeBucketOptions{Region: cfg.Region}); err != nil {
		tb.Fatalf("create bucket %s: %v", cfg.Bucket, err)
	}
	return cfg
}

func findVersitygw() (string, error) {
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	var gopaths []string
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		gopaths = append(gopaths, filepath.SplitList(strings.TrimSpace(string(out)))...)
	}
	gopaths = append(gopaths, filepath.SplitList(build.Default.GOPATH)...)
	for _, gp := range gopaths {
		p := filepath.Join(gp, "bin", "versitygw")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	return "", errors.New("not found in PATH or $(go env GOPATH)/bin")
}

// freeLoopbackAddr asks the kernel for a free port. Another process could
// take it before the server binds, which the readiness check then reports.
func freeLoopbackAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("find free port: %v", err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// syncBuffer collects the server's output from its two pipes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	if b == nil {
		return ""
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
