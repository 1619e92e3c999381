package tsdbshard

import (
	"sort"
	"sync"

	"github.com/prometheus/prometheus/model/metadata"
)

// maxMetadataFamilies bounds the metadata kept per tenant: remote-write
// clients resend metadata every minute, so a bound loses nothing for long,
// while an unbounded map would let one tenant's churn grow memory forever.
const maxMetadataFamilies = 100_000

// metadataStore keeps the newest metadata of each metric family. Remote write
// 1.0 sends metadata apart from series, so it is held per tenant rather than
// per series.
type metadataStore struct {
	mtx      sync.RWMutex
	families map[string]metadata.Metadata
}

func newMetadataStore() *metadataStore {
	return &metadataStore{families: map[string]metadata.Metadata{}}
}

// SetMetadata records the metadata of a metric family.
func (t *Tenant) SetMetadata(family string, m metadata.Metadata) {
	s := t.metadata
	s.mtx.RLock()
	old, ok := s.families[family]
	s.mtx.RUnlock()
	if ok && old == m {
		return
	}
	s.mtx.Lock()
	if _, ok := s.families[family]; ok || len(s.families) < maxMetadataFamilies {
		s.families[family] = m
	}
	s.mtx.Unlock()
}

// Metadata returns the metadata of metric (every family when metric is
// empty), at most limit families when limit is positive, sorted by name.
func (t *Tenant) Metadata(metric string, limit int) map[string]metadata.Metadata {
	s := t.metadata
	s.mtx.RLock()
	defer s.mtx.RUnlock()
	if metric != "" {
		if m, ok := s.families[metric]; ok {
			return map[string]metadata.Metadata{metric: m}
		}
		return nil
	}
	names := make([]string, 0, len(s.families))
	for n := range s.families {
		names = append(names, n)
	}
	sort.Strings(names)
	if limit > 0 && len(names) > limit {
		names = names[:limit]
	}
	out := make(map[string]metadata.Metadata, len(names))
	for _, n := range names {
		out[n] = s.families[n]
	}
	return out
}
