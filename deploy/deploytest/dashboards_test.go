package deploytest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
)

// grafanaIntervals are Grafana's built-in range variables, replaced by a
// duration so the expression parses as Prometheus will receive it.
var grafanaIntervals = map[string]string{
	"__rate_interval": "5m",
	"__interval":      "1m",
	"__range":         "6h",
}

// grafanaVar matches $name, ${name}, ${name:format} and [[name]].
var grafanaVar = regexp.MustCompile(`\$\{([A-Za-z0-9_]+)(?::[^}]*)?\}|\$([A-Za-z0-9_]+)|\[\[([A-Za-z0-9_]+)\]\]`)

// labelValuesQuery is the label_values(selector, label) variable query.
var labelValuesQuery = regexp.MustCompile(`^\s*label_values\((.*),\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*$`)

type dashboard struct {
	Title      string  `json:"title"`
	UID        string  `json:"uid"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string          `json:"name"`
			Type  string          `json:"type"`
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	Title   string  `json:"title"`
	Type    string  `json:"type"`
	Panels  []panel `json:"panels"` // a collapsed row's panels
	Targets []struct {
		Expr  string `json:"expr"`
		RefID string `json:"refId"`
	} `json:"targets"`
}

// TestDashboards checks every Grafana dashboard under deploy/grafana: each
// panel query and variable query parses as PromQL once Grafana's variables
// are substituted, uses only variables the dashboard defines, and names only
// metrics and labels that the Atoll components expose.
func TestDashboards(t *testing.T) {
	files, err := filepath.Glob(deployPath(t, "grafana", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards in deploy/grafana: %v", err)
	}
	metrics := observedMetrics(t)
	uids := map[string]string{}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var d dashboard
			dec := json.NewDecoder(strings.NewReader(string(raw)))
			if err := dec.Decode(&d); err != nil {
				t.Fatalf("not a dashboard: %v", err)
			}
			if d.UID == "" || d.Title == "" {
				t.Fatalf("dashboard without uid or title")
			}
			if other, dup := uids[d.UID]; dup {
				t.Fatalf("uid %q already used by %s", d.UID, other)
			}
			uids[d.UID] = filepath.Base(f)

			defined := map[string]bool{}
			for _, v := range d.Templating.List {
				defined[v.Name] = true
			}
			substitute := func(expr string) (string, error) {
				var undefined []string
				out := grafanaVar.ReplaceAllStringFunc(expr, func(s string) string {
					sub := grafanaVar.FindStringSubmatch(s)
					name := sub[1] + sub[2] + sub[3]
					if d, ok := grafanaIntervals[name]; ok {
						return d
					}
					if !defined[name] {
						undefined = append(undefined, name)
					}
					return "placeholder"
				})
				if len(undefined) > 0 {
					return "", fmt.Errorf("uses undefined variables %v", undefined)
				}
				return out, nil
			}

			for _, v := range d.Templating.List {
				if v.Type != "query" {
					continue
				}
				q := variableQuery(v.Query)
				expr, err := substitute(q)
				label := ""
				if err == nil {
					expr, label, err = variableExpr(expr)
				}
				if err == nil {
					err = checkExpr(metrics, expr)
				}
				if err == nil && label != "" {
					err = checkLabel(metrics, expr, label)
				}
				if err != nil {
					t.Errorf("variable %s: %q: %v", v.Name, q, err)
				}
			}
			n := 0
			var walk func([]panel)
			walk = func(ps []panel) {
				for _, p := range ps {
					walk(p.Panels)
					for _, tg := range p.Targets {
						n++
						expr, err := substitute(tg.Expr)
						if err == nil {
							err = checkExpr(metrics, expr)
						}
						if err != nil {
							t.Errorf("panel %q query %s: %q: %v", p.Title, tg.RefID, tg.Expr, err)
						}
					}
				}
			}
			walk(d.Panels)
			if n == 0 {
				t.Errorf("no queries")
			}
		})
	}
}

// variableQuery returns a query variable's query, stored either as a string
// or as an object with a "query" field depending on the Grafana version.
func variableQuery(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var o struct {
		Query string `json:"query"`
	}
	_ = json.Unmarshal(raw, &o)
	return o.Query
}

// variableExpr turns label_values(selector, label) into the selector and
// the label; query_result(expr) into expr.
func variableExpr(q string) (expr, label string, err error) {
	if m := labelValuesQuery.FindStringSubmatch(q); m != nil {
		return m[1], m[2], nil
	}
	if inner, ok := strings.CutPrefix(strings.TrimSpace(q), "query_result("); ok {
		return strings.TrimSuffix(strings.TrimSpace(inner), ")"), "", nil
	}
	return "", "", fmt.Errorf("unsupported variable query (want label_values(selector, label) or query_result(expr))")
}

// checkLabel checks that the metric the selector expr names carries label.
func checkLabel(m exposedMetrics, expr, label string) error {
	e, err := promqlParser.ParseExpr(expr)
	if err != nil {
		return err
	}
	vs, ok := e.(*parser.VectorSelector)
	if !ok {
		return fmt.Errorf("label_values over %q, not a selector", expr)
	}
	name, _ := selectorParts(vs)
	return m.checkSelector(name, []string{label})
}
