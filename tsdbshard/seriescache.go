package tsdbshard

import (
	"sync"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
)

const seriesCacheShards = 128

// SeriesCache maps the hash of a series' label set, as the write path
// computes it from the wire bytes, to the TSDB series ref and the labels the
// head stored. A hit lets the write path skip building, validating and
// hashing labels: the head finds the series by ref.
//
// The hash is not trusted alone: callers compare the returned labels with the
// series they hold before using the ref, so a collision costs a slow append,
// never a sample on the wrong series. Labels returned share memory with the
// head's own copy, so an entry costs a few words.
//
// Entries live in two generations; rotate drops the older one, so series that
// received nothing for a whole rotation period are forgotten and a series
// garbage-collected from the head cannot pin memory for long. A stale ref is
// harmless: the head recreates the series from the labels passed with it.
type SeriesCache struct {
	shards [seriesCacheShards]seriesCacheShard
}

type seriesCacheShard struct {
	mtx  sync.Mutex
	cur  map[uint64]seriesCacheEntry
	prev map[uint64]seriesCacheEntry
	_    [40]byte // keep shards on separate cache lines
}

type seriesCacheEntry struct {
	ref  storage.SeriesRef
	lset labels.Labels
}

func newSeriesCache() *SeriesCache {
	c := &SeriesCache{}
	for i := range c.shards {
		c.shards[i].cur = map[uint64]seriesCacheEntry{}
	}
	return c
}

// Get returns the ref and labels remembered for hash.
func (c *SeriesCache) Get(hash uint64) (storage.SeriesRef, labels.Labels, bool) {
	s := &c.shards[hash%seriesCacheShards]
	s.mtx.Lock()
	e, ok := s.cur[hash]
	if !ok && s.prev != nil {
		if e, ok = s.prev[hash]; ok {
			delete(s.prev, hash)
			s.cur[hash] = e
		}
	}
	s.mtx.Unlock()
	return e.ref, e.lset, ok
}

// Put remembers ref and lset for hash, replacing what was there.
func (c *SeriesCache) Put(hash uint64, ref storage.SeriesRef, lset labels.Labels) {
	s := &c.shards[hash%seriesCacheShards]
	s.mtx.Lock()
	s.cur[hash] = seriesCacheEntry{ref: ref, lset: lset}
	s.mtx.Unlock()
}

func (c *SeriesCache) rotate() {
	for i := range c.shards {
		s := &c.shards[i]
		s.mtx.Lock()
		s.prev = s.cur
		s.cur = make(map[uint64]seriesCacheEntry, len(s.prev))
		s.mtx.Unlock()
	}
}

func (c *SeriesCache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mtx.Lock()
		n += len(s.cur) + len(s.prev)
		s.mtx.Unlock()
	}
	return n
}
