package web

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"html"
	"io/fs"
	"log/slog"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"

	v1 "github.com/prometheus/prometheus/web/api/v1"
)

//go:embed ui
var assets embed.FS

// Options say what this process is and which data it has; every source left
// nil hides the pages built on it.
type Options struct {
	// Component is the subcommand running: all, query, receive, store,
	// compact or bucket web.
	Component string
	// InstanceID names this process: its ring instance or host name.
	InstanceID string
	// QueryAPI says the Prometheus query API is served at /api/v1/ by the
	// same mux, which enables the query page.
	QueryAPI bool
	// QueryAPIPassedOn says that query API is answered by processes behind
	// this one (a query-frontend's queriers): the status endpoints still
	// describe this process.
	QueryAPIPassedOn bool
	// DefaultTenant is the tenant of queries that name none; AllTenants
	// says such queries read every tenant instead.
	DefaultTenant string
	AllTenants    bool

	// Stores lists the stores the querier uses.
	Stores func(context.Context) []StoreStatus
	// Ring serves the ring page (HTML, or JSON when asked for it); nil for
	// processes outside any ring.
	Ring http.Handler
	// Tenants lists the tenant TSDBs of this process.
	Tenants func(context.Context) ([]TenantStatus, error)
	// Receivers lists the receivers whose tenants a querier gathers.
	Receivers func() []Receiver
	// Blocks lists the bucket's blocks.
	Blocks func(context.Context) (*BlockList, error)
	// BlocksMaxAge is how long a block listing is reused; the page can
	// ask for a fresh one. Default 1m.
	BlocksMaxAge time.Duration

	// BuildInfo and Flags are served in Prometheus's shapes by processes
	// without the query API (which serves its own).
	BuildInfo v1.PrometheusVersion
	Flags     map[string]string

	// Client reaches other Atoll processes (receivers, for tenants), over
	// ReceiverScheme ("http" when empty; "https" where they serve TLS). The
	// credentials of the request being answered go along.
	Client         *http.Client
	ReceiverScheme string
	Logger         *slog.Logger
}

// UI serves the pages and their data.
type UI struct {
	opts    Options
	started time.Time
	etags   map[string]string
	mux     *http.ServeMux
	rates   *tenantRates
	blocks  blocksCache

	probeMtx sync.Mutex
	probes   map[string]probeResult
}

// New returns the UI for opts.
func New(opts Options) *UI {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Client == nil {
		opts.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if opts.BlocksMaxAge <= 0 {
		opts.BlocksMaxAge = time.Minute
	}
	u := &UI{
		opts:    opts,
		started: time.Now(),
		etags:   map[string]string{},
		rates:   newTenantRates(),
		probes:  map[string]probeResult{},
	}
	_ = fs.WalkDir(assets, "ui", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := assets.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		u.etags[p] = `"` + hex.EncodeToString(sum[:8]) + `"`
		return nil
	})
	return u
}

// page is one page of the UI and what it needs.
type page struct {
	path, title string
	available   func(o *Options) bool
}

var pages = []page{
	{"/query", "Query", func(o *Options) bool { return o.QueryAPI }},
	{"/stores", "Stores", func(o *Options) bool { return o.Stores != nil }},
	{"/ring", "Ring", func(o *Options) bool { return true }},
	{"/tenants", "Tenants", func(o *Options) bool { return o.Tenants != nil || o.Receivers != nil }},
	{"/blocks", "Blocks", func(o *Options) bool { return o.Blocks != nil }},
	{"/status", "Status", func(o *Options) bool { return true }},
}

// Register adds the UI's pages and endpoints to mux. Requests for paths the
// UI does not own are left to mux's other handlers (the query API at
// /api/v1/, /metrics, ...). mux is also what the UI asks whether optional
// endpoints (rules, alerts, TSDB status) exist.
func (u *UI) Register(mux *http.ServeMux) {
	u.mux = mux
	mux.HandleFunc("GET /{$}", u.index)
	for _, p := range pages {
		if !p.available(&u.opts) {
			continue
		}
		if p.path == "/ring" {
			mux.HandleFunc("GET /ring", u.ring)
			continue
		}
		mux.HandleFunc("GET "+p.path, u.index)
	}
	if u.opts.QueryAPI {
		// Prometheus's and Thanos's links to /graph?g0.expr=... keep working.
		mux.HandleFunc("GET /graph", u.index)
	}
	mux.HandleFunc("GET /static/", u.static)
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) {
		r.URL.Path = "/static/favicon.svg"
		u.static(w, r)
	})
	if u.opts.Stores != nil {
		mux.HandleFunc("GET /api/v1/stores", u.stores)
	}
	if u.opts.Tenants != nil || u.opts.Receivers != nil {
		mux.HandleFunc("GET /api/v1/tenants", u.tenants)
	}
	if u.opts.Blocks != nil {
		mux.HandleFunc("GET /api/v1/blocks", u.blockList)
	}
	if !u.opts.QueryAPI || u.opts.QueryAPIPassedOn {
		mux.HandleFunc("GET /api/v1/status/buildinfo", u.buildInfo)
		mux.HandleFunc("GET /api/v1/status/flags", u.flags)
		mux.HandleFunc("GET /api/v1/status/runtimeinfo", u.runtimeInfo)
	}
}

// config is what the page scripts learn about this process, written into
// the page so the first paint needs no extra request.
type config struct {
	Component     string     `json:"component"`
	Instance      string     `json:"instance"`
	Version       string     `json:"version"`
	Pages         []navEntry `json:"pages"`
	Page          string     `json:"page"`
	QueryAPI      bool       `json:"queryAPI"`
	Ring          bool       `json:"ring"`
	TenantScope   string     `json:"tenantScope,omitempty"`
	DefaultTenant string     `json:"defaultTenant"`
	AllTenants    bool       `json:"allTenants"`
	// Optional lists the optional endpoints that answer: rules, alerts, tsdb.
	Optional map[string]bool `json:"optional"`
}

type navEntry struct {
	Path  string `json:"path"`
	Title string `json:"title"`
}

// defaultPage is what / shows: the query page where there is one, else
// the page about what this component holds.
func (u *UI) defaultPage() string {
	switch {
	case u.opts.QueryAPI:
		return "/query"
	case u.opts.Tenants != nil:
		return "/tenants"
	case u.opts.Blocks != nil:
		return "/blocks"
	case u.opts.Ring != nil:
		return "/ring"
	}
	return "/status"
}

func (u *UI) config(r *http.Request, current string) config {
	c := config{
		Component:     u.opts.Component,
		Instance:      u.opts.InstanceID,
		Version:       u.opts.BuildInfo.Version,
		Page:          current,
		QueryAPI:      u.opts.QueryAPI,
		Ring:          u.opts.Ring != nil,
		DefaultTenant: u.opts.DefaultTenant,
		AllTenants:    u.opts.AllTenants,
		Optional:      map[string]bool{},
	}
	switch {
	case u.opts.Receivers != nil:
		c.TenantScope = "cluster"
	case u.opts.Tenants != nil:
		c.TenantScope = "local"
	}
	for _, p := range pages {
		if p.available(&u.opts) {
			c.Pages = append(c.Pages, navEntry{p.path, p.title})
		}
	}
	if current == "/status" && u.opts.QueryAPI {
		for _, name := range []string{"rules", "alerts", "tsdb"} {
			c.Optional[name] = u.optionalEndpoint(r.Context(), name)
		}
	}
	return c
}

// index serves the one HTML document every page is drawn in.
func (u *UI) index(w http.ResponseWriter, r *http.Request) {
	current := r.URL.Path
	switch current {
	case "/", "/graph":
		current = u.defaultPage()
		if r.URL.Path == "/graph" {
			current = "/query"
		}
	}
	u.serveIndex(w, r, current)
}

func (u *UI) serveIndex(w http.ResponseWriter, r *http.Request, current string) {
	doc, err := assets.ReadFile("ui/index.html")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	cfg, err := json.Marshal(u.config(r, current))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	title := "Atoll"
	for _, p := range pages {
		if p.path == current {
			title = p.title + " · Atoll"
		}
	}
	out := strings.NewReplacer(
		"{{CONFIG}}", html.EscapeString(string(cfg)),
		"{{TITLE}}", html.EscapeString(title),
	).Replace(string(doc))
	setPageHeaders(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte(out))
}

// setPageHeaders lets pages load nothing but this process's own files and
// talk to nothing but this process.
func setPageHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
}

// ring serves the ring page: the UI's view of it for browsers, the ring's
// own page for ?plain and JSON for clients that ask for JSON. Processes
// outside any ring get a page saying so.
func (u *UI) ring(w http.ResponseWriter, r *http.Request) {
	if u.opts.Ring != nil && (r.URL.Query().Has("plain") || strings.Contains(r.Header.Get("Accept"), "application/json")) {
		u.opts.Ring.ServeHTTP(w, r)
		return
	}
	u.serveIndex(w, r, "/ring")
}

var contentTypes = map[string]string{
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
	".html": "text/html; charset=utf-8",
}

// static serves the embedded files, revalidated by content hash so a new
// binary's files are picked up at once and an unchanged file costs a 304.
func (u *UI) static(w http.ResponseWriter, r *http.Request) {
	name := path.Join("ui", strings.TrimPrefix(path.Clean(r.URL.Path), "/static/"))
	etag, ok := u.etags[name]
	if !ok || name == "ui/index.html" {
		http.NotFound(w, r)
		return
	}
	setPageHeaders(w)
	w.Header().Set("ETag", etag)
	w.Header().Set("Cache-Control", "no-cache")
	if ct, ok := contentTypes[path.Ext(name)]; ok {
		w.Header().Set("Content-Type", ct)
	}
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	b, _ := assets.ReadFile(name)
	_, _ = w.Write(b)
}

// writeData writes a success response in the Prometheus API envelope.
func writeData(w http.ResponseWriter, data any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(struct {
		Status string `json:"status"`
		Data   any    `json:"data"`
	}{"success", data})
}

// writeError writes an error in the Prometheus API envelope.
func writeError(w http.ResponseWriter, code int, typ string, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(struct {
		Status    string `json:"status"`
		ErrorType string `json:"errorType"`
		Error     string `json:"error"`
	}{"error", typ, err.Error()})
}
