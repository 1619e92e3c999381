package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"
)

// querySpec is one PromQL query to time.
type querySpec struct {
	Name string `json:"name"`
	Expr string `json:"expr"`
	// Count is a query answering how many series Expr reads.
	Count string `json:"count"`
}

// querySpecs are the timed queries. PromQL drops the metric name in rate(),
// so rate over every series of the load fails: series of different metrics
// that share all other labels collide ("vector cannot contain metrics with
// the same labelset"). last_over_time keeps the name, so over all series it
// reads what rate would (every sample in the window of every series). The
// rate query runs over the one metric with the most series.
func querySpecs(selector, rateMetric string) []querySpec {
	specs := []querySpec{{
		Name:  "all series, last_over_time",
		Expr:  fmt.Sprintf("sum by (job) (last_over_time(%s[5m]))", selector),
		Count: fmt.Sprintf("count(last_over_time(%s[5m]))", selector),
	}}
	if rateMetric != "" {
		specs = append(specs, querySpec{
			Name:  "one metric, rate",
			Expr:  fmt.Sprintf("sum by (job) (rate(%s[5m]))", rateMetric),
			Count: fmt.Sprintf("count(last_over_time(%s[5m]))", rateMetric),
		})
	}
	return specs
}

// queryResult is what timing one query on one setup measured.
type queryResult struct {
	Spec   querySpec `json:"spec"`
	Series int       `json:"series"` // -1 when the count failed
	// Cold is the first run, apart: it fills caches the others reuse.
	Cold       float64   `json:"cold_seconds"`
	Runs       []float64 `json:"run_seconds"`
	Median     float64   `json:"median_seconds"`
	P90        float64   `json:"p90_seconds"`
	CPU        float64   `json:"cpu_seconds_per_query"` // every process serving the query
	StoreMS    float64   `json:"store_series_ms"`       // mean Store API Series call, seen by the querier; 0 without one
	Errors     int       `json:"errors"`
	FirstError string    `json:"first_error,omitempty"`
	// Answer is the last successful answer, label set to value.
	Answer map[string]float64 `json:"answer,omitempty"`
}

// timeQuery runs spec once cold and then runs times at instant at,
// against the Prometheus HTTP API at httpURL, charging the CPU time of pids.
// querierURL, when set, is read for the Store API call durations.
func timeQuery(ctx context.Context, httpURL string, at time.Time, spec querySpec, runs int, pids []int, querierURL string) queryResult {
	res := queryResult{Spec: spec, Series: -1}
	do := func() (float64, map[string]float64, error) {
		t0 := time.Now()
		ans, err := instantQuery(ctx, httpURL, spec.Expr, at)
		return time.Since(t0).Seconds(), ans, err
	}
	record := func(err error) {
		res.Errors++
		if res.FirstError == "" {
			res.FirstError = err.Error()
		}
	}
	var err error
	if res.Cold, res.Answer, err = do(); err != nil {
		record(err)
	}

	storeNames := []string{"atoll_querier_store_request_duration_seconds_sum", "atoll_querier_store_request_duration_seconds_count"}
	var store0 map[string]float64
	if querierURL != "" {
		store0, _ = scrape(ctx, querierURL, storeNames...)
	}
	cpu0, cpuErr := cpuOf(pids)
	for range runs {
		secs, ans, err := do()
		if err != nil {
			record(err)
			continue
		}
		res.Runs = append(res.Runs, secs)
		res.Answer = ans
	}
	cpu1, err := cpuOf(pids)
	if cpuErr == nil && err == nil && runs > 0 {
		res.CPU = (cpu1 - cpu0) / float64(runs)
	}
	if querierURL != "" {
		if store1, err := scrape(ctx, querierURL, storeNames...); err == nil && store0 != nil {
			if n := store1[storeNames[1]] - store0[storeNames[1]]; n > 0 {
				res.StoreMS = 1000 * (store1[storeNames[0]] - store0[storeNames[0]]) / n
			}
		}
	}
	res.Median, res.P90 = quantile(res.Runs, 0.5), quantile(res.Runs, 0.9)

	// Counted last, so the count does not warm what the cold run measures.
	if n, err := instantQuery(ctx, httpURL, spec.Count, at); err != nil {
		record(fmt.Errorf("count: %w", err))
	} else if v, ok := n["{}"]; ok {
		res.Series = int(v)
	}
	return res
}

// instantQuery evaluates expr at t and returns the vector it answered.
func instantQuery(ctx context.Context, httpURL, expr string, t time.Time) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	q := url.Values{
		"query": {expr},
		"time":  {strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', 3, 64)},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, httpURL+"/api/v1/query?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var ans struct {
		Status   string   `json:"status"`
		Error    string   `json:"error"`
		Warnings []string `json:"warnings"`
		Data     struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &ans); err != nil {
		return nil, fmt.Errorf("%s: %.200s", resp.Status, body)
	}
	if resp.StatusCode != http.StatusOK || ans.Status != "success" {
		return nil, fmt.Errorf("%s: %s", resp.Status, ans.Error)
	}
	if len(ans.Warnings) > 0 {
		return nil, fmt.Errorf("partial answer, warnings: %v", ans.Warnings)
	}
	out := make(map[string]float64, len(ans.Data.Result))
	for _, r := range ans.Data.Result {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("value %v: %w", r.Value[1], err)
		}
		out[labelString(r.Metric)] = v
	}
	return out, nil
}

func labelString(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	s := "{"
	for i, k := range keys {
		if i > 0 {
			s += ","
		}
		s += k + "=" + strconv.Quote(m[k])
	}
	return s + "}"
}

// sameAnswer reports whether two answers hold the same series with values
// equal but for float summation order.
func sameAnswer(a, b map[string]float64) bool {
	if len(a) != len(b) || len(a) == 0 {
		return false
	}
	for k, va := range a {
		vb, ok := b[k]
		if !ok {
			return false
		}
		if va != vb && math.Abs(va-vb) > 1e-9*math.Max(math.Abs(va), math.Abs(vb)) {
			return false
		}
	}
	return true
}

// quantile is the q-quantile of xs by the nearest-rank method; 0 for none.
func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	rank := int(math.Ceil(q*float64(len(s)))) - 1
	return s[min(max(rank, 0), len(s)-1)]
}
