package compactor_test

import (
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/atoll-metrics/atoll/block"
	"github.com/atoll-metrics/atoll/internal/blockgen"
)

const day = 24 * time.Hour

// TestPassCompactsDeduplicatesAndDownsamples runs one pass over 15 days of
// two replicas' 2h blocks and checks the layout, the deduplicated samples
// and the downsampled aggregates.
func TestPassCompactsDeduplicatesAndDownsamples(t *testing.T) {
	ctx := testContext(t, 2*time.Minute)
	bkt := newBucket(t)
	cfg := blockgen.Config{Duration: 15 * day, Interval: 2 * time.Minute, Series: 6, HistogramSeries: 2, Seed: 1}
	st := generate(t, ctx, bkt, cfg)
	if want := 15 * 12 * 2; st.Blocks != want {
		t.Fatalf("generated %d blocks, want %d", st.Blocks, want)
	}
	cfg = cfg.WithDefaults()
	now := time.UnixMilli(cfg.MaxTime()).Add(time.Hour)
	runCompactor(t, ctx, bkt, testOptions(t, now))

	live := liveBlocks(t, ctx, bkt)
	dumpLive(t, live, cfg.MinTime())
	// 14 days aligned to the 14d level make one block; the last day's three
	// complete 8h windows make three. Only the 14d block is long enough to
	// be downsampled, and its 5m version to be downsampled again.
	type span struct{ mint, maxt time.Duration }
	want := map[int64][]span{
		block.ResolutionRaw: {{0, 14 * day}, {14 * day, 14*day + 8*time.Hour}, {14*day + 8*time.Hour, 14*day + 16*time.Hour}, {14*day + 16*time.Hour, 15 * day}},
		block.Resolution5m:  {{0, 14 * day}},
		block.Resolution1h:  {{0, 14 * day}},
	}
	for res, spans := range want {
		got := live[res]
		if len(got) != len(spans) {
			t.Fatalf("resolution %d: %d live blocks, want %d", res, len(got), len(spans))
		}
		for i, s := range spans {
			m := got[i].Meta
			if m.MinTime != cfg.MinTime()+s.mint.Milliseconds() || m.MaxTime != cfg.MinTime()+s.maxt.Milliseconds() {
				t.Errorf("resolution %d block %d: [%d, %d), want offsets %v", res, i, m.MinTime-cfg.MinTime(), m.MaxTime-cfg.MinTime(), s)
			}
			if m.Thanos.Source != block.SourceCompactor || m.Thanos.Downsample.Resolution != res {
				t.Errorf("block %s: source %q resolution %d", m.ULID, m.Thanos.Source, m.Thanos.Downsample.Resolution)
			}
			if !labels.Equal(m.ExternalLabels(), labels.FromStrings("tenant", "default")) {
				t.Errorf("block %s: external labels %v, want tenant only", m.ULID, m.ExternalLabels())
			}
		}
	}

	// Nothing but live blocks remain (the delete delay is 0).
	n := 0
	if err := bkt.Iter(ctx, "", func(string) error { n++; return nil }, false); err != nil {
		t.Fatal(err)
	}
	if n != 6 {
		t.Errorf("bucket holds %d entries, want the 6 live blocks", n)
	}

	raw := readAll(t, ctx, blocksQueryable(openBlocks(t, ctx, bkt, live[block.ResolutionRaw]), ""), cfg.MinTime(), cfg.MaxTime())
	checkTruth(t, cfg, raw)

	res5m := openBlocks(t, ctx, bkt, live[block.Resolution5m])
	res1h := openBlocks(t, ctx, bkt, live[block.Resolution1h])
	checkAggregates(t, ctx, cfg, res5m, block.Resolution5m, cfg.MinTime(), cfg.MinTime()+(14*day).Milliseconds())
	checkAggregates(t, ctx, cfg, res1h, block.Resolution1h, cfg.MinTime(), cfg.MinTime()+(14*day).Milliseconds())
}

// checkTruth compares deduplicated series with the generator's truth.
func checkTruth(t *testing.T, cfg blockgen.Config, got map[string][]point) {
	t.Helper()
	want := truth(cfg)
	if len(got) != len(want) {
		t.Fatalf("%d series, want %d", len(got), len(want))
	}
	for name, w := range want {
		g := got[name]
		if i, ok := samePoints(g, w); !ok {
			t.Errorf("series %s: %d samples, want %d; first difference at %d", name, len(g), len(w), i)
			if i < len(g) && i < len(w) {
				t.Errorf("  got %+v want %+v", g[i], w[i])
			}
		}
	}
}

func dumpLive(t *testing.T, live map[int64][]*block.Block, base int64) {
	for res, bs := range live {
		for _, b := range bs {
			t.Logf("res %d block %s [%v, %v) level %d sources %d labels %v", res, b.ID(), time.Duration(b.Meta.MinTime-base)*time.Millisecond, time.Duration(b.Meta.MaxTime-base)*time.Millisecond, b.Meta.Compaction.Level, len(b.Meta.Compaction.Sources), b.Meta.Thanos.Labels)
		}
	}
}
