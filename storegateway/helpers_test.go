package storegateway

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/atoll-metrics/atoll/block"
	"github.com/atoll-metrics/atoll/bucket"
	"github.com/atoll-metrics/atoll/internal/blockgen"
	"github.com/atoll-metrics/atoll/storeapi"
)

// sample is one float or histogram sample.
type sample struct {
	t  int64
	f  float64
	h  *histogram.Histogram
	fh *histogram.FloatHistogram
}

func (s sample) String() string {
	switch {
	case s.h != nil:
		return fmt.Sprintf("%d:%s", s.t, s.h)
	case s.fh != nil:
		return fmt.Sprintf("%d:%s", s.t, s.fh)
	}
	return fmt.Sprintf("%d:%v", s.t, s.f)
}

func (s sample) equal(o sample) bool {
	switch {
	case s.t != o.t:
		return false
	case s.h != nil || o.h != nil:
		return s.h != nil && o.h != nil && s.h.Equals(o.h)
	case s.fh != nil || o.fh != nil:
		return s.fh != nil && o.fh != nil && s.fh.Equals(o.fh)
	}
	// Bits, so stale markers (a NaN) compare equal.
	return math.Float64bits(s.f) == math.Float64bits(o.f)
}

// testSeries is a series to write into a test block.
type testSeries struct {
	lset    labels.Labels
	samples []sample
}

const (
	minute = int64(time.Minute / time.Millisecond)
	hour   = 60 * minute
)

// genSeries makes n series of metric with job, instance and (on every
// third series) env labels, one sample per step in [mint, maxt), as a
// counter with a stale marker in the middle of some.
func genSeries(metric string, n int, mint, maxt, step int64) []testSeries {
	var out []testSeries
	for i := range n {
		b := labels.NewBuilder(labels.FromStrings(
			labels.MetricName, metric,
			"job", fmt.Sprintf("job-%d", i%3),
			"instance", fmt.Sprintf("host-%03d:9100", i),
		))
		if i%3 == 0 {
			b.Set("env", []string{"prod", "dev"}[i%2])
		}
		s := testSeries{lset: b.Labels()}
		v := float64(i)
		for t := mint; t < maxt; t += step {
			v += float64((t/step)%7) + 0.25
			f := v
			if i%5 == 1 && t == mint+(maxt-mint)/2/step*step {
				f = math.Float64frombits(0x7ff0000000000002) // staleness marker
			}
			s.samples = append(s.samples, sample{t: t, f: f})
		}
		out = append(out, s)
	}
	return out
}

// genHistograms makes n native histogram series.
func genHistograms(metric string, n int, mint, maxt, step int64) []testSeries {
	var out []testSeries
	for i := range n {
		s := testSeries{lset: labels.FromStrings(labels.MetricName, metric, "job", "job-h", "instance", fmt.Sprintf("h-%d", i))}
		for t, k := mint, 0; t < maxt; t, k = t+step, k+1 {
			h := &histogram.Histogram{
				Count:           uint64(10 + k),
				Sum:             float64(k) * 1.5,
				ZeroThreshold:   0.001,
				ZeroCount:       2,
				Schema:          1,
				PositiveSpans:   []histogram.Span{{Offset: 0, Length: 2}},
				PositiveBuckets: []int64{int64(4 + k/2), 0},
			}
			h.Count = h.ZeroCount + uint64(2*h.PositiveBuckets[0])
			s.samples = append(s.samples, sample{t: t, h: h})
		}
		out = append(out, s)
	}
	return out
}

// blockSpec describes a test block.
type blockSpec struct {
	series     []testSeries
	ext        map[string]string
	resolution int64
	// mint and maxt, when set, replace the block's time range in
	// meta.json, as a downsampled block keeps its source's range; else
	// the range is that of the samples.
	mint, maxt int64
	// noFileList leaves the file lists out of the uploaded meta.json, as
	// tools other than Atoll's may; filesOnly leaves out only the
	// deprecated segment file list, as newer Thanos versions do.
	noFileList, filesOnly bool
}

// testBlock is a block written to a local directory, to upload and to
// read with the TSDB's own reader as the reference.
type testBlock struct {
	dir  string
	spec blockSpec
}

// writeBlock writes the block to a local directory with blockgen.
func writeBlock(t testing.TB, spec blockSpec) *testBlock {
	t.Helper()
	mint, maxt := spec.mint, spec.maxt
	if mint == 0 && maxt == 0 {
		mint, maxt = math.MaxInt64, math.MinInt64
		for _, s := range spec.series {
			for _, smp := range s.samples {
				mint, maxt = min(mint, smp.t), max(maxt, smp.t+1)
			}
		}
	}
	data := make([]blockgen.SeriesData, 0, len(spec.series))
	for _, s := range spec.series {
		sd := blockgen.SeriesData{Labels: s.lset}
		for _, smp := range s.samples {
			switch {
			case smp.h != nil:
				sd.Histograms = append(sd.Histograms, blockgen.HistogramSample{T: smp.t, H: smp.h})
			case smp.fh != nil:
				sd.FloatHistograms = append(sd.FloatHistograms, blockgen.FloatHistogramSample{T: smp.t, FH: smp.fh})
			default:
				sd.Floats = append(sd.Floats, blockgen.FloatSample{T: smp.t, V: smp.f})
			}
		}
		data = append(data, sd)
	}
	dir := t.TempDir()
	id := ulid.Make()
	meta, err := blockgen.WriteBlock(context.Background(), dir, id, mint, maxt, spec.ext, data)
	if err != nil {
		t.Fatal(err)
	}
	blockDir := filepath.Join(dir, id.String())
	if spec.resolution != 0 {
		meta.Thanos.Downsample.Resolution = spec.resolution
		if err := block.WriteMetaToDir(blockDir, meta); err != nil {
			t.Fatal(err)
		}
	}
	return &testBlock{dir: blockDir, spec: spec}
}

// uploadBlock uploads the block as the shipper does, meta.json last, with
// the file lists its spec asks for, and returns its ULID.
func uploadBlock(t testing.TB, bkt bucket.Bucket, b *testBlock) ulid.ULID {
	t.Helper()
	meta, err := block.ReadMetaFromDir(b.dir)
	if err != nil {
		t.Fatal(err)
	}
	uploaded, err := block.Upload(testContext(t), bkt, b.dir, meta, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b.spec.noFileList || b.spec.filesOnly {
		uploaded.Thanos.SegmentFiles = nil
		if b.spec.noFileList {
			uploaded.Thanos.Files = nil
		}
		data, err := json.Marshal(uploaded)
		if err != nil {
			t.Fatal(err)
		}
		uploadBytes(t, bkt, path.Join(meta.ULID.String(), block.MetaFilename), data)
	}
	return meta.ULID
}

func uploadBytes(t testing.TB, bkt bucket.Bucket, name string, data []byte) {
	t.Helper()
	if err := bkt.Upload(testContext(t), name, strings.NewReader(string(data)), int64(len(data))); err != nil {
		t.Fatalf("upload %s: %v", name, err)
	}
}

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newBucket(t testing.TB) bucket.Bucket {
	t.Helper()
	bkt, err := bucket.NewFilesystem(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return bkt
}

// newGateway starts a gateway over bkt and syncs it once.
func newGateway(t testing.TB, bkt bucket.Bucket, change func(*Options)) (*Gateway, *prometheus.Registry) {
	t.Helper()
	opts := DefaultOptions()
	opts.Dir = t.TempDir()
	opts.DeletionMarkDelay = 0
	if change != nil {
		change(&opts)
	}
	reg := prometheus.NewRegistry()
	gw, err := New(bkt, opts, slog.New(slog.DiscardHandler), reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := gw.Close(); err != nil {
			t.Errorf("close gateway: %v", err)
		}
	})
	if err := gw.Sync(testContext(t)); err != nil {
		t.Fatalf("sync: %v", err)
	}
	return gw, reg
}

// seriesResult is what a Series request returned, by label set: samples
// within the requested range, merged over the blocks a series came from.
type seriesResult map[string][]sample

func collectSeries(t testing.TB, st storeapi.Store, req *storeapi.SeriesRequest) (seriesResult, map[string]int64) {
	t.Helper()
	out := seriesResult{}
	res := map[string]int64{}
	_, err := st.Series(testContext(t), req, func(s storeapi.Series) error {
		key := s.Labels.String()
		res[key] = s.Resolution
		smp := out[key]
		if smp == nil {
			smp = []sample{}
		}
		for _, c := range s.Chunks {
			smp = appendChunkSamples(t, smp, c.Chunk, req.MinTime, req.MaxTime)
		}
		out[key] = smp
		return nil
	})
	if err != nil {
		t.Fatalf("Series: %v", err)
	}
	for k, smp := range out {
		sort.SliceStable(smp, func(i, j int) bool { return smp[i].t < smp[j].t })
		out[k] = slices.CompactFunc(smp, func(a, b sample) bool { return a.t == b.t })
	}
	return out, res
}

func appendChunkSamples(t testing.TB, out []sample, c chunkenc.Chunk, mint, maxt int64) []sample {
	t.Helper()
	it := c.Iterator(nil)
	for {
		var s sample
		switch it.Next() {
		case chunkenc.ValNone:
			if err := it.Err(); err != nil {
				t.Fatalf("iterate chunk: %v", err)
			}
			return out
		case chunkenc.ValFloat:
			s.t, s.f = it.At()
		case chunkenc.ValHistogram:
			s.t, s.h = it.AtHistogram(nil)
		case chunkenc.ValFloatHistogram:
			s.t, s.fh = it.AtFloatHistogram(nil)
		}
		if s.t >= mint && s.t <= maxt {
			out = append(out, s)
		}
	}
}

// localBlock is a test block opened with the TSDB's own reader.
type localBlock struct {
	*tsdb.Block
	ext labels.Labels
}

func openLocal(t testing.TB, tb *testBlock) *localBlock {
	t.Helper()
	b, err := tsdb.OpenBlock(slog.New(slog.DiscardHandler), tb.dir, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	meta, err := block.ReadMetaFromDir(tb.dir)
	if err != nil {
		t.Fatal(err)
	}
	return &localBlock{Block: b, ext: meta.ExternalLabels()}
}

// expectSeries answers a series request from the local blocks with the
// TSDB's querier, adding external labels as the gateway must.
func expectSeries(t testing.TB, blocks []*localBlock, mint, maxt int64, ms []*labels.Matcher) seriesResult {
	t.Helper()
	out := seriesResult{}
	for _, b := range blocks {
		rest, ok := storeapi.MatchExternal(b.ext, ms)
		if !ok {
			continue
		}
		if len(rest) == 0 {
			rest = []*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, labels.MetricName, ".+")}
		}
		q, err := tsdb.NewBlockQuerier(b, mint, maxt)
		if err != nil {
			t.Fatal(err)
		}
		set := q.Select(context.Background(), false, nil, rest...)
		var it chunkenc.Iterator
		for set.Next() {
			s := set.At()
			lb := labels.NewBuilder(s.Labels())
			b.ext.Range(func(l labels.Label) { lb.Set(l.Name, l.Value) })
			key := lb.Labels().String()
			smp := out[key]
			if smp == nil {
				smp = []sample{}
			}
			it = s.Iterator(it)
			for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
				var x sample
				switch vt {
				case chunkenc.ValFloat:
					x.t, x.f = it.At()
				case chunkenc.ValHistogram:
					x.t, x.h = it.AtHistogram(nil)
				case chunkenc.ValFloatHistogram:
					x.t, x.fh = it.AtFloatHistogram(nil)
				}
				smp = append(smp, x)
			}
			if err := it.Err(); err != nil {
				t.Fatal(err)
			}
			out[key] = smp
		}
		if err := set.Err(); err != nil {
			t.Fatal(err)
		}
		_ = q.Close()
	}
	for k, smp := range out {
		sort.SliceStable(smp, func(i, j int) bool { return smp[i].t < smp[j].t })
		out[k] = slices.CompactFunc(smp, func(a, b sample) bool { return a.t == b.t })
	}
	return out
}

func compareSeries(t testing.TB, got, want seriesResult) {
	t.Helper()
	var missing, extra []string
	for k := range want {
		if _, ok := got[k]; !ok {
			missing = append(missing, k)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			extra = append(extra, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 || len(extra) > 0 {
		t.Fatalf("series differ: %d missing (first %v), %d extra (first %v)", len(missing), first(missing), len(extra), first(extra))
	}
	for k, w := range want {
		g := got[k]
		if len(g) != len(w) {
			t.Fatalf("%s: %d samples, want %d", k, len(g), len(w))
		}
		for i := range w {
			if !g[i].equal(w[i]) {
				t.Fatalf("%s: sample %d is %s, want %s", k, i, g[i], w[i])
			}
		}
	}
}

func first(s []string) []string {
	if len(s) > 3 {
		return s[:3]
	}
	return s
}
