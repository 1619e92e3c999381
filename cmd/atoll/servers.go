package main

import (
	"context"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/atoll-metrics/atoll/bucket"
)

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
// /-/ready, and pprof when enabled.
func newOpsMux(reg *prometheus.Registry, ready *readiness, hc *httpConfig) *http.ServeMux {
	mux := http.NewServeMux()
	var gatherer prometheus.Gatherer = reg
	if !hc.perTenantMetrics {
		gatherer = tenantsSummed{reg}
	}
	mux.Handle("/metrics", promhttp.InstrumentMetricHandler(reg, promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{
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
	if !hc.pprof {
		return mux
	}
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", maskedCmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
