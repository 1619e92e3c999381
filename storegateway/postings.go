package storegateway

import (
	"context"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/index"
)

// postingsGroup is the label pairs one matcher selects. Series with any
// of them are kept (intersected with the other groups) or, for a
// subtracting group, dropped. A matcher that accepts the empty value also
// accepts series without the label, so it is expressed by subtracting the
// values it rejects.
type postingsGroup struct {
	pairs    []labelPair
	subtract bool
}

// seriesRefs returns the series of the block that match every matcher, in
// index order (which is label order).
func (b *bucketBlock) seriesRefs(ctx context.Context, ms []*labels.Matcher) ([]storage.SeriesRef, error) {
	var groups []postingsGroup
	intersecting := false
	for _, m := range ms {
		g, matchesNothing, err := b.groupFor(m)
		if err != nil {
			return nil, err
		}
		if matchesNothing {
			return nil, nil
		}
		if len(g.pairs) == 0 {
			// Accepts every series.
			continue
		}
		intersecting = intersecting || !g.subtract
		groups = append(groups, g)
	}
	if !intersecting {
		name, value := index.AllPostingsKey()
		groups = append(groups, postingsGroup{pairs: []labelPair{{name, value}}})
	}

	// One fetch for every list any group needs.
	var pairs []labelPair
	at := map[labelPair]int{}
	for _, g := range groups {
		for _, p := range g.pairs {
			if _, ok := at[p]; !ok {
				at[p] = len(pairs)
				pairs = append(pairs, p)
			}
		}
	}
	lists, err := b.postings(ctx, pairs)
	if err != nil {
		return nil, err
	}
	var keep, drop []index.Postings
	for _, g := range groups {
		its := make([]index.Postings, 0, len(g.pairs))
		for _, p := range g.pairs {
			it, err := decodePostings(lists[at[p]])
			if err != nil {
				return nil, err
			}
			its = append(its, it)
		}
		if g.subtract {
			drop = append(drop, its...)
		} else {
			keep = append(keep, index.Merge(ctx, its...))
		}
	}
	p := index.Intersect(keep...)
	if len(drop) > 0 {
		p = index.Without(p, index.Merge(ctx, drop...))
	}
	return index.ExpandPostings(p)
}

// groupFor returns the label pairs of m's group; matchesNothing when no
// series can match m.
func (b *bucketBlock) groupFor(m *labels.Matcher) (g postingsGroup, matchesNothing bool, err error) {
	g.subtract = m.Matches("")
	// want is whether a stored value belongs to the group: a value m
	// accepts, or for a subtracting group one it rejects.
	want := func(v string) bool { return m.Matches(v) != g.subtract }

	// Values that can be looked up directly instead of scanning the name.
	var direct []string
	switch {
	case m.Type == labels.MatchEqual && !g.subtract:
		direct = []string{m.Value}
	case m.Type == labels.MatchNotEqual && g.subtract:
		direct = []string{m.Value}
	case (m.Type == labels.MatchRegexp && !g.subtract) || (m.Type == labels.MatchNotRegexp && g.subtract):
		direct = m.SetMatches()
	}
	if direct != nil {
		for _, v := range direct {
			if _, _, ok, err := b.header.postingsRange(m.Name, v); err != nil {
				return g, false, err
			} else if ok && want(v) {
				g.pairs = append(g.pairs, labelPair{m.Name, v})
			}
		}
	} else {
		prefix := ""
		if m.Type == labels.MatchRegexp && !g.subtract {
			prefix = m.Prefix()
		}
		err = b.header.labelValuesFrom(m.Name, prefix, func(v []byte, _, _ int64) bool {
			s := yoloString(v)
			if !strings.HasPrefix(s, prefix) {
				return false
			}
			if want(s) {
				g.pairs = append(g.pairs, labelPair{m.Name, strings.Clone(s)})
			}
			return true
		})
		if err != nil {
			return g, false, err
		}
	}
	return g, !g.subtract && len(g.pairs) == 0, nil
}
