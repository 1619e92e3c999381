package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/exporter-toolkit/web"
	"golang.org/x/net/netutil"
	"gopkg.in/yaml.v3"
)

// HTTPOptions configure every HTTP listener of a process alike.
type HTTPOptions struct {
	// WebConfigFile is the Prometheus ecosystem's web configuration file
	// (tls_server_config, basic_auth_users, http_server_config,
	// rate_limit), read again on every connection and request as
	// exporter-toolkit does. Empty serves plain HTTP to anyone.
	WebConfigFile string
	// MaxConnections bounds the connections open at once on one listener;
	// further ones wait in the kernel's accept queue, costing the process
	// nothing. 0 means no bound.
	MaxConnections int
	// ReadHeaderTimeout bounds reading a request's headers: a client that
	// trickles them (slow loris) is cut off after it.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing an answer, from the end of the request's
	// headers; it must exceed the longest query.
	WriteTimeout time.Duration
	// IdleTimeout closes keep-alive connections idle this long.
	IdleTimeout time.Duration
	// Tenants binds the basic-auth users of WebConfigFile to the tenants
	// they may write and read; nil leaves the tenant to the request's
	// header (an authenticating proxy sets it).
	Tenants *TenantCredentials
}

// DefaultHTTPOptions are Prometheus's --web.* defaults where it has them.
func DefaultHTTPOptions() HTTPOptions {
	return HTTPOptions{
		MaxConnections:    512,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       5 * time.Minute,
		WriteTimeout:      10 * time.Minute,
		IdleTimeout:       5 * time.Minute,
	}
}

// webConfigSummary is what Atoll itself needs to know of a web config
// file; exporter-toolkit reads the rest.
type webConfigSummary struct {
	TLS struct {
		Cert     string `yaml:"cert"`
		CertFile string `yaml:"cert_file"`
	} `yaml:"tls_server_config"`
	Users map[string]any `yaml:"basic_auth_users"`
}

// Security says what the web config file asks for.
type Security struct {
	TLS       bool
	BasicAuth bool
}

func (s Security) String() string {
	switch {
	case s.TLS && s.BasicAuth:
		return "TLS and basic auth"
	case s.TLS:
		return "TLS, no authentication"
	case s.BasicAuth:
		return "basic auth without TLS"
	}
	return "no TLS, no authentication"
}

// Check loads the web config file as exporter-toolkit will (certificates
// included), so a broken file fails the start rather than every request,
// and reports what it enables.
func (o HTTPOptions) Check() (Security, error) {
	if o.WebConfigFile == "" {
		if o.Tenants != nil {
			return Security{}, errors.New("tenant credentials bind basic-auth users, but there is no web config file (--http.config) with basic_auth_users")
		}
		return Security{}, nil
	}
	if err := web.Validate(o.WebConfigFile); err != nil {
		return Security{}, fmt.Errorf("web config %s: %w", o.WebConfigFile, err)
	}
	data, err := os.ReadFile(o.WebConfigFile)
	if err != nil {
		return Security{}, err
	}
	var sum webConfigSummary
	if err := yaml.Unmarshal(data, &sum); err != nil {
		return Security{}, fmt.Errorf("web config %s: %w", o.WebConfigFile, err)
	}
	sec := Security{TLS: sum.TLS.Cert != "" || sum.TLS.CertFile != "", BasicAuth: len(sum.Users) > 0}
	if o.Tenants != nil {
		if !sec.BasicAuth {
			return sec, fmt.Errorf("tenant credentials bind basic-auth users, but web config %s has no basic_auth_users", o.WebConfigFile)
		}
		for user := range o.Tenants.users {
			if _, ok := sum.Users[user]; !ok {
				return sec, fmt.Errorf("tenant credentials name user %q, who is not in the basic_auth_users of %s", user, o.WebConfigFile)
			}
		}
	}
	return sec, nil
}

// HTTPServer is one listener serving one handler.
type HTTPServer struct {
	name   string
	l      net.Listener
	srv    *http.Server
	opts   HTTPOptions
	logger *slog.Logger
}

// ListenHTTP listens on addr at once, so a taken port fails the start
// rather than a later request; Serve then serves h there. name tells the
// listener apart in logs and metrics.
func ListenHTTP(name, addr string, h http.Handler, opts HTTPOptions, logger *slog.Logger, reg prometheus.Registerer) (*HTTPServer, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for %s on %s: %w", name, addr, err)
	}
	return ServeHTTPOn(name, l, h, opts, logger, reg), nil
}

// ServeHTTPOn is ListenHTTP on a listener already open.
func ServeHTTPOn(name string, l net.Listener, h http.Handler, opts HTTPOptions, logger *slog.Logger, reg prometheus.Registerer) *HTTPServer {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m := httpMetricsFor(reg)
	open := m.open.WithLabelValues(name)
	m.limit.WithLabelValues(name).Set(float64(opts.MaxConnections))
	if opts.MaxConnections > 0 {
		l = netutil.LimitListener(l, opts.MaxConnections)
	}
	if opts.Tenants != nil {
		h = opts.Tenants.handler(h)
	}
	srv := &http.Server{
		// The web config's authentication wraps this handler (Serve), so
		// it runs only for requests that passed it.
		Handler:           recoverPanics(h, name, logger, m.panics),
		ReadHeaderTimeout: opts.ReadHeaderTimeout,
		ReadTimeout:       opts.ReadTimeout,
		WriteTimeout:      opts.WriteTimeout,
		IdleTimeout:       opts.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		ConnState: func(_ net.Conn, s http.ConnState) {
			switch s {
			case http.StateNew:
				open.Inc()
			case http.StateClosed, http.StateHijacked:
				open.Dec()
			}
		},
	}
	return &HTTPServer{name: name, l: l, srv: srv, opts: opts, logger: logger.With("server", name)}
}

// Addr is the address listened on, with the port picked for port 0.
func (s *HTTPServer) Addr() net.Addr { return s.l.Addr() }

// Serve serves until Shutdown, then returns nil.
func (s *HTTPServer) Serve() error {
	cfg := s.opts.WebConfigFile
	err := web.Serve(s.l, s.srv, &web.FlagConfig{WebConfigFile: &cfg}, s.logger)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("%s server: %w", s.name, err)
}

// Shutdown stops accepting and waits for requests in flight until ctx
// ends; then it closes what is left.
func (s *HTTPServer) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if err != nil {
		_ = s.srv.Close()
	}
	return err
}

// httpMetrics are shared by every listener of a process, told apart by
// the server label.
type httpMetrics struct {
	panics *prometheus.CounterVec
	open   *prometheus.GaugeVec
	limit  *prometheus.GaugeVec
}

func httpMetricsFor(reg prometheus.Registerer) httpMetrics {
	return httpMetrics{
		panics: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "atoll_http_panics_total",
			Help: "HTTP requests whose handler panicked; each was answered 500 and logged with its stack.",
		}, []string{"server"})),
		open: register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "atoll_http_open_connections",
			Help: "Connections open on the HTTP listener.",
		}, []string{"server"})),
		limit: register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "atoll_http_max_connections",
			Help: "Most connections the HTTP listener keeps open at once (--web.max-connections); 0 is no bound.",
		}, []string{"server"})),
	}
}

// register registers c, or returns the collector registered before it
// under the same name: every listener of a process shares one.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
	}
	return c
}

// recoverPanics turns a panicking handler into a 500, a count and an error
// log with the stack. Without it net/http recovers the panic by closing the
// connection, which a client sees as an empty reply and nobody counts. When
// the handler had already started its answer, the status can no longer be
// changed, so the connection is aborted as net/http would have done.
func recoverPanics(h http.Handler, server string, logger *slog.Logger, panics *prometheus.CounterVec) http.Handler {
	panics.WithLabelValues(server)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rw := &headerWatcher{ResponseWriter: w}
		defer func() {
			p := recover()
			if p == nil {
				return
			}
			if p == http.ErrAbortHandler {
				panic(p)
			}
			panics.WithLabelValues(server).Inc()
			outcome := "answered 500"
			if rw.wroteHeader {
				outcome = "aborted the response it had started"
			}
			logger.Error("HTTP handler panicked; "+outcome, "server", server, "method", r.Method,
				"path", r.URL.Path, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			if rw.wroteHeader {
				panic(http.ErrAbortHandler)
			}
			// Drop what the handler had set for its own answer (a
			// Content-Encoding, say), which would garble this one.
			clear(w.Header())
			http.Error(w, fmt.Sprintf("internal error: the handler of %s failed; this is a bug, see the server log", r.URL.Path), http.StatusInternalServerError)
		}()
		h.ServeHTTP(rw, r)
	})
}

// headerWatcher notes whether the answer has started.
type headerWatcher struct {
	http.ResponseWriter
	wroteHeader bool
}

func (w *headerWatcher) WriteHeader(code int) {
	w.wroteHeader = true
	w.ResponseWriter.WriteHeader(code)
}

func (w *headerWatcher) Write(b []byte) (int, error) {
	w.wroteHeader = true
	return w.ResponseWriter.Write(b)
}

// Flush keeps streaming answers (server-sent events) working through the
// wrapper.
func (w *headerWatcher) Flush() {
	w.wroteHeader = true
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *headerWatcher) Unwrap() http.ResponseWriter { return w.ResponseWriter }
