package frontend

import (
	"github.com/prometheus/prometheus/promql/parser"
)

// span is the points of a range query from start to end, both on the
// query's grid (start of the query plus multiples of the step).
type span struct{ start, end int64 }

// floorDiv divides rounding toward minus infinity, so times before 1970
// split and align like the others.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// alignToStep moves start and end down to multiples of the step: the
// points Grafana asks for when it aligns, and the ones every refresh of a
// dashboard shares.
func alignToStep(q *rangeQuery) {
	q.start = floorDiv(q.start, q.step) * q.step
	q.end = floorDiv(q.end, q.step) * q.step
}

// splitByInterval cuts [start, end] at multiples of interval (UTC), each
// piece holding the points of the query's grid that fall before the next
// multiple. Every point belongs to exactly one piece, and each piece's
// answer is the whole query's answer at its points, since PromQL evaluates
// every step on its own (@ start() and @ end() are made explicit first).
func splitByInterval(start, end, step, interval int64) []span {
	if interval <= 0 {
		return []span{{start, end}}
	}
	var out []span
	for s := start; s <= end; {
		boundary := (floorDiv(s, interval) + 1) * interval
		e := s + floorDiv(boundary-1-s, step)*step
		if e > end {
			e = end
		}
		out = append(out, span{s, e})
		s = e + step
	}
	return out
}

// pinStartEnd replaces @ start() and @ end() by the query's own start and
// end, so the pieces of a split query see the times the whole query would.
// It reports whether anything changed.
func pinStartEnd(expr parser.Expr, start, end int64) bool {
	changed := false
	pin := func(ts **int64, se *parser.ItemType) {
		switch *se {
		case parser.START:
			t := start
			*ts = &t
		case parser.END:
			t := end
			*ts = &t
		default:
			return
		}
		*se = 0
		changed = true
	}
	parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
		switch n := node.(type) {
		case *parser.VectorSelector:
			pin(&n.Timestamp, &n.StartOrEnd)
		case *parser.SubqueryExpr:
			pin(&n.Timestamp, &n.StartOrEnd)
		}
		return nil
	})
	return changed
}

// lookAhead is how far past a point's time the data it is computed from may
// lie (negative offsets), and the latest time an @ modifier pins: data up
// to there may still change while it is within max freshness of now.
func lookAhead(expr parser.Expr) (ahead int64, latestAt int64, hasAt bool) {
	parser.Inspect(expr, func(node parser.Node, path []parser.Node) error {
		var offset int64
		var ts *int64
		switch n := node.(type) {
		case *parser.VectorSelector:
			offset, ts = n.OriginalOffset.Milliseconds(), n.Timestamp
		case *parser.SubqueryExpr:
			offset, ts = n.OriginalOffset.Milliseconds(), n.Timestamp
		default:
			return nil
		}
		// Offsets of enclosing subqueries add up.
		for _, p := range path {
			if sq, ok := p.(*parser.SubqueryExpr); ok {
				offset += sq.OriginalOffset.Milliseconds()
			}
		}
		if -offset > ahead {
			ahead = -offset
		}
		if ts != nil {
			if !hasAt || *ts > latestAt {
				latestAt = *ts
			}
			hasAt = true
		}
		return nil
	})
	return ahead, latestAt, hasAt
}
