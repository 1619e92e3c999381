package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/alecthomas/units"
	"github.com/grafana/regexp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/atoll-metrics/atoll/bucket"
	"github.com/atoll-metrics/atoll/ingest"
	"github.com/atoll-metrics/atoll/querier"
	"github.com/atoll-metrics/atoll/tenant"
	"github.com/atoll-metrics/atoll/tsdbshard"
)

// serverConfig is where and how a component listens.
type serverConfig struct {
	httpAddress string
	grpcAddress string
	http        httpConfig
	grpc        grpcServerConfig
}

// register registers the listeners' flags with the default host: all
// interfaces for cluster components, loopback for `atoll all`.
func (c *serverConfig) register(cmd *kingpin.CmdClause, host string, grpcServer bool) {
	cmd.Flag("http-address", "Listen address for the HTTP API, UI, /metrics, /-/healthy and /-/ready.").
		Default(host + ":10902").StringVar(&c.httpAddress)
	c.http.register(cmd)
	cmd.Flag("grpc-address", "Listen address for gRPC: the Store API and writes forwarded between receivers.").
		Default(host + ":10901").StringVar(&c.grpcAddress)
	if grpcServer {
		c.grpc.register(cmd)
	}
}

// tsdbConfig configures the local TSDBs of a receiver.
type tsdbConfig struct {
	dataDir        string
	blockDuration  model.Duration
	retention      model.Duration
	oooWindow      model.Duration
	maxExemplars   int64
	walCompression bool
	shipInterval   model.Duration
}

func (c *tsdbConfig) register(cmd *kingpin.CmdClause) {
	c.blockDuration = model.Duration(2 * time.Hour)
	cmd.Flag("data-dir", "Directory holding one TSDB (head, WAL, blocks) per tenant, under tsdb/.").
		Default("./data").StringVar(&c.dataDir)
	cmd.Flag("tsdb.block-duration", "Time span of the blocks cut from the head. 2h in production; minutes are fine for tests.").
		Default("2h").SetValue(&c.blockDuration)
	cmd.Flag("tsdb.retention", "How long local blocks are kept. 0 picks: 6h when blocks are shipped to a bucket (older data is read from there), else 15d.").
		Default("0s").SetValue(&c.retention)
	cmd.Flag("tsdb.out-of-order.time-window", "Accept samples up to this much older than a series' newest one. 0 refuses out-of-order samples.").
		Default("0s").SetValue(&c.oooWindow)
	cmd.Flag("tsdb.max-exemplars", "Exemplars kept per tenant. 0 disables exemplar storage.").
		Default("100000").Int64Var(&c.maxExemplars)
	cmd.Flag("tsdb.wal-compression", "Compress the WAL with snappy.").
		Default("true").BoolVar(&c.walCompression)
	c.shipInterval = model.Duration(30 * time.Second)
	cmd.Flag("shipper.interval", "How often finished blocks are looked for and uploaded to the bucket; failed uploads are retried at this pace.").
		Default("30s").SetValue(&c.shipInterval)
}

func (c *tsdbConfig) options(replicaLabel, instanceID string, bkt bucket.Bucket) tsdbshard.Options {
	o := tsdbshard.DefaultOptions()
	o.Dir = filepath.Join(c.dataDir, "tsdb")
	o.BlockDuration = time.Duration(c.blockDuration)
	o.Retention = time.Duration(c.retention)
	o.Bucket = bkt
	o.ShipInterval = time.Duration(c.shipInterval)
	if o.Retention == 0 {
		o.Retention = 15 * 24 * time.Hour
		if bkt != nil {
			o.Retention = 6 * time.Hour
		}
	}
	o.OutOfOrderTimeWindow = time.Duration(c.oooWindow)
	o.MaxExemplars = c.maxExemplars
	o.WALCompression = c.walCompression
	if replicaLabel != "" {
		o.ExternalLabels = labels.FromStrings(replicaLabel, instanceID)
	}
	return o
}

// bucketConfig says where blocks go: a Thanos-style objstore YAML file.
type bucketConfig struct {
	file   string
	inline string
	// resolved is the config open used.
	resolved bucket.Config
}

func (c *bucketConfig) register(cmd *kingpin.CmdClause, what string) {
	cmd.Flag("objstore.config-file", "YAML file describing the bucket, as Thanos: `type: FILESYSTEM` with `config: {directory: ...}`, or `type: S3` with `config: {bucket, endpoint, region, access_key, secret_key, insecure, http_config, sse_config, ...}`, and an optional `prefix`. See docs/bucket.md. "+what).
		PlaceHolder("<file>").StringVar(&c.file)
	cmd.Flag("objstore.config", "The bucket YAML inline, instead of --objstore.config-file.").
		PlaceHolder("<yaml>").StringVar(&c.inline)
}

// configured reports whether a bucket was given.
func (c *bucketConfig) configured() bool { return c.file != "" || c.inline != "" }

// open builds the bucket; without configuration it is a filesystem bucket
// in defaultDir, or none when defaultDir is empty.
func (c *bucketConfig) open(logger *slog.Logger, reg prometheus.Registerer, defaultDir string) (bucket.Bucket, error) {
	var cfg bucket.Config
	switch {
	case c.file != "" || c.inline != "":
		data := []byte(c.inline)
		if c.file != "" {
			var err error
			if data, err = os.ReadFile(c.file); err != nil {
				return nil, fmt.Errorf("read --objstore.config-file: %w", err)
			}
		}
		var err error
		if cfg, err = bucket.ParseConfig(data); err != nil {
			return nil, err
		}
	case defaultDir != "":
		cfg = bucket.ConfigForDir(defaultDir)
	default:
		return nil, nil
	}
	c.resolved = cfg
	bkt, err := bucket.New(cfg, logger.With("subsystem", "bucket"), reg)
	if err != nil {
		return nil, err
	}
	logger.Info("bucket configured", "type", cfg.Type, "name", bkt.Name())
	return bkt, nil
}

// ingestConfig configures the remote-write endpoint.
type ingestConfig struct {
	address       string
	defaultTenant string
	maxBody       units.Base2Bytes
	maxDecoded    units.Base2Bytes
	replicaLabel  string
	limitsFile    string
}

func (c *ingestConfig) register(cmd *kingpin.CmdClause, host string) {
	cmd.Flag("remote-write.address", "Listen address for Prometheus remote write (POST /api/v1/receive or /api/v1/write).").
		Default(host + ":19291").StringVar(&c.address)
	cmd.Flag("receive.default-tenant", "Tenant of writes that carry neither a THANOS-TENANT nor an X-Scope-OrgID header.").
		Default(tenant.Default).StringVar(&c.defaultTenant)
	cmd.Flag("remote-write.max-request-size", "Largest snappy-compressed request body accepted; bigger ones get 413.").
		Default("16MiB").BytesVar(&c.maxBody)
	cmd.Flag("remote-write.max-decoded-size", "Largest request body after snappy decoding; bigger ones get 413.").
		Default("64MiB").BytesVar(&c.maxDecoded)
	cmd.Flag("receive.limits-config-file", "YAML file of per-tenant limits (ingestion_rate, ingestion_burst, max_series) under `default:` and `tenants:`. Without it, no limits.").
		PlaceHolder("<file>").StringVar(&c.limitsFile)
	cmd.Flag("receive.replica-label", "External label whose value, the instance id, tells this receiver's copy of a series from other replicas.").
		Default("receive_replica").StringVar(&c.replicaLabel)
}

// limits reads the limits file, if any.
func (c *ingestConfig) limits() (ingest.LimitsConfig, error) {
	if c.limitsFile == "" {
		return ingest.LimitsConfig{}, nil
	}
	data, err := os.ReadFile(c.limitsFile)
	if err != nil {
		return ingest.LimitsConfig{}, fmt.Errorf("read --receive.limits-config-file: %w", err)
	}
	return ingest.ParseLimitsConfig(data)
}

func (c *ingestConfig) bodyLimits() ingest.BodyLimits {
	return ingest.BodyLimits{MaxCompressedBytes: int(c.maxBody), MaxDecodedBytes: int(c.maxDecoded)}
}

// queryConfig configures the PromQL querier and its HTTP API.
type queryConfig struct {
	replicaLabels   []string
	allTenants      bool
	partialResponse bool
	autoDownsample  bool
	defaultTenant   string
	timeout         model.Duration
	lookbackDelta   model.Duration
	maxSamples      int
	storeTimeout    model.Duration
	corsOrigin      string
}

func (c *queryConfig) register(cmd *kingpin.CmdClause) {
	c.timeout = model.Duration(2 * time.Minute)
	c.lookbackDelta = model.Duration(5 * time.Minute)
	cmd.Flag("query.replica-label", "Label telling replicas of a series apart; deduplication removes it and merges the replicas. Repeatable.").
		Default("receive_replica").StringsVar(&c.replicaLabels)
	cmd.Flag("query.all-tenants", "Queries without a tenant header read every tenant; series then carry a tenant_id label.").
		BoolVar(&c.allTenants)
	cmd.Flag("query.partial-response", "Answer with a warning when a store fails, instead of failing the query. Requests override it with partial_response=.").
		Default("true").BoolVar(&c.partialResponse)
	cmd.Flag("query.auto-downsampling", "Read downsampled data for queries whose step is coarse enough (max_source_resolution=auto unless a request says otherwise).").
		Default("true").BoolVar(&c.autoDownsample)
	cmd.Flag("query.default-tenant", "Tenant queried when a request carries no tenant header (unless --query.all-tenants).").
		Default(tenant.Default).StringVar(&c.defaultTenant)
	cmd.Flag("query.timeout", "Longest a query may run.").
		Default("2m").SetValue(&c.timeout)
	cmd.Flag("query.lookback-delta", "How far back an instant vector selector looks for a sample.").
		Default("5m").SetValue(&c.lookbackDelta)
	cmd.Flag("query.max-samples", "Most samples one query may hold in memory.").
		Default("50000000").IntVar(&c.maxSamples)
	cmd.Flag("query.store-timeout", "Longest one store may take to answer; 0 leaves only the query timeout.").
		Default("0s").SetValue(&c.storeTimeout)
	cmd.Flag("web.cors.origin", `Regex of the origins whose browser pages may call the HTTP API (CORS), fully anchored, e.g. 'https?://(grafana|dash)\.example\.com'.`).
		Default(".*").StringVar(&c.corsOrigin)
}

func (c *queryConfig) options() querier.Options {
	o := querier.DefaultOptions()
	o.ReplicaLabels = c.replicaLabels
	o.AllTenants = c.allTenants
	o.PartialResponse = c.partialResponse
	o.AutoDownsampling = c.autoDownsample
	o.DefaultTenant = c.defaultTenant
	o.StoreTimeout = time.Duration(c.storeTimeout)
	return o
}

func (c *queryConfig) apiOptions(flags map[string]string) (querier.APIOptions, error) {
	o := querier.DefaultAPIOptions()
	cors, err := regexp.Compile("^(?:" + c.corsOrigin + ")$")
	if err != nil {
		return o, fmt.Errorf("--web.cors.origin: %w", err)
	}
	o.CORSOrigin = cors
	o.QueryTimeout = time.Duration(c.timeout)
	o.LookbackDelta = time.Duration(c.lookbackDelta)
	o.MaxSamples = c.maxSamples
	o.Flags = flags
	return o, nil
}

// defaultInstanceID names this process in the ring and in its replica label.
func defaultInstanceID() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "atoll"
	}
	return h
}
