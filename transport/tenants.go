package transport

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/atoll-metrics/atoll/tenant"
)

// AllTenants in a user's list lets the user write and read every tenant,
// name none (reading every tenant where the querier allows it), and reach
// the operators' pages: UI, status, /metrics, ring, pprof.
const AllTenants = "*"

// TenantCredentials binds the basic-auth users of the web config file to
// the tenants they may write and read:
//
//	users:
//	  prometheus-team-a: [team-a]
//	  grafana-team-b: [team-b, team-b-staging]
//	  operator: ['*']
//
// The web config (exporter-toolkit) has authenticated the user before the
// binding applies. A user bound to tenants reaches only the endpoints that
// are scoped to a tenant (remote write and the query API's data endpoints)
// and the probes; the tenant a request names must be one of the user's,
// and a request naming none gets the user's tenant when there is just one.
// The tenant header then says the bound tenant alone, whatever the client
// sent. A user the file does not name reaches only the probes.
type TenantCredentials struct {
	users map[string]userTenants
}

type userTenants struct {
	all     bool
	tenants []string
}

type tenantCredentialsFile struct {
	Users map[string][]string `yaml:"users"`
}

// ParseTenantCredentials reads the YAML of a tenant credentials file.
func ParseTenantCredentials(data []byte) (*TenantCredentials, error) {
	var f tenantCredentialsFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("tenant credentials: %w", err)
	}
	if len(f.Users) == 0 {
		return nil, errors.New("tenant credentials: no users; list them under users:")
	}
	c := &TenantCredentials{users: map[string]userTenants{}}
	for user, ts := range f.Users {
		if len(ts) == 0 {
			return nil, fmt.Errorf("tenant credentials: user %q has no tenant", user)
		}
		var u userTenants
		for _, t := range ts {
			if t == AllTenants {
				u.all = true
				continue
			}
			if err := tenant.Validate(t); err != nil {
				return nil, fmt.Errorf("tenant credentials: user %q: %w", user, err)
			}
			u.tenants = append(u.tenants, t)
		}
		c.users[user] = u
	}
	return c, nil
}

// LoadTenantCredentials reads a tenant credentials file.
func LoadTenantCredentials(file string) (*TenantCredentials, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	c, err := ParseTenantCredentials(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return c, nil
}

// tenantScopedPaths are the endpoints whose data belongs to the tenant of
// the request; tenant-bound users reach these and the probes only.
var tenantScopedPaths = []string{
	"/api/v1/receive", "/api/v1/write", "/api/v1/push", "/otlp/v1/metrics",
	"/api/v1/query", "/api/v1/query_range", "/api/v1/query_exemplars",
	"/api/v1/series", "/api/v1/labels", "/api/v1/metadata",
	"/api/v1/format_query", "/api/v1/parse_query",
	"/api/v1/status/buildinfo", "/api/v1/status/tsdb",
}

var probePaths = []string{"/-/healthy", "/-/ready"}

func tenantScoped(path string) bool {
	if slices.Contains(tenantScopedPaths, path) {
		return true
	}
	// /api/v1/label/<name>/values
	rest, ok := strings.CutPrefix(path, "/api/v1/label/")
	return ok && strings.HasSuffix(rest, "/values") && strings.Count(rest, "/") == 1
}

func (c *TenantCredentials) handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if slices.Contains(probePaths, r.URL.Path) {
			next.ServeHTTP(w, r)
			return
		}
		user, _, _ := r.BasicAuth()
		u, ok := c.users[user]
		switch {
		case !ok:
			http.Error(w, fmt.Sprintf("user %q is bound to no tenant (tenant credentials file)", user), http.StatusForbidden)
			return
		case u.all:
			next.ServeHTTP(w, r)
			return
		case !tenantScoped(r.URL.Path):
			http.Error(w, fmt.Sprintf("user %q may use only remote write and the query API of its tenants, not %s", user, r.URL.Path), http.StatusForbidden)
			return
		}
		id := tenant.FromHeader(r.Header)
		switch {
		case id == "" && len(u.tenants) == 1:
			id = u.tenants[0]
		case id == "":
			http.Error(w, fmt.Sprintf("user %q may use several tenants; name one with the %s or %s header", user, tenant.HeaderThanos, tenant.HeaderOrgID), http.StatusBadRequest)
			return
		case !slices.Contains(u.tenants, id):
			http.Error(w, fmt.Sprintf("user %q may not use tenant %q", user, id), http.StatusForbidden)
			return
		}
		r.Header.Del(tenant.HeaderOrgID)
		r.Header.Set(tenant.HeaderThanos, id)
		next.ServeHTTP(w, r)
	})
}
