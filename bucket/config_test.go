package bucket_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"

	"github.com/atoll-metrics/atoll/bucket"
	"github.com/atoll-metrics/atoll/internal/metrictest"
)

func TestParseBucketConfig(t *testing.T) {
	for _, tc := range []struct {
		name    string
		yaml    string
		want    bucket.Config
		wantErr string
	}{
		{
			name: "filesystem",
			yaml: "type: FILESYSTEM\nconfig:\n  directory: /var/lib/atoll/bucket\n",
			want: bucket.ConfigForDir("/var/lib/atoll/bucket"),
		},
		{
			name: "s3 with every field",
			yaml: `type: S3
config:
  bucket: metrics
  endpoint: s3.eu-west-1.amazonaws.com
  region: eu-west-1
  access_key: AKIA
  secret_key: shh
  insecure: false
  bucket_lookup_type: virtual-hosted
  part_size: 134217728
  max_retries: 3
`,
			want: bucket.Config{Type: bucket.TypeS3, S3: bucket.S3Config{
				Bucket: "metrics", Endpoint: "s3.eu-west-1.amazonaws.com", Region: "eu-west-1",
				AccessKey: "AKIA", SecretKey: "shh", BucketLookupType: "virtual-hosted",
				PartSize: 128 << 20, MaxRetries: 3,
			}},
		},
		{
			name: "type is case-insensitive",
			yaml: "type: s3\nconfig: {bucket: b, endpoint: 'minio:9000', insecure: true, bucket_lookup_type: path}\n",
			want: bucket.Config{Type: bucket.TypeS3, S3: bucket.S3Config{
				Bucket: "b", Endpoint: "minio:9000", Insecure: true, BucketLookupType: "path",
			}},
		},
		{name: "empty", yaml: "  \n", wantErr: "empty"},
		{name: "missing type", yaml: "config: {directory: x}\n", wantErr: "missing bucket type"},
		{name: "unknown type", yaml: "type: GCS\nconfig: {bucket: b}\n", wantErr: `unknown bucket type "GCS"`},
		{
			name: "what a Thanos user pastes",
			yaml: `type: S3
prefix: /atoll/prod/
config:
  bucket: metrics
  endpoint: s3.eu-west-1.amazonaws.com
  region: eu-west-1
  session_token: tok
  insecure: false
  signature_version2: false
  sts_endpoint: https://sts.eu-west-1.amazonaws.com
  bucket_lookup_type: auto
  list_objects_version: v1
  part_size: 67108864
  disable_multipart: false
  send_content_md5: true
  put_user_metadata: {team: metrics}
  max_retries: 2
  http_config:
    idle_conn_timeout: 1m30s
    response_header_timeout: 2m
    insecure_skip_verify: true
    tls_handshake_timeout: 10s
    expect_continue_timeout: 1s
    max_idle_conns: 100
    max_idle_conns_per_host: 100
    max_conns_per_host: 0
    tls_config: {server_name: s3.internal}
  sse_config:
    type: SSE-KMS
    kms_key_id: key-1
    kms_encryption_context: {app: atoll}
`,
			want: bucket.Config{Type: bucket.TypeS3, Prefix: "/atoll/prod/", S3: bucket.S3Config{
				Bucket: "metrics", Endpoint: "s3.eu-west-1.amazonaws.com", Region: "eu-west-1", SessionToken: "tok",
				STSEndpoint: "https://sts.eu-west-1.amazonaws.com", BucketLookupType: "auto", ListObjectsVersion: "v1",
				PartSize: 64 << 20, SendContentMd5: true, PutUserMetadata: map[string]string{"team": "metrics"}, MaxRetries: 2,
				HTTPConfig: bucket.S3HTTPConfig{
					IdleConnTimeout: model.Duration(90 * time.Second), ResponseHeaderTimeout: model.Duration(2 * time.Minute),
					InsecureSkipVerify: true, TLSHandshakeTimeout: model.Duration(10 * time.Second), ExpectContinueTimeout: model.Duration(time.Second),
					MaxIdleConns: 100, MaxIdleConnsPerHost: 100, TLSConfig: bucket.S3TLSConfig{ServerName: "s3.internal"},
				},
				SSEConfig: bucket.S3SSEConfig{Type: bucket.SSEKMS, KMSKeyID: "key-1", KMSEncryptionContext: map[string]string{"app": "atoll"}},
			}},
		},
		{name: "unknown top-level field", yaml: "type: S3\nprefixes: x\nconfig: {bucket: b}\n", wantErr: `line 2: unknown field "prefixes" in bucket config`},
		{
			name:    "unknown S3 field, with its line",
			yaml:    "type: S3\nconfig:\n  bucket: b\n  endpoint: e\n  aws_sdk_auth: true\n",
			wantErr: `line 5: unknown field "aws_sdk_auth" in S3 bucket config`,
		},
		{
			name:    "unknown nested field, with its line",
			yaml:    "type: S3\nconfig:\n  bucket: b\n  endpoint: e\n  http_config:\n    idle_conn_timeout: 1m\n    idle_timeout: 2m\n",
			wantErr: `line 7: unknown field "idle_timeout" in S3 bucket config http_config`,
		},
		{
			name:    "unknown field two levels down",
			yaml:    "type: S3\nconfig:\n  bucket: b\n  endpoint: e\n  http_config:\n    tls_config:\n      ca: x\n",
			wantErr: `line 7: unknown field "ca" in S3 bucket config http_config tls_config`,
		},
		{name: "bad sse type", yaml: "type: S3\nconfig: {bucket: b, endpoint: e, sse_config: {type: AES}}\n", wantErr: `sse_config type "AES"`},
		{name: "kms without key", yaml: "type: S3\nconfig: {bucket: b, endpoint: e, sse_config: {type: SSE-KMS}}\n", wantErr: "needs kms_key_id"},
		{name: "bad prefix", yaml: "type: FILESYSTEM\nprefix: a/../b\nconfig: {directory: d}\n", wantErr: "prefix"},
		{name: "typo in filesystem field", yaml: "type: FILESYSTEM\nconfig: {dir: x}\n", wantErr: `unknown field "dir"`},
		{name: "filesystem without directory", yaml: "type: FILESYSTEM\n", wantErr: "directory is required"},
		{name: "config not a mapping", yaml: "type: S3\nconfig: [a, b]\n", wantErr: "must be a mapping"},
		{name: "s3 without bucket", yaml: "type: S3\nconfig: {endpoint: e}\n", wantErr: "bucket is required"},
		{name: "s3 without endpoint", yaml: "type: S3\nconfig: {bucket: b}\n", wantErr: "endpoint is required"},
		{name: "endpoint with scheme", yaml: "type: S3\nconfig: {bucket: b, endpoint: 'http://minio:9000'}\n", wantErr: "without a scheme"},
		{name: "access key alone", yaml: "type: S3\nconfig: {bucket: b, endpoint: e, access_key: a}\n", wantErr: "set together"},
		{name: "part size too small", yaml: "type: S3\nconfig: {bucket: b, endpoint: e, part_size: 1024}\n", wantErr: "below the S3 minimum"},
		{name: "bad lookup type", yaml: "type: S3\nconfig: {bucket: b, endpoint: e, bucket_lookup_type: dns}\n", wantErr: "unknown bucket_lookup_type"},
		{name: "wrong value type", yaml: "type: S3\nconfig: {bucket: b, endpoint: e, part_size: big}\n", wantErr: "cannot unmarshal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := bucket.ParseConfig([]byte(tc.yaml))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseBucketConfig: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("config = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// The bucket config can sit inside a larger Atoll config file.
// A config shown (status page, logs) has its secrets masked and reads back
// as the same config otherwise.
func TestBucketConfigMarshalMasksSecrets(t *testing.T) {
	in := "type: S3\nprefix: p\nconfig: {bucket: b, endpoint: e, access_key: AKIA, secret_key: very-secret, session_token: also-secret}\n"
	cfg, err := bucket.ParseConfig([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "secret_key: very-secret") || strings.Contains(string(out), "also-secret") || !strings.Contains(string(out), "secret_key: <secret>") {
		t.Fatalf("marshaled config shows secrets or hides their presence:\n%s", out)
	}
	back, err := bucket.ParseConfig(out)
	if err != nil {
		t.Fatalf("marshaled config does not parse: %v\n%s", err, out)
	}
	back.S3.SecretKey, back.S3.SessionToken = cfg.S3.SecretKey, cfg.S3.SessionToken
	if !reflect.DeepEqual(back, cfg) {
		t.Errorf("round trip: %+v, want %+v", back, cfg)
	}
}

func TestBucketConfigEmbedsInLargerYAML(t *testing.T) {
	var outer struct {
		Bucket bucket.Config `yaml:"bucket"`
	}
	doc := "bucket:\n  type: FILESYSTEM\n  config:\n    directory: data\n"
	if err := yaml.Unmarshal([]byte(doc), &outer); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(outer.Bucket, bucket.ConfigForDir("data")) {
		t.Errorf("embedded config = %+v", outer.Bucket)
	}
}

func TestNewBucketFromConfigRecordsMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	dir := filepath.Join(t.TempDir(), "bucket")
	bkt, err := bucket.New(bucket.ConfigForDir(dir), nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	defer bkt.Close()
	if bkt.Name() != dir {
		t.Errorf("Name() = %q, want %q", bkt.Name(), dir)
	}
	ctx := t.Context()
	if err := bkt.Upload(ctx, "a", strings.NewReader("abc"), 3); err != nil {
		t.Fatal(err)
	}
	if err := bkt.Upload(ctx, "../bad", strings.NewReader("abc"), 3); err == nil {
		t.Fatal("upload of an unsafe name succeeded")
	}
	rc, err := bkt.Get(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	rc.Close()
	if _, err := bkt.Get(ctx, "missing"); !bucket.IsNotFound(err) {
		t.Fatalf("Get(missing) = %v", err)
	}

	for _, tc := range []struct {
		metric, op string
		want       float64
	}{
		{"atoll_bucket_operations_total", "upload", 2},
		{"atoll_bucket_operation_failures_total", "upload", 1},
		{"atoll_bucket_operations_total", "get", 2},
		{"atoll_bucket_operation_failures_total", "get", 0}, // not found is an answer, not a failure
		{"atoll_bucket_operation_duration_seconds", "get", 2},
	} {
		if got := metrictest.Value(t, reg, tc.metric, "operation", tc.op); got != tc.want {
			t.Errorf("%s{operation=%q} = %v, want %v", tc.metric, tc.op, got, tc.want)
		}
	}

	// A second bucket on the same registry is refused; buckets that share a
	// registry each wrap it with their own label.
	if _, err := bucket.New(bucket.ConfigForDir(dir), nil, reg); err == nil {
		t.Error("second NewBucket on one registry succeeded; want a duplicate-registration error")
	}
	shared := prometheus.NewPedanticRegistry()
	for _, name := range []string{"blocks", "backups"} {
		b, err := bucket.New(bucket.ConfigForDir(dir), nil, prometheus.WrapRegistererWith(prometheus.Labels{"bucket": name}, shared))
		if err != nil {
			t.Fatalf("NewBucket with a labeled registerer: %v", err)
		}
		b.Close()
	}
}

// Every bucket config shown in the docs parses: the docs are what users
// copy.
func TestDocumentedBucketConfigsParse(t *testing.T) {
	doc, err := os.ReadFile("../docs/bucket.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := 0
	for _, part := range strings.Split(string(doc), "```yaml\n")[1:] {
		body, _, ok := strings.Cut(part, "```")
		if !ok {
			t.Fatalf("unterminated yaml block: %q", part)
		}
		blocks++
		if _, err := bucket.ParseConfig([]byte(body)); err != nil {
			t.Errorf("documented config does not parse: %v\n%s", err, body)
		}
	}
	if blocks < 3 {
		t.Errorf("%d yaml blocks in docs/bucket.md, want the filesystem and S3 examples", blocks)
	}
}
