package buckettest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
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
	"github.com/prometheus/common/config"

	"github.com/atoll-metrics/atoll/bucket"
	"github.com/atoll-metrics/atoll/internal/e2eproc"
)

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

	// CAFile is the certificate of a TLS server (StartTLSS3Server), which
	// signs itself; empty for plain http.
	CAFile string

	tb      testing.TB
	bin     string
	dir     string
	keyFile string

	mu      sync.Mutex
	proc    *e2eproc.Process
	buckets atomic.Int32
}

// StartS3Server starts a versitygw process on a free loopback port, waits
// until it answers, and stops it when the test ends. The binary is looked up
// in PATH and in $(go env GOPATH)/bin; the test fails if it is missing.
func StartS3Server(tb testing.TB) *S3Server {
	tb.Helper()
	return startS3Server(tb, false)
}

// StartTLSS3Server is StartS3Server serving https with a self-signed
// certificate for 127.0.0.1, found in CAFile.
func StartTLSS3Server(tb testing.TB) *S3Server {
	tb.Helper()
	return startS3Server(tb, true)
}

func startS3Server(tb testing.TB, withTLS bool) *S3Server {
	tb.Helper()
	s := &S3Server{
		Endpoint:  fmt.Sprintf("127.0.0.1:%d", e2eproc.Ports(tb, 1)[0]),
		AccessKey: "atoll-test",
		SecretKey: "atoll-test-secret",
		tb:        tb,
		bin:       e2eproc.FindTool(tb, "versitygw"),
		dir:       tb.TempDir(),
	}
	if withTLS {
		s.CAFile, s.keyFile = selfSignedCert(tb)
	}
	tb.Cleanup(s.Stop)
	s.Start()
	return s
}

// selfSignedCert writes a certificate for 127.0.0.1 and its key.
func selfSignedCert(tb testing.TB) (certFile, keyFile string) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "atoll test S3"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		tb.Fatal(err)
	}
	return certFile, keyFile
}

func (s *S3Server) scheme() string {
	if s.CAFile != "" {
		return "https"
	}
	return "http"
}

// Start (re)starts the server on the same address and directory. It fails
// the test if the server does not answer within 20 seconds.
func (s *S3Server) Start() {
	s.tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		s.tb.Fatal("S3 server already running")
	}
	args := []string{"--quiet", "--port", s.Endpoint}
	if s.CAFile != "" {
		args = append(args, "--cert", s.CAFile, "--key", s.keyFile)
	}
	cmd := exec.Command(s.bin, append(args, "posix", s.dir)...)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+s.AccessKey, "ROOT_SECRET_KEY="+s.SecretKey)
	p := e2eproc.StartCmd(s.tb, "versitygw", cmd)
	s.proc = p

	deadline := time.Now().Add(20 * time.Second)
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	for {
		// Any HTTP answer, even 403 to an unsigned request, means ready.
		resp, err := client.Get(s.scheme() + "://" + s.Endpoint + "/")
		if err == nil {
			_ = resp.Body.Close()
			if server := resp.Header.Get("Server"); !strings.EqualFold(server, "versitygw") {
				s.tb.Fatalf("%s answered by %q, not versitygw; port taken by another process", s.Endpoint, server)
			}
			return
		}
		select {
		case <-p.Done():
			s.proc = nil
			s.tb.Fatalf("versitygw exited at startup:\n%s", p.Output())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.tb.Fatalf("versitygw on %s not ready after 20s: %v\n%s", s.Endpoint, err, p.Output())
		}
	}
}

// Stop kills the server, as an outage would; objects stay on disk. Stopping
// a stopped server does nothing.
func (s *S3Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return
	}
	s.proc.Kill()
	s.proc = nil
}

// CreateBucket creates a new, empty bucket and returns a config for it:
// plain http (https for a TLS server, its certificate not trusted),
// path-style lookup and the root credentials. Tests adjust the remaining
// fields (PartSize, MaxRetries, HTTPConfig) as they need.
func (s *S3Server) CreateBucket(tb testing.TB) bucket.S3Config {
	tb.Helper()
	cfg := bucket.S3Config{
		Bucket:           fmt.Sprintf("atoll-test-%d", s.buckets.Add(1)),
		Endpoint:         s.Endpoint,
		Region:           "us-east-1",
		AccessKey:        s.AccessKey,
		SecretKey:        config.Secret(s.SecretKey),
		Insecure:         s.CAFile == "",
		BucketLookupType: "path",
	}
	client, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:        credentials.NewStaticV4(cfg.AccessKey, s.SecretKey, ""),
		Region:       cfg.Region,
		BucketLookup: minio.BucketLookupPath,
		Secure:       s.CAFile != "",
		Transport:    &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
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
