package tsdbshard

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/storage"
	"go.uber.org/goleak"

	"github.com/atoll-metrics/atoll/bucket"
	"github.com/atoll-metrics/atoll/tenant"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// The TSDB's write-behind chunk queue and the glog-style opencensus
		// workers outlive Close by design; only our own goroutines matter.
		goleak.IgnoreTopFunction("go.opencensus.io/stats/view.(*worker).start"),
	)
}

func openTest(t *testing.T, mod func(*Options)) (*MultiTSDB, *prometheus.Registry) {
	t.Helper()
	o := DefaultOptions()
	o.Dir = t.TempDir()
	o.ExternalLabels = labels.FromStrings("receive_replica", "r1")
	if mod != nil {
		mod(&o)
	}
	reg := prometheus.NewRegistry()
	m, err := Open(o, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m, reg
}

func appendSamples(t *testing.T, tn *Tenant, name string, series, samples int, start int64) {
	t.Helper()
	app := tn.AppenderV2(context.Background())
	for s := range series {
		ls := labels.FromStrings("__name__", name, "i", fmt.Sprint(s))
		var ref storage.SeriesRef
		for i := range samples {
			var err error
			ref, err = app.Append(ref, ls, 0, start+int64(i)*15_000, float64(i), nil, nil, storage.AOptions{})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
}

func TestTenantsOpenLazilyOnceAndReopen(t *testing.T) {
	m, reg := openTest(t, nil)
	if got := len(m.Tenants()); got != 0 {
		t.Fatalf("fresh MultiTSDB has %d tenants", got)
	}
	// Many concurrent first writes open the tenant once.
	var wg sync.WaitGroup
	got := make([]*Tenant, 16)
	for i := range got {
		wg.Go(func() {
			tn, err := m.Tenant("a")
			if err != nil {
				t.Error(err)
			}
			got[i] = tn
		})
	}
	wg.Wait()
	for _, tn := range got {
		if tn != got[0] {
			t.Fatal("concurrent opens returned different tenants")
		}
	}
	if v := testutil.ToFloat64(m.tenantsOpened); v != 1 {
		t.Fatalf("tenant opened %v times", v)
	}
	want := labels.FromStrings("receive_replica", "r1", "tenant_id", "a")
	if !labels.Equal(got[0].ExternalLabels(), want) {
		t.Fatalf("external labels %s, want %s", got[0].ExternalLabels(), want)
	}
	appendSamples(t, got[0], "m", 10, 4, time.Now().UnixMilli())
	if n, err := testutil.GatherAndCount(reg, "atoll_tsdb_head_series"); err != nil || n != 1 {
		t.Fatalf("head series metric: %d %v", n, err)
	}
	if _, err := m.Tenant("../x"); !errors.Is(err, tenant.ErrInvalid) {
		t.Fatalf("bad tenant: %v", err)
	}

	// A restart finds the tenant on disk and replays its WAL.
	dir := m.Options().Dir
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Tenant("a"); !errors.Is(err, errClosed) {
		t.Fatalf("after Close: %v", err)
	}
	o := m.Options()
	o.Dir = dir
	m2, err := Open(o, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	ts := m2.Tenants()
	if len(ts) != 1 || ts[0].ID() != "a" || ts[0].HeadSeries() != 10 {
		t.Fatalf("after restart: %d tenants, series %d", len(ts), ts[0].HeadSeries())
	}
}

func TestSeriesCacheRotation(t *testing.T) {
	c := newSeriesCache()
	ls := labels.FromStrings("a", "b")
	c.Put(1, 10, ls)
	c.Put(2, 20, ls)
	c.rotate()
	if ref, _, ok := c.Get(1); !ok || ref != 10 {
		t.Fatalf("entry lost after one rotation: %v %v", ref, ok)
	}
	c.rotate()
	if _, _, ok := c.Get(1); !ok {
		t.Fatal("entry used since the last rotation was dropped")
	}
	if _, _, ok := c.Get(2); ok {
		t.Fatal("entry unused for a whole rotation was kept")
	}
	if c.len() != 1 {
		t.Fatalf("len %d", c.len())
	}
}

func TestMetadata(t *testing.T) {
	m, _ := openTest(t, nil)
	tn, err := m.Tenant("a")
	if err != nil {
		t.Fatal(err)
	}
	tn.SetMetadata("up", metadataOf("gauge", "1 if up"))
	tn.SetMetadata("http_requests_total", metadataOf("counter", "requests"))
	if got := tn.Metadata("up", 0); len(got) != 1 || got["up"].Help != "1 if up" {
		t.Fatalf("metadata of up: %v", got)
	}
	if got := tn.Metadata("", 1); len(got) != 1 {
		t.Fatalf("limit 1 gave %d", len(got))
	}
	if got := tn.Metadata("nope", 0); len(got) != 0 {
		t.Fatalf("unknown metric: %v", got)
	}
}

// TestShippingAndFlush cuts blocks past retention and checks they stay on
// disk until shipped, then that Flush moves the head into a shipped block.
func TestShippingAndFlush(t *testing.T) {
	bdir := t.TempDir()
	bkt, err := bucket.NewFilesystem(bdir)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := openTest(t, func(o *Options) {
		o.Bucket = bkt
		o.BlockDuration = time.Hour
		o.Retention = time.Hour
		o.blockReloadInterval = time.Second
	})
	tn, err := m.Tenant("a")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(-6 * time.Hour).UnixMilli()
	appendSamples(t, tn, "m", 5, 6*240, start) // six hours at 15s
	if err := tn.DB().Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Six hours in one-hour blocks: at least five are cut, none shipped, so
	// retention (one hour) must not have taken any yet.
	blocks := tn.DB().Blocks()
	if len(blocks) < 5 {
		t.Fatalf("%d blocks after cutting six hours into one-hour blocks; unshipped ones were deleted", len(blocks))
	}
	// Nothing is shipped yet: block reloads must keep every block.
	time.Sleep(2500 * time.Millisecond)
	if got := len(tn.DB().Blocks()); got != len(blocks) {
		t.Fatalf("retention deleted unshipped blocks: %d -> %d", len(blocks), got)
	}
	if err := m.Ship(context.Background()); err != nil {
		t.Fatal(err)
	}
	var shipped int
	if err := bkt.Iter(context.Background(), "", func(string) error { shipped++; return nil }, false); err != nil {
		t.Fatal(err)
	}
	if shipped < len(blocks) {
		t.Fatalf("%d blocks in the bucket, want at least %d", shipped, len(blocks))
	}
	// Shipped now, the blocks past retention go at the TSDB's next block
	// reload; the check above would pass for a TSDB that never deletes
	// anything without this one.
	deadline := time.Now().Add(10 * time.Second)
	for len(tn.DB().Blocks()) >= len(blocks) {
		if time.Now().After(deadline) {
			t.Fatalf("shipped blocks past retention were kept: %d blocks", len(tn.DB().Blocks()))
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Flush cuts what is left in the head into a block and ships it.
	if err := m.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := tn.HeadSeries(); n != 0 {
		// Series may stay until the next head GC, but without samples.
		if mint, maxt := tn.DB().Head().MinTime(), tn.DB().Head().MaxTime(); mint <= maxt {
			t.Fatalf("head still holds samples %d..%d after flush", mint, maxt)
		}
	}
	for _, b := range tn.DB().Blocks() {
		if _, err := os.Stat(filepath.Join(bdir, b.Meta().ULID.String(), "meta.json")); err != nil {
			t.Fatalf("block %s not shipped after flush: %v", b.Meta().ULID, err)
		}
	}
}

func metadataOf(typ, help string) metadata.Metadata {
	return metadata.Metadata{Type: model.MetricType(typ), Help: help}
}
