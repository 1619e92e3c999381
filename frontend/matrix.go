package frontend

import (
	"slices"
	"sort"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
)

// mergeSeries joins answers for pieces of one range query into one list
// sorted by labels, as Prometheus sorts a matrix. Points of a series that
// appear in several pieces are put in time order; where two pieces hold a
// point of the same time, the later piece's wins.
func mergeSeries(parts ...[]*series) []*series {
	total := 0
	for _, p := range parts {
		total += len(p)
	}
	if len(parts) == 1 {
		out := slices.Clone(parts[0])
		sortSeries(out)
		return out
	}
	byLabels := make(map[string]*series, total)
	var out []*series
	buf := make([]byte, 0, 256)
	for _, p := range parts {
		for _, s := range p {
			buf = s.lset.Bytes(buf[:0])
			m, ok := byLabels[string(buf)]
			if !ok {
				m = &series{lset: s.lset}
				byLabels[string(buf)] = m
				out = append(out, m)
			}
			m.floats = appendFloats(m.floats, s.floats)
			m.hists = appendHists(m.hists, s.hists)
		}
	}
	sortSeries(out)
	return out
}

func sortSeries(ss []*series) {
	sort.Slice(ss, func(i, j int) bool { return labels.Compare(ss[i].lset, ss[j].lset) < 0 })
}

// appendFloats appends b to a, keeping time order and one point per time.
func appendFloats(a, b []promql.FPoint) []promql.FPoint {
	if len(b) == 0 {
		return a
	}
	if len(a) == 0 || a[len(a)-1].T < b[0].T {
		return append(a, b...)
	}
	out := append(a, b...)
	slices.SortStableFunc(out, func(x, y promql.FPoint) int { return cmpInt(x.T, y.T) })
	return dedupLast(out, func(p promql.FPoint) int64 { return p.T })
}

func appendHists(a, b []histPoint) []histPoint {
	if len(b) == 0 {
		return a
	}
	if len(a) == 0 || a[len(a)-1].T < b[0].T {
		return append(a, b...)
	}
	out := append(a, b...)
	slices.SortStableFunc(out, func(x, y histPoint) int { return cmpInt(x.T, y.T) })
	return dedupLast(out, func(p histPoint) int64 { return p.T })
}

// dedupLast keeps the last of each run of points with the same time.
func dedupLast[P any](ps []P, t func(P) int64) []P {
	out := ps[:0]
	for i, p := range ps {
		if i+1 < len(ps) && t(ps[i+1]) == t(p) {
			continue
		}
		out = append(out, p)
	}
	return out
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// sliceSeries returns the points of ss from start to end, leaving out
// series without any there. Points are shared, not copied.
func sliceSeries(ss []*series, start, end int64) []*series {
	out := make([]*series, 0, len(ss))
	for _, s := range ss {
		f := sliceByTime(s.floats, start, end, func(p promql.FPoint) int64 { return p.T })
		h := sliceByTime(s.hists, start, end, func(p histPoint) int64 { return p.T })
		if len(f) == 0 && len(h) == 0 {
			continue
		}
		out = append(out, &series{lset: s.lset, floats: f, hists: h})
	}
	return out
}

func sliceByTime[P any](ps []P, start, end int64, t func(P) int64) []P {
	i := sort.Search(len(ps), func(i int) bool { return t(ps[i]) >= start })
	j := sort.Search(len(ps), func(i int) bool { return t(ps[i]) > end })
	if i >= j {
		return nil
	}
	return ps[i:j:j]
}

// unionStrings adds the strings of b missing from a, keeping a's order.
func unionStrings(a []string, b ...string) []string {
	for _, s := range b {
		if !slices.Contains(a, s) {
			a = append(a, s)
		}
	}
	return a
}
