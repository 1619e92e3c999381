package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"google.golang.org/grpc"

	"github.com/atoll-metrics/atoll/transport"
)

// shutdownGrace bounds how long servers wait for requests in flight.
const shutdownGrace = 15 * time.Second

// httpConfig is how a process serves HTTP: every listener of it (API, UI,
// remote write, /metrics) alike, through transport.
type httpConfig struct {
	webConfigFile     string
	tenantsFile       string
	maxConns          int
	readHeaderTimeout model.Duration
	readTimeout       model.Duration
	writeTimeout      model.Duration
	idleTimeout       model.Duration
	pprof             bool
	perTenantMetrics  bool

	prepared bool
	opts     transport.HTTPOptions
	security transport.Security
}

func (c *httpConfig) register(cmd *kingpin.CmdClause) {
	d := transport.DefaultHTTPOptions()
	c.readHeaderTimeout = model.Duration(d.ReadHeaderTimeout)
	c.readTimeout = model.Duration(d.ReadTimeout)
	c.writeTimeout = model.Duration(d.WriteTimeout)
	c.idleTimeout = model.Duration(d.IdleTimeout)
	cmd.Flag("http.config", "Web configuration file of the Prometheus ecosystem (exporter-toolkit: tls_server_config, basic_auth_users with bcrypt hashes, http_server_config) for TLS and basic auth on every HTTP listener of this process. See docs/security.md.").
		PlaceHolder("<file>").StringVar(&c.webConfigFile)
	cmd.Flag("http.tenants-config-file", "YAML binding basic-auth users of --http.config to the tenants they may write and read (users: {name: [tenant, ...]}, '*' for all tenants and the operators' pages). Without it, the tenant header decides (an authenticating proxy sets it). See docs/security.md.").
		PlaceHolder("<file>").StringVar(&c.tenantsFile)
	cmd.Flag("web.max-connections", "Most connections each HTTP listener keeps open at once; more wait to be accepted. 0: no bound.").
		Default(fmt.Sprint(d.MaxConnections)).IntVar(&c.maxConns)
	cmd.Flag("web.read-header-timeout", "Longest a client may take to send a request's headers (slow clients are cut off).").
		Default(c.readHeaderTimeout.String()).SetValue(&c.readHeaderTimeout)
	cmd.Flag("web.read-timeout", "Longest a client may take to send a whole request, body included.").
		Default(c.readTimeout.String()).SetValue(&c.readTimeout)
	cmd.Flag("web.write-timeout", "Longest an answer may take to write, from the end of the request's headers; keep it above the longest query.").
		Default(c.writeTimeout.String()).SetValue(&c.writeTimeout)
	cmd.Flag("web.idle-timeout", "How long an idle keep-alive connection stays open.").
		Default(c.idleTimeout.String()).SetValue(&c.idleTimeout)
	cmd.Flag("web.enable-pprof", "Serve Go's profiling endpoints at /debug/pprof/ (behind the same TLS and auth as the rest).").
		BoolVar(&c.pprof)
	cmd.Flag("metrics.per-tenant", "Let /metrics carry a tenant label (one series per tenant for the TSDB metrics). Off, tenant series are summed, so /metrics does not list the tenants.").
		BoolVar(&c.perTenantMetrics)
}

// prepare reads the files the flags name once, so a broken one fails the
// start.
func (c *httpConfig) prepare() error {
	if c.prepared {
		return nil
	}
	o := transport.DefaultHTTPOptions()
	o.WebConfigFile = c.webConfigFile
	o.MaxConnections = c.maxConns
	o.ReadHeaderTimeout = time.Duration(c.readHeaderTimeout)
	o.ReadTimeout = time.Duration(c.readTimeout)
	o.WriteTimeout = time.Duration(c.writeTimeout)
	o.IdleTimeout = time.Duration(c.idleTimeout)
	if c.tenantsFile != "" {
		creds, err := transport.LoadTenantCredentials(c.tenantsFile)
		if err != nil {
			return fmt.Errorf("--http.tenants-config-file: %w", err)
		}
		o.Tenants = creds
	}
	sec, err := o.Check()
	if err != nil {
		return fmt.Errorf("--http.config: %w", err)
	}
	c.opts, c.security, c.prepared = o, sec, true
	return nil
}

// serve listens on addr at once and serves h there until interrupted.
func (c *httpConfig) serve(g *run.Group, logger *slog.Logger, reg prometheus.Registerer, name, addr string, h http.Handler) (net.Addr, error) {
	if err := c.prepare(); err != nil {
		return nil, err
	}
	s, err := transport.ListenHTTP(name, addr, h, c.opts, logger, reg)
	if err != nil {
		return nil, err
	}
	reach := "this host only"
	if !loopback(s.Addr()) {
		reach = "other hosts"
	}
	logger.Info("listening", "server", name, "address", s.Addr().String(), "reachable_from", reach, "security", c.security.String())
	if !loopback(s.Addr()) && !c.security.BasicAuth {
		logger.Warn("HTTP listener reachable from other hosts without authentication: anyone who reaches it can write and read every tenant; set --http.config, or put an authenticating proxy in front (docs/security.md)",
			"server", name, "address", s.Addr().String())
	}
	g.Add(s.Serve, func(error) {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	return s.Addr(), nil
}

// loopback reports whether addr is reachable from this host only.
func loopback(addr net.Addr) bool {
	ta, ok := addr.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// grpcServerConfig is the TLS of a component's gRPC server.
type grpcServerConfig struct {
	tls transport.GRPCServerTLS
}

func (c *grpcServerConfig) register(cmd *kingpin.CmdClause) {
	cmd.Flag("grpc-server-tls-cert", "TLS certificate of the gRPC server (Store API, forwarded writes). Without it, gRPC is plaintext.").
		PlaceHolder("<file>").StringVar(&c.tls.CertFile)
	cmd.Flag("grpc-server-tls-key", "TLS key of the gRPC server.").
		PlaceHolder("<file>").StringVar(&c.tls.KeyFile)
	cmd.Flag("grpc-server-tls-client-ca", "CA of the certificates gRPC clients must show (mutual TLS): without one signed by it, a process can neither read nor write.").
		PlaceHolder("<file>").StringVar(&c.tls.ClientCAFile)
}

// server builds the gRPC server; register services on it, then call
// addGRPCServer.
func (c *grpcServerConfig) server() (*grpc.Server, error) {
	s, err := transport.NewGRPCServer(c.tls)
	if err != nil {
		return nil, fmt.Errorf("gRPC server TLS: %w", err)
	}
	return s, nil
}

// describe says what the gRPC server's TLS is, for the start-up log.
func (c *grpcServerConfig) describe() string {
	switch {
	case c.tls.Mutual():
		return "mutual TLS"
	case c.tls.Enabled():
		return "TLS, client certificates not checked"
	}
	return "plaintext"
}

// grpcClientConfig is the TLS of a component's gRPC clients.
type grpcClientConfig struct {
	tls transport.GRPCClientTLS
}

func (c *grpcClientConfig) register(cmd *kingpin.CmdClause) {
	cmd.Flag("grpc-client-tls-secure", "Use TLS to reach other components' gRPC (Store API, forwarded writes, health probes).").
		BoolVar(&c.tls.Secure)
	cmd.Flag("grpc-client-tls-skip-verify", "Do not verify the servers' certificates (tests only).").
		BoolVar(&c.tls.SkipVerify)
	cmd.Flag("grpc-client-tls-cert", "Client certificate shown to gRPC servers that require one (mutual TLS).").
		PlaceHolder("<file>").StringVar(&c.tls.CertFile)
	cmd.Flag("grpc-client-tls-key", "Key of the client certificate.").
		PlaceHolder("<file>").StringVar(&c.tls.KeyFile)
	cmd.Flag("grpc-client-tls-ca", "CA that verifies gRPC servers' certificates; the system's roots if empty.").
		PlaceHolder("<file>").StringVar(&c.tls.CAFile)
	cmd.Flag("grpc-client-server-name", "Name expected in gRPC servers' certificates, when it is not the host dialled.").
		StringVar(&c.tls.ServerName)
}

func (c *grpcClientConfig) dialOption() (grpc.DialOption, error) {
	opt, err := c.tls.DialOption()
	if err != nil {
		return nil, fmt.Errorf("gRPC client TLS: %w", err)
	}
	return opt, nil
}

// addGRPCServer listens at once and serves s until interrupted, letting
// streams in flight finish within the grace period.
func addGRPCServer(g *run.Group, logger *slog.Logger, addr string, s *grpc.Server, security string) (net.Addr, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for gRPC on %s: %w", addr, err)
	}
	reach := "this host only"
	if !loopback(l.Addr()) {
		reach = "other hosts"
	}
	logger.Info("listening", "server", "grpc", "address", l.Addr().String(), "reachable_from", reach, "security", security)
	if !loopback(l.Addr()) && security != "mutual TLS" {
		logger.Warn("gRPC reachable from other hosts without mutual TLS: any process that reaches it can read every tenant's series (and write to a receiver); set --grpc-server-tls-cert, --grpc-server-tls-key and --grpc-server-tls-client-ca (docs/security.md)",
			"address", l.Addr().String())
	}
	g.Add(func() error {
		if err := s.Serve(l); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			return err
		}
		return nil
	}, func(error) {
		done := make(chan struct{})
		go func() {
			s.GracefulStop()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(shutdownGrace):
			s.Stop()
		}
	})
	return l.Addr(), nil
}
