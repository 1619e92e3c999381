package querier

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/atoll-metrics/atoll/internal/promqltest"
	"github.com/atoll-metrics/atoll/storeapi"
)

// testTSDB is a real TSDB with external labels, standing for a tenant of a
// receiver.
type testTSDB struct {
	*tsdb.DB
	ext labels.Labels
	md  map[string]metadata.Metadata
}

func (t *testTSDB) ExternalLabels() labels.Labels { return t.ext }
func (t *testTSDB) TimeRange() (int64, int64) {
	h := t.Head()
	if h.NumSeries() == 0 {
		return math.MaxInt64, math.MinInt64
	}
	return h.MinTime(), h.MaxTime()
}
func (t *testTSDB) Metadata(metric string, _ int) map[string]metadata.Metadata {
	if metric == "" {
		return t.md
	}
	if m, ok := t.md[metric]; ok {
		return map[string]metadata.Metadata{metric: m}
	}
	return nil
}

func newTestTSDB(t *testing.T, ext ...string) *testTSDB {
	t.Helper()
	db, err := tsdb.Open(t.TempDir(), nil, nil, tsdb.DefaultOptions(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return &testTSDB{DB: db, ext: labels.FromStrings(ext...), md: map[string]metadata.Metadata{}}
}

// fill appends n samples a second apart from start, value = i*step.
func (t *testTSDB) fill(tb testing.TB, lset labels.Labels, start int64, n int, step float64, skip func(i int) bool) {
	tb.Helper()
	app := t.AppenderV2(context.Background())
	var ref storage.SeriesRef
	for i := range n {
		if skip != nil && skip(i) {
			continue
		}
		var err error
		ref, err = app.Append(ref, lset, 0, start+int64(i)*1000, float64(i)*step, nil, nil, storage.AOptions{})
		if err != nil {
			tb.Fatal(err)
		}
	}
	if err := app.Commit(); err != nil {
		tb.Fatal(err)
	}
}

func evalInstant(t *testing.T, q *Querier, ctx context.Context, query string, at time.Time) promql.Vector {
	t.Helper()
	return promqltest.Instant(t, ctx, promqltest.NewEngine(t), q, query, at)
}

func TestQuerierDeduplicatesReplicasAndScopesTenants(t *testing.T) {
	start := time.Now().Add(-time.Hour).UnixMilli()
	a := newTestTSDB(t, "receive_replica", "a", "tenant_id", "t1")
	b := newTestTSDB(t, "receive_replica", "b", "tenant_id", "t1")
	other := newTestTSDB(t, "receive_replica", "a", "tenant_id", "t2")
	for _, db := range []*testTSDB{a, b} {
		db.fill(t, labels.FromStrings("__name__", "requests_total", "job", "api"), start, 600, 1, nil)
	}
	// Replica b missed a minute: dedup fills it from a.
	b.fill(t, labels.FromStrings("__name__", "only_b", "job", "api"), start, 600, 2, func(i int) bool { return i > 100 && i < 160 })
	other.fill(t, labels.FromStrings("__name__", "requests_total", "job", "api"), start, 600, 100, nil)

	store := storeapi.NewLocal("local", storeapi.ComponentReceive, func() []storeapi.TSDB { return []storeapi.TSDB{a, b, other} })
	q := New(func() []storeapi.Store { return []storeapi.Store{store} }, DefaultOptions(), nil, prometheus.NewRegistry())
	at := time.UnixMilli(start + 599_000)
	ctx := withQueryOptions(context.Background(), queryOptions{tenant: "t1", dedup: true})

	v := evalInstant(t, q, ctx, `sum(requests_total)`, at)
	if len(v) != 1 || v[0].F != 599 {
		t.Fatalf("sum over deduplicated replicas: %v, want 599 (one replica's value)", v)
	}
	v = evalInstant(t, q, ctx, `requests_total`, at)
	if len(v) != 1 || v[0].Metric.Has("receive_replica") || v[0].Metric.Has("tenant_id") {
		t.Fatalf("series should lose replica and tenant labels: %v", v)
	}
	v = evalInstant(t, q, ctx, `count_over_time(requests_total[10m])`, at)
	if len(v) != 1 || v[0].F != 600 {
		t.Fatalf("count_over_time after dedup: %v, want 600", v)
	}
	noDedup := withQueryOptions(context.Background(), queryOptions{tenant: "t1", dedup: false})
	if v := evalInstant(t, q, noDedup, `count(requests_total)`, at); len(v) != 1 || v[0].F != 2 {
		t.Fatalf("without dedup: %v, want 2 replicas", v)
	}
	all := withQueryOptions(context.Background(), queryOptions{dedup: true})
	v = evalInstant(t, q, all, `sum by (tenant_id) (requests_total)`, at)
	if len(v) != 2 {
		t.Fatalf("across tenants: %v", v)
	}

	// Label APIs hide what dedup and tenancy hide.
	lq, _ := q.Querier(start, start+600_000)
	names, _, err := lq.LabelNames(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(names, ",") != "__name__,job" {
		t.Fatalf("label names %v", names)
	}
	vals, _, err := lq.LabelValues(ctx, "__name__", nil)
	if err != nil || strings.Join(vals, ",") != "only_b,requests_total" {
		t.Fatalf("label values %v %v", vals, err)
	}
	if vals, _, _ := lq.LabelValues(ctx, "receive_replica", nil); len(vals) != 0 {
		t.Fatalf("replica label values visible with dedup: %v", vals)
	}
}

// TestNoDedupMergesEqualSeries: without dedup, only replica labels keep
// series apart. A series that two stores return (a block on local disk and
// in the bucket) is one series, as with dedup.
func TestNoDedupMergesEqualSeries(t *testing.T) {
	start := time.Now().Add(-time.Hour).UnixMilli()
	a := newTestTSDB(t, "receive_replica", "a", "tenant_id", "t1")
	b := newTestTSDB(t, "receive_replica", "b", "tenant_id", "t1")
	for _, db := range []*testTSDB{a, b} {
		db.fill(t, labels.FromStrings("__name__", "requests_total", "job", "api"), start, 600, 1, nil)
	}
	store := storeapi.NewLocal("local", storeapi.ComponentReceive, func() []storeapi.TSDB { return []storeapi.TSDB{a, b} })
	twice := New(func() []storeapi.Store { return []storeapi.Store{store, store} }, DefaultOptions(), nil, prometheus.NewRegistry())
	at := time.UnixMilli(start + 599_000)
	noDedup := withQueryOptions(context.Background(), queryOptions{tenant: "t1", dedup: false})
	v := evalInstant(t, twice, noDedup, `count_over_time(requests_total[10m])`, at)
	if len(v) != 2 || v[0].F != 600 || v[1].F != 600 {
		t.Fatalf("count_over_time without dedup over a series returned twice by each replica: %v, want 600 for each of 2 replicas", v)
	}
	q, _ := twice.Querier(start, start+600_000)
	set := q.Select(noDedup, true, &storage.SelectHints{Start: start, End: start + 600_000, Func: "series"})
	n := 0
	for set.Next() {
		n++
	}
	if n != 2 || set.Err() != nil {
		t.Fatalf("series without dedup: %d (%v), want 2", n, set.Err())
	}
}

// unreachableStore is a real Store API client whose server is gone.
func unreachableStore(t *testing.T) *storeapi.Remote {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return storeapi.NewRemote(addr, conn)
}

func TestPartialResponse(t *testing.T) {
	start := time.Now().Add(-time.Hour).UnixMilli()
	a := newTestTSDB(t, "tenant_id", "default-tenant")
	a.fill(t, labels.FromStrings("__name__", "up"), start, 10, 0, nil)
	good := storeapi.NewLocal("local", storeapi.ComponentReceive, func() []storeapi.TSDB { return []storeapi.TSDB{a} })
	bad := unreachableStore(t)
	q := New(func() []storeapi.Store { return []storeapi.Store{good, bad} }, DefaultOptions(), nil, prometheus.NewRegistry())
	sq, _ := q.Querier(start, start+10_000)

	ctx := withQueryOptions(context.Background(), queryOptions{tenant: "default-tenant", dedup: true, partialResponse: true})
	set := sq.Select(ctx, true, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "up"))
	n := 0
	for set.Next() {
		n++
	}
	if set.Err() != nil || n != 1 {
		t.Fatalf("partial response: %d series, err %v", n, set.Err())
	}
	if len(set.Warnings()) == 0 || !strings.Contains(fmt.Sprint(set.Warnings().AsErrors()), bad.Name()) {
		t.Fatalf("want a warning naming the failed store, got %v", set.Warnings())
	}

	ctx = withQueryOptions(context.Background(), queryOptions{tenant: "default-tenant", dedup: true, partialResponse: false})
	set = sq.Select(ctx, true, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "up"))
	for set.Next() {
	}
	if !errors.Is(set.Err(), errStoreUnavailable) {
		t.Fatalf("without partial response: %v, want errStoreUnavailable", set.Err())
	}
}

// TestLocalAndBucketPartialResponse: when the bucket's part of the local
// and bucket store fails, the local part still answers, with a warning, if
// the request allows partial responses.
func TestLocalAndBucketPartialResponse(t *testing.T) {
	start := time.Now().Add(-time.Hour).UnixMilli()
	a := newTestTSDB(t, "tenant_id", "default-tenant")
	a.fill(t, labels.FromStrings("__name__", "up"), start, 10, 0, nil)
	bad := unreachableStore(t)
	both := storeapi.NewLocalAndBucket(storeapi.NewLocal("local", storeapi.ComponentAll, func() []storeapi.TSDB { return []storeapi.TSDB{a} }), bad)
	q := New(func() []storeapi.Store { return []storeapi.Store{both} }, DefaultOptions(), nil, prometheus.NewRegistry())
	sq, _ := q.Querier(start, start+10_000)
	up := labels.MustNewMatcher(labels.MatchEqual, "__name__", "up")

	ctx := withQueryOptions(context.Background(), queryOptions{tenant: "default-tenant", dedup: true, partialResponse: true})
	set := sq.Select(ctx, true, nil, up)
	n := 0
	for set.Next() {
		n++
	}
	if set.Err() != nil || n != 1 {
		t.Fatalf("partial response: %d series, err %v", n, set.Err())
	}
	if !strings.Contains(fmt.Sprint(set.Warnings().AsErrors()), bad.Name()) {
		t.Fatalf("want a warning naming the bucket's store, got %v", set.Warnings())
	}
	if names, warns, err := sq.LabelNames(ctx, nil); err != nil || len(names) == 0 || len(warns) == 0 {
		t.Fatalf("label names with partial response: %v, %v, %v", names, warns, err)
	}

	ctx = withQueryOptions(context.Background(), queryOptions{tenant: "default-tenant", dedup: true, partialResponse: false})
	set = sq.Select(ctx, true, nil, up)
	for set.Next() {
	}
	if !errors.Is(set.Err(), errStoreUnavailable) {
		t.Fatalf("without partial response: %v, want errStoreUnavailable", set.Err())
	}
}

func TestStoreAPIRoundTrip(t *testing.T) {
	start := time.Now().Add(-time.Hour).UnixMilli()
	a := newTestTSDB(t, "receive_replica", "a", "tenant_id", "t1")
	a.fill(t, labels.FromStrings("__name__", "m", "x", "1"), start, 300, 1, nil)
	a.md["m"] = metadata.Metadata{Type: model.MetricTypeCounter, Help: "help of m"}
	local := storeapi.NewLocal("local", storeapi.ComponentReceive, func() []storeapi.TSDB { return []storeapi.TSDB{a} })

	srv := grpc.NewServer()
	storeapi.RegisterServer(srv, local)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	remote := storeapi.NewRemote(l.Addr().String(), conn)
	ctx := context.Background()
	if err := remote.RefreshInfo(ctx); err != nil {
		t.Fatal(err)
	}
	info, _ := remote.Info(ctx)
	if len(info.LabelSets) != 1 || info.Component != storeapi.ComponentReceive || info.MinTime != start {
		t.Fatalf("info %+v", info)
	}
	// The same question to the local store and through gRPC gives the same
	// samples.
	for _, ms := range [][]*labels.Matcher{
		{labels.MustNewMatcher(labels.MatchEqual, "__name__", "m")},
		{labels.MustNewMatcher(labels.MatchRegexp, "x", "1|2"), labels.MustNewMatcher(labels.MatchEqual, "tenant_id", "t1")},
	} {
		want := collect(t, local, ms)
		got := collect(t, remote, ms)
		if want != got || want == "" {
			t.Fatalf("matchers %v: local %q, remote %q", ms, want, got)
		}
	}
	if got := collect(t, remote, []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "tenant_id", "t2")}); got != "" {
		t.Fatalf("external label mismatch should select nothing, got %q", got)
	}
	md, err := remote.Metadata(ctx, &storeapi.MetadataRequest{})
	if err != nil || md["m"][0].Help != "help of m" {
		t.Fatalf("metadata %v %v", md, err)
	}
	names, _, err := remote.LabelNames(ctx, &storeapi.LabelsRequest{MinTime: start, MaxTime: start + 300_000})
	if err != nil || strings.Join(names, ",") != "__name__,receive_replica,tenant_id,x" {
		t.Fatalf("label names %v %v", names, err)
	}
}

// collect renders a store's answer: labels and every sample.
func collect(t *testing.T, s storeapi.Store, ms []*labels.Matcher) string {
	t.Helper()
	var b strings.Builder
	_, err := s.Series(context.Background(), &storeapi.SeriesRequest{MinTime: math.MinInt64, MaxTime: math.MaxInt64, Matchers: ms}, func(ss storeapi.Series) error {
		b.WriteString(ss.Labels.String())
		for _, c := range ss.Chunks {
			it := c.Chunk.Iterator(nil)
			for it.Next() != 0 {
				ts, v := it.At()
				fmt.Fprintf(&b, " %d=%g", ts, v)
			}
		}
		b.WriteString("\n")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestRewriteForDownsampling(t *testing.T) {
	p := parser.NewParser(parser.Options{})
	for _, c := range []struct{ in, out string }{
		{`count_over_time(m[1h])`, `sum_over_time(m{__aggr__="count"}[1h])`},
		{`avg_over_time(m{job="a"}[1d])`, `(sum_over_time(m{job="a"}[1d]) / sum_over_time(m{__aggr__="count",job="a"}[1d]))`},
		{`sum by (job) (count_over_time(m[5m]))`, `sum by (job) (sum_over_time(m{__aggr__="count"}[5m]))`},
		{`rate(m[5m])`, `rate(m[5m])`},
		{`count_over_time(rate(m[5m])[1h:5m])`, `count_over_time(rate(m[5m])[1h:5m])`},
		{`1 + -avg_over_time(m[1h] offset 1d)`, `1 + -(sum_over_time(m[1h] offset 1d) / sum_over_time(m{__aggr__="count"}[1h] offset 1d))`},
	} {
		e, err := p.ParseExpr(c.in)
		if err != nil {
			t.Fatal(err)
		}
		got := rewriteForDownsampling(e).String()
		if got != c.out {
			t.Errorf("%s:\n got %s\nwant %s", c.in, got, c.out)
		}
		if _, err := p.ParseExpr(got); err != nil {
			t.Errorf("%s: rewritten query does not parse: %v", c.in, err)
		}
	}
}

// TestRewriteIsExactOnRawData evaluates the rewritten queries on raw data:
// they must answer what the originals answer.
func TestRewriteIsExactOnRawData(t *testing.T) {
	start := time.Now().Add(-2 * time.Hour).UnixMilli()
	a := newTestTSDB(t, "tenant_id", "default-tenant")
	a.fill(t, labels.FromStrings("__name__", "g", "job", "x"), start, 3600, 0.5, func(i int) bool { return i%7 == 3 })
	store := storeapi.NewLocal("local", storeapi.ComponentReceive, func() []storeapi.TSDB { return []storeapi.TSDB{a} })
	q := New(func() []storeapi.Store { return []storeapi.Store{store} }, DefaultOptions(), nil, prometheus.NewRegistry())
	at := time.UnixMilli(start + 3_599_000)
	raw := withQueryOptions(context.Background(), queryOptions{tenant: "default-tenant", dedup: true})
	ds := withQueryOptions(context.Background(), queryOptions{tenant: "default-tenant", dedup: true, maxResolution: 300_000})
	p := parser.NewParser(parser.Options{})
	for _, query := range []string{`count_over_time(g[30m])`, `avg_over_time(g[30m])`, `sum_over_time(g[30m])`, `max_over_time(g[30m])`} {
		e, _ := p.ParseExpr(query)
		want := evalInstant(t, q, raw, query, at)
		got := evalInstant(t, q, ds, rewriteForDownsampling(e).String(), at)
		if len(want) != 1 || len(got) != 1 || math.Abs(want[0].F-got[0].F) > 1e-9*math.Abs(want[0].F) {
			t.Errorf("%s: raw %v, rewritten %v", query, want, got)
		}
	}
}

func TestAutoResolution(t *testing.T) {
	o := queryOptions{autoResolution: true}
	m := time.Minute.Milliseconds()
	for _, c := range []struct{ step, rng, want int64 }{
		{0, 0, 0},
		{m, 0, 0},
		{30 * m, 0, 5 * m},
		{6 * 60 * m, 0, 60 * m},
		{6 * 60 * m, 5 * 60 * m, 60 * m},
		// [1h] holds twelve 5m windows but one 1h window.
		{6 * 60 * m, 60 * m, 5 * m},
		{6 * 60 * m, 10 * m, 0},
		{30 * m, 10 * m, 0},
	} {
		got := o.resolutionFor(&storage.SelectHints{Step: c.step, Range: c.rng})
		if got != c.want {
			t.Errorf("step %dm, range %dm: resolution %dm, want %dm", c.step/m, c.rng/m, got/m, c.want/m)
		}
	}
}

// TestAutoNarrowRangeReadsRawExactly runs queries through the engine with
// auto resolution and a step coarse enough for downsampled data, but ranges
// too narrow for it: the query is rewritten, its selectors read raw data,
// and the answers must be the raw ones.
func TestAutoNarrowRangeReadsRawExactly(t *testing.T) {
	start := time.Now().Add(-2 * time.Hour).UnixMilli()
	a := newTestTSDB(t, "tenant_id", "default-tenant")
	a.fill(t, labels.FromStrings("__name__", "g", "job", "x"), start, 3600, 0.5, func(i int) bool { return i%7 == 3 })
	store := storeapi.NewLocal("local", storeapi.ComponentReceive, func() []storeapi.TSDB { return []storeapi.TSDB{a} })
	q := New(func() []storeapi.Store { return []storeapi.Store{store} }, DefaultOptions(), nil, prometheus.NewRegistry())
	eng := &resolutionEngine{QueryEngine: promqltest.NewEngine(t), parser: parser.NewParser(parser.Options{}), lookback: 5 * time.Minute}
	at := time.UnixMilli(start + 3_599_000)
	// eval returns the values of a one-step range query.
	eval := func(ctx context.Context, query string) []float64 {
		t.Helper()
		var out []float64
		for _, s := range promqltest.Range(t, ctx, eng, q, query, at, at, 6*time.Hour) {
			for _, p := range s.Floats {
				out = append(out, p.F)
			}
		}
		return out
	}
	raw := withQueryOptions(context.Background(), queryOptions{tenant: "default-tenant", dedup: true})
	auto := withQueryOptions(context.Background(), queryOptions{tenant: "default-tenant", dedup: true, autoResolution: true})
	for _, query := range []string{`count_over_time(g[10m])`, `avg_over_time(g[10m])`, `count_over_time(g[30m])`, `rate(g[10m])`} {
		want, got := eval(raw, query), eval(auto, query)
		if len(want) != 1 || len(got) != 1 || math.Abs(want[0]-got[0]) > 1e-9*math.Abs(want[0]) {
			t.Errorf("%s: raw %v, auto %v", query, want, got)
		}
	}
}

// TestEndpointStatus checks what the UI's stores page reads: every
// endpoint, healthy or not, with its last check, error and answer.
func TestEndpointStatus(t *testing.T) {
	start := time.Now().Add(-time.Hour).UnixMilli()
	a := newTestTSDB(t, "receive_replica", "a", "tenant_id", "t1")
	a.fill(t, labels.FromStrings("__name__", "m"), start, 10, 1, nil)
	srv := grpc.NewServer()
	storeapi.RegisterServer(srv, storeapi.NewLocal("local", storeapi.ComponentReceive, func() []storeapi.TSDB { return []storeapi.TSDB{a} }))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	_ = dead.Close()

	e := storeapi.NewEndpoints(nil, prometheus.NewRegistry())
	ctx := context.Background()
	before := time.Now()
	e.Set(ctx, []string{deadAddr}, true)
	e.Set(ctx, []string{l.Addr().String()}, false)
	st := e.Status(ctx)
	if len(st) != 2 {
		t.Fatalf("status of %d endpoints, want 2", len(st))
	}
	byName := map[string]storeapi.EndpointStatus{st[0].Name: st[0], st[1].Name: st[1]}
	live, down := byName[l.Addr().String()], byName[deadAddr]
	if !live.Healthy || live.Static || live.LastError != nil || live.LastCheck.Before(before) ||
		live.Info.Component != storeapi.ComponentReceive || len(live.Info.LabelSets) != 1 || live.Info.MinTime != start {
		t.Errorf("live endpoint: %+v", live)
	}
	if down.Healthy || !down.Static || down.LastError == nil || down.LastCheck.Before(before) {
		t.Errorf("dead endpoint: %+v", down)
	}
	if got := e.Stores(); len(got) != 1 || got[0].Name() != l.Addr().String() {
		t.Errorf("queried stores = %v, want only the live one", got)
	}
}
