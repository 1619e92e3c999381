package storegateway

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/atoll-metrics/atoll/block"
	"github.com/atoll-metrics/atoll/storeapi"
)

// downsample aggregates raw series into windows of res, in the format of
// ship/aggregate.go: one series per aggregate, each sample stamped with
// the time of the window's last raw sample.
func downsample(raw []testSeries, res int64) []testSeries {
	var out []testSeries
	for _, s := range raw {
		agg := map[string][]sample{}
		var (
			window                   = int64(math.MinInt64)
			count, sum, lo, hi, last float64
			lastT                    int64
			counter, prev, offset    float64
			seen                     bool
		)
		flush := func() {
			if count == 0 {
				return
			}
			agg[block.AggrCount] = append(agg[block.AggrCount], sample{t: lastT, f: count})
			agg[block.AggrSum] = append(agg[block.AggrSum], sample{t: lastT, f: sum})
			agg[block.AggrMin] = append(agg[block.AggrMin], sample{t: lastT, f: lo})
			agg[block.AggrMax] = append(agg[block.AggrMax], sample{t: lastT, f: hi})
			agg[block.AggrCounter] = append(agg[block.AggrCounter], sample{t: lastT, f: counter})
		}
		var hsum *histogram.FloatHistogram
		for _, smp := range s.samples {
			if smp.h != nil {
				// Histograms: a count and a float histogram sum.
				if w := smp.t / res * res; w != window {
					if hsum != nil {
						agg[block.AggrCount] = append(agg[block.AggrCount], sample{t: lastT, f: count})
						agg[block.AggrSum] = append(agg[block.AggrSum], sample{t: lastT, fh: hsum})
					}
					window, count, hsum = w, 0, nil
				}
				fh := smp.h.ToFloat(nil)
				if hsum == nil {
					hsum = fh
					hsum.CounterResetHint = histogram.GaugeType
				} else if _, _, _, err := hsum.Add(fh); err != nil {
					panic(err)
				}
				count++
				lastT = smp.t
				continue
			}
			if math.IsNaN(smp.f) {
				continue
			}
			if w := smp.t / res * res; w != window {
				flush()
				window, count, sum, lo, hi = w, 0, 0, math.Inf(1), math.Inf(-1)
			}
			count++
			sum += smp.f
			lo, hi, last, lastT = min(lo, smp.f), max(hi, smp.f), smp.f, smp.t
			if seen && last < prev {
				offset += prev
			}
			prev, seen = last, true
			counter = last + offset
		}
		if hsum != nil {
			agg[block.AggrCount] = append(agg[block.AggrCount], sample{t: lastT, f: count})
			agg[block.AggrSum] = append(agg[block.AggrSum], sample{t: lastT, fh: hsum})
		} else {
			flush()
		}
		for _, a := range block.Aggregates() {
			b := labels.NewBuilder(s.lset)
			b.Set(block.AggregateLabel, a)
			out = append(out, testSeries{lset: b.Labels(), samples: agg[a]})
		}
	}
	return out
}

// expectAggregate is what the gateway must return for aggr of the
// downsampled series: the stored aggregate, or sum/count for the average.
func expectAggregate(ds []testSeries, ext map[string]string, aggr string, mint, maxt int64) seriesResult {
	byKey := map[string]map[string][]sample{}
	for _, s := range ds {
		b := labels.NewBuilder(s.lset)
		a := s.lset.Get(block.AggregateLabel)
		b.Del(block.AggregateLabel)
		for n, v := range ext {
			b.Set(n, v)
		}
		k := b.Labels().String()
		if byKey[k] == nil {
			byKey[k] = map[string][]sample{}
		}
		byKey[k][a] = s.samples
	}
	out := seriesResult{}
	for k, aggs := range byKey {
		var smp []sample
		if aggr == block.AggrAvg {
			for i, c := range aggs[block.AggrCount] {
				if sum := aggs[block.AggrSum][i]; sum.fh != nil {
					smp = append(smp, sample{t: c.t, fh: sum.fh.Copy().Div(c.f)})
				} else {
					smp = append(smp, sample{t: c.t, f: sum.f / c.f})
				}
			}
		} else {
			smp = aggs[aggr]
		}
		var in []sample
		for _, x := range smp {
			if x.t >= mint && x.t <= maxt {
				in = append(in, x)
			}
		}
		if len(in) > 0 {
			out[k] = in
		}
	}
	return out
}

func TestDownsampledBlocks(t *testing.T) {
	ext := map[string]string{"tenant_id": "a"}
	rawA := genSeries("http_requests_total", 12, 0, 2*hour, 15_000)
	// A label name sorting before the aggregate label puts partners at
	// different positions of their postings lists.
	for i := range rawA[:4] {
		b := labels.NewBuilder(rawA[i].lset)
		b.Set("Zone", []string{"eu", "us"}[i%2])
		rawA[i].lset = b.Labels()
	}
	rawA = append(rawA, genHistograms("http_requests_total", 2, 0, 2*hour, 60_000)...)
	rawB := genSeries("http_requests_total", 12, 2*hour, 4*hour, 15_000)
	ds5m := downsample(rawA, block.Resolution5m)
	ds1h := downsample(rawA[:6], block.Resolution1h)
	histogramsOnly := func(r seriesResult) seriesResult {
		out := seriesResult{}
		for k, v := range r {
			if strings.Contains(k, "job-h") {
				out[k] = v
			}
		}
		return out
	}

	bkt := newBucket(t)
	rawADir := writeBlock(t, blockSpec{series: rawA, ext: ext})
	rawBDir := writeBlock(t, blockSpec{series: rawB, ext: ext})
	uploadBlock(t, bkt, rawADir)
	uploadBlock(t, bkt, rawBDir)
	uploadBlock(t, bkt, writeBlock(t, blockSpec{series: ds5m, ext: ext, resolution: block.Resolution5m, mint: 0, maxt: 2 * hour}))
	uploadBlock(t, bkt, writeBlock(t, blockSpec{series: ds1h, ext: ext, resolution: block.Resolution1h, mint: 0, maxt: 2 * hour}))
	localA, localB := openLocal(t, rawADir), openLocal(t, rawBDir)
	gw, _ := newGateway(t, bkt, func(o *Options) { o.SeriesBatchSize = 6 })

	all := ms("__name__", "=", "http_requests_total")
	merge := func(parts ...seriesResult) seriesResult {
		out := seriesResult{}
		for _, p := range parts {
			for k, v := range p {
				out[k] = append(out[k], v...)
			}
		}
		for k, v := range out {
			sort.SliceStable(v, func(i, j int) bool { return v[i].t < v[j].t })
			out[k] = slices.CompactFunc(v, func(a, b sample) bool { return a.t == b.t })
		}
		return out
	}
	rawAll := func(mint, maxt int64) seriesResult {
		return expectSeries(t, []*localBlock{localA, localB}, mint, maxt, all)
	}
	rawOfB := func(mint, maxt int64) seriesResult {
		return expectSeries(t, []*localBlock{localB}, mint, maxt, all)
	}
	for _, tc := range []struct {
		name       string
		maxRes     int64
		aggr       string
		mint, maxt int64
		want       seriesResult
		// resolutions returned, by whether the series' samples lie in
		// the first block's range.
		wantRes []int64
		// ms replaces the matcher of every series of the metric.
		ms []*labels.Matcher
	}{
		{"raw only", 0, "", 0, 4*hour - 1, rawAll(0, 4*hour-1), []int64{0}, nil},
		{"5m average then raw", block.Resolution5m, "", 0, 4*hour - 1,
			merge(expectAggregate(ds5m, ext, block.AggrAvg, 0, 4*hour-1), rawOfB(0, 4*hour-1)), []int64{0, block.Resolution5m}, nil},
		{"5m average of histograms", block.Resolution5m, "", 0, 4*hour - 1,
			histogramsOnly(expectAggregate(ds5m, ext, block.AggrAvg, 0, 4*hour-1)), []int64{block.Resolution5m}, ms("job", "=", "job-h")},
		{"5m max", block.Resolution5m, block.AggrMax, 0, 4*hour - 1,
			merge(expectAggregate(ds5m, ext, block.AggrMax, 0, 4*hour-1), rawOfB(0, 4*hour-1)), []int64{0, block.Resolution5m}, nil},
		{"5m counter", block.Resolution5m, block.AggrCounter, 30 * minute, 3 * hour,
			merge(expectAggregate(ds5m, ext, block.AggrCounter, 30*minute, 3*hour), rawOfB(30*minute, 3*hour)), []int64{0, block.Resolution5m}, nil},
		{"5m count", block.Resolution5m, block.AggrCount, 0, hour,
			expectAggregate(ds5m, ext, block.AggrCount, 0, hour), []int64{block.Resolution5m}, nil},
		{"1h where it exists", block.Resolution1h, block.AggrSum, 0, 2*hour - 1,
			expectAggregate(ds1h, ext, block.AggrSum, 0, 2*hour-1), []int64{block.Resolution1h}, nil},
		{"above every resolution", 24 * block.Resolution1h, block.AggrMin, 0, 4*hour - 1,
			merge(expectAggregate(ds1h, ext, block.AggrMin, 0, 4*hour-1), rawOfB(0, 4*hour-1)), []int64{0, block.Resolution1h}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			matchers := all
			if tc.ms != nil {
				matchers = tc.ms
			}
			got, res := collectSeries(t, gw, &storeapi.SeriesRequest{MinTime: tc.mint, MaxTime: tc.maxt, Matchers: matchers, MaxResolution: tc.maxRes, Aggregate: tc.aggr})
			compareSeries(t, got, tc.want)
			var seen []int64
			for _, r := range res {
				if !slices.Contains(seen, r) {
					seen = append(seen, r)
				}
			}
			slices.Sort(seen)
			if !slices.Equal(seen, tc.wantRes) {
				t.Errorf("resolutions %v, want %v", seen, tc.wantRes)
			}
		})
	}

	t.Run("series names without the aggregate label", func(t *testing.T) {
		var names []string
		_, err := gw.Series(testContext(t), &storeapi.SeriesRequest{MinTime: 0, MaxTime: hour, Matchers: all, MaxResolution: block.Resolution5m, SkipChunks: true},
			func(s storeapi.Series) error {
				if s.Labels.Has(block.AggregateLabel) {
					t.Errorf("%s carries the aggregate label", s.Labels)
				}
				names = append(names, s.Labels.String())
				return nil
			})
		if err != nil {
			t.Fatal(err)
		}
		if len(names) != len(rawA) { // every raw series has a count
			t.Errorf("%d series, want %d", len(names), len(rawA))
		}
	})
	t.Run("labels", func(t *testing.T) {
		names, _, err := gw.LabelNames(testContext(t), &storeapi.LabelsRequest{MinTime: 0, MaxTime: hour, Matchers: ms("job", "=", "job-1")})
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(names, block.AggregateLabel) {
			t.Errorf("label names %q include the aggregate label", names)
		}
		values, _, err := gw.LabelValues(testContext(t), block.AggregateLabel, &storeapi.LabelsRequest{MinTime: 0, MaxTime: hour})
		if err != nil || len(values) != 0 {
			t.Errorf("aggregate label values = %q, %v", values, err)
		}
	})
	t.Run("unknown aggregate", func(t *testing.T) {
		_, err := gw.Series(testContext(t), &storeapi.SeriesRequest{MinTime: 0, MaxTime: hour, Matchers: all, MaxResolution: block.Resolution5m, Aggregate: "median"},
			func(storeapi.Series) error { return nil })
		if err == nil {
			t.Error("unknown aggregate accepted")
		}
	})
}

func TestPlanSeries(t *testing.T) {
	mk := func(ext string, res, mint, maxt int64) *bucketBlock {
		ls := labels.FromStrings("tenant_id", ext)
		return &bucketBlock{
			meta: &block.Meta{
				BlockMeta: tsdb.BlockMeta{ULID: ulid.Make(), MinTime: mint, MaxTime: maxt},
				Thanos:    block.ThanosMeta{Labels: ls.Map(), Downsample: block.Downsample{Resolution: res}},
			},
			ext:    ls,
			extKey: ls.String(),
		}
	}
	const r5, r1h = block.Resolution5m, block.Resolution1h
	raw1, raw2, raw3 := mk("a", 0, 0, 100), mk("a", 0, 100, 200), mk("a", 0, 200, 300)
	m1, m3 := mk("a", r5, 0, 100), mk("a", r5, 200, 300)
	h12 := mk("a", r1h, 50, 150)
	other := mk("b", 0, 0, 300)
	blocks := []*bucketBlock{raw1, raw2, raw3, m1, m3, h12, other}
	name := map[*bucketBlock]string{raw1: "raw1", raw2: "raw2", raw3: "raw3", m1: "m1", m3: "m3", h12: "h12", other: "other"}

	for _, tc := range []struct {
		name       string
		mint, maxt int64
		maxRes     int64
		ms         []*labels.Matcher
		want       []string
	}{
		{"raw", 0, 299, 0, nil, []string{"raw1 [0,99]", "raw2 [100,199]", "raw3 [200,299]", "other [0,299]"}},
		{"5m fills from raw", 0, 299, r5, ms("tenant_id", "=", "a"), []string{"m1 [0,99]", "raw2 [100,199]", "m3 [200,299]"}},
		{"1h then 5m then raw", 0, 299, r1h, ms("tenant_id", "=", "a"), []string{"m1 [0,49]", "h12 [50,149]", "raw2 [150,199]", "m3 [200,299]"}},
		{"partial range", 120, 220, r1h, ms("tenant_id", "=", "a"), []string{"h12 [120,149]", "raw2 [150,199]", "m3 [200,220]"}},
		{"external label filters", 0, 299, r1h, ms("tenant_id", "=", "b"), []string{"other [0,299]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, q := range planSeries(blocks, &storeapi.SeriesRequest{MinTime: tc.mint, MaxTime: tc.maxt, MaxResolution: tc.maxRes, Matchers: tc.ms}) {
				got = append(got, fmt.Sprintf("%s [%d,%d]", name[q.b], q.mint, q.maxt))
				if len(q.ms) != 0 {
					t.Errorf("%s keeps matchers %v meant for external labels", name[q.b], q.ms)
				}
			}
			slices.Sort(got)
			want := slices.Sorted(slices.Values(tc.want))
			if !slices.Equal(got, want) {
				t.Errorf("plan %q, want %q", got, want)
			}
		})
	}
}

// TestServedHere: a block is left to the store that reads all the blocks
// it was made from, and only then.
func TestServedHere(t *testing.T) {
	block := func(sources ...ulid.ULID) *bucketBlock {
		m := &block.Meta{BlockMeta: tsdb.BlockMeta{ULID: ulid.Make()}}
		m.Compaction.Sources = sources
		return &bucketBlock{meta: m}
	}
	a, b, c := ulid.Make(), ulid.Make(), ulid.Make()
	shippedA := block(a)
	shippedA.meta.ULID = a
	noSources := block()
	compactedAB := block(a, b)
	compactedBC := block(b, c)
	local := map[ulid.ULID]struct{}{a: {}, b: {}, noSources.meta.ULID: {}}
	got := servedHere([]*bucketBlock{shippedA, noSources, compactedAB, compactedBC}, local)
	if len(got) != 1 || got[0] != compactedBC {
		t.Errorf("served here: %d blocks, want only the one with a source not held locally", len(got))
	}
	if got := servedHere([]*bucketBlock{shippedA}, nil); len(got) != 1 {
		t.Error("without blocks to skip, every block is served")
	}
}
