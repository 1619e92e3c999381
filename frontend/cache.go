package frontend

import (
	"bytes"
	"container/list"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/alecthomas/units"
	"github.com/bradfitz/gomemcache/memcache"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"
)

// Cache holds results-cache entries. Both operations are best effort: a
// failed fetch is a miss and a failed store is forgotten, so a cache that
// is down costs time, never an answer.
type Cache interface {
	// Fetch returns the entries found among keys.
	Fetch(ctx context.Context, keys []string) map[string][]byte
	// Store keeps value under key.
	Store(ctx context.Context, key string, value []byte)
}

// Cache types of the cache configuration file, named as Thanos and Cortex
// name them.
const (
	CacheInMemory  = "IN-MEMORY"
	CacheMemcached = "MEMCACHED"
)

// CacheConfig is the results cache configuration file:
//
//	type: IN-MEMORY            # or MEMCACHED
//	config:
//	  max_size: 256MiB         # IN-MEMORY: bytes of entries kept, least recently used dropped first
//	  validity: 0s             # IN-MEMORY: how long an entry is used; 0 keeps it until dropped
//	  addresses: [host:port]   # MEMCACHED: the servers; keys are spread over them
//	  timeout: 500ms           # MEMCACHED: per socket read or write
//	  max_idle_connections: 16 # MEMCACHED: per server
//	  max_item_size: 1MiB      # MEMCACHED: entries larger than this are not stored (memcached's -I)
//	  expiration: 0s           # MEMCACHED: entry lifetime; 0 leaves it to memcached's eviction
type CacheConfig struct {
	Type   string          `yaml:"type"`
	Config CacheBackendCfg `yaml:"config"`
}

// CacheBackendCfg holds the settings of both cache types; each reads its own.
type CacheBackendCfg struct {
	MaxSize  units.Base2Bytes `yaml:"max_size"`
	Validity model.Duration   `yaml:"validity"`

	Addresses          []string         `yaml:"addresses"`
	Timeout            model.Duration   `yaml:"timeout"`
	MaxIdleConnections int              `yaml:"max_idle_connections"`
	MaxItemSize        units.Base2Bytes `yaml:"max_item_size"`
	Expiration         model.Duration   `yaml:"expiration"`
}

// DefaultCacheConfig is the in-memory cache `atoll query-frontend` uses
// without a configuration file.
func DefaultCacheConfig() CacheConfig {
	return CacheConfig{Type: CacheInMemory, Config: CacheBackendCfg{MaxSize: 256 << 20}}
}

// ParseCacheConfig reads a cache configuration file. Unknown fields are
// errors, so a misspelt setting is not silently ignored.
func ParseCacheConfig(data []byte) (CacheConfig, error) {
	c := CacheConfig{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("parse cache config: %w", err)
	}
	c.Type = strings.ToUpper(c.Type)
	switch c.Type {
	case CacheInMemory:
		if c.Config.MaxSize <= 0 {
			c.Config.MaxSize = DefaultCacheConfig().Config.MaxSize
		}
	case CacheMemcached:
		if len(c.Config.Addresses) == 0 {
			return c, errors.New("parse cache config: MEMCACHED needs at least one address")
		}
		if c.Config.Timeout <= 0 {
			c.Config.Timeout = model.Duration(500 * time.Millisecond)
		}
		if c.Config.MaxIdleConnections <= 0 {
			c.Config.MaxIdleConnections = 16
		}
		if c.Config.MaxItemSize <= 0 {
			c.Config.MaxItemSize = 1 << 20
		}
	default:
		return c, fmt.Errorf("parse cache config: unknown type %q: want %s or %s", c.Type, CacheInMemory, CacheMemcached)
	}
	return c, nil
}

// NewCache builds the cache a configuration describes.
func NewCache(c CacheConfig, logger *slog.Logger, reg prometheus.Registerer) (Cache, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	switch c.Type {
	case CacheInMemory:
		return newMemoryCache(int64(c.Config.MaxSize), time.Duration(c.Config.Validity), reg), nil
	case CacheMemcached:
		return newMemcached(c.Config, logger, reg)
	}
	return nil, fmt.Errorf("unknown cache type %q", c.Type)
}

// cacheMetrics are what every backend reports.
type cacheMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	failures *prometheus.CounterVec
	skipped  prometheus.Counter
}

func newCacheMetrics(reg prometheus.Registerer, backend string) *cacheMetrics {
	f := promauto.With(prometheus.WrapRegistererWith(prometheus.Labels{"backend": backend}, reg))
	return &cacheMetrics{
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "atoll_frontend_cache_requests_total",
			Help: "Keys asked of the results cache backend, by operation and result (hit, miss, stored).",
		}, []string{"operation", "result"}),
		duration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:                        "atoll_frontend_cache_operation_duration_seconds",
			Help:                        "Time the results cache backend took per operation.",
			Buckets:                     []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1},
			NativeHistogramBucketFactor: 1.1,
		}, []string{"operation"}),
		failures: f.NewCounterVec(prometheus.CounterOpts{
			Name: "atoll_frontend_cache_failures_total",
			Help: "Results cache backend operations that failed (the query went on without the cache).",
		}, []string{"operation"}),
		skipped: f.NewCounter(prometheus.CounterOpts{
			Name: "atoll_frontend_cache_items_too_large_total",
			Help: "Entries not stored because they are larger than the backend's item size.",
		}),
	}
}

// memoryCache keeps entries in this process, dropping the least recently
// used beyond maxBytes.
type memoryCache struct {
	maxBytes int64
	validity time.Duration
	now      func() time.Time

	mtx   sync.Mutex
	lru   *list.List
	items map[string]*list.Element
	bytes int64

	metrics *cacheMetrics
	size    prometheus.Gauge
	count   prometheus.Gauge
}

type memoryItem struct {
	key     string
	value   []byte
	expires time.Time
}

func newMemoryCache(maxBytes int64, validity time.Duration, reg prometheus.Registerer) *memoryCache {
	f := promauto.With(reg)
	return &memoryCache{
		maxBytes: maxBytes,
		validity: validity,
		now:      time.Now,
		lru:      list.New(),
		items:    map[string]*list.Element{},
		metrics:  newCacheMetrics(reg, "memory"),
		size: f.NewGauge(prometheus.GaugeOpts{
			Name: "atoll_frontend_cache_memory_bytes",
			Help: "Bytes of entries held by the in-memory results cache.",
		}),
		count: f.NewGauge(prometheus.GaugeOpts{
			Name: "atoll_frontend_cache_memory_items",
			Help: "Entries held by the in-memory results cache.",
		}),
	}
}

// itemOverhead approximates what an entry costs besides its key and value.
const itemOverhead = 128

func (c *memoryCache) Fetch(_ context.Context, keys []string) map[string][]byte {
	out := make(map[string][]byte, len(keys))
	now := c.now()
	c.mtx.Lock()
	defer c.mtx.Unlock()
	for _, k := range keys {
		el, ok := c.items[k]
		if !ok {
			c.metrics.requests.WithLabelValues("fetch", "miss").Inc()
			continue
		}
		it := el.Value.(*memoryItem)
		if !it.expires.IsZero() && now.After(it.expires) {
			c.remove(el)
			c.metrics.requests.WithLabelValues("fetch", "miss").Inc()
			continue
		}
		c.lru.MoveToFront(el)
		out[k] = it.value
		c.metrics.requests.WithLabelValues("fetch", "hit").Inc()
	}
	return out
}

func (c *memoryCache) Store(_ context.Context, key string, value []byte) {
	size := int64(len(key) + len(value) + itemOverhead)
	if size > c.maxBytes {
		c.metrics.skipped.Inc()
		return
	}
	it := &memoryItem{key: key, value: value}
	if c.validity > 0 {
		it.expires = c.now().Add(c.validity)
	}
	c.mtx.Lock()
	defer c.mtx.Unlock()
	if el, ok := c.items[key]; ok {
		c.remove(el)
	}
	c.items[key] = c.lru.PushFront(it)
	c.bytes += size
	for c.bytes > c.maxBytes {
		c.remove(c.lru.Back())
	}
	c.metrics.requests.WithLabelValues("store", "stored").Inc()
	c.size.Set(float64(c.bytes))
	c.count.Set(float64(len(c.items)))
}

func (c *memoryCache) remove(el *list.Element) {
	it := el.Value.(*memoryItem)
	c.lru.Remove(el)
	delete(c.items, it.key)
	c.bytes -= int64(len(it.key) + len(it.value) + itemOverhead)
}

// memcachedCache keeps entries in memcached servers, shared by every
// frontend of a cluster.
type memcachedCache struct {
	client      *memcache.Client
	maxItemSize int
	expiration  int32
	logger      *slog.Logger
	metrics     *cacheMetrics
}

func newMemcached(c CacheBackendCfg, logger *slog.Logger, reg prometheus.Registerer) (*memcachedCache, error) {
	sel := &memcache.ServerList{}
	if err := sel.SetServers(c.Addresses...); err != nil {
		return nil, fmt.Errorf("memcached addresses: %w", err)
	}
	client := memcache.NewFromSelector(sel)
	client.Timeout = time.Duration(c.Timeout)
	client.MaxIdleConns = c.MaxIdleConnections
	return &memcachedCache{
		client:      client,
		maxItemSize: int(c.MaxItemSize),
		expiration:  int32(time.Duration(c.Expiration).Seconds()),
		logger:      logger,
		metrics:     newCacheMetrics(reg, "memcached"),
	}, nil
}

func (c *memcachedCache) Fetch(_ context.Context, keys []string) map[string][]byte {
	start := time.Now()
	items, err := c.client.GetMulti(keys)
	c.metrics.duration.WithLabelValues("fetch").Observe(time.Since(start).Seconds())
	if err != nil {
		c.metrics.failures.WithLabelValues("fetch").Inc()
		c.logger.Warn("results cache fetch failed", "err", err)
	}
	out := make(map[string][]byte, len(items))
	for k, it := range items {
		out[k] = it.Value
	}
	c.metrics.requests.WithLabelValues("fetch", "hit").Add(float64(len(out)))
	c.metrics.requests.WithLabelValues("fetch", "miss").Add(float64(len(keys) - len(out)))
	return out
}

// itemHeader is what memcached keeps besides key and value, counted
// against its item size.
const itemHeader = 64

func (c *memcachedCache) Store(_ context.Context, key string, value []byte) {
	if len(key)+len(value)+itemHeader > c.maxItemSize {
		c.metrics.skipped.Inc()
		return
	}
	start := time.Now()
	err := c.client.Set(&memcache.Item{Key: key, Value: value, Expiration: c.expiration})
	c.metrics.duration.WithLabelValues("store").Observe(time.Since(start).Seconds())
	if err != nil {
		c.metrics.failures.WithLabelValues("store").Inc()
		c.logger.Warn("results cache store failed", "err", err)
		return
	}
	c.metrics.requests.WithLabelValues("store", "stored").Inc()
}
