package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/atoll-metrics/atoll/bucket"
	"github.com/atoll-metrics/atoll/ingest"
	"github.com/atoll-metrics/atoll/internal/e2eproc"
)

// fencedBlock is a ``` block of the README.
type fencedBlock struct {
	lang, body string
	line       int
}

func readmeBlocks(t *testing.T, path string) []fencedBlock {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var (
		out []fencedBlock
		cur *fencedBlock
	)
	for i, line := range strings.Split(string(data), "\n") {
		switch {
		case cur == nil && strings.HasPrefix(line, "```"):
			cur = &fencedBlock{lang: strings.TrimPrefix(line, "```"), line: i + 1}
		case cur != nil && line == "```":
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			cur.body += line + "\n"
		}
	}
	if cur != nil {
		t.Fatalf("README.md line %d: unterminated code block", cur.line)
	}
	return out
}

// shellCommands splits a sh block into commands: one a line, lines ending
// in a backslash continued, blank lines and comments skipped.
func shellCommands(body string) []string {
	var out []string
	var cur string
	for _, line := range strings.Split(body, "\n") {
		if strings.HasSuffix(line, "\\") {
			cur += strings.TrimSuffix(line, "\\")
			continue
		}
		cur += line
		if c := strings.TrimSpace(cur); c != "" && !strings.HasPrefix(c, "#") {
			out = append(out, c)
		}
		cur = ""
	}
	return out
}

// TestREADME runs what the README tells a new user to do: every yaml block
// is used as what it is (the Prometheus remote_write settings feed a real
// Prometheus, the limits file a started `atoll all`, bucket configs are
// parsed), and every command of every sh block runs against that `atoll
// all`, fed by that Prometheus, and must succeed with data in its answer.
// Only the well-known ports are replaced by ones picked at run time, and
// `make run` / `make test` are checked with `make -n` (the suite is what
// is running).
func TestREADME(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	const readme = "../../README.md"
	blocks := readmeBlocks(t, readme)
	dir := t.TempDir()

	var remoteWrites []any
	limitsFile := ""
	var commands []string
	for _, b := range blocks {
		where := fmt.Sprintf("README.md line %d", b.line)
		switch b.lang {
		case "sh":
			commands = append(commands, shellCommands(b.body)...)
		case "yaml":
			var doc map[string]any
			if err := yaml.Unmarshal([]byte(b.body), &doc); err != nil {
				t.Fatalf("%s: invalid YAML: %v", where, err)
			}
			switch {
			case doc["remote_write"] != nil:
				rw, ok := doc["remote_write"].([]any)
				if !ok || len(doc) != 1 {
					t.Fatalf("%s: a prometheus.yml fragment with remote_write only is expected", where)
				}
				remoteWrites = append(remoteWrites, rw...)
			case doc["type"] != nil:
				if _, err := bucket.ParseConfig([]byte(b.body)); err != nil {
					t.Errorf("%s: bucket config: %v", where, err)
				}
			case doc["default"] != nil || doc["tenants"] != nil:
				if _, err := ingest.ParseLimitsConfig([]byte(b.body)); err != nil {
					t.Errorf("%s: limits config: %v", where, err)
				}
				limitsFile = filepath.Join(dir, "limits.yml")
				if err := os.WriteFile(limitsFile, []byte(b.body), 0o644); err != nil {
					t.Fatal(err)
				}
			default:
				t.Fatalf("%s: this test does not know what the YAML block is; teach it, so the README stays tested", where)
			}
		default:
			t.Fatalf("%s: code block of language %q; the README test runs sh and yaml blocks only", where, b.lang)
		}
	}
	if len(remoteWrites) == 0 || limitsFile == "" || len(commands) < 4 {
		t.Fatalf("README has %d remote_write entries, limits %q, %d commands: fewer than it should", len(remoteWrites), limitsFile, len(commands))
	}

	a := startAtoll(t, filepath.Join(dir, "data"), "--receive.limits-config-file="+limitsFile)
	writeHost := strings.TrimSuffix(strings.TrimPrefix(a.writeURL, "http://"), "/api/v1/receive")
	httpHost := strings.TrimPrefix(a.httpURL, "http://")
	local := strings.NewReplacer("localhost:10902", httpHost, "localhost:19291", writeHost)

	// Prometheus with the README's remote_write settings, scraping itself
	// every second so data arrives fast.
	promPort := e2eproc.Ports(t, 1)[0]
	for _, rw := range remoteWrites {
		m := rw.(map[string]any)
		m["url"] = local.Replace(fmt.Sprint(m["url"]))
	}
	promCfg, err := yaml.Marshal(map[string]any{
		"global": map[string]any{"scrape_interval": "1s"},
		"scrape_configs": []any{map[string]any{
			"job_name":       "prometheus",
			"static_configs": []any{map[string]any{"targets": []string{fmt.Sprintf("127.0.0.1:%d", promPort)}}},
		}},
		"remote_write": remoteWrites,
	})
	if err != nil {
		t.Fatal(err)
	}
	promFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(promFile, promCfg, 0o644); err != nil {
		t.Fatal(err)
	}
	prom := e2eproc.Start(t, "prometheus", e2eproc.FindTool(t, "prometheus"), "--config.file="+promFile,
		"--storage.tsdb.path="+filepath.Join(dir, "prometheus"), fmt.Sprintf("--web.listen-address=127.0.0.1:%d", promPort))
	prom.WaitReady(fmt.Sprintf("http://127.0.0.1:%d/-/ready", promPort), 60*time.Second)

	for _, c := range commands {
		if target, ok := strings.CutPrefix(c, "make "); ok {
			target = strings.Fields(target)[0]
			out, err := exec.Command("make", "-C", "../..", "-n", target).CombinedOutput()
			if err != nil {
				t.Errorf("README command %q: `make -n %s`: %v\n%s", c, target, err, out)
			} else if want := map[string]string{"run": "atoll all", "test": "go test"}[target]; !strings.Contains(string(out), want) {
				t.Errorf("README command %q: `make -n %s` does not run %q:\n%s", c, target, want, out)
			}
			continue
		}
		cmd := local.Replace(c)
		var last string
		eventually(t, 90*time.Second, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			run := exec.CommandContext(ctx, "sh", "-c", cmd)
			var stderr bytes.Buffer
			run.Stderr = &stderr
			out, err := run.Output()
			last = string(out)
			if err != nil {
				return fmt.Errorf("%q: %v: %s", c, err, stderr.String())
			}
			return nonEmptyAnswer(out)
		})
		t.Logf("README command ran: %s\n  -> %s", c, tail(last, 300))
	}
}

// nonEmptyAnswer accepts a successful Prometheus API answer with data.
func nonEmptyAnswer(out []byte) error {
	var r struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
		Error  string          `json:"error"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return fmt.Errorf("answer is not the API's JSON: %v: %s", err, out)
	}
	if r.Status != "success" {
		return fmt.Errorf("answer %s: %s", r.Status, r.Error)
	}
	var q struct {
		Result []any `json:"result"`
	}
	var list []any
	switch {
	case json.Unmarshal(r.Data, &list) == nil:
		if len(list) == 0 {
			return fmt.Errorf("empty answer: %s", out)
		}
	case json.Unmarshal(r.Data, &q) == nil:
		if len(q.Result) == 0 {
			return fmt.Errorf("empty result: %s", out)
		}
	default:
		return fmt.Errorf("unexpected data: %s", out)
	}
	return nil
}
