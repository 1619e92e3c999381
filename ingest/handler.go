package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/atoll-metrics/atoll/tenant"
)

// HandlerOptions configure the remote-write HTTP handler.
type HandlerOptions struct {
	// DefaultTenant takes writes without a tenant header.
	DefaultTenant string
	// Body bounds request sizes.
	Body BodyLimits
	// Ready gates writes: while it is false, writes get 503 and Prometheus
	// retries them.
	Ready func() bool
	// Limits bound each tenant's ingestion rate on this receiver.
	Limits LimitsConfig
}

// Handler serves Prometheus remote write 1.0. It only translates HTTP:
// decoding is the decoder's job, placement and quorum the Router's.
type Handler struct {
	opts   HandlerOptions
	router *Router
	body   *bodyReader
	rate   *rateLimiter
	logger *slog.Logger

	requests *prometheus.CounterVec
	samples  *prometheus.CounterVec
	duration prometheus.Histogram
}

// NewHandler returns a Handler writing through router.
func NewHandler(router *Router, opts HandlerOptions, logger *slog.Logger, reg prometheus.Registerer) *Handler {
	if opts.DefaultTenant == "" {
		opts.DefaultTenant = tenant.Default
	}
	if opts.Ready == nil {
		opts.Ready = func() bool { return true }
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	f := promauto.With(reg)
	return &Handler{
		opts:   opts,
		router: router,
		body:   newBodyReader(opts.Body),
		rate:   newRateLimiter(opts.Limits),
		logger: logger,
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "atoll_ingest_requests_total",
			Help: "Remote-write requests answered, by HTTP status code.",
		}, []string{"code"}),
		samples: f.NewCounterVec(prometheus.CounterOpts{
			Name: "atoll_ingest_samples_total",
			Help: "Samples received in remote-write requests, by outcome: stored, or refused as conflict or invalid.",
		}, []string{"outcome"}),
		duration: f.NewHistogram(prometheus.HistogramOpts{
			Name:                        "atoll_ingest_request_duration_seconds",
			Help:                        "Time to answer a remote-write request.",
			Buckets:                     prometheus.DefBuckets,
			NativeHistogramBucketFactor: 1.1,
		}),
	}
}

// ServeHTTP answers a remote-write request. 2xx: stored. 400: malformed,
// don't retry. 409: some samples conflicted (out of order, duplicate, too
// old), the rest is stored, don't retry. 413: too large. 429: over a limit,
// retry later. 503: not stored, retry.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	code, msg, retryAfter := h.serve(r)
	h.requests.WithLabelValues(fmt.Sprint(code)).Inc()
	h.duration.Observe(time.Since(start).Seconds())
	if code/100 == 2 {
		w.WriteHeader(code)
		return
	}
	if code >= 500 {
		h.logger.Warn("remote write failed", "code", code, "err", msg)
	} else {
		h.logger.Debug("remote write refused", "code", code, "err", msg)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(retryAfter.Round(time.Second).Seconds())))
	}
	w.WriteHeader(code)
	_, _ = io.WriteString(w, msg+"\n")
}

func (h *Handler) serve(r *http.Request) (int, string, time.Duration) {
	if r.Method != http.MethodPost {
		return http.StatusMethodNotAllowed, "remote write takes POST, got " + r.Method, 0
	}
	if !h.opts.Ready() {
		return http.StatusServiceUnavailable, "atoll is starting or stopping, retry later", 0
	}
	if code, msg := checkContentType(r); code != 0 {
		return code, msg, 0
	}
	id := tenant.FromHeader(r.Header)
	if id == "" {
		id = h.opts.DefaultTenant
	}
	if err := tenant.Validate(id); err != nil {
		return http.StatusBadRequest, err.Error(), 0
	}

	if r.ContentLength == 0 {
		return http.StatusBadRequest, "empty remote-write request body", 0
	}
	body, err := h.body.Read(r.Body, r.ContentLength)
	switch {
	case errors.Is(err, errRequestTooLarge):
		return http.StatusRequestEntityTooLarge, err.Error(), 0
	case errors.Is(err, errMalformedRequest):
		return http.StatusBadRequest, err.Error(), 0
	case err != nil:
		return http.StatusBadRequest, "read body: " + err.Error(), 0
	}
	defer body.Release()
	if len(body.Bytes()) == 0 {
		return http.StatusBadRequest, "empty remote-write request body", 0
	}
	wr, err := body.Decode()
	if err != nil {
		return http.StatusBadRequest, err.Error(), 0
	}

	if ok, n, wait := h.rate.allow(id, func() int { return countSamples(wr) }); !ok {
		h.samples.WithLabelValues(outcomeLimited.String()).Add(float64(n))
		return http.StatusTooManyRequests, fmt.Sprintf("tenant %q is over its ingestion rate limit of %g samples/s; retry after %s",
			id, h.opts.Limits.For(id).IngestionRate, wait.Round(time.Second)), wait
	}
	res, err := h.router.write(r.Context(), id, wr)
	if err != nil {
		switch {
		case errors.Is(err, tenant.ErrInvalid):
			return http.StatusBadRequest, err.Error(), 0
		case errors.Is(err, context.Canceled):
			return http.StatusServiceUnavailable, "request canceled: " + err.Error(), 0
		}
		return http.StatusServiceUnavailable, err.Error(), 0
	}
	h.samples.WithLabelValues("stored").Add(float64(res.stored))
	if res.refused > 0 {
		h.samples.WithLabelValues(res.outcome.String()).Add(float64(res.refused))
	}
	if res.outcome == outcomeStored {
		return http.StatusNoContent, "", 0
	}
	msg := res.message
	if n := len(res.conflicts) + len(res.invalid); n > 1 {
		msg = fmt.Sprintf("%s (and %d more series refused)", msg, n-1)
	}
	return res.outcome.httpStatus(), msg, 0
}

// checkContentType refuses bodies this handler would misread: remote write
// 2.0 until it is supported (415 tells Prometheus to fall back to 1.0) and
// compression other than snappy.
func checkContentType(r *http.Request) (int, string) {
	if enc := r.Header.Get("Content-Encoding"); enc != "" && !strings.EqualFold(enc, "snappy") {
		return http.StatusUnsupportedMediaType, "unsupported Content-Encoding " + enc + ": remote write bodies are snappy-compressed"
	}
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return 0, ""
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return http.StatusUnsupportedMediaType, "unparsable Content-Type " + ct
	}
	if mt != "application/x-protobuf" {
		return http.StatusUnsupportedMediaType, "unsupported Content-Type " + mt + ": want application/x-protobuf"
	}
	if proto := params["proto"]; proto != "" && proto != "prometheus.WriteRequest" {
		return http.StatusUnsupportedMediaType, "unsupported remote-write message " + proto + ": atoll accepts prometheus.WriteRequest (remote write 1.0)"
	}
	return 0, ""
}

func countSamples(wr *writeRequest) int {
	n := 0
	for i := range wr.Timeseries {
		n += len(wr.Timeseries[i].Samples) + len(wr.Timeseries[i].Histograms)
	}
	return n
}
