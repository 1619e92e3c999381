package bucket

import (
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"
)

// Bucket types, as written in the "type" field of a bucket config.
const (
	TypeFilesystem = "FILESYSTEM"
	TypeS3         = "S3"
)

// Config selects and configures a bucket implementation. In YAML it has
// the shape Thanos users know:
//
//	type: S3
//	config:
//	  bucket: metrics
//	  endpoint: s3.eu-west-1.amazonaws.com
//	prefix: atoll
//
// Unknown fields are rejected, at every level and with their line, so a typo
// fails at startup rather than silently falling back to a default. Secrets
// marshal as <secret>, so a config can be shown or logged.
type Config struct {
	// Type is TypeFilesystem or TypeS3 (case-insensitive in YAML).
	Type string
	// Filesystem is used when Type is TypeFilesystem.
	Filesystem FilesystemConfig
	// S3 is used when Type is TypeS3.
	S3 S3Config
	// Prefix puts every object under this path within the bucket, so one
	// bucket can hold several Atoll (or Thanos) installations.
	Prefix string
}

// FilesystemConfig configures a bucket kept in a local directory.
type FilesystemConfig struct {
	Directory string `yaml:"directory"`
}

// S3Config configures a bucket in Amazon S3 or any S3-compatible store. The
// fields are those of Thanos's S3 config that have an effect here.
type S3Config struct {
	Bucket string `yaml:"bucket"`
	// Endpoint is host[:port], without a scheme; Insecure selects http.
	Endpoint string `yaml:"endpoint"`
	Region   string `yaml:"region,omitempty"`
	// AccessKey and SecretKey are set together or not at all. When unset,
	// credentials come from the AWS and MinIO environment variables, the
	// AWS credentials file, or the instance/pod IAM role, in that order.
	AccessKey    string        `yaml:"access_key,omitempty"`
	SecretKey    config.Secret `yaml:"secret_key,omitempty"`
	SessionToken config.Secret `yaml:"session_token,omitempty"`
	// SignatureV2 signs requests with AWS signature version 2 (old
	// S3-compatible stores), with the static keys.
	SignatureV2 bool `yaml:"signature_version2,omitempty"`
	// STSEndpoint is the endpoint the IAM role's credentials are asked
	// from, when not the default.
	STSEndpoint string `yaml:"sts_endpoint,omitempty"`
	// Insecure talks plain http instead of https.
	Insecure bool `yaml:"insecure,omitempty"`
	// BucketLookupType is "auto" (default), "path" or "virtual-hosted".
	BucketLookupType string `yaml:"bucket_lookup_type,omitempty"`
	// ListObjectsVersion is "v2" (default) or "v1" for stores without
	// ListObjectsV2.
	ListObjectsVersion string `yaml:"list_objects_version,omitempty"`
	// PartSize is the multipart upload part size in bytes; objects larger
	// than one part are uploaded in parts. It also bounds the memory an
	// upload of unknown size buffers. Default 64 MiB, minimum 5 MiB.
	PartSize uint64 `yaml:"part_size,omitempty"`
	// DisableMultipart uploads every object in one request.
	DisableMultipart bool `yaml:"disable_multipart,omitempty"`
	// SendContentMd5 sends a Content-MD5 header with uploads, for stores
	// that require one (object lock).
	SendContentMd5 bool `yaml:"send_content_md5,omitempty"`
	// PutUserMetadata is added to every uploaded object as x-amz-meta-*.
	PutUserMetadata map[string]string `yaml:"put_user_metadata,omitempty"`
	// MaxRetries bounds the client's retries of one request; 0 keeps the
	// client default (10) and 1 disables retries.
	MaxRetries int `yaml:"max_retries,omitempty"`
	// HTTPConfig tunes the connections to the store.
	HTTPConfig S3HTTPConfig `yaml:"http_config,omitempty"`
	// SSEConfig encrypts objects at rest on the server.
	SSEConfig S3SSEConfig `yaml:"sse_config,omitempty"`
}

// S3HTTPConfig tunes the HTTP transport to the store, as Thanos's
// http_config does. Zero values keep the client's defaults.
type S3HTTPConfig struct {
	IdleConnTimeout       model.Duration `yaml:"idle_conn_timeout,omitempty"`
	ResponseHeaderTimeout model.Duration `yaml:"response_header_timeout,omitempty"`
	TLSHandshakeTimeout   model.Duration `yaml:"tls_handshake_timeout,omitempty"`
	ExpectContinueTimeout model.Duration `yaml:"expect_continue_timeout,omitempty"`
	MaxIdleConns          int            `yaml:"max_idle_conns,omitempty"`
	MaxIdleConnsPerHost   int            `yaml:"max_idle_conns_per_host,omitempty"`
	MaxConnsPerHost       int            `yaml:"max_conns_per_host,omitempty"`
	DisableCompression    bool           `yaml:"disable_compression,omitempty"`
	// InsecureSkipVerify accepts any server certificate.
	InsecureSkipVerify bool        `yaml:"insecure_skip_verify,omitempty"`
	TLSConfig          S3TLSConfig `yaml:"tls_config,omitempty"`
}

// S3TLSConfig names the files of a private CA and of a client certificate.
type S3TLSConfig struct {
	CAFile             string `yaml:"ca_file,omitempty"`
	CertFile           string `yaml:"cert_file,omitempty"`
	KeyFile            string `yaml:"key_file,omitempty"`
	ServerName         string `yaml:"server_name,omitempty"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify,omitempty"`
}

// Server-side encryption types of S3SSEConfig.Type, as Thanos names them.
const (
	SSES3  = "SSE-S3"
	SSEKMS = "SSE-KMS"
	SSEC   = "SSE-C"
)

// S3SSEConfig selects server-side encryption of uploaded objects.
type S3SSEConfig struct {
	// Type is SSE-S3, SSE-KMS or SSE-C; empty disables encryption.
	Type string `yaml:"type,omitempty"`
	// KMSKeyID and KMSEncryptionContext are for SSE-KMS.
	KMSKeyID             string            `yaml:"kms_key_id,omitempty"`
	KMSEncryptionContext map[string]string `yaml:"kms_encryption_context,omitempty"`
	// EncryptionKey is the path of a file holding the 32-byte key of
	// SSE-C; reads send it too.
	EncryptionKey string `yaml:"encryption_key,omitempty"`
}

const (
	defaultPartSize = 64 << 20
	minPartSize     = 5 << 20
)

// ConfigForDir is the config of a filesystem bucket in dir, the
// default of a single-node installation.
func ConfigForDir(dir string) Config {
	return Config{Type: TypeFilesystem, Filesystem: FilesystemConfig{Directory: dir}}
}

// ParseConfig parses and validates a YAML bucket config.
func ParseConfig(data []byte) (Config, error) {
	var cfg Config
	if strings.TrimSpace(string(data)) == "" {
		return cfg, errors.New("bucket config: empty")
	}
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		return Config{}, fmt.Errorf("bucket config: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// UnmarshalYAML reads the Thanos-style {type, config, prefix} shape,
// rejecting unknown fields at every level.
func (c *Config) UnmarshalYAML(node *yaml.Node) error {
	var top struct {
		Type   string    `yaml:"type"`
		Config yaml.Node `yaml:"config"`
		Prefix string    `yaml:"prefix"`
	}
	if err := checkKnownFields(node, "bucket config", "type", "config", "prefix"); err != nil {
		return err
	}
	if err := node.Decode(&top); err != nil {
		return err
	}
	*c = Config{Type: strings.ToUpper(top.Type), Prefix: top.Prefix}
	var target any
	switch c.Type {
	case TypeFilesystem:
		target = &c.Filesystem
	case TypeS3:
		target = &c.S3
	case "":
		return fmt.Errorf("line %d: missing bucket type (want %s or %s)", node.Line, TypeFilesystem, TypeS3)
	default:
		return fmt.Errorf("line %d: unknown bucket type %q (want %s or %s)", node.Line, top.Type, TypeFilesystem, TypeS3)
	}
	if top.Config.Kind == 0 {
		return nil // Validate reports the missing fields.
	}
	what := c.Type + " bucket config"
	if err := checkStructFields(&top.Config, what, reflect.TypeOf(target).Elem()); err != nil {
		return err
	}
	if err := top.Config.Decode(target); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// MarshalYAML writes the shape UnmarshalYAML reads, secrets masked.
func (c Config) MarshalYAML() (any, error) {
	out := struct {
		Type   string `yaml:"type"`
		Config any    `yaml:"config"`
		Prefix string `yaml:"prefix,omitempty"`
	}{Type: strings.ToUpper(c.Type), Prefix: c.Prefix}
	switch out.Type {
	case TypeFilesystem:
		out.Config = c.Filesystem
	case TypeS3:
		out.Config = c.S3
	}
	return out, nil
}

// checkStructFields checks the mapping node against the yaml fields of the
// struct type t, and nested mappings against their struct fields.
func checkStructFields(node *yaml.Node, what string, t reflect.Type) error {
	if node.Kind == yaml.AliasNode && node.Alias != nil {
		node = node.Alias
	}
	if err := checkKnownFields(node, what, yamlFieldNames(t)...); err != nil {
		return err
	}
	if node.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(node.Content); i += 2 {
		key, value := node.Content[i].Value, node.Content[i+1]
		f, _ := fieldByYAMLName(t, key)
		if f.Kind() == reflect.Struct && f.NumField() > 0 && !isTextType(f) {
			if err := checkStructFields(value, what+" "+key, f); err != nil {
				return err
			}
		}
	}
	return nil
}

// isTextType reports types that decode from a scalar (durations, say).
func isTextType(t reflect.Type) bool {
	u := reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()
	return reflect.PointerTo(t).Implements(u) || t.Implements(u)
}

// checkKnownFields fails on mapping keys outside known. yaml.v3 only checks
// fields for a top-level Decoder, not inside a custom unmarshaler, so the
// nested config is checked here, with the offending line.
func checkKnownFields(node *yaml.Node, what string, known ...string) error {
	if node.Kind == yaml.AliasNode && node.Alias != nil {
		node = node.Alias
	}
	if node.Kind != yaml.MappingNode {
		if node.Kind == yaml.ScalarNode && node.Tag == "!!null" {
			return nil
		}
		return fmt.Errorf("line %d: %s must be a mapping", node.Line, what)
	}
	for i := 0; i+1 < len(node.Content); i += 2 {
		k := node.Content[i]
		if !slices.Contains(known, k.Value) {
			return fmt.Errorf("line %d: unknown field %q in %s (known fields: %s)",
				k.Line, k.Value, what, strings.Join(known, ", "))
		}
	}
	return nil
}

func fieldByYAMLName(t reflect.Type, name string) (reflect.Type, bool) {
	for f := range t.Fields() {
		if n, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); n == name {
			return f.Type, true
		}
	}
	return nil, false
}

func yamlFieldNames(t reflect.Type) []string {
	names := make([]string, 0, t.NumField())
	for f := range t.Fields() {
		if name, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); name != "" && name != "-" {
			names = append(names, name)
		}
	}
	return names
}

// Validate reports the first problem that would stop New.
func (c Config) Validate() error {
	switch strings.ToUpper(c.Type) {
	case TypeFilesystem:
		if c.Filesystem.Directory == "" {
			return errors.New("FILESYSTEM bucket config: directory is required")
		}
	case TypeS3:
		if err := c.S3.validate(); err != nil {
			return err
		}
	default:
		return fmt.Errorf("bucket config: unknown type %q (want %s or %s)", c.Type, TypeFilesystem, TypeS3)
	}
	if p := strings.Trim(c.Prefix, "/"); p != "" {
		if err := validatePath(p); err != nil {
			return fmt.Errorf("bucket config: prefix: %w", err)
		}
	}
	return nil
}

func (c S3Config) validate() error {
	const what = "S3 bucket config"
	switch {
	case c.Bucket == "":
		return fmt.Errorf("%s: bucket is required", what)
	case c.Endpoint == "":
		return fmt.Errorf("%s: endpoint is required (for AWS, e.g. s3.us-east-1.amazonaws.com)", what)
	case strings.Contains(c.Endpoint, "://"):
		return fmt.Errorf("%s: endpoint %q must be host[:port] without a scheme; set insecure: true for http", what, c.Endpoint)
	case (c.AccessKey == "") != (c.SecretKey == ""):
		return fmt.Errorf("%s: access_key and secret_key must be set together (or both left empty to use environment credentials)", what)
	case c.PartSize != 0 && c.PartSize < minPartSize:
		return fmt.Errorf("%s: part_size %d is below the S3 minimum of %d bytes (5 MiB)", what, c.PartSize, minPartSize)
	case c.MaxRetries < 0:
		return fmt.Errorf("%s: max_retries must not be negative", what)
	case c.SignatureV2 && c.AccessKey == "":
		return fmt.Errorf("%s: signature_version2 needs access_key and secret_key", what)
	case c.ListObjectsVersion != "" && c.ListObjectsVersion != "v1" && c.ListObjectsVersion != "v2":
		return fmt.Errorf("%s: list_objects_version %q (want v1 or v2)", what, c.ListObjectsVersion)
	}
	switch sse := c.SSEConfig; sse.Type {
	case "":
	case SSES3:
	case SSEKMS:
		if sse.KMSKeyID == "" {
			return fmt.Errorf("%s: sse_config of type %s needs kms_key_id", what, SSEKMS)
		}
	case SSEC:
		if sse.EncryptionKey == "" {
			return fmt.Errorf("%s: sse_config of type %s needs encryption_key, the path of a file holding a 32-byte key", what, SSEC)
		}
	default:
		return fmt.Errorf("%s: sse_config type %q (want %s, %s or %s)", what, sse.Type, SSES3, SSEKMS, SSEC)
	}
	if _, err := bucketLookup(c.BucketLookupType); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// New builds the configured bucket and records
// atoll_bucket_operations_total, atoll_bucket_operation_failures_total and
// atoll_bucket_operation_duration_seconds on reg (which may be nil).
// Buckets sharing a registry each need reg wrapped with a distinct constant
// label (prometheus.WrapRegistererWith); a second plain registration fails.
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer) (Bucket, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var (
		bkt Bucket
		err error
	)
	switch strings.ToUpper(cfg.Type) {
	case TypeFilesystem:
		bkt, err = NewFilesystem(cfg.Filesystem.Directory)
	case TypeS3:
		bkt, err = newS3Bucket(cfg.S3)
	}
	if err != nil {
		return nil, err
	}
	if p := strings.Trim(cfg.Prefix, "/"); p != "" {
		bkt = &prefixedBucket{Bucket: bkt, prefix: p + "/"}
	}
	ib, err := instrumentBucket(bkt, reg)
	if err != nil {
		_ = bkt.Close()
		return nil, err
	}
	logger.Info("opened bucket", "type", strings.ToUpper(cfg.Type), "name", bkt.Name())
	return ib, nil
}
