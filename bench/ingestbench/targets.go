package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/atoll-metrics/atoll/internal/localnet"
)

// target is one remote-write receiver under test.
type target struct {
	name string
	bin  string
	// start returns the arguments for a fresh instance with its data in
	// dir, and the instance's endpoints.
	start func(dir string) ([]string, endpoints, error)
}

// endpoints are the URLs of one running instance.
type endpoints struct {
	ready   string
	write   string
	query   string // base URL of the Prometheus HTTP API v1
	flush   string // makes just-written data queryable; empty when there is no need
	profile string // CPU profile; empty when not served
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
