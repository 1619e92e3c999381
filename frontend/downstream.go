package frontend

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Downstream is a querier the frontend sends requests to: the base URL its
// Prometheus HTTP API lives under (/api/v1/... is appended), and how to
// reach it.
type Downstream struct {
	URL *url.URL
	// Transport reaches the querier; nil uses a shared HTTP transport.
	// HandlerTransport reaches one in the same process.
	Transport http.RoundTripper
}

// HandlerTransport serves requests with h in this process, for a frontend
// in front of the query API of the same process.
func HandlerTransport(h http.Handler) http.RoundTripper { return handlerTransport{h} }

type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := &recorder{header: http.Header{}}
	t.h.ServeHTTP(rec, r)
	if err := r.Context().Err(); err != nil {
		return nil, err
	}
	if rec.code == 0 {
		rec.code = http.StatusOK
	}
	return &http.Response{
		Status:        strconv.Itoa(rec.code) + " " + http.StatusText(rec.code),
		StatusCode:    rec.code,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        rec.header,
		Body:          io.NopCloser(bytes.NewReader(rec.body.Bytes())),
		ContentLength: int64(rec.body.Len()),
		Request:       r,
	}, nil
}

// recorder is the ResponseWriter of an in-process request.
type recorder struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
}
func (r *recorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.body.Write(b)
}

// downstream is one querier and what the frontend knows of it.
type downstream struct {
	name    string
	base    *url.URL
	client  *http.Client
	healthy atomic.Bool
}

// pool spreads requests over the queriers and retries failures on the
// next one.
type pool struct {
	ds         []*downstream
	next       atomic.Uint64
	maxRetries int
	logger     *slog.Logger
	m          *metrics
}

func newPool(dss []Downstream, maxRetries int, logger *slog.Logger, m *metrics) (*pool, error) {
	if len(dss) == 0 {
		return nil, errors.New("no downstream querier")
	}
	shared := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
	}
	p := &pool{maxRetries: maxRetries, logger: logger, m: m}
	for _, d := range dss {
		if d.URL == nil || d.URL.Host == "" && d.Transport == nil {
			return nil, fmt.Errorf("downstream URL %v has no host", d.URL)
		}
		tr := d.Transport
		if tr == nil {
			tr = shared
		}
		base := *d.URL
		base.Path = strings.TrimSuffix(base.Path, "/")
		ds := &downstream{name: base.Redacted(), base: &base, client: &http.Client{Transport: tr}}
		// Until checked, a querier is taken to be up: the first requests
		// need not wait for the first check.
		ds.healthy.Store(true)
		p.ds = append(p.ds, ds)
	}
	return p, nil
}

// pick returns the next querier in turn, skipping those that failed their
// last check unless all did.
func (p *pool) pick() *downstream {
	n := uint64(len(p.ds))
	start := p.next.Add(1)
	for i := range n {
		d := p.ds[(start+i)%n]
		if d.healthy.Load() {
			return d
		}
	}
	return p.ds[start%n]
}

// request is one request to a querier, kept so that it can be sent again.
type request struct {
	method   string
	path     string // under /api/v1
	rawQuery string
	header   http.Header
	body     []byte
	// endpoint names the request in metrics.
	endpoint string
}

// formRequest posts a form, the way queries are sent: a long query fits
// in a body where it would not fit in a URL.
func formRequest(path, endpoint string, header http.Header, form url.Values) *request {
	h := forwardHeader(header)
	h.Set("Content-Type", "application/x-www-form-urlencoded")
	return &request{method: http.MethodPost, path: path, header: h, body: []byte(form.Encode()), endpoint: endpoint}
}

// hopHeaders are not forwarded: they describe one connection, or the body
// the frontend re-encodes.
var hopHeaders = []string{
	"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade", "Content-Length", "Content-Type", "Accept-Encoding",
}

// forwardHeader copies a client's headers for a querier: its tenant and
// credentials go along.
func forwardHeader(h http.Header) http.Header {
	out := h.Clone()
	if out == nil {
		out = http.Header{}
	}
	for _, k := range hopHeaders {
		out.Del(k)
	}
	return out
}

// errUnreachable is returned, wrapped, when no querier answered.
var errUnreachable = errors.New("no querier answered")

// do sends req to a querier, and again to the next one while the answer
// is a 5xx or no answer, up to maxRetries more times. The caller closes the
// returned body.
func (p *pool) do(ctx context.Context, req *request) (*http.Response, error) {
	var lastErr error
	for attempt := 0; attempt <= p.maxRetries; attempt++ {
		if attempt > 0 {
			p.m.retries.WithLabelValues(req.endpoint).Inc()
			// A short pause lets a querier that is restarting come back,
			// without adding much to a query that fails for good.
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(retryPause(attempt)):
			}
		}
		d := p.pick()
		resp, err := p.send(ctx, d, req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			lastErr = fmt.Errorf("%w: %s: %w", errUnreachable, d.name, err)
			p.logger.Debug("querier request failed, retrying", "querier", d.name, "attempt", attempt, "err", err)
			continue
		}
		if resp.StatusCode/100 == 5 && attempt < p.maxRetries {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			p.logger.Debug("querier answered 5xx, retrying", "querier", d.name, "attempt", attempt, "code", resp.StatusCode, "body", string(body))
			lastErr = fmt.Errorf("querier %s answered %d: %s", d.name, resp.StatusCode, strings.TrimSpace(string(body)))
			continue
		}
		return resp, nil
	}
	return nil, lastErr
}

func retryPause(attempt int) time.Duration {
	return min(time.Duration(attempt)*50*time.Millisecond, 500*time.Millisecond)
}

func (p *pool) send(ctx context.Context, d *downstream, req *request) (*http.Response, error) {
	u := *d.base
	u.Path += req.path
	u.RawQuery = req.rawQuery
	var body io.Reader
	if len(req.body) > 0 {
		body = bytes.NewReader(req.body)
	}
	r, err := http.NewRequestWithContext(ctx, req.method, u.String(), body)
	if err != nil {
		return nil, err
	}
	r.Header = req.header.Clone()
	if r.Header == nil {
		r.Header = http.Header{}
	}
	start := time.Now()
	resp, err := d.client.Do(r)
	code := "error"
	if err == nil {
		code = strconv.Itoa(resp.StatusCode)
	}
	p.m.downstreamDuration.WithLabelValues(req.endpoint, code).Observe(time.Since(start).Seconds())
	return resp, err
}

// fetch sends req and reads the whole answer.
func (p *pool) fetch(ctx context.Context, req *request) (int, http.Header, []byte, error) {
	resp, err := p.do(ctx, req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("read querier answer: %w", err)
	}
	return resp.StatusCode, resp.Header, body, nil
}

// check asks every querier whether it is ready.
func (p *pool) check(ctx context.Context, timeout time.Duration) {
	var wg sync.WaitGroup
	for _, d := range p.ds {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			u := *d.base
			u.Path += "/-/ready"
			ok := false
			r, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
			if err == nil {
				resp, err := d.client.Do(r)
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					ok = resp.StatusCode == http.StatusOK
				}
			}
			if was := d.healthy.Swap(ok); was != ok {
				if ok {
					p.logger.Info("querier ready", "querier", d.name)
				} else {
					p.logger.Warn("querier not ready, sending it requests only if no other is", "querier", d.name)
				}
			}
			v := 0.0
			if ok {
				v = 1
			}
			p.m.downstreamUp.WithLabelValues(d.name).Set(v)
		})
	}
	wg.Wait()
}

// anyReady reports whether some querier passed its last check.
func (p *pool) anyReady() bool {
	for _, d := range p.ds {
		if d.healthy.Load() {
			return true
		}
	}
	return false
}
