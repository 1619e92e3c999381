package dedup

import (
	"errors"
	"slices"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/util/annotations"
)

// seriesSet holds every input series after the replica labels are removed,
// sorted so that replicas sit next to each other, and hands them out group by
// group.
type seriesSet struct {
	sets          []storage.SeriesSet
	replicaLabels []string
	cfg           config

	loaded  bool
	entries []entry
	pos     int // first entry of the next group
	cur     storage.Series
	err     error
	warns   annotations.Annotations
}

type entry struct {
	lset   labels.Labels // without replica labels
	full   labels.Labels // as the store returned it
	series storage.Series
}

func (s *seriesSet) load() {
	s.loaded = true
	b := labels.NewBuilder(labels.EmptyLabels())
	var errs []error
	for _, set := range s.sets {
		for set.Next() {
			sr := set.At()
			full := sr.Labels()
			lset := full
			if hasAny(full, s.replicaLabels) {
				b.Reset(full)
				b.Del(s.replicaLabels...)
				lset = b.Labels()
			}
			s.entries = append(s.entries, entry{lset: lset, full: full, series: sr})
		}
		if err := set.Err(); err != nil {
			errs = append(errs, err)
		}
		s.warns.Merge(set.Warnings())
	}
	s.sets = nil
	if len(errs) > 0 {
		s.err = errors.Join(errs...)
		s.entries = nil
		return
	}
	// Ties on full labels are the same replica from different stores; a
	// stable sort keeps the result independent of the sort algorithm.
	slices.SortStableFunc(s.entries, func(a, b entry) int {
		if c := labels.Compare(a.lset, b.lset); c != 0 {
			return c
		}
		return labels.Compare(a.full, b.full)
	})
}

func hasAny(lset labels.Labels, names []string) bool {
	for _, n := range names {
		if lset.Has(n) {
			return true
		}
	}
	return false
}

func (s *seriesSet) Next() bool {
	if !s.loaded {
		s.load()
	}
	s.cur = nil
	if s.err != nil || s.pos >= len(s.entries) {
		return false
	}
	i := s.pos
	j := i + 1
	for j < len(s.entries) && labels.Equal(s.entries[i].lset, s.entries[j].lset) {
		j++
	}
	s.pos = j
	s.cur = s.group(s.entries[i:j])
	// The set no longer needs the entries; let the series go with the caller.
	clear(s.entries[i:j])
	return true
}

// group turns entries with equal labels into one series: entries of the same
// replica are chained, distinct replicas are deduplicated.
func (s *seriesSet) group(es []entry) storage.Series {
	// Entries are sorted by full labels, so equal ends mean one replica.
	if labels.Equal(es[0].full, es[len(es)-1].full) {
		return &relabeled{lset: es[0].lset, Series: chain(es)}
	}
	out := &series{lset: es[0].lset, cfg: s.cfg}
	// Two replicas are the common case; keep them in the series' own memory.
	out.replicas = out.inline[:0]
	for k := 0; k < len(es); {
		m := k + 1
		for m < len(es) && labels.Equal(es[k].full, es[m].full) {
			m++
		}
		out.replicas = append(out.replicas, chain(es[k:m]))
		k = m
	}
	return out
}

// chain unites the series of one replica that several stores returned.
func chain(es []entry) storage.Series {
	if len(es) == 1 {
		return es[0].series
	}
	same := make([]storage.Series, len(es))
	for i, e := range es {
		same[i] = e.series
	}
	return storage.ChainedSeriesMerge(same...)
}

func (s *seriesSet) At() storage.Series { return s.cur }

func (s *seriesSet) Err() error { return s.err }

func (s *seriesSet) Warnings() annotations.Annotations {
	if !s.loaded {
		s.load()
	}
	return s.warns
}

// relabeled is a single replica shown under the labels without replica labels.
type relabeled struct {
	storage.Series
	lset labels.Labels
}

func (r *relabeled) Labels() labels.Labels { return r.lset }

// series is a group of replicas shown as one series.
type series struct {
	lset     labels.Labels
	replicas []storage.Series
	cfg      config
	inline   [2]storage.Series
}

func (s *series) Labels() labels.Labels { return s.lset }

func (s *series) Iterator(old chunkenc.Iterator) chunkenc.Iterator {
	it, ok := old.(*iterator)
	if !ok {
		it = &iterator{}
	}
	it.reset(s.replicas, s.cfg)
	return it
}
