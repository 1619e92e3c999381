package main

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/atoll-metrics/atoll/block"
	"github.com/atoll-metrics/atoll/bucket"
	"github.com/atoll-metrics/atoll/internal/blockgen"
	"github.com/atoll-metrics/atoll/tenant"
)

// Tolerances of answers read from downsampled data, against the raw answer
// (max_source_resolution=0s) at the same times. Every evaluation time is
// one millisecond before a whole hour, so a range selector covering whole
// hours covers whole 5m and 1h windows: each aggregate sample (stamped with
// its window's last raw sample) falls inside the range exactly when the raw
// samples it stands for do. min, max and count are then exact.
const (
	// sum_over_time and avg_over_time add the same values in another
	// order (window sums, then their sum).
	dsRoundingTolerance = 1e-12

	// rate() and increase() over ranges of 12 windows. The downsampled
	// range starts at the first window's last sample, so PromQL
	// extrapolates over one window where raw data has samples: the error
	// is how far that window's increase is from the range's average.
	// The generated counters grow as a*x + 30*sqrt(x), x the time since
	// their last reset, so that is small except in the first hours after
	// a reset. Measured worst: 7e-4 at 5m, 3e-3 at 1h.
	dsRateTolerance = 0.01
	// Ranges starting less than dsResetMargin after a reset, or holding
	// one up to a window after their end. There the increase a window saw
	// before its reset is counted one window early (block.AggrCounter), so
	// a range gains or loses up to one window's increase out of twelve,
	// and the window after a reset grows fastest: up to 1/12 at twice the
	// average rate. Measured worst: 0.095 at 5m, 0.088 at 1h.
	dsRateResetTolerance = 0.15
	dsResetMargin        = 6 * time.Hour

	// rate() over a month: one window extrapolated at each end, out of
	// 8640 (5m) or 720 (1h), at up to about twice the average rate.
	// Measured worst: 4e-5 at 5m, 2e-3 at 1h.
	dsRateMonth5mTolerance = 1e-3
	dsRateMonth1hTolerance = 1e-2

	// A sum of a hundred counters' rates: their errors do not line up.
	// Measured worst: 1.7e-3.
	dsRateSumTolerance = 5e-3
)

// TestQueriesReadDownsampledData runs `atoll compact` once over a month of
// two replicas' 2h blocks (compaction, deduplication, 5m and 1h
// downsampling), uploads one more day of replica blocks as receivers
// would, and queries the bucket through `atoll store` and `atoll query`:
//
//   - at max_source_resolution=0s the answers equal PromQL over the
//     generator's truth (every scrape some replica has, once);
//   - at 5m and 1h, min/max/count_over_time are exact, sum/avg_over_time
//     exact up to rounding, rate/increase within the tolerances above, and
//     plain selectors answer a window's average; auto with a coarse step
//     answers what the resolution it picks answers;
//   - downsampled queries read a fraction of the samples, and 1h data
//     still answers once retention deleted the raw blocks under it.
func TestQueriesReadDownsampledData(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	// About 45s on two idle cores; the race detector makes it 150s.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	began := time.Now()
	step := func(what string) {
		t.Logf("%6.1fs %s", time.Since(began).Seconds(), what)
	}

	const day = 24 * time.Hour
	b := newGWBucket(t)
	month := blockgen.Config{
		Duration:       31 * day,
		Interval:       2 * time.Minute,
		Series:         200,
		ExternalLabels: map[string]string{"tenant_id": tenant.Default},
		Seed:           5,
	}.WithDefaults()
	late := month
	late.Start = time.UnixMilli(month.MaxTime()).UTC()
	late.Duration = day
	tr := dsTruth{month: month, late: late}
	st, err := blockgen.Generate(ctx, b.bkt, t.TempDir(), month)
	if err != nil {
		t.Fatal(err)
	}
	step(fmt.Sprintf("generated %d blocks, %d samples", st.Blocks, st.Samples))

	compact := func(t *testing.T, extra ...string) {
		t.Helper()
		args := append([]string{"compact",
			"--objstore.config-file=" + b.config,
			"--data-dir=" + filepath.Join(t.TempDir(), "scratch"),
			"--delete-delay=0s",
			"--lease.holder=e2e",
			"--lease.duration=30s",
			"--log.level=warn",
		}, extra...)
		out, err := exec.CommandContext(ctx, atollBinary, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("atoll compact: %v\n%s", err, tail(string(out), 4096))
		}
	}
	compact(t)
	step("compacted")
	// A day the compactor has not seen: replicas' 2h blocks, deduplicated
	// by the querier.
	if _, err := blockgen.Generate(ctx, b.bkt, t.TempDir(), late); err != nil {
		t.Fatal(err)
	}

	S := month.MinTime()
	hour := time.Hour.Milliseconds()
	dayMs := day.Milliseconds()
	coverage := dsCoverage(t, ctx, b.bkt, S)
	t.Logf("downsampled data from the start: 5m for %.1f days, 1h for %.1f days", float64(coverage[block.Resolution5m]-S)/float64(dayMs), float64(coverage[block.Resolution1h]-S)/float64(dayMs))
	if coverage[block.Resolution1h] < S+28*dayMs || coverage[block.Resolution5m] < coverage[block.Resolution1h] {
		t.Fatalf("downsampling incomplete: 5m up to %s, 1h up to %s", time.UnixMilli(coverage[block.Resolution5m]).UTC(), time.UnixMilli(coverage[block.Resolution1h]).UTC())
	}

	truth := tr.queryable(t, ctx)
	step("truth written")
	_, grpcAddr, storeURL := startStoreGateway(t, b)
	queryURL := startStoreQuerier(t, grpcAddr)
	step("store and querier ready")

	// Every evaluation is one millisecond before a whole hour.
	start, end := S+dayMs-1, late.MaxTime()-1
	q := func(query, res string, from, to, stepMs int64) map[string][]gwPoint {
		t.Helper()
		return dsQuery(t, queryURL, query, res, from, to, stepMs)
	}
	ref := func(query string, from, to, stepMs int64) map[string][]gwPoint {
		t.Helper()
		want := promqlMatrix(t, truth, query, from, to, stepMs)
		if len(want) == 0 {
			t.Fatalf("%s: the truth answers nothing", query)
		}
		return want
	}
	// raw checks the 0s answer against the truth and returns it.
	raw := func(query string, from, to, stepMs int64) map[string][]gwPoint {
		t.Helper()
		got := q(query, "0s", from, to, stepMs)
		sameAnswer(t, query+" at 0s", got, ref(query, from, to, stepMs))
		return got
	}

	t.Run("raw equals the truth", func(t *testing.T) {
		// Counting every scrape of every day: a replica's sample counted
		// twice, or one missed, shows.
		raw(`count_over_time({job="blockgen"}[1d])`, start, end, dayMs)
		// Every sample across the end of the compacted data and the
		// replicas' blocks after it, for both kinds of series.
		from := late.MinTime() - 4*hour
		raw(`{job="blockgen"}`, from, from+8*hour, time.Minute.Milliseconds())
		step("raw checked")
	})

	resets := tr.resets()
	resetNear := func(series string, ts, rng, res int64) bool {
		for _, r := range resets[series] {
			if r > ts-rng-dsResetMargin.Milliseconds() && r <= ts+res {
				return true
			}
		}
		return false
	}

	for _, fn := range []string{"min_over_time", "max_over_time", "count_over_time", "sum_over_time", "avg_over_time"} {
		t.Run(fn, func(t *testing.T) {
			query := fn + `({job="blockgen"}[6h])`
			want := raw(query, start, end, 6*hour)
			for _, res := range []string{"5m", "1h"} {
				got := q(query, res, start, end, 6*hour)
				switch fn {
				case "min_over_time", "max_over_time", "count_over_time":
					sameAnswer(t, query+" at "+res, got, want)
				default:
					worst := closeAnswer(t, query+" at "+res, got, want, func(string, int64) float64 { return dsRoundingTolerance })
					t.Logf("%s at %s: worst relative error %.2g", query, res, worst)
				}
			}
		})
	}
	step("aggregations over time checked")

	var rate5m, increase1h map[string][]gwPoint
	t.Run("rate", func(t *testing.T) {
		// Ranges of 12 windows at each resolution.
		for _, c := range []struct {
			query    string
			res      string
			rng, stp int64
			out      *map[string][]gwPoint
		}{
			{`rate(gen_requests_total[1h])`, "5m", hour, hour, &rate5m},
			{`increase(gen_requests_total[12h])`, "1h", 12 * hour, 12 * hour, &increase1h},
		} {
			want := raw(c.query, start, end, c.stp)
			got := q(c.query, c.res, start, end, c.stp)
			resMs := int64(5 * time.Minute / time.Millisecond)
			if c.res == "1h" {
				resMs = hour
			}
			closeAnswer(t, c.query+" at "+c.res, got, want, func(series string, ts int64) float64 {
				if resetNear(series, ts, c.rng, resMs) {
					return dsRateResetTolerance
				}
				return dsRateTolerance
			})
			near, far := rateErrors(got, want, func(series string, ts int64) bool { return resetNear(series, ts, c.rng, resMs) })
			t.Logf("%s at %s: worst relative error %.2g away from resets, %.2g around them", c.query, c.res, far, near)
			*c.out = got
		}
		query := `sum by (job) (rate(gen_requests_total[1h]))`
		want := raw(query, start, end, hour)
		got := q(query, "5m", start, end, hour)
		t.Logf("%s at 5m: worst relative error %.2g", query, closeAnswer(t, query+" at 5m", got, want, func(string, int64) float64 { return dsRateSumTolerance }))

		// The whole month at once, as an instant query.
		query = `rate(gen_requests_total[30d])`
		at := S + 31*dayMs - 1
		want = raw(query, at, at, 0)
		for res, tol := range map[string]float64{"5m": dsRateMonth5mTolerance, "1h": dsRateMonth1hTolerance} {
			got := q(query, res, at, at, 0)
			t.Logf("%s at %s: worst relative error %.2g", query, res, closeAnswer(t, query+" at "+res, got, want, func(string, int64) float64 { return tol }))
		}
		step("rate checked")
	})

	t.Run("plain selectors", func(t *testing.T) {
		// An instant selector reads the average aggregate; at a window's
		// end it is the average of the window's raw samples. Where a
		// resolution has no data the next finer one answers, so every
		// answer lies within the raw samples the widened lookback
		// (5m plus the resolution) can reach through one window.
		want := raw(`gen_temperature`, start, end, hour)
		for _, c := range []struct {
			res  string
			dur  string
			span int64
		}{
			{"5m", "5m", 5 * time.Minute.Milliseconds()},
			{"1h", "1h", hour},
		} {
			got := q(`gen_temperature`, c.res, start, end, hour)
			if !sameTimestamps(got, want) {
				t.Fatalf("gen_temperature at %s: steps differ from the raw answer", c.res)
			}
			got = withoutName(t, got)
			avg := ref(`avg_over_time(gen_temperature[`+c.dur+`])`, start, end, hour)
			bound := fmt.Sprintf("[%dm]", (2*c.span+5*time.Minute.Milliseconds())/time.Minute.Milliseconds())
			lo := ref(`min_over_time(gen_temperature`+bound+`)`, start, end, hour)
			hi := ref(`max_over_time(gen_temperature`+bound+`)`, start, end, hour)
			if !sameTimestamps(avg, got) || !sameTimestamps(lo, got) || !sameTimestamps(hi, got) {
				t.Fatalf("gen_temperature at %s: reference steps differ", c.res)
			}
			resMs := map[string]int64{"5m": block.Resolution5m, "1h": block.Resolution1h}[c.res]
			checked := 0
			for k, pts := range got {
				for i, p := range pts {
					v := mustParse(t, p.v)
					if l, h := mustParse(t, lo[k][i].v), mustParse(t, hi[k][i].v); v < l || v > h {
						t.Fatalf("%s at %s, %s: %v outside the raw samples' range [%v, %v]", k, c.res, time.UnixMilli(p.t).UTC(), v, l, h)
					}
					if p.t >= coverage[resMs] {
						continue
					}
					if a := mustParse(t, avg[k][i].v); relErr(v, a) > dsRoundingTolerance {
						t.Fatalf("%s at %s, %s: %v, want the window's average %v", k, c.res, time.UnixMilli(p.t).UTC(), v, a)
					}
					checked++
				}
			}
			t.Logf("gen_temperature at %s: %d steps answered with their window's average", c.res, checked)
		}
		step("plain selectors checked")
	})

	t.Run("auto", func(t *testing.T) {
		// A step of 5h or more reads 1h data, 25m or more 5m data, finer
		// steps raw data, as long as the range selectors are as wide.
		if increase1h == nil || rate5m == nil {
			t.Skip("no downsampled answers to compare with")
		}
		sameAnswer(t, "auto, step 12h", q(`increase(gen_requests_total[12h])`, "auto", start, end, 12*hour), increase1h)
		sameAnswer(t, "auto, step 1h", q(`rate(gen_requests_total[1h])`, "auto", start, end, hour), rate5m)
		// A range too narrow for the step's resolution reads finer data:
		// a [10m] range holds no two 1h or 5m windows.
		query := `rate(gen_requests_total[10m])`
		sameAnswer(t, "auto, step 6h, range 10m", q(query, "auto", start, end, 6*hour), q(query, "0s", start, end, 6*hour))
		from := late.MinTime() - 2*hour
		want := q(query, "0s", from, from+4*hour, time.Minute.Milliseconds())
		sameAnswer(t, "auto, step 1m", q(query, "auto", from, from+4*hour, time.Minute.Milliseconds()), want)
		step("auto checked")
	})

	t.Run("reads downsampled data", func(t *testing.T) {
		// The same query over the span every resolution covers, counting
		// the samples the gateway sent.
		query := `max_over_time(gen_temperature[1d])`
		to := S + 28*dayMs - 1
		samples := map[string]float64{}
		answers := map[string]map[string][]gwPoint{}
		for _, res := range []string{"0s", "5m", "1h"} {
			before := metricValue(t, storeURL, "atoll_gateway_samples_returned_total")
			answers[res] = q(query, res, start, to, dayMs)
			samples[res] = metricValue(t, storeURL, "atoll_gateway_samples_returned_total") - before
			if res != "0s" {
				sameAnswer(t, query+" at "+res, answers[res], answers["0s"])
			}
		}
		t.Logf("samples the gateway sent for %s over 27 days: raw %.0f, 5m %.0f, 1h %.0f", query, samples["0s"], samples["5m"], samples["1h"])
		// The query reads 28 days (its range reaches back one) of 100
		// gauges: a downsampled read sends one max per window, a raw read
		// every scrape but the few no replica has.
		span := float64(28 * dayMs)
		if want := 0.95 * 100 * span / float64(month.Interval.Milliseconds()); samples["0s"] < want {
			t.Errorf("raw read sent %.0f samples, want at least %.0f", samples["0s"], want)
		}
		for res, window := range map[string]int64{"5m": block.Resolution5m, "1h": block.Resolution1h} {
			if most := 100 * span / float64(window); samples[res] > most {
				t.Errorf("read at %s sent %.0f samples, more than one per window (%.0f)", res, samples[res], most)
			}
		}

		// Retention deletes the raw blocks of the first two weeks; 1h and
		// 5m data keep answering for them.
		cutoff := S + 14*dayMs + 12*hour
		keep := time.Since(time.UnixMilli(cutoff)).Truncate(time.Hour)
		if keep <= 0 {
			t.Skip("the clock is before the generated data")
		}
		compact(t, fmt.Sprintf("--retention.resolution-raw=%dh", int64(keep/time.Hour)))
		step("raw blocks of the first two weeks deleted")
		// The gateway fails reading the deleted blocks until its next sync
		// drops them (the delete delay is zero here).
		eventually(t, 30*time.Second, func() error {
			m, err := dsTryQuery(t, queryURL, query, "0s", start, to, dayMs)
			if err != nil {
				return err
			}
			for k, pts := range m {
				if pts[0].t < S+14*dayMs {
					return fmt.Errorf("%s still answers from raw data at %s", k, time.UnixMilli(pts[0].t).UTC())
				}
			}
			return nil
		})
		for _, res := range []string{"5m", "1h"} {
			sameAnswer(t, query+" at "+res+" after retention", q(query, res, start, to, dayMs), answers[res])
		}
		step("retention checked")
	})
}

// dsTruth is what the bucket holds: every scrape at least one replica has,
// from the compacted month and from the day uploaded after it.
type dsTruth struct {
	month, late blockgen.Config
}

func (tr dsTruth) present(t int64) bool {
	if t >= tr.late.MinTime() {
		return tr.late.InTruth(t)
	}
	return tr.month.InTruth(t)
}

// samples calls f for every true sample of s in [mint, maxt).
func (tr dsTruth) samples(s blockgen.Series, mint, maxt int64, f func(t int64, v float64)) {
	iv := tr.month.Interval.Milliseconds()
	for t := mint; t < maxt; t += iv {
		if tr.present(t) {
			f(t, tr.month.Float(s, t))
		}
	}
}

// queryable writes the truth into local blocks of a few days each and
// returns them as one Queryable: the reference answers are PromQL over it.
func (tr dsTruth) queryable(t *testing.T, ctx context.Context) storage.Queryable {
	t.Helper()
	dir := t.TempDir()
	span := (8 * 24 * time.Hour).Milliseconds()
	var out localBlocks
	series := tr.month.AllSeries()
	for mint := tr.month.MinTime(); mint < tr.late.MaxTime(); mint += span {
		maxt := min(mint+span, tr.late.MaxTime())
		data := make([]blockgen.SeriesData, 0, len(series))
		for _, s := range series {
			sd := blockgen.SeriesData{Labels: s.Labels}
			tr.samples(s, mint, maxt, func(t int64, v float64) {
				sd.Floats = append(sd.Floats, blockgen.FloatSample{T: t, V: v})
			})
			data = append(data, sd)
		}
		id := ulid.Make()
		if _, err := blockgen.WriteBlock(ctx, dir, id, mint, maxt, nil, data); err != nil {
			t.Fatal(err)
		}
		blk, err := tsdb.OpenBlock(slog.New(slog.DiscardHandler), filepath.Join(dir, id.String()), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = blk.Close() })
		out = append(out, blk)
	}
	return out
}

// resets returns, per counter series (labels without the metric name, as
// rate() answers), the times its value dropped.
func (tr dsTruth) resets() map[string][]int64 {
	out := map[string][]int64{}
	for _, s := range tr.month.AllSeries() {
		if s.Kind != blockgen.Counter {
			continue
		}
		key := s.Labels.DropMetricName().String()
		prev := math.Inf(-1)
		tr.samples(s, tr.month.MinTime(), tr.late.MaxTime(), func(t int64, v float64) {
			if v < prev {
				out[key] = append(out[key], t)
			}
			prev = v
		})
	}
	return out
}

// localBlocks are blocks opened locally, merged as one Prometheus would
// hold them.
type localBlocks []*tsdb.Block

func (bs localBlocks) Querier(mint, maxt int64) (storage.Querier, error) {
	var qs []storage.Querier
	for _, blk := range bs {
		q, err := tsdb.NewBlockQuerier(blk, mint, maxt)
		if err != nil {
			return nil, err
		}
		qs = append(qs, q)
	}
	return storage.NewMergeQuerier(qs, nil, storage.ChainedSeriesMerge), nil
}

// dsCoverage returns, per downsampled resolution, where the live blocks of
// that resolution stop covering the bucket without a gap from start.
func dsCoverage(t *testing.T, ctx context.Context, bkt bucket.Bucket, start int64) map[int64]int64 {
	t.Helper()
	set, err := block.NewFetcher(bkt, nil).Fetch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byRes := map[int64][]*block.Block{}
	for _, b := range set.Visible(block.UnlessDeletionMarked(time.Now(), 0)) {
		byRes[b.Resolution()] = append(byRes[b.Resolution()], b)
	}
	out := map[int64]int64{}
	for _, res := range []int64{block.Resolution5m, block.Resolution1h} {
		bs := byRes[res]
		sort.Slice(bs, func(i, j int) bool { return bs[i].Meta.MinTime < bs[j].Meta.MinTime })
		end := start
		for _, b := range bs {
			if b.Meta.MinTime > end {
				break
			}
			end = max(end, b.Meta.MaxTime)
		}
		out[res] = end
	}
	return out
}

// dsQuery asks the querier for an instant (stepMs 0, at from) or range
// query at a source resolution, and fails on anything but a clean answer.
func dsQuery(t *testing.T, queryURL, query, res string, from, to, stepMs int64) map[string][]gwPoint {
	t.Helper()
	m, err := dsTryQuery(t, queryURL, query, res, from, to, stepMs)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func dsTryQuery(t *testing.T, queryURL, query, res string, from, to, stepMs int64) (map[string][]gwPoint, error) {
	t.Helper()
	secs := func(ms int64) string { return strconv.FormatFloat(float64(ms)/1000, 'f', 3, 64) }
	params := url.Values{"query": {query}, "max_source_resolution": {res}}
	path := "/api/v1/query"
	if stepMs == 0 {
		params.Set("time", secs(from))
	} else {
		path = "/api/v1/query_range"
		params.Set("start", secs(from))
		params.Set("end", secs(to))
		params.Set("step", secs(stepMs))
	}
	code, r := promAPI(t, queryURL, path, params, nil)
	if code != http.StatusOK || r.Status != "success" {
		return nil, fmt.Errorf("%s at %s: %d %s: %s", query, res, code, r.ErrorType, r.Error)
	}
	if len(r.Warnings) > 0 {
		return nil, fmt.Errorf("%s at %s: warnings %q", query, res, r.Warnings)
	}
	return apiMatrix(t, r), nil
}

// sameAnswer fails unless got has want's series and points, bit for bit.
func sameAnswer(t *testing.T, what string, got, want map[string][]gwPoint) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d series, want %d", what, len(got), len(want))
	}
	for k, w := range want {
		g := got[k]
		if slices.Equal(g, w) {
			continue
		}
		if len(g) != len(w) {
			t.Fatalf("%s: %s has %d points, want %d", what, k, len(g), len(w))
		}
		for i := range w {
			if g[i] != w[i] {
				t.Fatalf("%s: %s at %s: %s, want %s", what, k, time.UnixMilli(w[i].t).UTC(), g[i].v, w[i].v)
			}
		}
	}
}

// closeAnswer fails unless got has want's series and timestamps with every
// value within the relative tolerance tol gives for it, and returns the
// largest relative error.
func closeAnswer(t *testing.T, what string, got, want map[string][]gwPoint, tol func(series string, ts int64) float64) float64 {
	t.Helper()
	if !sameTimestamps(got, want) {
		t.Fatalf("%s: series or steps differ from the raw answer", what)
	}
	worst := 0.0
	for k, w := range want {
		for i, p := range w {
			g, v := mustParse(t, got[k][i].v), mustParse(t, p.v)
			e := relErr(g, v)
			if e > tol(k, p.t) {
				t.Fatalf("%s: %s at %s: %v, want %v (relative error %.3g > %.3g)", what, k, time.UnixMilli(p.t).UTC(), g, v, e, tol(k, p.t))
			}
			worst = max(worst, e)
		}
	}
	return worst
}

// rateErrors returns the largest relative errors of points near (by near)
// and away from counter resets.
func rateErrors(got, want map[string][]gwPoint, near func(series string, ts int64) bool) (float64, float64) {
	var n, f float64
	for k, w := range want {
		for i, p := range w {
			g, _ := strconv.ParseFloat(got[k][i].v, 64)
			v, _ := strconv.ParseFloat(p.v, 64)
			if e := relErr(g, v); near(k, p.t) {
				n = max(n, e)
			} else {
				f = max(f, e)
			}
		}
	}
	return n, f
}

// withoutName keys an answer by series labels without the metric name, as
// functions over range selectors answer.
func withoutName(t *testing.T, m map[string][]gwPoint) map[string][]gwPoint {
	t.Helper()
	out := make(map[string][]gwPoint, len(m))
	for k, v := range m {
		ls, err := parser.NewParser(parser.Options{}).ParseMetric(k)
		if err != nil {
			t.Fatal(err)
		}
		out[ls.DropMetricName().String()] = v
	}
	return out
}

func sameTimestamps(got, want map[string][]gwPoint) bool {
	if len(got) != len(want) {
		return false
	}
	for k, w := range want {
		g, ok := got[k]
		if !ok || len(g) != len(w) {
			return false
		}
		for i := range w {
			if g[i].t != w[i].t {
				return false
			}
		}
	}
	return true
}

func relErr(got, want float64) float64 {
	if got == want {
		return 0
	}
	if want == 0 {
		return math.Abs(got)
	}
	return math.Abs(got-want) / math.Abs(want)
}

func mustParse(t *testing.T, s string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
