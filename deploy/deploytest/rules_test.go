package deploytest

import (
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"gopkg.in/yaml.v3"

	"github.com/atoll-metrics/atoll/internal/e2eproc"
)

// externalMetrics are the metrics the rules use that other programs expose:
// the kubelet's volume statistics, for volumes of the Kubernetes manifests.
var externalMetrics = exposedMetrics{
	"kubelet_volume_stats_available_bytes": {"namespace": true, "persistentvolumeclaim": true},
	"kubelet_volume_stats_capacity_bytes":  {"namespace": true, "persistentvolumeclaim": true},
}

// TestAlertRules runs the real promtool over deploy/rules: the rule files
// pass `promtool check rules` and their unit tests pass `promtool test
// rules`; every alert has a unit test that makes it fire; and every
// expression names only metrics and labels the components expose (or the
// kubelet, for disk space).
func TestAlertRules(t *testing.T) {
	promtool := e2eproc.FindTool(t, "promtool")
	dir := deployPath(t, "rules")
	ruleFiles, _ := filepath.Glob(filepath.Join(dir, "*.yml"))
	testFiles, _ := filepath.Glob(filepath.Join(dir, "*.test.yml"))
	var rules []string
	for _, f := range ruleFiles {
		if !slices.Contains(testFiles, f) {
			rules = append(rules, f)
		}
	}
	if len(rules) == 0 || len(testFiles) == 0 {
		t.Fatalf("want rule files and their tests in deploy/rules, have %v and %v", rules, testFiles)
	}

	run := func(args ...string) {
		t.Helper()
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("promtool %v: %v\n%s", args, err, out)
		}
	}
	run(append([]string{"check", "rules"}, rules...)...)
	run(append([]string{"test", "rules"}, testFiles...)...)

	tested := firingTests(t, testFiles)
	metrics := maps.Clone(observedMetrics(t))
	maps.Copy(metrics, externalMetrics)
	for _, f := range rules {
		groups, errs := rulefmt.ParseFile(f, false, model.UTF8Validation, promqlParser, slog.New(slog.DiscardHandler))
		for _, err := range errs {
			t.Errorf("%s: %v", filepath.Base(f), err)
		}
		if groups == nil {
			continue
		}
		for _, g := range groups.Groups {
			for _, r := range g.Rules {
				name := r.Alert + r.Record
				if err := checkExpr(metrics, r.Expr); err != nil {
					t.Errorf("%s: %s: %v", filepath.Base(f), name, err)
				}
				if r.Alert != "" && !tested[r.Alert] {
					t.Errorf("%s: alert %s has no unit test in which it fires", filepath.Base(f), r.Alert)
				}
				if r.Alert != "" && (r.Labels["severity"] == "" || r.Annotations["summary"] == "" || r.Annotations["description"] == "") {
					t.Errorf("%s: alert %s needs a severity label and summary and description annotations", filepath.Base(f), r.Alert)
				}
			}
		}
	}
}

// firingTests returns the alerts that some unit test expects to fire.
func firingTests(t *testing.T, files []string) map[string]bool {
	t.Helper()
	fired := map[string]bool{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Tests []struct {
				AlertRuleTest []struct {
					Alertname string `yaml:"alertname"`
					ExpAlerts []any  `yaml:"exp_alerts"`
				} `yaml:"alert_rule_test"`
			} `yaml:"tests"`
		}
		if err := yaml.Unmarshal(raw, &doc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, tc := range doc.Tests {
			for _, a := range tc.AlertRuleTest {
				if len(a.ExpAlerts) > 0 {
					fired[a.Alertname] = true
				}
			}
		}
	}
	return fired
}
