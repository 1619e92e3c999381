package transport

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/atoll-metrics/atoll/internal/certgen"
	"github.com/atoll-metrics/atoll/tenant"
)

// TestTenantCredentials: a user bound to tenants writes and reads those
// tenants only, whatever header it sends, and reaches no operator page.
func TestTenantCredentials(t *testing.T) {
	certs, err := certgen.Write(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	creds, err := ParseTenantCredentials([]byte("users:\n  writer-a: [team-a]\n  reader-ab: [team-a, team-b]\n  operator: ['*']\n"))
	if err != nil {
		t.Fatal(err)
	}
	opts := DefaultHTTPOptions()
	opts.WebConfigFile = writeWebConfig(t, certs, map[string]string{"writer-a": "pa", "reader-ab": "pab", "operator": "po", "stranger": "ps"})
	opts.Tenants = creds
	if _, err := opts.Check(); err != nil {
		t.Fatal(err)
	}
	// The handler answers with the tenant it was handed.
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, tenant.FromHeader(r.Header))
	})
	addr := serve(t, h, opts, prometheus.NewRegistry(), nil)
	c := tlsClient(t, certs.CAFile)
	pass := map[string]string{"writer-a": "pa", "reader-ab": "pab", "operator": "po", "stranger": "ps"}
	for _, tc := range []struct {
		user, path, header string
		code               int
		tenant             string
	}{
		{"writer-a", "/api/v1/receive", "", http.StatusOK, "team-a"},
		{"writer-a", "/api/v1/receive", "team-a", http.StatusOK, "team-a"},
		{"writer-a", "/api/v1/receive", "team-b", http.StatusForbidden, ""},
		{"writer-a", "/api/v1/query", "team-b", http.StatusForbidden, ""},
		{"writer-a", "/api/v1/label/job/values", "", http.StatusOK, "team-a"},
		{"writer-a", "/api/v1/status/flags", "", http.StatusForbidden, ""},
		{"writer-a", "/api/v1/tenants", "", http.StatusForbidden, ""},
		{"writer-a", "/metrics", "", http.StatusForbidden, ""},
		{"writer-a", "/", "", http.StatusForbidden, ""},
		{"writer-a", "/-/ready", "", http.StatusOK, ""},
		{"reader-ab", "/api/v1/query", "team-b", http.StatusOK, "team-b"},
		{"reader-ab", "/api/v1/query", "", http.StatusBadRequest, ""},
		{"operator", "/api/v1/query", "", http.StatusOK, ""},
		{"operator", "/api/v1/query", "team-c", http.StatusOK, "team-c"},
		{"operator", "/metrics", "", http.StatusOK, ""},
		{"stranger", "/api/v1/query", "team-a", http.StatusForbidden, ""},
		{"stranger", "/-/healthy", "", http.StatusOK, ""},
		{"", "/api/v1/query", "team-a", http.StatusUnauthorized, ""},
	} {
		req, _ := http.NewRequest(http.MethodGet, "https://"+addr+tc.path, nil)
		if tc.user != "" {
			req.SetBasicAuth(tc.user, pass[tc.user])
		}
		if tc.header != "" {
			// Both headers, as a client trying to smuggle a second tenant would.
			req.Header.Set(tenant.HeaderThanos, tc.header)
			req.Header.Set(tenant.HeaderOrgID, "team-z")
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || tc.code == http.StatusOK && string(body) != tc.tenant {
			t.Errorf("%s %s (tenant %q): %d %q, want %d %q", tc.user, tc.path, tc.header, resp.StatusCode, body, tc.code, tc.tenant)
		}
	}
}

func TestTenantCredentialsFile(t *testing.T) {
	for _, bad := range []string{
		"",
		"users: {}\n",
		"users:\n  a: []\n",
		"users:\n  a: [team/a]\n",
		"users:\n  a: [x]\nextra: 1\n",
	} {
		if _, err := ParseTenantCredentials([]byte(bad)); err == nil {
			t.Errorf("ParseTenantCredentials(%q) accepted it", bad)
		}
	}
	f := filepath.Join(t.TempDir(), "tenants.yml")
	if err := os.WriteFile(f, []byte("users:\n  alice: [team-a]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadTenantCredentials(f)
	if err != nil {
		t.Fatal(err)
	}
	// Binding users needs basic auth, and users the web config knows.
	if _, err := (HTTPOptions{Tenants: c}).Check(); err == nil {
		t.Error("tenant credentials without a web config were accepted")
	}
	certs, err := certgen.Write(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	web := writeWebConfig(t, certs, map[string]string{"bob": "x"})
	if _, err := (HTTPOptions{WebConfigFile: web, Tenants: c}).Check(); err == nil || !strings.Contains(err.Error(), "alice") {
		t.Errorf("a user missing from basic_auth_users: %v", err)
	}
}
