package bucket

import (
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
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
//
// Unknown fields are rejected, so a typo fails at startup rather than
// silently falling back to a default.
type Config struct {
	// Type is TypeFilesystem or TypeS3 (case-insensitive in YAML).
	Type string
	// Filesystem is used when Type is TypeFilesystem.
	Filesystem FilesystemConfig
	// S3 is used when Type is TypeS3.
	S3 S3Config
}

// FilesystemConfig configures a bucket kept in a local directory.
type FilesystemConfig struct {
	Directory string `yaml:"directory"`
}

// S3Config configures a bucket in Amazon S3 or any S3-compatible store.
type S3Config struct {
	Bucket string `yaml:"bucket"`
	// Endpoint is host[:port], without a scheme; Insecure selects http.
	Endpoint string `yaml:"endpoint"`
	Region   string `yaml:"region"`
	// AccessKey and SecretKey are set together or not at all. When unset,
	// credentials come from the AWS and MinIO environment variables, the
	// AWS credentials file, or the instance/pod IAM role, in that order.
	AccessKey    string `yaml:"access_key"`
	SecretKey    string `yaml:"secret_key"`
	SessionToken string `yaml:"session_token"`
	// Insecure talks plain http instead of https.
	Insecure bool `yaml:"insecure"`
	// BucketLookupType is "auto" (default), "path" or "virtual-hosted".
	BucketLookupType string `yaml:"bucket_lookup_type"`
	// PartSize is the multipart upload part size in bytes; objects larger
	// than one part are uploaded in parts. It also bounds the memory an
	// upload of unknown size buffers. Default 64 MiB, minimum 5 MiB.
	PartSize uint64 `yaml:"part_size"`
	// MaxRetries bounds the client's retries of one request; 0 keeps the
	// client default (10) and 1 disables retries.
	MaxRetries int `yaml:"max_retries"`
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

// UnmarshalYAML reads the Thanos-style {type, config} shape, rejecting
// unknown fields at both levels.
func (c *Config) UnmarshalYAML(node *yaml.Node) error {
	var top struct {
		Type   string    `yaml:"type"`
		Config yaml.Node `yaml:"config"`
	}
	if err := checkKnownFields(node, "bucket config", "type", "config"); err != nil {
		return err
	}
	if err := node.Decode(&top); err != nil {
		return err
	}
	*c = Config{Type: strings.ToUpper(top.Type)}
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
	if err := checkKnownFields(&top.Config, what, yamlFieldNames(target)...); err != nil {
		return err
	}
	if err := top.Config.Decode(target); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
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

func yamlFieldNames(ptr any) []string {
	t := reflect.TypeOf(ptr).Elem()
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
		return nil
	case TypeS3:
		return c.S3.validate()
	default:
		return fmt.Errorf("bucket config: unknown type %q (want %s or %s)", c.Type, TypeFilesystem, TypeS3)
	}
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
	ib, err := instrumentBucket(bkt, reg)
	if err != nil {
		_ = bkt.Close()
		return nil, err
	}
	logger.Info("opened bucket", "type", strings.ToUpper(cfg.Type), "name", bkt.Name())
	return ib, nil
}
