package storegateway

import (
	"container/list"
	"sync"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Kinds of index cache entries.
const (
	cachePostings cacheKind = iota
	cacheSeries
)

type cacheKind uint8

func (k cacheKind) String() string {
	if k == cachePostings {
		return "postings"
	}
	return "series"
}

// cacheKey names one postings list (name, value) or one series entry (ref)
// of one block.
type cacheKey struct {
	block ulid.ULID
	kind  cacheKind
	ref   uint64
	name  string
	value string
}

// entryOverhead is what an entry costs beyond its bytes: the map slot, the
// list element and the entry with its key, measured on amd64. Series
// entries are a few dozen bytes, so without it the cap would be exceeded
// several times over.
const entryOverhead = 256

func (k cacheKey) size() int64 { return int64(entryOverhead + len(k.name) + len(k.value)) }

type cacheEntry struct {
	key  cacheKey
	data []byte
}

// indexCache keeps the postings lists and series entries read from block
// indexes, least recently used first out, within a fixed number of bytes.
// Cached slices are shared and must not be modified.
type indexCache struct {
	maxBytes int64
	// maxItemBytes keeps one huge postings list from flushing the cache.
	maxItemBytes int64

	mtx   sync.Mutex
	bytes int64
	lru   list.List // front is the most recently used
	items map[cacheKey]*list.Element

	misses    *prometheus.CounterVec
	hits      *prometheus.CounterVec
	evictions *prometheus.CounterVec
	added     *prometheus.CounterVec
}

func newIndexCache(maxBytes int64, reg prometheus.Registerer) *indexCache {
	c := &indexCache{
		maxBytes:     maxBytes,
		maxItemBytes: maxBytes / 8,
		items:        map[cacheKey]*list.Element{},
	}
	f := promauto.With(reg)
	c.misses = f.NewCounterVec(prometheus.CounterOpts{
		Name: "atoll_gateway_index_cache_misses_total",
		Help: "Lookups in the index cache that had to read the bucket, by kind of entry.",
	}, []string{"kind"})
	c.hits = f.NewCounterVec(prometheus.CounterOpts{
		Name: "atoll_gateway_index_cache_hits_total",
		Help: "Lookups in the index cache that found the entry, by kind.",
	}, []string{"kind"})
	c.evictions = f.NewCounterVec(prometheus.CounterOpts{
		Name: "atoll_gateway_index_cache_evictions_total",
		Help: "Entries evicted from the index cache to stay within its size, by kind.",
	}, []string{"kind"})
	c.added = f.NewCounterVec(prometheus.CounterOpts{
		Name: "atoll_gateway_index_cache_items_added_total",
		Help: "Entries added to the index cache, by kind.",
	}, []string{"kind"})
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "atoll_gateway_index_cache_bytes",
		Help: "Bytes held by the index cache, entry overhead included.",
	}, func() float64 { return float64(c.size()) })
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "atoll_gateway_index_cache_max_bytes",
		Help: "Most bytes the index cache may hold (--index-cache-size).",
	}, func() float64 { return float64(c.maxBytes) })
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "atoll_gateway_index_cache_items",
		Help: "Entries in the index cache.",
	}, func() float64 {
		c.mtx.Lock()
		defer c.mtx.Unlock()
		return float64(len(c.items))
	})
	for _, k := range []cacheKind{cachePostings, cacheSeries} {
		c.misses.WithLabelValues(k.String())
		c.hits.WithLabelValues(k.String())
		c.evictions.WithLabelValues(k.String())
		c.added.WithLabelValues(k.String())
	}
	return c
}

func (c *indexCache) get(k cacheKey) ([]byte, bool) {
	var (
		e  *list.Element
		ok bool
	)
	if c.maxBytes > 0 {
		c.mtx.Lock()
		if e, ok = c.items[k]; ok {
			c.lru.MoveToFront(e)
		}
		c.mtx.Unlock()
	}
	if !ok {
		c.misses.WithLabelValues(k.kind.String()).Inc()
		return nil, false
	}
	c.hits.WithLabelValues(k.kind.String()).Inc()
	return e.Value.(*cacheEntry).data, true
}

// set stores data under k. The cache keeps data as it is: the caller gives
// up the right to change it.
func (c *indexCache) set(k cacheKey, data []byte) {
	sz := k.size() + int64(len(data))
	if sz > c.maxItemBytes || sz > c.maxBytes {
		return
	}
	c.mtx.Lock()
	defer c.mtx.Unlock()
	if _, ok := c.items[k]; ok {
		return
	}
	for c.bytes+sz > c.maxBytes {
		back := c.lru.Back()
		if back == nil {
			break
		}
		old := back.Value.(*cacheEntry)
		c.lru.Remove(back)
		delete(c.items, old.key)
		c.bytes -= old.key.size() + int64(len(old.data))
		c.evictions.WithLabelValues(old.key.kind.String()).Inc()
	}
	c.items[k] = c.lru.PushFront(&cacheEntry{key: k, data: data})
	c.bytes += sz
	c.added.WithLabelValues(k.kind.String()).Inc()
}

func (c *indexCache) size() int64 {
	c.mtx.Lock()
	defer c.mtx.Unlock()
	return c.bytes
}
