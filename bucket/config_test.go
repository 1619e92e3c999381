package bucket_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
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
		{name: "unknown top-level field", yaml: "type: S3\nprefix: x\nconfig: {bucket: b}\n", wantErr: `line 2: unknown field "prefix" in bucket config`},
		{
			name:    "unknown S3 field, with its line",
			yaml:    "type: S3\nconfig:\n  bucket: b\n  endpoint: e\n  sse_config: {type: SSE-S3}\n",
			wantErr: `line 5: unknown field "sse_config" in S3 bucket config`,
		},
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
			if got != tc.want {
				t.Errorf("config = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// The bucket config can sit inside a larger Atoll config file.
func TestBucketConfigEmbedsInLargerYAML(t *testing.T) {
	var outer struct {
		Bucket bucket.Config `yaml:"bucket"`
	}
	doc := "bucket:\n  type: FILESYSTEM\n  config:\n    directory: data\n"
	if err := yaml.Unmarshal([]byte(doc), &outer); err != nil {
		t.Fatal(err)
	}
	if outer.Bucket != bucket.ConfigForDir("data") {
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
