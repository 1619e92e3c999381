package web

import (
	"context"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"time"

	v1 "github.com/prometheus/prometheus/web/api/v1"
)

// buildInfo, flags and runtimeInfo answer as Prometheus's API does, for
// components without the query API.
func (u *UI) buildInfo(w http.ResponseWriter, _ *http.Request) {
	bi := u.opts.BuildInfo
	if bi.GoVersion == "" {
		bi.GoVersion = runtime.Version()
	}
	writeData(w, bi)
}

func (u *UI) flags(w http.ResponseWriter, _ *http.Request) {
	f := u.opts.Flags
	if f == nil {
		f = map[string]string{}
	}
	writeData(w, f)
}

func (u *UI) runtimeInfo(w http.ResponseWriter, _ *http.Request) {
	cwd, _ := os.Getwd()
	host, _ := os.Hostname()
	writeData(w, v1.RuntimeInfo{
		StartTime:           u.started,
		CWD:                 cwd,
		Hostname:            host,
		ServerTime:          time.Now(),
		ReloadConfigSuccess: true,
		GoroutineCount:      runtime.NumGoroutine(),
		GOMAXPROCS:          runtime.GOMAXPROCS(0),
		GOMEMLIMIT:          debug.SetMemoryLimit(-1),
		GOGC:                os.Getenv("GOGC"),
		GODEBUG:             os.Getenv("GODEBUG"),
	})
}

// optionalEndpoints are endpoints of the query API that exist in some
// setups only (rules and alerts once a ruler exists); the status page shows
// their sections when they answer.
var optionalEndpoints = map[string]string{
	"rules":  "/api/v1/rules",
	"alerts": "/api/v1/alerts",
	"tsdb":   "/api/v1/status/tsdb?limit=1",
}

type probeResult struct {
	ok bool
	at time.Time
}

// probeTTL is how long an endpoint's presence is remembered.
const probeTTL = time.Minute

// optionalEndpoint asks this process's own mux whether an optional
// endpoint answers. Asking here rather than from the page keeps a missing
// endpoint's 404 out of the browser's console.
func (u *UI) optionalEndpoint(ctx context.Context, name string) bool {
	u.probeMtx.Lock()
	p, ok := u.probes[name]
	u.probeMtx.Unlock()
	if ok && time.Since(p.at) < probeTTL {
		return p.ok
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, optionalEndpoints[name], nil)
	if err != nil || u.mux == nil {
		return false
	}
	rec := &statusRecorder{header: http.Header{}}
	u.mux.ServeHTTP(rec, req)
	code := rec.code
	if code == 0 {
		code = http.StatusOK
	}
	present := code == http.StatusOK
	// Only definite answers are remembered: a process still starting
	// answers 503 and will know better in a moment.
	if code == http.StatusOK || code == http.StatusNotFound {
		u.probeMtx.Lock()
		u.probes[name] = probeResult{ok: present, at: time.Now()}
		u.probeMtx.Unlock()
	}
	return present
}

// statusRecorder keeps a response's status and drops its body.
type statusRecorder struct {
	header http.Header
	code   int
}

func (r *statusRecorder) Header() http.Header { return r.header }
func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return len(b), nil
}
func (r *statusRecorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
}
