package compactor_test

import (
	"context"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/atoll-metrics/atoll/block"
	"github.com/atoll-metrics/atoll/bucket"
	"github.com/atoll-metrics/atoll/compactor"
	"github.com/atoll-metrics/atoll/internal/blockgen"
)

func testContext(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func newBucket(t *testing.T) bucket.Bucket {
	t.Helper()
	bkt, err := bucket.NewFilesystem(filepath.Join(t.TempDir(), "bucket"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bkt.Close() })
	return bkt
}

func generate(t *testing.T, ctx context.Context, bkt bucket.Bucket, cfg blockgen.Config) blockgen.Stats {
	t.Helper()
	st, err := blockgen.Generate(ctx, bkt, t.TempDir(), cfg)
	if err != nil {
		t.Fatalf("generate: %v", err)
	}
	return st
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.DiscardHandler)
}

// testOptions are options for a test compactor: no delete delay, a short
// lease, the clock given.
func testOptions(t *testing.T, now time.Time) compactor.Options {
	o := compactor.DefaultOptions()
	o.DataDir = t.TempDir()
	o.DeleteDelay = 0
	o.LeaseDuration = 2 * time.Second
	o.LeaseHolder = "test"
	o.Now = func() time.Time { return now }
	return o
}

func runCompactor(t *testing.T, ctx context.Context, bkt bucket.Bucket, opts compactor.Options) {
	t.Helper()
	c, err := compactor.New(bkt, opts, testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Run(ctx); err != nil {
		t.Fatalf("compactor run: %v", err)
	}
}

// liveBlocks returns the blocks a reader reads, by resolution.
func liveBlocks(t *testing.T, ctx context.Context, bkt bucket.Bucket) map[int64][]*block.Block {
	t.Helper()
	set, err := block.NewFetcher(bkt, nil).Fetch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int64][]*block.Block{}
	for _, b := range set.Visible(block.UnlessDeletionMarked(time.Now(), 0)) {
		out[b.Resolution()] = append(out[b.Resolution()], b)
	}
	for _, bs := range out {
		slices.SortFunc(bs, func(a, b *block.Block) int { return int(a.Meta.MinTime - b.Meta.MinTime) })
	}
	return out
}

// openBlocks downloads and opens blocks, closing them when the test ends.
func openBlocks(t *testing.T, ctx context.Context, bkt bucket.Bucket, bs []*block.Block) []*tsdb.Block {
	t.Helper()
	dir := t.TempDir()
	var out []*tsdb.Block
	for _, b := range bs {
		d, err := block.Download(ctx, bkt, b.ID(), dir)
		if err != nil {
			t.Fatal(err)
		}
		ob, err := tsdb.OpenBlock(nil, d, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = ob.Close() })
		out = append(out, ob)
	}
	return out
}

// blocksQueryable reads the blocks as one store. With aggregate set, it
// reads only series of that aggregate and hides the __aggr__ label, as a
// store gateway answering for downsampled data does.
func blocksQueryable(blocks []*tsdb.Block, aggregate string) storage.Queryable {
	return storage.QueryableFunc(func(mint, maxt int64) (storage.Querier, error) {
		var qs []storage.Querier
		for _, b := range blocks {
			q, err := tsdb.NewBlockQuerier(b, mint, maxt)
			if err != nil {
				return nil, err
			}
			if aggregate != "" {
				q = &aggregateQuerier{Querier: q, aggregate: aggregate}
			}
			qs = append(qs, q)
		}
		return storage.NewMergeQuerier(qs, nil, storage.ChainedSeriesMerge), nil
	})
}

type aggregateQuerier struct {
	storage.Querier
	aggregate string
}

func (q *aggregateQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	ms = append(slices.Clone(ms), labels.MustNewMatcher(labels.MatchEqual, block.AggregateLabel, q.aggregate))
	return &strippedSet{SeriesSet: q.Querier.Select(ctx, sortSeries, hints, ms...)}
}

type strippedSet struct{ storage.SeriesSet }

func (s *strippedSet) At() storage.Series {
	series := s.SeriesSet.At()
	return &strippedSeries{Series: series, lset: labels.NewBuilder(series.Labels()).Del(block.AggregateLabel).Labels()}
}

func (s *strippedSet) Warnings() annotations.Annotations { return s.SeriesSet.Warnings() }

type strippedSeries struct {
	storage.Series
	lset labels.Labels
}

func (s *strippedSeries) Labels() labels.Labels { return s.lset }

// point is a decoded sample.
type point struct {
	t  int64
	f  float64
	fh *histogram.FloatHistogram
}

// readAll returns every series' samples of the queryable, keyed by the
// labels without __aggr__.
func readAll(t *testing.T, ctx context.Context, q storage.Queryable, mint, maxt int64, ms ...*labels.Matcher) map[string][]point {
	t.Helper()
	qr, err := q.Querier(mint, maxt)
	if err != nil {
		t.Fatal(err)
	}
	defer qr.Close()
	if len(ms) == 0 {
		ms = []*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, "series", ".+")}
	}
	set := qr.Select(ctx, true, nil, ms...)
	out := map[string][]point{}
	var it chunkenc.Iterator
	for set.Next() {
		s := set.At()
		it = s.Iterator(it)
		var pts []point
		for typ := it.Next(); typ != chunkenc.ValNone; typ = it.Next() {
			switch typ {
			case chunkenc.ValFloat:
				ts, v := it.At()
				pts = append(pts, point{t: ts, f: v})
			default:
				ts, h := it.AtFloatHistogram(nil)
				pts = append(pts, point{t: ts, fh: h})
			}
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
		// Keyed by the raw series: aggregate series share the key of theirs.
		out[labels.NewBuilder(s.Labels()).Del(block.AggregateLabel).Labels().String()] = pts
	}
	if err := set.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// truth returns the samples every series must have after deduplication.
func truth(cfg blockgen.Config) map[string][]point {
	cfg = cfg.WithDefaults()
	out := map[string][]point{}
	iv := cfg.Interval.Milliseconds()
	for _, s := range cfg.AllSeries() {
		var pts []point
		for ts := cfg.MinTime(); ts < cfg.MaxTime(); ts += iv {
			if !cfg.InTruth(ts) {
				continue
			}
			if s.Kind == blockgen.Histogram {
				pts = append(pts, point{t: ts, fh: cfg.Histogram(s, ts).ToFloat(nil)})
			} else {
				pts = append(pts, point{t: ts, f: cfg.Float(s, ts)})
			}
		}
		out[s.Labels.String()] = pts
	}
	return out
}

func samePoints(a, b []point) (int, bool) {
	if len(a) != len(b) {
		return min(len(a), len(b)), false
	}
	for i := range a {
		if a[i].t != b[i].t || (a[i].fh == nil) != (b[i].fh == nil) {
			return i, false
		}
		if a[i].fh != nil {
			if !a[i].fh.Equals(b[i].fh) {
				return i, false
			}
		} else if a[i].f != b[i].f && !(math.IsNaN(a[i].f) && math.IsNaN(b[i].f)) {
			return i, false
		}
	}
	return 0, true
}
