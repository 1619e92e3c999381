package main

import (
	"fmt"
	"log/slog"
	"testing"

	promconfig "github.com/prometheus/common/config"
	"github.com/prometheus/exporter-toolkit/web"
	prometheusconfig "github.com/prometheus/prometheus/config"
	yamlv2 "go.yaml.in/yaml/v2"
	"golang.org/x/crypto/bcrypt"
	"gopkg.in/yaml.v3"

	"github.com/atoll-metrics/atoll/transport"
)

// TestSecurityDocYAML reads every YAML block of docs/security.md as what it
// is, with the parser that reads it in production, so the examples stay
// right: web configs as exporter-toolkit reads them, tenant credentials as
// Atoll does, remote_write as Prometheus does, client configs as the
// query-frontend does.
func TestSecurityDocYAML(t *testing.T) {
	blocks := readmeBlocks(t, "../../docs/security.md")
	seen := map[string]int{}
	for _, b := range blocks {
		where := fmt.Sprintf("docs/security.md line %d", b.line)
		if b.lang != "yaml" {
			continue
		}
		var doc map[string]any
		if err := yaml.Unmarshal([]byte(b.body), &doc); err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		switch {
		case doc["tls_server_config"] != nil || doc["basic_auth_users"] != nil:
			seen["web config"]++
			var c web.Config
			if err := yamlv2.UnmarshalStrict([]byte(b.body), &c); err != nil {
				t.Errorf("%s: web config: %v", where, err)
			}
			for u, h := range c.Users {
				if _, err := bcrypt.Cost([]byte(h)); err != nil {
					t.Errorf("%s: user %s: not a bcrypt hash: %v", where, u, err)
				}
			}
		case doc["users"] != nil:
			seen["tenant credentials"]++
			if _, err := transport.ParseTenantCredentials([]byte(b.body)); err != nil {
				t.Errorf("%s: %v", where, err)
			}
		case doc["remote_write"] != nil:
			seen["remote_write"]++
			if _, err := prometheusconfig.Load(b.body, slog.New(slog.DiscardHandler)); err != nil {
				t.Errorf("%s: Prometheus config: %v", where, err)
			}
		case doc["tls_config"] != nil || doc["basic_auth"] != nil:
			seen["HTTP client config"]++
			var c promconfig.HTTPClientConfig
			if err := yamlv2.UnmarshalStrict([]byte(b.body), &c); err != nil {
				t.Errorf("%s: HTTP client config: %v", where, err)
			} else if err := c.Validate(); err != nil {
				t.Errorf("%s: HTTP client config: %v", where, err)
			}
		default:
			t.Errorf("%s: this test does not know what the YAML block is; teach it", where)
		}
	}
	for _, kind := range []string{"web config", "tenant credentials", "remote_write", "HTTP client config"} {
		if seen[kind] == 0 {
			t.Errorf("docs/security.md has no %s example", kind)
		}
	}
}
