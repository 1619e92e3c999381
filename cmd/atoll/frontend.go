package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	promconfig "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"

	"github.com/atoll-metrics/atoll/frontend"
	"github.com/atoll-metrics/atoll/tenant"
	"github.com/atoll-metrics/atoll/web"
)

// frontendConfig is what `atoll query-frontend` and the frontend built
// into `atoll all` share; the flags are Thanos's where Thanos has one.
type frontendConfig struct {
	splitInterval   model.Duration
	alignWithStep   bool
	maxRetries      int
	maxFreshness    model.Duration
	cacheResults    bool
	cacheFile       string
	cacheInline     string
	logSlowerThan   time.Duration
	limitsFile      string
	verticalShards  int
	maxParallelism  int
	checkInterval   model.Duration
	cacheConfigUsed *frontend.CacheConfig
	limitsUsed      *frontend.Limits
}

func (c *frontendConfig) register(cmd *kingpin.CmdClause) {
	d := frontend.DefaultOptions()
	c.splitInterval = model.Duration(d.SplitInterval)
	cmd.Flag("query-range.split-interval", "Split range queries at multiples of this interval (UTC) and ask the pieces in parallel; each piece is cached on its own. 0 disables splitting.").
		Default("24h").SetValue(&c.splitInterval)
	cmd.Flag("query-range.align-range-with-step", "Move start and end of range queries down to multiples of their step, so refreshed dashboards share cached points (Grafana aligns by default).").
		Default("true").BoolVar(&c.alignWithStep)
	cmd.Flag("query-range.max-retries-per-request", "Send a request answered with a 5xx, or not at all, again this many times, each to the next querier.").
		Default("5").IntVar(&c.maxRetries)
	c.maxFreshness = model.Duration(d.MaxFreshness)
	cmd.Flag("query-range.max-freshness", "Never cache points newer than now minus this: late samples may still change them.").
		Default("1m").SetValue(&c.maxFreshness)
	cmd.Flag("query-range.cache-results", "Cache range query answers (in memory unless a cache config names memcached).").
		Default("true").BoolVar(&c.cacheResults)
	cmd.Flag("query-range.response-cache-config-file", "YAML file of the results cache, as Thanos: `type: IN-MEMORY` with `config: {max_size: 256MiB, validity: 0s}`, or `type: MEMCACHED` with `config: {addresses: [host:port], timeout, max_idle_connections, max_item_size, expiration}`. Default: in memory, 256MiB.").
		PlaceHolder("<file>").StringVar(&c.cacheFile)
	cmd.Flag("query-range.response-cache-config", "The results cache YAML inline, instead of --query-range.response-cache-config-file.").
		PlaceHolder("<yaml>").StringVar(&c.cacheInline)
	cmd.Flag("query-frontend.log-queries-longer-than", "Log queries that take longer than this. 0 logs none; a negative value logs every query.").
		Default("0s").DurationVar(&c.logSlowerThan)
	cmd.Flag("query-frontend.limits-config-file", "YAML file of per-tenant query limits (max_query_length, max_query_lookback, max_samples, max_concurrent_queries, max_queued_queries) under `default:` and `tenants:`. Without it, no limits.").
		PlaceHolder("<file>").StringVar(&c.limitsFile)
	cmd.Flag("query-frontend.vertical-shards", "Ask shardable aggregations (sum, count, min, max, group, avg) in this many shards by series hash, spread over the queriers, and aggregate their answers here. The queriers must be Atoll's (they read the __query_shard__ matcher). Below 2: no sharding.").
		Default("0").IntVar(&c.verticalShards)
	cmd.Flag("query-frontend.max-parallelism", "Most requests one query has in flight at the queriers (its split pieces times its shards).").
		Default("14").IntVar(&c.maxParallelism)
	c.checkInterval = model.Duration(d.CheckInterval)
	cmd.Flag("query-frontend.downstream-check-interval", "How often every querier is asked whether it is ready; queriers that are not get requests only when none is.").
		Default("5s").SetValue(&c.checkInterval)
}

// options builds the frontend's options, reading the files the flags name.
func (c *frontendConfig) options(logger *slog.Logger, reg prometheus.Registerer) (frontend.Options, error) {
	o := frontend.DefaultOptions()
	o.SplitInterval = time.Duration(c.splitInterval)
	o.AlignRangeWithStep = c.alignWithStep
	o.MaxRetries = c.maxRetries
	o.MaxFreshness = time.Duration(c.maxFreshness)
	o.SlowQueryThreshold = c.logSlowerThan
	o.VerticalShards = c.verticalShards
	o.MaxParallelism = c.maxParallelism
	o.CheckInterval = time.Duration(c.checkInterval)
	o.TenantFromHeader = tenant.FromHeader
	if c.limitsFile != "" {
		data, err := os.ReadFile(c.limitsFile)
		if err != nil {
			return o, fmt.Errorf("read --query-frontend.limits-config-file: %w", err)
		}
		if o.Limits, err = frontend.ParseLimits(data); err != nil {
			return o, err
		}
		c.limitsUsed = &o.Limits
	}
	if c.cacheResults {
		cfg := frontend.DefaultCacheConfig()
		data := []byte(c.cacheInline)
		if c.cacheFile != "" {
			var err error
			if data, err = os.ReadFile(c.cacheFile); err != nil {
				return o, fmt.Errorf("read --query-range.response-cache-config-file: %w", err)
			}
		}
		if len(data) > 0 {
			var err error
			if cfg, err = frontend.ParseCacheConfig(data); err != nil {
				return o, err
			}
		}
		cache, err := frontend.NewCache(cfg, logger.With("subsystem", "results-cache"), reg)
		if err != nil {
			return o, err
		}
		o.Cache = cache
		c.cacheConfigUsed = &cfg
		logger.Info("results cache configured", "type", cfg.Type)
	}
	return o, nil
}

// queryFrontendConfig is `atoll query-frontend`.
type queryFrontendConfig struct {
	httpAddress string
	http        httpConfig
	downstreams []string
	tripperFile string
	frontend    frontendConfig
}

func registerQueryFrontend(app *kingpin.Application, setups map[string]setupFunc) {
	cmd := app.Command("query-frontend", "Run a query-frontend: the Prometheus HTTP API in front of queriers, with range queries split, cached and sharded, and per-tenant limits. Point Grafana at it.")
	c := &queryFrontendConfig{}
	cmd.Flag("http-address", "Listen address for the HTTP API, UI, /metrics, /-/healthy and /-/ready.").
		Default("0.0.0.0:10902").StringVar(&c.httpAddress)
	c.http.register(cmd)
	cmd.Flag("query-frontend.downstream-url", "Base URL of a querier's Prometheus HTTP API (/api/v1/... is appended), e.g. http://querier:10902. Repeatable: requests go to each in turn, shards are spread over them, and a failed request is retried on the next.").
		Required().PlaceHolder("<url>").StringsVar(&c.downstreams)
	cmd.Flag("query-frontend.downstream-tripper-config-file", "YAML of how to reach the queriers, in Prometheus's HTTP client format (tls_config with ca_file, cert_file, key_file; basic_auth with password_file; ...), as Thanos. Without it, plain HTTP(S) with the system's roots; a client's own Authorization header is passed on either way.").
		PlaceHolder("<file>").StringVar(&c.tripperFile)
	c.frontend.register(cmd)
	setups[cmd.FullCommand()] = func(g *run.Group, logger *slog.Logger, reg *prometheus.Registry) (func(), error) {
		return setupQueryFrontend(g, logger, reg, c, flagValues(app, cmd))
	}
}

func setupQueryFrontend(g *run.Group, logger *slog.Logger, reg *prometheus.Registry, c *queryFrontendConfig, flags map[string]string) (func(), error) {
	opts, err := c.frontend.options(logger, reg)
	if err != nil {
		return nil, err
	}
	var tripper http.RoundTripper
	if c.tripperFile != "" {
		cfg, _, err := promconfig.LoadHTTPConfigFile(c.tripperFile)
		if err != nil {
			return nil, fmt.Errorf("--query-frontend.downstream-tripper-config-file: %w", err)
		}
		if tripper, err = promconfig.NewRoundTripperFromConfig(*cfg, "atoll-query-frontend"); err != nil {
			return nil, fmt.Errorf("--query-frontend.downstream-tripper-config-file: %w", err)
		}
	}
	for _, s := range c.downstreams {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("--query-frontend.downstream-url %q: want http(s)://host:port[/path]", maskedURLs(s))
		}
		opts.Downstreams = append(opts.Downstreams, frontend.Downstream{URL: u, Transport: tripper})
	}
	fe, err := frontend.New(opts, logger.With("subsystem", "frontend"), reg)
	if err != nil {
		return nil, err
	}
	ready := &readiness{}
	ready.block("queriers", "no querier answered yet")
	mux := newOpsMux(reg, ready, &c.http)
	mux.Handle("/api/v1/", fe)
	running := frontendRunningConfig{Command: "query-frontend", Flags: flags, Cache: c.frontend.cacheConfigUsed, Limits: c.frontend.limitsUsed}
	mux.HandleFunc("GET /api/v1/status/config", running.serve)
	wo := newWebOptions("query-frontend", defaultInstanceID(), flags, logger)
	wo.QueryAPI = true
	wo.QueryAPIPassedOn = true
	web.New(wo).Register(mux)
	if _, err := c.http.serve(g, logger, reg, "http", c.httpAddress, mux); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	g.Add(func() error {
		ready.set(true)
		go func() {
			// Ready while some querier is.
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				if fe.Ready() {
					ready.unblock("queriers")
				} else {
					ready.block("queriers", "no querier is ready")
				}
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		}()
		return fe.Run(ctx)
	}, func(error) {
		ready.set(false)
		cancel()
	})
	return nil, nil
}

// frontendRunningConfig is what a query-frontend's /api/v1/status/config
// shows: its flags and the cache and limits it runs with.
type frontendRunningConfig struct {
	Command string                `yaml:"command"`
	Flags   map[string]string     `yaml:"flags"`
	Cache   *frontend.CacheConfig `yaml:"results_cache,omitempty"`
	Limits  *frontend.Limits      `yaml:"limits,omitempty"`
}

func (c frontendRunningConfig) serve(w http.ResponseWriter, _ *http.Request) {
	out, err := yaml.Marshal(c)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": map[string]string{"yaml": string(out)}})
}

// addBuiltinFrontend puts a query-frontend in front of the query API of
// `atoll all`, in the same process.
func addBuiltinFrontend(logger *slog.Logger, reg prometheus.Registerer, c *frontendConfig, api http.Handler) (http.Handler, error) {
	opts, err := c.options(logger, reg)
	if err != nil {
		return nil, err
	}
	opts.Downstreams = []frontend.Downstream{{URL: &url.URL{Scheme: "http", Host: "in-process"}, Transport: frontend.HandlerTransport(api)}}
	return frontend.New(opts, logger.With("subsystem", "frontend"), reg)
}
