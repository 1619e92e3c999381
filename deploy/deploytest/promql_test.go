package deploytest

import (
	"errors"
	"fmt"
	"slices"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

var promqlParser = parser.NewParser(parser.Options{})

// checkExpr parses expr as PromQL and checks it against what the Atoll
// components expose: every selector names a metric some component has,
// with labels that metric carries, and every `by` label of an aggregation
// is on a metric it aggregates.
func checkExpr(m exposedMetrics, expr string) error {
	e, err := promqlParser.ParseExpr(expr)
	if err != nil {
		return fmt.Errorf("does not parse: %w", err)
	}
	var errs []error
	parser.Inspect(e, func(node parser.Node, _ []parser.Node) error {
		switch n := node.(type) {
		case *parser.VectorSelector:
			name, matched := selectorParts(n)
			if name == "" {
				errs = append(errs, fmt.Errorf("selector %s names no metric", n))
				return nil
			}
			if err := m.checkSelector(name, matched); err != nil {
				errs = append(errs, err)
			}
		case *parser.AggregateExpr:
			if n.Without {
				return nil
			}
			have := map[string]bool{}
			parser.Inspect(n.Expr, func(inner parser.Node, _ []parser.Node) error {
				if vs, ok := inner.(*parser.VectorSelector); ok {
					name, _ := selectorParts(vs)
					for l := range m[name] {
						have[l] = true
					}
				}
				return nil
			})
			for _, l := range n.Grouping {
				if !have[l] && !scrapeLabels[l] {
					errs = append(errs, fmt.Errorf("%s by (%s): no metric it aggregates has label %s", n.Op, l, l))
				}
			}
		}
		return nil
	})
	return errors.Join(errs...)
}

// selectorParts returns a selector's metric name and the label names it
// matches on.
func selectorParts(vs *parser.VectorSelector) (string, []string) {
	name := vs.Name
	var ls []string
	for _, lm := range vs.LabelMatchers {
		if lm.Name == labels.MetricName {
			if lm.Type == labels.MatchEqual {
				name = lm.Value
			}
			continue
		}
		if !slices.Contains(ls, lm.Name) {
			ls = append(ls, lm.Name)
		}
	}
	return name, ls
}
