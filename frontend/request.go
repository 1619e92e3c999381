package frontend

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
)

// maxRequestBody bounds what the frontend reads of a request: PromQL and
// match[] lists, not data.
const maxRequestBody = 8 << 20

// incoming is a client's request, read once so that it can be passed on
// (and retried) as it came or taken apart.
type incoming struct {
	method   string
	path     string
	rawQuery string
	header   http.Header
	body     []byte
	// form is the URL query and a form-encoded body together, as
	// Prometheus reads them.
	form url.Values
}

func readIncoming(w http.ResponseWriter, r *http.Request) (*incoming, error) {
	in := &incoming{method: r.Method, path: r.URL.Path, rawQuery: r.URL.RawQuery, header: r.Header}
	if r.Body != nil {
		b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBody))
		if err != nil {
			return nil, fmt.Errorf("read request body: %w", err)
		}
		in.body = b
	}
	form, err := url.ParseQuery(in.rawQuery)
	if err != nil {
		form = url.Values{}
	}
	if r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch {
		if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct == "application/x-www-form-urlencoded" {
			if bf, err := url.ParseQuery(string(in.body)); err == nil {
				// A body value comes before the URL's, as in
				// http.Request.ParseForm.
				for k, vs := range form {
					bf[k] = append(bf[k], vs...)
				}
				form = bf
			}
		}
	}
	in.form = form
	return in, nil
}

func (in *incoming) bodyReader() io.Reader {
	if len(in.body) == 0 {
		return nil
	}
	return bytes.NewReader(in.body)
}

// rangeQuery is a range query the frontend can take apart: its PromQL
// parsed, its times in milliseconds, every other parameter kept to be
// passed on and to key the cache.
type rangeQuery struct {
	query      string
	expr       parser.Expr
	start, end int64
	step       int64
	params     url.Values
}

// errPassThrough marks requests the frontend leaves to the querier as
// they are: malformed ones (the querier's answer is Prometheus's own
// error) and ones whose answer cannot be assembled from pieces.
var errPassThrough = errors.New("passed through")

// paramsPassedThrough change what an answer is made of (per-query
// statistics, a limit on series, a cost estimate): such requests go to a
// querier whole.
var paramsPassedThrough = []string{"stats", "limit", "cost"}

// maxPoints is Prometheus's limit on points per series of a range query;
// a request above it is left to the querier to refuse.
const maxPoints = 11000

func parseRangeQuery(form url.Values, p parser.Parser) (*rangeQuery, error) {
	for _, name := range paramsPassedThrough {
		if form.Get(name) != "" {
			return nil, errPassThrough
		}
	}
	q := &rangeQuery{query: form.Get("query"), params: url.Values{}}
	var err error
	if q.start, err = parseTimeMs(form.Get("start")); err != nil {
		return nil, errPassThrough
	}
	if q.end, err = parseTimeMs(form.Get("end")); err != nil {
		return nil, errPassThrough
	}
	step, err := parseDuration(form.Get("step"))
	if err != nil || step <= 0 || step%time.Millisecond != 0 {
		return nil, errPassThrough
	}
	q.step = step.Milliseconds()
	if q.end < q.start || (q.end-q.start)/q.step > maxPoints {
		return nil, errPassThrough
	}
	if q.expr, err = p.ParseExpr(q.query); err != nil {
		return nil, errPassThrough
	}
	if t := q.expr.Type(); t != parser.ValueTypeVector && t != parser.ValueTypeScalar {
		return nil, errPassThrough
	}
	for k, vs := range form {
		switch k {
		case "query", "start", "end", "step":
		default:
			q.params[k] = vs
		}
	}
	return q, nil
}

// instantQuery is an instant query the frontend can take apart.
type instantQuery struct {
	query  string
	expr   parser.Expr
	time   int64
	params url.Values
}

func parseInstantQuery(form url.Values, p parser.Parser, now time.Time) (*instantQuery, error) {
	for _, name := range paramsPassedThrough {
		if form.Get(name) != "" {
			return nil, errPassThrough
		}
	}
	q := &instantQuery{query: form.Get("query"), params: url.Values{}, time: now.UnixMilli()}
	if v := form.Get("time"); v != "" {
		t, err := parseTimeMs(v)
		if err != nil {
			return nil, errPassThrough
		}
		q.time = t
	}
	var err error
	if q.expr, err = p.ParseExpr(q.query); err != nil {
		return nil, errPassThrough
	}
	for k, vs := range form {
		switch k {
		case "query", "time":
		default:
			q.params[k] = vs
		}
	}
	return q, nil
}

// parseTimeMs reads a time as Prometheus's API does (Unix seconds with
// decimals, or RFC 3339) into milliseconds.
func parseTimeMs(s string) (int64, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		sec, frac := math.Modf(f)
		frac = math.Round(frac*1000) / 1000
		return time.Unix(int64(sec), int64(frac*float64(time.Second))).UnixMilli(), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, fmt.Errorf("cannot parse %q to a valid timestamp", s)
	}
	return t.UnixMilli(), nil
}

// parseDuration reads a duration as Prometheus's API does: seconds with
// decimals, or a Prometheus duration.
func parseDuration(s string) (time.Duration, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		ns := f * float64(time.Second)
		if math.IsNaN(ns) || ns >= math.MaxInt64 || ns < math.MinInt64 {
			return 0, fmt.Errorf("cannot parse %q to a valid duration", s)
		}
		return time.Duration(ns), nil
	}
	d, err := model.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("cannot parse %q to a valid duration", s)
	}
	return time.Duration(d), nil
}

// formatMs writes milliseconds as the seconds Prometheus's API reads,
// exactly.
func formatMs(ms int64) string {
	sign := ""
	if ms < 0 {
		sign, ms = "-", -ms
	}
	return fmt.Sprintf("%s%d.%03d", sign, ms/1000, ms%1000)
}

// rangeForm is what a querier is asked for the points from start to end.
func (q *rangeQuery) form(query string, start, end int64) url.Values {
	f := make(url.Values, len(q.params)+4)
	for k, vs := range q.params {
		f[k] = vs
	}
	f.Set("query", query)
	f.Set("start", formatMs(start))
	f.Set("end", formatMs(end))
	f.Set("step", formatMs(q.step))
	return f
}

func (q *instantQuery) form(query string) url.Values {
	f := make(url.Values, len(q.params)+2)
	for k, vs := range q.params {
		f[k] = vs
	}
	f.Set("query", query)
	f.Set("time", formatMs(q.time))
	return f
}
