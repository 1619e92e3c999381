package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"

	"github.com/atoll-metrics/atoll/bucket"
)

// shutdownGrace bounds how long servers wait for requests in flight.
const shutdownGrace = 15 * time.Second

// readiness is the process's ready state, served at /-/ready and consulted by
// handlers that must refuse work while starting or stopping. Besides the
// process's own start, named conditions (a bucket that must answer) can
// hold it not ready, each with the reason /-/ready shows.
type readiness struct {
	ready   atomic.Bool
	blocked atomic.Int32

	mtx     sync.Mutex
	reasons map[string]string
}

func (r *readiness) set(v bool)    { r.ready.Store(v) }
func (r *readiness) isReady() bool { return r.ready.Load() && r.blocked.Load() == 0 }

// block holds the process not ready because of what, until unblock.
func (r *readiness) block(what, reason string) {
	r.mtx.Lock()
	defer r.mtx.Unlock()
	if r.reasons == nil {
		r.reasons = map[string]string{}
	}
	r.reasons[what] = reason
	r.blocked.Store(int32(len(r.reasons)))
}

func (r *readiness) unblock(what string) {
	r.mtx.Lock()
	defer r.mtx.Unlock()
	delete(r.reasons, what)
	r.blocked.Store(int32(len(r.reasons)))
}

// why says what keeps the process not ready.
func (r *readiness) why() string {
	r.mtx.Lock()
	defer r.mtx.Unlock()
	var out []string
	for _, what := range slices.Sorted(maps.Keys(r.reasons)) {
		out = append(out, what+": "+r.reasons[what])
	}
	if !r.ready.Load() {
		out = append(out, "starting or stopping")
	}
	return strings.Join(out, "\n")
}

// bucketCheckInterval is how often a bucket that did not answer is asked
// again.
const bucketCheckInterval = 5 * time.Second

// addBucketCheck holds the process not ready until the bucket answers, so
// a bucket that does not exist or cannot be reached is reported at once, in
// /-/ready and the log, rather than at the first block shipped hours later.
// Once it has answered, outages are the business of the components using
// it (they retry), and readiness no longer depends on it.
func addBucketCheck(g *run.Group, logger *slog.Logger, bkt bucket.Bucket, ready *readiness) {
	const what = "bucket"
	ready.block(what, "not checked yet")
	ctx, cancel := context.WithCancel(context.Background())
	g.Add(func() error {
		var last string
		for {
			cctx, ccancel := context.WithTimeout(ctx, 30*time.Second)
			err := bucket.Check(cctx, bkt)
			ccancel()
			if ctx.Err() != nil {
				return nil
			}
			if err == nil {
				ready.unblock(what)
				if last != "" {
					logger.Info("the bucket answers now", "bucket", bkt.Name())
				}
				break
			}
			reason := err.Error()
			ready.block(what, reason)
			if reason != last {
				logger.Error("cannot use the bucket; not ready until it answers, checking every "+bucketCheckInterval.String(), "err", err)
				last = reason
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(bucketCheckInterval):
			}
		}
		<-ctx.Done()
		return nil
	}, func(error) { cancel() })
}

// lateHandler serves 503 until its handler is set: the listeners start at
// once, so probes answer while the TSDBs replay their WALs.
type lateHandler struct {
	h atomic.Pointer[http.Handler]
}

func (l *lateHandler) set(h http.Handler) { l.h.Store(&h) }

func (l *lateHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := l.h.Load()
	if h == nil {
		http.Error(w, "atoll is starting, retry later", http.StatusServiceUnavailable)
		return
	}
	(*h).ServeHTTP(w, r)
}

// newOpsMux serves what every component serves: /metrics, /-/healthy,
// /-/ready and pprof.
func newOpsMux(reg *prometheus.Registry, ready *readiness) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.InstrumentMetricHandler(reg, promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		Registry:          reg,
		EnableOpenMetrics: true,
	})))
	mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "atoll is healthy.\n")
	})
	mux.HandleFunc("/-/ready", func(w http.ResponseWriter, _ *http.Request) {
		if !ready.isReady() {
			http.Error(w, "atoll is not ready:\n"+ready.why(), http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "atoll is ready.\n")
	})
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", maskedCmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// maskedCmdline serves the command line as pprof does, with the secrets
// an inline bucket config holds masked.
func maskedCmdline(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	args := slices.Clone(os.Args)
	for i, a := range args {
		switch {
		case strings.HasPrefix(a, "--objstore.config="):
			args[i] = "--objstore.config=" + maskedBucketYAML(strings.TrimPrefix(a, "--objstore.config="))
		case a == "--objstore.config" && i+1 < len(args):
			args[i+1] = maskedBucketYAML(args[i+1])
		}
	}
	_, _ = io.WriteString(w, strings.Join(args, "\x00"))
}

// addHTTPServer listens at once, so a taken port fails the start rather
// than a later request, and serves h until interrupted. A handler that
// panics answers 500 (see recoverPanics) instead of dropping the connection.
func addHTTPServer(g *run.Group, logger *slog.Logger, reg prometheus.Registerer, name, addr string, h http.Handler) (net.Addr, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for %s on %s: %w", name, addr, err)
	}
	srv := &http.Server{
		Handler:           recoverPanics(h, name, logger, panicCounter(reg)),
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       5 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	logger.Info("listening", "server", name, "address", l.Addr().String())
	g.Add(func() error {
		if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("%s server: %w", name, err)
		}
		return nil
	}, func(error) {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return l.Addr(), nil
}

// panicCounter returns the process's count of handler panics; every
// server of the process shares it, told apart by the server label.
func panicCounter(reg prometheus.Registerer) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "atoll_http_panics_total",
		Help: "HTTP requests whose handler panicked; each was answered 500 and logged with its stack.",
	}, []string{"server"})
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
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

// addGRPCServer listens at once and serves s until interrupted, letting
// streams in flight finish within the grace period.
func addGRPCServer(g *run.Group, logger *slog.Logger, addr string, s *grpc.Server) (net.Addr, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for gRPC on %s: %w", addr, err)
	}
	logger.Info("listening", "server", "grpc", "address", l.Addr().String())
	g.Add(func() error {
		return s.Serve(l)
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

// grpcServerOptions size messages for batches of series and chunks.
func grpcServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(64 << 20),
		grpc.MaxSendMsgSize(64 << 20),
	}
}
