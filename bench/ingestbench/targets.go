package main

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/bcrypt"

	"github.com/atoll-metrics/atoll/internal/certgen"
	"github.com/atoll-metrics/atoll/internal/localnet"
)

// target is one remote-write receiver under test.
type target struct {
	name string
	bin  string
	// start returns the arguments for a fresh instance with its data in
	// dir, and the instance's endpoints.
	start func(dir string) ([]string, endpoints, error)
	// noMemoryRun skips the memory run: what it would measure is another
	// target's.
	noMemoryRun bool
}

// endpoints are the URLs of one running instance.
type endpoints struct {
	ready   string
	write   string
	query   string // base URL of the Prometheus HTTP API v1
	flush   string // makes just-written data queryable; empty when there is no need
	profile string // CPU profile; empty when not served
	// client reaches ready, query and flush (credentials in their URLs);
	// nil is http.DefaultClient.
	client *http.Client
	// loadgen are the arguments that let loadgen through (TLS, basic auth).
	loadgen []string
}

func (e endpoints) httpClient() *http.Client {
	if e.client != nil {
		return e.client
	}
	return http.DefaultClient
}

func atollTarget(bin string) target {
	return target{name: "atoll", bin: bin, start: func(dir string) ([]string, endpoints, error) {
		ports, err := localnet.FreePorts(3)
		if err != nil {
			return nil, endpoints{}, err
		}
		http, grpc, rw := addr(ports[0]), addr(ports[1]), addr(ports[2])
		return []string{
				"all",
				"--data-dir=" + dir,
				"--http-address=" + http,
				"--grpc-address=" + grpc,
				"--remote-write.address=" + rw,
				"--web.enable-pprof",
			}, endpoints{
				ready:   "http://" + http + "/-/ready",
				write:   "http://" + rw + "/api/v1/receive",
				query:   "http://" + http + "/api/v1",
				profile: "http://" + http + "/debug/pprof/profile",
			}, nil
	}}
}

// atollTLSTarget is atollTarget behind the web config of a TLS-secured
// deployment: TLS and basic auth on every listener, the remote-write client
// (loadgen) verifying the certificate and sending its credentials, as
// Prometheus does with tls_config and basic_auth. Connections are kept
// alive, as Prometheus keeps them.
func atollTLSTarget(bin string) target {
	return target{name: "atoll-tls", bin: bin, start: func(dir string) ([]string, endpoints, error) {
		args, ep, err := atollTarget(bin).start(dir)
		if err != nil {
			return nil, endpoints{}, err
		}
		certs, err := certgen.Write(filepath.Join(dir, "certs"))
		if err != nil {
			return nil, endpoints{}, err
		}
		pw := make([]byte, 16)
		_, _ = rand.Read(pw)
		password := hex.EncodeToString(pw)
		// bcrypt's cost is paid once per connection and password (the web
		// config caches the check), not per request.
		hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
		if err != nil {
			return nil, endpoints{}, err
		}
		webConfig := filepath.Join(dir, "web.yml")
		cfg := fmt.Sprintf("tls_server_config:\n  cert_file: %s\n  key_file: %s\nbasic_auth_users:\n  bench: %s\n", certs.ServerCert, certs.ServerKey, hash)
		passwordFile := filepath.Join(dir, "password")
		if err := os.WriteFile(webConfig, []byte(cfg), 0o600); err != nil {
			return nil, endpoints{}, err
		}
		if err := os.WriteFile(passwordFile, []byte(password), 0o600); err != nil {
			return nil, endpoints{}, err
		}
		pem, err := os.ReadFile(certs.CAFile)
		if err != nil {
			return nil, endpoints{}, err
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		secure := func(u string) string {
			pu, _ := url.Parse(strings.Replace(u, "http://", "https://", 1))
			pu.User = url.UserPassword("bench", password)
			return pu.String()
		}
		ep.ready, ep.query = secure(ep.ready), secure(ep.query)
		ep.write = strings.Replace(ep.write, "http://", "https://", 1)
		ep.profile = ""
		ep.client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
		ep.loadgen = []string{"-ca-file=" + certs.CAFile, "-basic-auth-user=bench", "-basic-auth-password-file=" + passwordFile}
		return append(args, "--http.config="+webConfig), ep, nil
	}, noMemoryRun: true}
}

// prometheusTarget runs Prometheus as a plain remote-write receiver: no
// scrape jobs, default TSDB settings.
func prometheusTarget(bin string) target {
	return target{name: "prometheus", bin: bin, start: func(dir string) ([]string, endpoints, error) {
		ports, err := localnet.FreePorts(1)
		if err != nil {
			return nil, endpoints{}, err
		}
		web := addr(ports[0])
		cfg := filepath.Join(dir, "prometheus.yml")
		if err := os.WriteFile(cfg, []byte("global:\n  scrape_interval: 15s\n"), 0o644); err != nil {
			return nil, endpoints{}, err
		}
		return []string{
				"--config.file=" + cfg,
				"--storage.tsdb.path=" + filepath.Join(dir, "data"),
				"--web.listen-address=" + web,
				"--web.enable-remote-write-receiver",
			}, endpoints{
				ready:   "http://" + web + "/-/ready",
				write:   "http://" + web + "/api/v1/write",
				query:   "http://" + web + "/api/v1",
				profile: "http://" + web + "/debug/pprof/profile",
			}, nil
	}}
}

// victoriaMetricsTarget runs single-node VictoriaMetrics with default
// storage settings. The query latency offset is zeroed only so the check
// right after the load sees the newest samples; it does not touch ingest.
func victoriaMetricsTarget(bin string) target {
	return target{name: "victoriametrics", bin: bin, start: func(dir string) ([]string, endpoints, error) {
		ports, err := localnet.FreePorts(1)
		if err != nil {
			return nil, endpoints{}, err
		}
		web := addr(ports[0])
		return []string{
				"-storageDataPath=" + dir,
				"-httpListenAddr=" + web,
				"-search.latencyOffset=0s",
			}, endpoints{
				ready:   "http://" + web + "/health",
				write:   "http://" + web + "/api/v1/write",
				query:   "http://" + web + "/api/v1",
				flush:   "http://" + web + "/internal/force_flush",
				profile: "http://" + web + "/debug/pprof/profile",
			}, nil
	}}
}

func addr(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }
