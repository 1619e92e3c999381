package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	"golang.org/x/crypto/bcrypt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"gopkg.in/yaml.v3"

	"github.com/atoll-metrics/atoll/ingest/writepb"
	"github.com/atoll-metrics/atoll/internal/certgen"
	"github.com/atoll-metrics/atoll/internal/e2eproc"
	"github.com/atoll-metrics/atoll/storeapi/storepb"
	"github.com/atoll-metrics/atoll/tenant"
)

// secureCluster is what a locked-down cluster shares: certificates, the
// web config with its users, the tenant bindings and the gossip key.
type secureCluster struct {
	dir       string
	certs     *certgen.Set
	webConfig string
	tenants   string
	gossipKey string
	passwords map[string]string
	client    *http.Client // trusts the cluster's CA, shows no certificate
}

func newSecureCluster(t *testing.T) *secureCluster {
	t.Helper()
	dir := t.TempDir()
	certs, err := certgen.Write(filepath.Join(dir, "certs"))
	if err != nil {
		t.Fatal(err)
	}
	c := &secureCluster{dir: dir, certs: certs, passwords: map[string]string{}}
	users := map[string]any{}
	for _, u := range []string{"prometheus", "grafana", "operator"} {
		pw := make([]byte, 12)
		_, _ = rand.Read(pw)
		c.passwords[u] = base64.RawURLEncoding.EncodeToString(pw)
		h, err := bcrypt.GenerateFromPassword([]byte(c.passwords[u]), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		users[u] = string(h)
	}
	web, _ := yaml.Marshal(map[string]any{
		"tls_server_config": map[string]string{"cert_file": certs.ServerCert, "key_file": certs.ServerKey},
		"basic_auth_users":  users,
	})
	c.webConfig = c.write(t, "web.yml", string(web))
	c.tenants = c.write(t, "tenants.yml", "users:\n  prometheus: [team-a]\n  grafana: [team-a]\n  operator: ['*']\n")
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	c.gossipKey = base64.StdEncoding.EncodeToString(key)
	c.write(t, "gossip.key", c.gossipKey+"\n")
	pem, err := os.ReadFile(certs.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	c.client = &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	return c
}

func (c *secureCluster) write(t *testing.T, name, content string) string {
	t.Helper()
	f := filepath.Join(c.dir, name)
	if err := os.WriteFile(f, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// flags are what every process of the cluster runs with.
func (c *secureCluster) flags() []string {
	return []string{
		"--http.config=" + c.webConfig,
		"--http.tenants-config-file=" + c.tenants,
		"--grpc-client-tls-secure",
		"--grpc-client-tls-cert=" + c.certs.ClientCert,
		"--grpc-client-tls-key=" + c.certs.ClientKey,
		"--grpc-client-tls-ca=" + c.certs.CAFile,
		"--ring.secret-key-file=" + filepath.Join(c.dir, "gossip.key"),
		"--ring.cluster-label=secure",
	}
}

func (c *secureCluster) serverFlags() []string {
	return []string{
		"--grpc-server-tls-cert=" + c.certs.ServerCert,
		"--grpc-server-tls-key=" + c.certs.ServerKey,
		"--grpc-server-tls-client-ca=" + c.certs.CAFile,
	}
}

// do sends a request as user (none when empty) and returns status and body.
func (c *secureCluster) do(t *testing.T, method, u, user, tenantID string, body []byte) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, c.passwords[user])
	}
	if tenantID != "" {
		req.Header.Set(tenant.HeaderThanos, tenantID)
	}
	if body != nil {
		req.Header.Set("Content-Encoding", "snappy")
		req.Header.Set("Content-Type", "application/x-protobuf")
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

func (c *secureCluster) remoteWrite(t *testing.T, u, user, tenantID string, req *prompb.WriteRequest) (int, string) {
	t.Helper()
	raw, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return c.do(t, http.MethodPost, u, user, tenantID, snappy.Encode(nil, raw))
}

// ready waits for a process of the cluster through TLS and basic auth.
func (c *secureCluster) ready(p *e2eproc.Process, httpsBase string) {
	u, _ := url.Parse(httpsBase + "/-/ready")
	u.User = url.UserPassword("operator", c.passwords["operator"])
	p.WaitReadyWith(c.client, u.String(), 60*time.Second)
}

// ringIDs lists the members a process's /ring shows, with their health.
func (c *secureCluster) ringIDs(t *testing.T, httpsBase string) map[string]bool {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, httpsBase+"/ring", nil)
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth("operator", c.passwords["operator"])
	resp, err := c.client.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var page struct {
		Members []ringMember `json:"members"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		return nil
	}
	out := map[string]bool{}
	for _, m := range page.Members {
		out[m.ID] = m.Healthy && m.State == "ACTIVE"
	}
	return out
}

type secureReceiver struct {
	p                   *e2eproc.Process
	http, write, gossip string
	grpc                string
}

func startSecureReceiver(t *testing.T, c *secureCluster, id, join string, extra ...string) *secureReceiver {
	t.Helper()
	ports := e2eproc.Ports(t, 4)
	r := &secureReceiver{
		http:   fmt.Sprintf("https://127.0.0.1:%d", ports[0]),
		grpc:   fmt.Sprintf("127.0.0.1:%d", ports[1]),
		write:  fmt.Sprintf("https://127.0.0.1:%d/api/v1/receive", ports[2]),
		gossip: fmt.Sprintf("127.0.0.1:%d", ports[3]),
	}
	if join == "" {
		join = r.gossip
	}
	args := append([]string{"receive",
		"--data-dir=" + filepath.Join(c.dir, id),
		fmt.Sprintf("--http-address=127.0.0.1:%d", ports[0]),
		"--grpc-address=" + r.grpc,
		fmt.Sprintf("--remote-write.address=127.0.0.1:%d", ports[2]),
		"--ring.listen-address=" + r.gossip,
		"--ring.join=" + join,
		"--ring.instance-id=" + id,
		"--receive.replication-factor=3",
		"--receive.forward-timeout=2s",
	}, append(append(append(gossipFlags, c.flags()...), c.serverFlags()...), extra...)...)
	r.p = e2eproc.Start(t, id, atollBinary, args...)
	c.ready(r.p, r.http)
	return r
}

// TestSecureCluster: receivers and a querier with TLS and basic auth on
// every HTTP port, mutual TLS on gRPC and an encrypted ring, written to by
// a real Prometheus (remote_write with tls_config and basic_auth) and
// queried with credentials. Without credentials every HTTP port answers
// 401 and every gRPC call fails its handshake; a receiver without the
// gossip key never appears in the ring, one with the key that advertises
// an address nobody answers at is never healthy, and neither changes the
// outcome of any write.
func TestSecureCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	c := newSecureCluster(t)
	r1 := startSecureReceiver(t, c, "r1", "")
	r2 := startSecureReceiver(t, c, "r2", r1.gossip)
	r3 := startSecureReceiver(t, c, "r3", r1.gossip)
	receivers := []*secureReceiver{r1, r2, r3}

	qPorts := e2eproc.Ports(t, 2)
	queryURL := fmt.Sprintf("https://127.0.0.1:%d", qPorts[0])
	q := e2eproc.Start(t, "querier", atollBinary, append(append([]string{"query",
		fmt.Sprintf("--http-address=127.0.0.1:%d", qPorts[0]),
		fmt.Sprintf("--ring.listen-address=127.0.0.1:%d", qPorts[1]),
		"--ring.join=" + r1.gossip,
		"--ring.instance-id=querier",
		"--store.check-interval=1s",
	}, gossipFlags...), c.flags()...)...)
	c.ready(q, queryURL)

	everyoneHealthy := func(want map[string]bool) error {
		for _, base := range []string{r1.http, r2.http, r3.http, queryURL} {
			got := c.ringIDs(t, base)
			for id, healthy := range want {
				if got[id] != healthy {
					return fmt.Errorf("%s sees %v, want %v", base, got, want)
				}
			}
		}
		return nil
	}
	eventually(t, 60*time.Second, func() error { return everyoneHealthy(map[string]bool{"r1": true, "r2": true, "r3": true}) })

	// A real Prometheus writes over TLS with basic auth; its user is bound
	// to team-a, so it needs no tenant header.
	promPort := e2eproc.Ports(t, 1)[0]
	passwordFile := c.write(t, "prometheus.password", c.passwords["prometheus"])
	promCfg, _ := yaml.Marshal(map[string]any{
		"global": map[string]any{"scrape_interval": "1s"},
		"scrape_configs": []any{map[string]any{
			"job_name":       "prometheus",
			"static_configs": []any{map[string]any{"targets": []string{fmt.Sprintf("127.0.0.1:%d", promPort)}}},
		}},
		"remote_write": []any{map[string]any{
			"url":          r1.write,
			"tls_config":   map[string]any{"ca_file": c.certs.CAFile},
			"basic_auth":   map[string]any{"username": "prometheus", "password_file": passwordFile},
			"queue_config": map[string]any{"batch_send_deadline": "1s"},
		}},
	})
	promFile := c.write(t, "prometheus.yml", string(promCfg))
	prom := e2eproc.Start(t, "prometheus", e2eproc.FindTool(t, "prometheus"), "--config.file="+promFile,
		"--storage.tsdb.path="+filepath.Join(c.dir, "prometheus"), fmt.Sprintf("--web.listen-address=127.0.0.1:%d", promPort))
	promURL := fmt.Sprintf("http://127.0.0.1:%d", promPort)
	prom.WaitReady(promURL+"/-/ready", 60*time.Second)

	query := func(user, tenantID, expr string) (int, apiResponse) {
		t.Helper()
		code, body := c.do(t, http.MethodGet, queryURL+"/api/v1/query?"+url.Values{"query": {expr}}.Encode(), user, tenantID, nil)
		var r apiResponse
		_ = json.Unmarshal([]byte(body), &r)
		return code, r
	}
	eventually(t, 90*time.Second, func() error {
		code, r := query("grafana", "", `up{job="prometheus"}`)
		if code != http.StatusOK || r.Status != "success" || !strings.Contains(string(r.Data), `"job":"prometheus"`) {
			return fmt.Errorf("query through TLS and basic auth: %d %s %s", code, r.Error, r.Data)
		}
		return nil
	})
	t.Log("a real Prometheus wrote over TLS with basic auth, and the querier answered over mutual TLS")
	// The querier's tenants page gathers every receiver's over TLS, with
	// the operator's credentials.
	code, body := c.do(t, http.MethodGet, queryURL+"/api/v1/tenants", "operator", "", nil)
	var tenants struct {
		Data struct {
			Receivers []struct {
				Name    string `json:"name"`
				Error   string `json:"error"`
				Tenants []struct {
					ID string `json:"tenant"`
				} `json:"tenants"`
			} `json:"receivers"`
		} `json:"data"`
	}
	_ = json.Unmarshal([]byte(body), &tenants)
	if code != http.StatusOK || len(tenants.Data.Receivers) != 3 {
		t.Errorf("querier's tenants page: %d %s", code, body)
	}
	for _, r := range tenants.Data.Receivers {
		if r.Error != "" || len(r.Tenants) != 1 || r.Tenants[0].ID != "team-a" {
			t.Errorf("querier's tenants page, receiver %s: %+v", r.Name, r)
		}
	}
	remoteFailures := func() float64 {
		m := scrapeProm(t, promURL)
		return m["prometheus_remote_storage_samples_failed_total"] + m["prometheus_remote_storage_samples_retried_total"]
	}
	failuresBefore := remoteFailures()

	// Two rogues: one without the gossip key, one with it (an insider, or a
	// stolen key) advertising a gRPC address where nobody answers.
	closed := e2eproc.Ports(t, 1)[0]
	var rogues []*e2eproc.Process
	for i, extra := range [][]string{
		nil,
		{"--ring.secret-key-file=" + filepath.Join(c.dir, "gossip.key"), "--ring.cluster-label=secure", fmt.Sprintf("--grpc-advertise-address=127.0.0.1:%d", closed)},
	} {
		ports := e2eproc.Ports(t, 4)
		id := fmt.Sprintf("rogue%d", i+1)
		p := e2eproc.Start(t, id, atollBinary, append(append([]string{"receive",
			"--data-dir=" + filepath.Join(c.dir, id),
			fmt.Sprintf("--http-address=127.0.0.1:%d", ports[0]),
			fmt.Sprintf("--grpc-address=127.0.0.1:%d", ports[1]),
			fmt.Sprintf("--remote-write.address=127.0.0.1:%d", ports[2]),
			fmt.Sprintf("--ring.listen-address=127.0.0.1:%d", ports[3]),
			"--ring.join=" + r1.gossip, "--ring.join=" + r2.gossip,
			"--ring.instance-id=" + id,
		}, gossipFlags...), extra...)...)
		p.WaitReady(fmt.Sprintf("http://127.0.0.1:%d/-/ready", ports[0]), 60*time.Second)
		rogues = append(rogues, p)
	}
	eventually(t, 30*time.Second, func() error {
		if _, seen := c.ringIDs(t, r3.http)["rogue2"]; !seen {
			return fmt.Errorf("rogue2, which has the key, has not joined yet")
		}
		return nil
	})
	// Writes while the rogues are up: every one is stored, at every
	// receiver.
	now := time.Now().UnixMilli()
	for round := range 10 {
		for i, r := range receivers {
			req := &prompb.WriteRequest{}
			for s := range 50 {
				req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
					Labels:  []prompb.Label{{Name: "__name__", Value: "secure_write"}, {Name: "s", Value: fmt.Sprint(s)}, {Name: "via", Value: fmt.Sprint(i)}},
					Samples: []prompb.Sample{{Timestamp: now + int64(round), Value: float64(round)}},
				})
			}
			if code, body := c.remoteWrite(t, r.write, "prometheus", "", req); code != http.StatusNoContent {
				t.Fatalf("write %d through %s with rogues around: %d %s", round, r.write, code, body)
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, base := range []string{r1.http, r2.http, r3.http, queryURL} {
		v := c.ringIDs(t, base)
		if _, ok := v["rogue1"]; ok {
			t.Errorf("%s shows the receiver without the gossip key: %v", base, v)
		}
		if v["rogue2"] {
			t.Errorf("%s counts the receiver nobody answers for healthy: %v", base, v)
		}
	}
	// The rogues did try: one failed to join, the other joined and was
	// probed.
	if !strings.Contains(rogues[0].Output().String(), "cannot join the ring") {
		t.Error("the rogue without the key never tried to join")
	}
	if !strings.Contains(r1.p.Output().String(), "member does not answer at its gRPC address") {
		t.Error("r1 never found the rogue with the key unanswering")
	}
	if got := remoteFailures(); got != failuresBefore {
		t.Errorf("Prometheus saw %v failed or retried samples while the rogues were up", got-failuresBefore)
	}
	for _, p := range rogues {
		p.Stop(10 * time.Second)
	}

	// Without credentials, every HTTP port answers 401.
	for _, u := range []string{r1.http + "/api/v1/tenants", r1.write, r2.http + "/metrics", r2.write, r3.http + "/", r3.write, queryURL + "/api/v1/query?query=up", queryURL + "/-/ready"} {
		if code, body := c.do(t, http.MethodGet, u, "", "", nil); code != http.StatusUnauthorized {
			t.Errorf("GET %s without credentials: %d %s, want 401", u, code, body)
		}
	}
	// Without a client certificate of the CA, every gRPC call fails the
	// handshake; with one it works.
	pem, _ := os.ReadFile(c.certs.CAFile)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	clientCert, err := tls.LoadX509KeyPair(c.certs.ClientCert, c.certs.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	withCert := credentials.NewTLS(&tls.Config{RootCAs: pool, Certificates: []tls.Certificate{clientCert}})
	for _, r := range receivers {
		for name, creds := range map[string]credentials.TransportCredentials{
			"plaintext":                 insecure.NewCredentials(),
			"TLS without a certificate": credentials.NewTLS(&tls.Config{RootCAs: pool}),
		} {
			if _, err := storeInfo(t, r.grpc, creds, nil); err == nil {
				t.Errorf("Store API of %s, %s: answered, want a failed handshake", r.grpc, name)
			}
		}
		if _, err := storeInfo(t, r.grpc, withCert, nil); err != nil {
			t.Errorf("Store API of %s with a client certificate: %v", r.grpc, err)
		}
	}
	// With a certificate, a call scoped to another tenant gets nothing of
	// team-a.
	if sets, err := storeInfo(t, r1.grpc, withCert, metadata.Pairs(tenant.MetadataKey, "team-b")); err != nil || strings.Contains(sets, "team-a") {
		t.Errorf("Store API Info scoped to team-b: %q %v", sets, err)
	}
	if n := storeSeries(t, r1.grpc, withCert, "team-b"); n != 0 {
		t.Errorf("Store API Series scoped to team-b returned %d series of team-a", n)
	}
	if n := storeSeries(t, r1.grpc, withCert, "team-a"); n == 0 {
		t.Error("Store API Series scoped to team-a returned nothing")
	}
	// A forwarded write from a process that is no ring member is refused
	// even with a valid certificate.
	if err := forwardFrom(t, r1.grpc, "127.0.0.2", withCert); status.Code(err) != codes.PermissionDenied {
		t.Errorf("forwarded write from a non-member: %v, want PermissionDenied", err)
	}

	// Bound users stay in their tenant; bad tenant ids and reserved labels
	// get 400.
	one := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels: []prompb.Label{{Name: "__name__", Value: "bound"}}, Samples: []prompb.Sample{{Timestamp: time.Now().UnixMilli(), Value: 1}}}}}
	if code, body := c.remoteWrite(t, r1.write, "prometheus", "team-b", one); code != http.StatusForbidden {
		t.Errorf("prometheus (team-a) writing to team-b: %d %s, want 403", code, body)
	}
	if code, r := query("grafana", "team-b", "up"); code != http.StatusForbidden {
		t.Errorf("grafana (team-a) reading team-b: %d %s, want 403", code, r.Error)
	}
	if code, _ := c.do(t, http.MethodGet, queryURL+"/api/v1/status/flags", "grafana", "", nil); code != http.StatusForbidden {
		t.Errorf("grafana reading the flags page: %d, want 403", code)
	}
	for _, id := range []string{"..", "a b", "ünï", "a/b"} {
		if code, body := c.remoteWrite(t, r1.write, "operator", id, one); code != http.StatusBadRequest {
			t.Errorf("write as tenant %q: %d %s, want 400", id, code, body)
		}
		if code, r := query("operator", id, "up"); code != http.StatusBadRequest {
			t.Errorf("query as tenant %q: %d %s, want 400", id, code, r.Error)
		}
	}
	replica := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:  []prompb.Label{{Name: "__name__", Value: "bound"}, {Name: "receive_replica", Value: "forged"}},
		Samples: []prompb.Sample{{Timestamp: time.Now().UnixMilli(), Value: 1}}}}}
	if code, body := c.remoteWrite(t, r2.write, "prometheus", "", replica); code != http.StatusBadRequest || !strings.Contains(body, "reserved") {
		t.Errorf("series with receive_replica: %d %s, want 400", code, body)
	}
	// /metrics names no tenant.
	if code, body := c.do(t, http.MethodGet, r1.http+"/metrics", "operator", "", nil); code != http.StatusOK || strings.Contains(body, "team-a") {
		t.Errorf("/metrics (%d) names the tenant team-a", code)
	}

	// No secret in any log: passwords, the gossip key, private keys.
	keyPEM, _ := os.ReadFile(c.certs.ServerKey)
	secrets := []string{c.gossipKey, string(bytes.TrimSpace(keyPEM))[40:80]}
	for _, pw := range c.passwords {
		secrets = append(secrets, pw)
	}
	for _, p := range append([]*e2eproc.Process{r1.p, r2.p, r3.p, q}, rogues...) {
		for _, s := range secrets {
			if strings.Contains(p.Output().String(), s) {
				t.Errorf("a log shows a secret")
			}
		}
	}
}

// scrapeProm reads a Prometheus's own counters, summed over labels.
func scrapeProm(t *testing.T, base string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	out := map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		name, rest, _ := strings.Cut(line, " ")
		if i := strings.IndexByte(name, '{'); i >= 0 {
			name = name[:i]
			if j := strings.LastIndexByte(line, '}'); j >= 0 {
				rest = strings.TrimSpace(line[j+1:])
			}
		}
		var v float64
		if _, err := fmt.Sscan(strings.Fields(rest)[0], &v); err == nil {
			out[name] += v
		}
	}
	return out
}

func grpcConn(t *testing.T, addr string, creds credentials.TransportCredentials, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, append([]grpc.DialOption{grpc.WithTransportCredentials(creds)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// storeInfo calls Info and returns the label sets as text.
func storeInfo(t *testing.T, addr string, creds credentials.TransportCredentials, md metadata.MD) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if md != nil {
		ctx = metadata.NewOutgoingContext(ctx, md)
	}
	resp, err := storepb.NewStoreClient(grpcConn(t, addr, creds)).Info(ctx, &storepb.InfoRequest{})
	if err != nil {
		return "", err
	}
	return fmt.Sprint(resp.LabelSets), nil
}

// storeSeries counts the series a Store API call scoped to tenantID gets
// for any name, with a matcher that tries to widen it to every tenant.
func storeSeries(t *testing.T, addr string, creds credentials.TransportCredentials, tenantID string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ctx = metadata.NewOutgoingContext(ctx, metadata.Pairs(tenant.MetadataKey, tenantID))
	stream, err := storepb.NewStoreClient(grpcConn(t, addr, creds)).Series(ctx, &storepb.SeriesRequest{
		MinTime: 0, MaxTime: time.Now().Add(time.Hour).UnixMilli(), SkipChunks: true,
		Matchers: []*storepb.Matcher{
			{Type: storepb.Matcher_RE, Name: "__name__", Value: ".+"},
			{Type: storepb.Matcher_RE, Name: tenant.Label, Value: ".*"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		resp, err := stream.Recv()
		if err == io.EOF {
			return n
		}
		if err != nil {
			t.Fatalf("Series scoped to %s: %v", tenantID, err)
		}
		n += len(resp.Series)
	}
}

// forwardFrom sends a forwarded write to addr from the local address src.
func forwardFrom(t *testing.T, addr, src string, creds credentials.TransportCredentials) error {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	conn := grpcConn(t, addr, creds, grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) {
		return d.DialContext(ctx, "tcp", a)
	}))
	raw, _ := (&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels: []prompb.Label{{Name: "__name__", Value: "smuggled"}}, Samples: []prompb.Sample{{Timestamp: time.Now().UnixMilli(), Value: 1}}}}}).Marshal()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := writepb.NewWriterClient(conn).Write(ctx, &writepb.WriteRequest{Tenant: "team-b", WriteRequest: raw})
	return err
}
