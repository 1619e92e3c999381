// Package rwhistory makes days of synthetic series and writes them with
// Prometheus remote write, in time order, so that any receiver (Atoll,
// Prometheus) accepts them: counters with resets, a series with gaps,
// gauges, a classic histogram and a native histogram, one sample a minute.
// Values are functions of the series and the time, so samples written
// later continue the same series. Tests of the query path use it to hold
// the same data in Atoll and in Prometheus.
package rwhistory

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/prompb"
)

// Step is the time between two samples of a series, in milliseconds.
const Step = 60_000

// History is the samples from Start to End (milliseconds, both on the
// Step grid).
type History struct {
	Start, End int64
}

// New returns a history of span ending two minutes before end.
func New(end time.Time, span time.Duration) History {
	e := end.Add(-2*time.Minute).UnixMilli() / Step * Step
	return History{Start: e - span.Milliseconds(), End: e}
}

func lbl(kv ...string) []prompb.Label {
	ls := make([]prompb.Label, 0, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		ls = append(ls, prompb.Label{Name: kv[i], Value: kv[i+1]})
	}
	return ls
}

// Series returns every series' sample at t (a series in a gap has none):
// fe_requests_total (12 counters, one resetting every 25 hours, one with
// 5-hour gaps), fe_temperature (6 gauges), fe_latency_bucket (a classic
// histogram per job) and fe_native_seconds (a native histogram counter).
func (h History) Series(t int64) []prompb.TimeSeries {
	var out []prompb.TimeSeries
	n := (t - h.Start) / Step
	for j, job := range []string{"api", "db", "web"} {
		for i := range 4 {
			v := float64(n * int64(j+i+1))
			if job == "db" && i == 1 {
				v = float64((n % 1500) * 3)
			}
			if job == "web" && i == 3 && n%2000 > 1700 {
				continue
			}
			out = append(out, prompb.TimeSeries{
				Labels:  lbl("__name__", "fe_requests_total", "code", []string{"200", "500"}[i%2], "instance", "i"+strconv.Itoa(i), "job", job),
				Samples: []prompb.Sample{{Timestamp: t, Value: v}},
			})
		}
		for i := range 2 {
			v := 20 + 10*math.Sin(float64(n)/(100+float64(j*30+i*7))) + float64(j)
			out = append(out, prompb.TimeSeries{
				Labels:  lbl("__name__", "fe_temperature", "instance", "i"+strconv.Itoa(i), "job", job),
				Samples: []prompb.Sample{{Timestamp: t, Value: v}},
			})
		}
		for k, le := range []string{"0.1", "1", "+Inf"} {
			out = append(out, prompb.TimeSeries{
				Labels:  lbl("__name__", "fe_latency_bucket", "job", job, "le", le),
				Samples: []prompb.Sample{{Timestamp: t, Value: float64(n * int64(k+j+1))}},
			})
		}
	}
	nh := &histogram.Histogram{
		Count: uint64(n * 6), Sum: float64(n) * 2.5, Schema: 0, ZeroThreshold: 0.001, ZeroCount: uint64(n),
		PositiveSpans:   []histogram.Span{{Offset: 0, Length: 2}},
		PositiveBuckets: []int64{n * 2, n}, // deltas: buckets of 2n and 3n
	}
	out = append(out, prompb.TimeSeries{
		Labels:     lbl("__name__", "fe_native_seconds", "job", "api"),
		Histograms: []prompb.Histogram{prompb.FromIntHistogram(t, nh)},
	})
	return out
}

// Write sends the samples from from to to (inclusive) to a remote-write
// URL, a couple of hours per request.
func (h History) Write(ctx context.Context, url string, from, to int64) error {
	for ts := from; ts <= to; {
		var series []prompb.TimeSeries
		batchEnd := min(ts+2*time.Hour.Milliseconds(), to+Step)
		for ; ts < batchEnd; ts += Step {
			series = append(series, h.Series(ts)...)
		}
		if err := Send(ctx, url, "", series); err != nil {
			return err
		}
	}
	return nil
}

// Send posts series to a remote-write 1.0 URL, for tenant if not empty.
func Send(ctx context.Context, url, tenant string, series []prompb.TimeSeries) error {
	raw, err := (&prompb.WriteRequest{Timeseries: series}).Marshal()
	if err != nil {
		return err
	}
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(snappy.Encode(nil, raw)))
	if err != nil {
		return err
	}
	r.Header.Set("Content-Encoding", "snappy")
	r.Header.Set("Content-Type", "application/x-protobuf")
	r.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	if tenant != "" {
		r.Header.Set("THANOS-TENANT", tenant)
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("remote write to %s: %d %s", url, resp.StatusCode, bytes.TrimSpace(body))
	}
	return nil
}
