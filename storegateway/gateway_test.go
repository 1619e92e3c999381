package storegateway

import (
	"fmt"
	"math"
	"os"
	"path"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/atoll-metrics/atoll/block"
	"github.com/atoll-metrics/atoll/internal/metrictest"
	"github.com/atoll-metrics/atoll/storeapi"
)

// twoTenantBlocks writes three blocks: two of tenant a (consecutive 2h
// ranges, the second without file lists in meta.json) and one of tenant b
// overlapping the first (with the file list but not the segment list),
// with float and histogram series.
func twoTenantBlocks(t testing.TB) []*testBlock {
	t.Helper()
	a1 := append(genSeries("http_requests_total", 60, 0, 2*hour, 30_000), genSeries("up", 20, 0, 2*hour, 15_000)...)
	a1 = append(a1, genHistograms("latency_seconds", 3, 0, 2*hour, 60_000)...)
	a2 := append(genSeries("http_requests_total", 50, 2*hour, 4*hour, 30_000), genSeries("cpu_seconds_total", 10, 2*hour, 4*hour, 60_000)...)
	b1 := genSeries("http_requests_total", 25, hour, 3*hour, 20_000)
	return []*testBlock{
		writeBlock(t, blockSpec{series: a1, ext: map[string]string{"tenant_id": "a", "replica": "r1"}}),
		writeBlock(t, blockSpec{series: a2, ext: map[string]string{"tenant_id": "a", "replica": "r1"}, noFileList: true}),
		writeBlock(t, blockSpec{series: b1, ext: map[string]string{"tenant_id": "b", "replica": "r1"}, filesOnly: true}),
	}
}

// matcherCases cover every matcher type, regexes with and without literal
// alternatives or prefixes, empty-value matchers, and external labels.
var matcherCases = []struct {
	name string
	ms   []*labels.Matcher
}{
	{"equal", ms(`__name__`, "=", "http_requests_total")},
	{"equal missing value", ms(`__name__`, "=", "nope")},
	{"regex set", ms(`__name__`, "=~", "up|cpu_seconds_total")},
	{"regex prefix", ms(`__name__`, "=~", "http_.*", "instance", "=~", "host-00.*")},
	{"regex any", ms(`__name__`, "=~", ".+")},
	{"regex all including empty", ms(`__name__`, "=~", "up", "env", "=~", ".*")},
	{"not equal", ms(`__name__`, "=", "http_requests_total", "job", "!=", "job-1")},
	{"not regex", ms(`__name__`, "=", "http_requests_total", "job", "!~", "job-1|job-2")},
	{"not regex pattern", ms(`__name__`, "=~", ".*total", "instance", "!~", "host-0[0-2].*")},
	{"empty value selects missing label", ms(`__name__`, "=", "http_requests_total", "env", "=", "")},
	{"label must be set", ms(`__name__`, "=", "http_requests_total", "env", "!=", "")},
	{"regex matching empty", ms(`__name__`, "=", "http_requests_total", "env", "=~", "prod|")},
	{"not regex rejecting empty", ms(`__name__`, "=", "http_requests_total", "env", "!~", "dev|")},
	{"only negative matchers", ms("job", "!=", "job-0")},
	{"label absent everywhere", ms(`__name__`, "=", "up", "nonexistent", "=", "")},
	{"label absent must be set", ms(`__name__`, "=", "up", "nonexistent", "!=", "")},
	{"not regex any", ms(`__name__`, "=", "up", "job", "!~", ".*")},
	{"external label", ms("tenant_id", "=", "a", "__name__", "=", "http_requests_total")},
	{"external label regex", ms("tenant_id", "=~", "a|b", "job", "=", "job-2")},
	{"external label excludes", ms("tenant_id", "=", "c", "__name__", "=~", ".+")},
	{"external label only", ms("tenant_id", "=", "b")},
	{"external not equal", ms("replica", "!=", "r2", "__name__", "=", "latency_seconds")},
}

func ms(args ...string) []*labels.Matcher {
	var out []*labels.Matcher
	for i := 0; i+2 < len(args)+1; i += 3 {
		var typ labels.MatchType
		switch args[i+1] {
		case "=":
			typ = labels.MatchEqual
		case "!=":
			typ = labels.MatchNotEqual
		case "=~":
			typ = labels.MatchRegexp
		case "!~":
			typ = labels.MatchNotRegexp
		}
		out = append(out, labels.MustNewMatcher(typ, args[i], args[i+2]))
	}
	return out
}

var timeRanges = []struct {
	name       string
	mint, maxt int64
}{
	{"everything", math.MinInt64, math.MaxInt64},
	{"one block", 0, 2*hour - 1},
	{"middle", hour + 7*minute, 2*hour + 13*minute},
	{"single instant", 90 * minute, 90 * minute},
	{"outside", 10 * hour, 11 * hour},
}

func TestSeriesMatchesTSDB(t *testing.T) {
	dirs := twoTenantBlocks(t)
	bkt := newBucket(t)
	var local []*localBlock
	for _, d := range dirs {
		uploadBlock(t, bkt, d)
		local = append(local, openLocal(t, d))
	}
	gw, reg := newGateway(t, bkt, func(o *Options) {
		// Small batches and gaps exercise batching and range merging.
		o.SeriesBatchSize = 7
		o.MaxRangeGap = 64
	})
	if got := metrictest.Value(t, reg, "atoll_gateway_blocks_loaded"); got != 3 {
		t.Fatalf("blocks loaded = %v, want 3", got)
	}
	for _, tr := range timeRanges {
		for _, mc := range matcherCases {
			t.Run(tr.name+"/"+mc.name, func(t *testing.T) {
				got, res := collectSeries(t, gw, &storeapi.SeriesRequest{MinTime: tr.mint, MaxTime: tr.maxt, Matchers: mc.ms})
				want := expectSeries(t, local, tr.mint, tr.maxt, mc.ms)
				compareSeries(t, got, want)
				for k, r := range res {
					if r != 0 {
						t.Errorf("%s: resolution %d, want 0", k, r)
					}
				}
			})
		}
	}
	t.Run("skip chunks", func(t *testing.T) {
		req := &storeapi.SeriesRequest{MinTime: 0, MaxTime: 2*hour - 1, Matchers: ms("__name__", "=~", ".+"), SkipChunks: true}
		n := 0
		_, err := gw.Series(testContext(t), req, func(s storeapi.Series) error {
			if len(s.Chunks) != 0 {
				t.Fatalf("%s: %d chunks with SkipChunks", s.Labels, len(s.Chunks))
			}
			n++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		want := len(expectSeries(t, local[:1], 0, 2*hour-1, req.Matchers)) + len(expectSeries(t, local[2:], 0, 2*hour-1, req.Matchers))
		if n != want {
			t.Errorf("%d series, want %d", n, want)
		}
	})
	t.Run("callback error stops", func(t *testing.T) {
		stop := fmt.Errorf("enough")
		calls := 0
		_, err := gw.Series(testContext(t), &storeapi.SeriesRequest{MinTime: math.MinInt64, MaxTime: math.MaxInt64, Matchers: ms("__name__", "=~", ".+")},
			func(storeapi.Series) error {
				calls++
				return stop
			})
		if err != stop || calls != 1 {
			t.Errorf("err %v after %d calls, want %v after 1", err, calls, stop)
		}
	})
}

func TestLabelsMatchTSDB(t *testing.T) {
	dirs := twoTenantBlocks(t)
	bkt := newBucket(t)
	var local []*localBlock
	for _, d := range dirs {
		uploadBlock(t, bkt, d)
		local = append(local, openLocal(t, d))
	}
	gw, _ := newGateway(t, bkt, nil)

	cases := append([]struct {
		name string
		ms   []*labels.Matcher
	}{{"no matchers", nil}}, matcherCases...)
	for _, tr := range timeRanges {
		for _, mc := range cases {
			t.Run(tr.name+"/"+mc.name, func(t *testing.T) {
				req := &storeapi.LabelsRequest{MinTime: tr.mint, MaxTime: tr.maxt, Matchers: mc.ms}
				names, _, err := gw.LabelNames(testContext(t), req)
				if err != nil {
					t.Fatal(err)
				}
				wantNames := expectLabels(t, local, tr.mint, tr.maxt, mc.ms, "")
				if !slices.Equal(names, wantNames) {
					t.Errorf("LabelNames = %q, want %q", names, wantNames)
				}
				for _, name := range []string{"job", "instance", "env", "__name__", "tenant_id", "nonexistent"} {
					values, _, err := gw.LabelValues(testContext(t), name, req)
					if err != nil {
						t.Fatal(err)
					}
					want := expectLabels(t, local, tr.mint, tr.maxt, mc.ms, name)
					if !slices.Equal(values, want) {
						t.Errorf("LabelValues(%s) = %q, want %q", name, values, want)
					}
				}
			})
		}
	}
	t.Run("limit", func(t *testing.T) {
		values, _, err := gw.LabelValues(testContext(t), "instance", &storeapi.LabelsRequest{MinTime: math.MinInt64, MaxTime: math.MaxInt64, Limit: 5})
		if err != nil {
			t.Fatal(err)
		}
		if len(values) != 5 || values[0] != "h-0" {
			t.Errorf("LabelValues with limit 5 = %q", values)
		}
	})
}

// expectLabels answers LabelNames (name "") or LabelValues from the local
// blocks as storeapi.Local does over TSDBs.
func expectLabels(t testing.TB, blocks []*localBlock, mint, maxt int64, ms []*labels.Matcher, name string) []string {
	t.Helper()
	var sets [][]string
	for _, b := range blocks {
		if b.Meta().MinTime > maxt || b.Meta().MaxTime <= mint {
			continue
		}
		rest, ok := storeapi.MatchExternal(b.ext, ms)
		if !ok {
			continue
		}
		if name != "" && b.ext.Has(name) {
			sets = append(sets, []string{b.ext.Get(name)})
			continue
		}
		q, err := tsdb.NewBlockQuerier(b, mint, maxt)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		if len(ms) > 0 && len(rest) == 0 {
			rest = []*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, labels.MetricName, ".+")}
		}
		if name == "" {
			out, _, err = q.LabelNames(testContext(t), &storage.LabelHints{}, rest...)
			b.ext.Range(func(l labels.Label) { out = append(out, l.Name) })
		} else {
			out, _, err = q.LabelValues(testContext(t), name, &storage.LabelHints{}, rest...)
		}
		if err != nil {
			t.Fatal(err)
		}
		sets = append(sets, slices.Clone(out))
		_ = q.Close()
	}
	out := storeapi.MergeStrings(sets, 0)
	return out
}

func TestInfo(t *testing.T) {
	dirs := twoTenantBlocks(t)
	bkt := newBucket(t)
	for _, d := range dirs {
		uploadBlock(t, bkt, d)
	}
	gw, _ := newGateway(t, bkt, nil)
	info, err := gw.Info(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	if info.Component != storeapi.ComponentStore {
		t.Errorf("component %q", info.Component)
	}
	if info.MinTime != 0 || info.MaxTime != 4*hour-30_000 {
		t.Errorf("time range [%d, %d], want [0, %d]", info.MinTime, info.MaxTime, 4*hour-30_000)
	}
	var sets []string
	for _, ls := range info.LabelSets {
		sets = append(sets, ls.String())
	}
	slices.Sort(sets)
	want := []string{`{replica="r1", tenant_id="a"}`, `{replica="r1", tenant_id="b"}`}
	if !slices.Equal(sets, want) {
		t.Errorf("label sets %q, want %q", sets, want)
	}
	if ex, err := gw.Exemplars(testContext(t), 0, 1, nil); err != nil || len(ex) != 0 {
		t.Errorf("Exemplars = %v, %v", ex, err)
	}
	if md, err := gw.Metadata(testContext(t), &storeapi.MetadataRequest{}); err != nil || len(md) != 0 {
		t.Errorf("Metadata = %v, %v", md, err)
	}
}

func TestSyncSkipsPartialCorruptAndMarkedBlocks(t *testing.T) {
	ext := map[string]string{"tenant_id": "a"}
	good := writeBlock(t, blockSpec{series: genSeries("up", 5, 0, hour, 15_000), ext: ext})
	bkt := newBucket(t)
	goodID := uploadBlock(t, bkt, good)

	// Half uploaded: everything but meta.json.
	partialDir := writeBlock(t, blockSpec{series: genSeries("partial", 5, 0, hour, 15_000), ext: ext})
	partialID := uploadBlock(t, bkt, partialDir)
	if err := bkt.Delete(testContext(t), path.Join(partialID.String(), block.MetaFilename)); err != nil {
		t.Fatal(err)
	}
	// Corrupt index: right size, garbage inside.
	corruptDir := writeBlock(t, blockSpec{series: genSeries("corrupt", 5, 0, hour, 15_000), ext: ext})
	corruptID := uploadBlock(t, bkt, corruptDir)
	idx, err := os.ReadFile(filepath.Join(corruptDir.dir, "index"))
	if err != nil {
		t.Fatal(err)
	}
	for i := 5; i < len(idx); i += 7 {
		idx[i] ^= 0x5a
	}
	uploadBytes(t, bkt, path.Join(corruptID.String(), "index"), idx)
	// Missing index.
	noIndexDir := writeBlock(t, blockSpec{series: genSeries("noindex", 5, 0, hour, 15_000), ext: ext})
	noIndexID := uploadBlock(t, bkt, noIndexDir)
	if err := bkt.Delete(testContext(t), path.Join(noIndexID.String(), "index")); err != nil {
		t.Fatal(err)
	}
	// Unreadable meta.json.
	badMetaDir := writeBlock(t, blockSpec{series: genSeries("badmeta", 5, 0, hour, 15_000), ext: ext})
	badMetaID := uploadBlock(t, bkt, badMetaDir)
	uploadBytes(t, bkt, path.Join(badMetaID.String(), block.MetaFilename), []byte("{not json"))
	// Marked for deletion an hour ago.
	markedDir := writeBlock(t, blockSpec{series: genSeries("marked", 5, 0, hour, 15_000), ext: ext})
	markedID := uploadBlock(t, bkt, markedDir)
	now := time.Now()
	uploadBytes(t, bkt, path.Join(markedID.String(), block.DeletionMarkFilename),
		fmt.Appendf(nil, `{"id":%q,"deletion_time":%d,"version":1}`, markedID, now.Add(-time.Hour).Unix()))
	// Not a block at all.
	uploadBytes(t, bkt, "debug/notes.txt", []byte("hello"))

	names := func(gw *Gateway) []string {
		v, _, err := gw.LabelValues(testContext(t), labels.MetricName, &storeapi.LabelsRequest{MinTime: math.MinInt64, MaxTime: math.MaxInt64})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}

	t.Run("marked past the delay", func(t *testing.T) {
		gw, reg := newGateway(t, bkt, func(o *Options) { o.DeletionMarkDelay = 30 * time.Minute })
		if got := names(gw); !slices.Equal(got, []string{"up"}) {
			t.Errorf("metric names %q, want only the good block's", got)
		}
		if got := metrictest.Value(t, reg, "atoll_gateway_blocks_load_failures_total"); got != 3 {
			t.Errorf("load failures = %v, want 3 (corrupt index, missing index, bad meta)", got)
		}
		if got := metrictest.Value(t, reg, "atoll_gateway_partial_blocks"); got != 1 {
			t.Errorf("partial blocks = %v, want 1", got)
		}
		if got := metrictest.Value(t, reg, "atoll_gateway_deletion_marked_blocks"); got != 1 {
			t.Errorf("marked blocks = %v, want 1", got)
		}
		// Failures are retried at the next sync, and nothing else changes.
		if err := gw.Sync(testContext(t)); err != nil {
			t.Fatal(err)
		}
		if got := metrictest.Value(t, reg, "atoll_gateway_blocks_load_failures_total"); got != 6 {
			t.Errorf("load failures after a second sync = %v, want 6", got)
		}
		if got := metrictest.Value(t, reg, "atoll_gateway_blocks_loaded"); got != 1 {
			t.Errorf("blocks loaded = %v, want 1", got)
		}
	})
	t.Run("marked within the delay", func(t *testing.T) {
		gw, _ := newGateway(t, bkt, func(o *Options) { o.DeletionMarkDelay = 2 * time.Hour })
		if got := names(gw); !slices.Equal(got, []string{"marked", "up"}) {
			t.Errorf("metric names %q, want the good and the marked block's", got)
		}
	})
	t.Run("completed upload and deletion", func(t *testing.T) {
		gw, reg := newGateway(t, bkt, nil)
		uploadBlock(t, bkt, partialDir)
		if err := gw.Sync(testContext(t)); err != nil {
			t.Fatal(err)
		}
		if got := names(gw); !slices.Equal(got, []string{"partial", "up"}) {
			t.Errorf("metric names %q after the upload finished", got)
		}
		// Delete the good block from the bucket: the next sync drops it
		// and removes its index header.
		if err := bkt.Iter(testContext(t), goodID.String(), func(n string) error {
			return bkt.Delete(testContext(t), n)
		}, true); err != nil {
			t.Fatal(err)
		}
		if err := gw.Sync(testContext(t)); err != nil {
			t.Fatal(err)
		}
		if got := names(gw); !slices.Equal(got, []string{"partial"}) {
			t.Errorf("metric names %q after deleting the good block", got)
		}
		if got := metrictest.Value(t, reg, "atoll_gateway_block_drops_total"); got != 1 {
			t.Errorf("drops = %v, want 1", got)
		}
		gw.closing.Wait()
		if _, err := os.Stat(filepath.Join(gw.opts.Dir, goodID.String())); !os.IsNotExist(err) {
			t.Errorf("index header of the deleted block still on disk: %v", err)
		}
	})
}

func TestTimeWindow(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	bkt := newBucket(t)
	day := 24 * hour
	nowMs := now.UnixMilli()
	old := writeBlock(t, blockSpec{series: genSeries("old", 3, nowMs-10*day, nowMs-10*day+hour, 60_000)})
	recent := writeBlock(t, blockSpec{series: genSeries("recent", 3, nowMs-2*hour, nowMs-hour, 60_000)})
	uploadBlock(t, bkt, old)
	uploadBlock(t, bkt, recent)
	for _, tc := range []struct {
		name     string
		min, max string
		want     []string
	}{
		{"open", "", "", []string{"old", "recent"}},
		{"relative min", "-1w", "", []string{"recent"}},
		{"relative max", "", "-3d", []string{"old"}},
		{"absolute", "2026-02-01T00:00:00Z", "2026-02-25T00:00:00Z", []string{"old"}},
		{"empty window", "-1h", "0d", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gw, _ := newGateway(t, bkt, func(o *Options) {
				o.Now = func() time.Time { return now }
				var err error
				if o.MinTime, err = ParseTimeBound(tc.min); err != nil {
					t.Fatal(err)
				}
				if o.MaxTime, err = ParseTimeBound(tc.max); err != nil {
					t.Fatal(err)
				}
			})
			got, _, err := gw.LabelValues(testContext(t), labels.MetricName, &storeapi.LabelsRequest{MinTime: math.MinInt64, MaxTime: math.MaxInt64})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("metrics %q, want %q", got, tc.want)
			}
		})
	}
}

func TestParseTimeBound(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Time
		str  string
	}{
		{"-2w", now.Add(-14 * 24 * time.Hour), "-2w"},
		{"-36h", now.Add(-36 * time.Hour), "-1d12h"},
		{"0d", now, "0s"},
		{"+1h", now.Add(time.Hour), "1h"},
		{"2026-01-02T03:04:05Z", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), "2026-01-02T03:04:05Z"},
	} {
		b, err := ParseTimeBound(tc.in)
		if err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		if got := b.Time(now); !got.Equal(tc.want) {
			t.Errorf("%s at %v = %v, want %v", tc.in, now, got, tc.want)
		}
		if b.String() != tc.str {
			t.Errorf("%s renders as %q, want %q", tc.in, b.String(), tc.str)
		}
	}
	for _, bad := range []string{"yesterday", "-", "2026-13-01"} {
		if _, err := ParseTimeBound(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	if b, _ := ParseTimeBound(""); !b.IsZero() {
		t.Error("empty bound is not zero")
	}
}

func TestIndexCacheCap(t *testing.T) {
	dirs := twoTenantBlocks(t)
	bkt := newBucket(t)
	var local []*localBlock
	for _, d := range dirs {
		uploadBlock(t, bkt, d)
		local = append(local, openLocal(t, d))
	}
	const capBytes = 16 << 10
	gw, reg := newGateway(t, bkt, func(o *Options) { o.IndexCacheBytes = capBytes })
	all := ms("__name__", "=~", ".+")
	for range 2 {
		for _, mc := range matcherCases {
			got, _ := collectSeries(t, gw, &storeapi.SeriesRequest{MinTime: math.MinInt64, MaxTime: math.MaxInt64, Matchers: mc.ms})
			compareSeries(t, got, expectSeries(t, local, math.MinInt64, math.MaxInt64, mc.ms))
			if sz := gw.cache.size(); sz > capBytes {
				t.Fatalf("cache holds %d bytes, over its cap of %d", sz, capBytes)
			}
		}
	}
	if got := metrictest.Value(t, reg, "atoll_gateway_index_cache_evictions_total", "kind", "series"); got == 0 {
		t.Error("no series evicted from a cache far smaller than the series read")
	}
	if got := metrictest.Value(t, reg, "atoll_gateway_index_cache_hits_total", "kind", "postings"); got == 0 {
		t.Error("no postings cache hits on repeated queries")
	}
	// A disabled cache still answers.
	off, _ := newGateway(t, bkt, func(o *Options) { o.IndexCacheBytes = 0 })
	got, _ := collectSeries(t, off, &storeapi.SeriesRequest{MinTime: math.MinInt64, MaxTime: math.MaxInt64, Matchers: all})
	compareSeries(t, got, expectSeries(t, local, math.MinInt64, math.MaxInt64, all))
}

func TestIndexHeaderReusedAndRebuilt(t *testing.T) {
	tb := writeBlock(t, blockSpec{series: genSeries("up", 30, 0, hour, 15_000)})
	bkt := newBucket(t)
	id := uploadBlock(t, bkt, tb)
	local := []*localBlock{openLocal(t, tb)}
	cacheDir := t.TempDir()
	all := ms("__name__", "=", "up")
	check := func(wantHeaderBytes bool) {
		t.Helper()
		gw, reg := newGateway(t, bkt, func(o *Options) { o.Dir = cacheDir })
		got, _ := collectSeries(t, gw, &storeapi.SeriesRequest{MinTime: math.MinInt64, MaxTime: math.MaxInt64, Matchers: all})
		compareSeries(t, got, expectSeries(t, local, math.MinInt64, math.MaxInt64, all))
		fetched := metrictest.Value(t, reg, "atoll_gateway_bucket_fetched_bytes_total", "kind", "header")
		if (fetched > 0) != wantHeaderBytes {
			t.Errorf("header bytes fetched = %v, want some: %v", fetched, wantHeaderBytes)
		}
		if err := gw.Close(); err != nil {
			t.Fatal(err)
		}
	}
	check(true)
	check(false) // reused from disk
	headerPath := filepath.Join(cacheDir, id.String(), headerFilename)
	b, err := os.ReadFile(headerPath)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(headerPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	check(true) // torn: rebuilt
}
