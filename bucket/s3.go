package bucket

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/encrypt"
	"github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
)

// s3Bucket adapts a minio-go client to Bucket. minio-go types and error
// responses stay inside this file; callers see errObjectNotFound.
type s3Bucket struct {
	client    *minio.Client
	transport *http.Transport
	bucket    string
	put       minio.PutObjectOptions
	// sse is sent with reads too: only set for SSE-C, whose key the server
	// does not keep.
	sse      encrypt.ServerSide
	listV1   bool
	endpoint string
}

func newS3Bucket(cfg S3Config) (*s3Bucket, error) {
	lookup, err := bucketLookup(cfg.BucketLookupType)
	if err != nil {
		return nil, err
	}
	transport, err := s3Transport(cfg)
	if err != nil {
		return nil, fmt.Errorf("S3 bucket %q: %w", cfg.Bucket, err)
	}
	partSize := cfg.PartSize
	if partSize == 0 {
		partSize = defaultPartSize
	}
	client, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:        s3Credentials(cfg),
		Secure:       !cfg.Insecure,
		Region:       cfg.Region,
		BucketLookup: lookup,
		Transport:    transport,
		MaxRetries:   cfg.MaxRetries,
	})
	if err != nil {
		return nil, fmt.Errorf("S3 bucket %q: %w", cfg.Bucket, err)
	}
	b := &s3Bucket{
		client:    client,
		transport: transport,
		bucket:    cfg.Bucket,
		listV1:    cfg.ListObjectsVersion == "v1",
		endpoint:  cfg.Endpoint,
		put: minio.PutObjectOptions{
			PartSize:         partSize,
			DisableMultipart: cfg.DisableMultipart,
			SendContentMd5:   cfg.SendContentMd5,
			UserMetadata:     cfg.PutUserMetadata,
		},
	}
	if b.put.ServerSideEncryption, err = s3SSE(cfg.SSEConfig); err != nil {
		return nil, fmt.Errorf("S3 bucket %q: %w", cfg.Bucket, err)
	}
	if cfg.SSEConfig.Type == SSEC {
		b.sse = b.put.ServerSideEncryption
	}
	return b, nil
}

// s3Transport is minio-go's default transport with the http_config
// settings applied.
func s3Transport(cfg S3Config) (*http.Transport, error) {
	t, err := minio.DefaultTransport(!cfg.Insecure)
	if err != nil {
		return nil, err
	}
	h := cfg.HTTPConfig
	set := func(dst *time.Duration, d model.Duration) {
		if d > 0 {
			*dst = time.Duration(d)
		}
	}
	set(&t.IdleConnTimeout, h.IdleConnTimeout)
	set(&t.ResponseHeaderTimeout, h.ResponseHeaderTimeout)
	set(&t.TLSHandshakeTimeout, h.TLSHandshakeTimeout)
	set(&t.ExpectContinueTimeout, h.ExpectContinueTimeout)
	if h.MaxIdleConns > 0 {
		t.MaxIdleConns = h.MaxIdleConns
	}
	if h.MaxIdleConnsPerHost > 0 {
		t.MaxIdleConnsPerHost = h.MaxIdleConnsPerHost
	}
	if h.MaxConnsPerHost > 0 {
		t.MaxConnsPerHost = h.MaxConnsPerHost
	}
	t.DisableCompression = t.DisableCompression || h.DisableCompression
	tc := h.TLSConfig
	tlsCfg, err := config.NewTLSConfig(&config.TLSConfig{
		CAFile:             tc.CAFile,
		CertFile:           tc.CertFile,
		KeyFile:            tc.KeyFile,
		ServerName:         tc.ServerName,
		InsecureSkipVerify: tc.InsecureSkipVerify || h.InsecureSkipVerify,
	})
	if err != nil {
		return nil, fmt.Errorf("http_config tls_config: %w", err)
	}
	if t.TLSClientConfig != nil {
		tlsCfg.MinVersion = max(tlsCfg.MinVersion, t.TLSClientConfig.MinVersion)
	}
	t.TLSClientConfig = tlsCfg
	return t, nil
}

// s3SSE builds the server-side encryption of uploads.
func s3SSE(c S3SSEConfig) (encrypt.ServerSide, error) {
	switch c.Type {
	case "":
		return nil, nil
	case SSES3:
		return encrypt.NewSSE(), nil
	case SSEKMS:
		var ctx any
		if len(c.KMSEncryptionContext) > 0 {
			ctx = c.KMSEncryptionContext
		}
		return encrypt.NewSSEKMS(c.KMSKeyID, ctx)
	case SSEC:
		key, err := os.ReadFile(c.EncryptionKey)
		if err != nil {
			return nil, fmt.Errorf("sse_config encryption_key: %w", err)
		}
		sse, err := encrypt.NewSSEC(key)
		if err != nil {
			return nil, fmt.Errorf("sse_config encryption_key %s: %w", c.EncryptionKey, err)
		}
		return sse, nil
	}
	return nil, fmt.Errorf("unknown sse_config type %q", c.Type)
}

// s3Credentials prefers keys from the config; without them it follows the
// usual AWS order so that pods with IAM roles need no secrets in config.
func s3Credentials(cfg S3Config) *credentials.Credentials {
	if cfg.AccessKey != "" {
		if cfg.SignatureV2 {
			return credentials.NewStaticV2(cfg.AccessKey, string(cfg.SecretKey), string(cfg.SessionToken))
		}
		return credentials.NewStaticV4(cfg.AccessKey, string(cfg.SecretKey), string(cfg.SessionToken))
	}
	return credentials.NewChainCredentials([]credentials.Provider{
		&credentials.EnvAWS{},
		&credentials.EnvMinio{},
		&credentials.FileAWSCredentials{},
		&credentials.IAM{Client: &http.Client{Transport: http.DefaultTransport}, Endpoint: cfg.STSEndpoint},
	})
}

func bucketLookup(s string) (minio.BucketLookupType, error) {
	switch strings.ToLower(s) {
	case "", "auto":
		return minio.BucketLookupAuto, nil
	case "path":
		return minio.BucketLookupPath, nil
	case "virtual-hosted", "virtual-host":
		return minio.BucketLookupDNS, nil
	default:
		return 0, fmt.Errorf("unknown bucket_lookup_type %q (want auto, path or virtual-hosted)", s)
	}
}

// classifyS3 wraps err with errObjectNotFound when S3 says the key does not
// exist, and with the operation and name otherwise.
func classifyS3(op, name string, err error) error {
	var resp minio.ErrorResponse
	if errors.As(err, &resp) && (resp.Code == "NoSuchKey" || (resp.StatusCode == http.StatusNotFound && resp.Code != "NoSuchBucket")) {
		return fmt.Errorf("%s %q: %w", op, name, errObjectNotFound)
	}
	if resp.Code == "NoSuchBucket" {
		return fmt.Errorf("%s %q: the bucket %q does not exist: %w", op, name, resp.BucketName, err)
	}
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return fmt.Errorf("%s %q: cannot reach the S3 endpoint: %w", op, name, err)
	}
	return fmt.Errorf("%s %q: %w", op, name, err)
}

func (b *s3Bucket) Name() string { return b.bucket }

func (b *s3Bucket) Close() error {
	b.transport.CloseIdleConnections()
	return nil
}

func (b *s3Bucket) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	if err := validateObjectName(name); err != nil {
		return nil, fmt.Errorf("get: %w", err)
	}
	return b.get(ctx, "get", name, minio.GetObjectOptions{ServerSideEncryption: b.sse})
}

func (b *s3Bucket) GetRange(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	if err := validateObjectName(name); err != nil {
		return nil, fmt.Errorf("get range: %w", err)
	}
	if err := validateRange(off, length); err != nil {
		return nil, fmt.Errorf("get range %q: %w", name, err)
	}
	if length == 0 {
		// S3 has no empty range; check the object exists so a missing one
		// still reports not found.
		if _, err := b.Attributes(ctx, name); err != nil {
			return nil, err
		}
		return io.NopCloser(strings.NewReader("")), nil
	}
	opts := minio.GetObjectOptions{ServerSideEncryption: b.sse}
	switch {
	case length > 0:
		if err := opts.SetRange(off, off+length-1); err != nil {
			return nil, fmt.Errorf("get range %q: %w", name, err)
		}
	case off > 0:
		if err := opts.SetRange(off, 0); err != nil {
			return nil, fmt.Errorf("get range %q: %w", name, err)
		}
	}
	rc, err := b.get(ctx, "get range", name, opts)
	var resp minio.ErrorResponse
	if errors.As(err, &resp) && (resp.Code == "InvalidRange" || resp.StatusCode == http.StatusRequestedRangeNotSatisfiable) {
		// The offset is at or past the end: there are no bytes to return,
		// which matches the filesystem bucket.
		return io.NopCloser(strings.NewReader("")), nil
	}
	return rc, err
}

// get starts the download and waits for the response headers, because
// minio-go defers the request to the first Read and a missing object would
// otherwise surface as a read error far from the call.
func (b *s3Bucket) get(ctx context.Context, op, name string, opts minio.GetObjectOptions) (io.ReadCloser, error) {
	obj, err := b.client.GetObject(ctx, b.bucket, name, opts)
	if err != nil {
		return nil, classifyS3(op, name, err)
	}
	if _, err := obj.Stat(); err != nil {
		_ = obj.Close()
		return nil, classifyS3(op, name, err)
	}
	return obj, nil
}

func (b *s3Bucket) Upload(ctx context.Context, name string, r io.Reader, size int64) error {
	if err := validateObjectName(name); err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	_, err := b.client.PutObject(ctx, b.bucket, name, r, size, b.put)
	if err != nil {
		return classifyS3("upload", name, err)
	}
	return nil
}

func (b *s3Bucket) Delete(ctx context.Context, name string) error {
	if err := validateObjectName(name); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	err := b.client.RemoveObject(ctx, b.bucket, name, minio.RemoveObjectOptions{})
	if err == nil {
		return nil
	}
	if err := classifyS3("delete", name, err); !IsNotFound(err) {
		return err
	}
	return nil
}

func (b *s3Bucket) Iter(ctx context.Context, dir string, f func(string) error, recursive bool) error {
	if err := validateDirName(dir); err != nil {
		return fmt.Errorf("iter: %w", err)
	}
	prefix := strings.TrimSuffix(dir, "/")
	if prefix != "" {
		prefix += "/"
	}
	// minio-go asks for the context to be canceled when iteration stops
	// early, so the listing releases its response.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for obj := range b.client.ListObjectsIter(ctx, b.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: recursive, UseV1: b.listV1}) {
		if obj.Err != nil {
			return classifyS3("iter", dir, obj.Err)
		}
		if obj.Key == prefix {
			// A "directory marker" object some tools create; not content.
			continue
		}
		if err := f(obj.Key); err != nil {
			return err
		}
	}
	return ctx.Err()
}

func (b *s3Bucket) Exists(ctx context.Context, name string) (bool, error) {
	_, err := b.Attributes(ctx, name)
	if IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

func (b *s3Bucket) Attributes(ctx context.Context, name string) (ObjectAttributes, error) {
	if err := validateObjectName(name); err != nil {
		return ObjectAttributes{}, fmt.Errorf("attributes: %w", err)
	}
	info, err := b.client.StatObject(ctx, b.bucket, name, minio.StatObjectOptions{ServerSideEncryption: b.sse})
	if err != nil {
		return ObjectAttributes{}, classifyS3("attributes", name, err)
	}
	return ObjectAttributes{Size: info.Size, LastModified: info.LastModified}, nil
}
