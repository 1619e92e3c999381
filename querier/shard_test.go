package querier

import (
	"context"
	"testing"
	"time"

	"github.com/atoll-metrics/atoll/storeapi"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
)

// TestShardMatcherSplitsSeries checks the query-frontend's contract: the
// shards of a selector hold every deduplicated series exactly once, and
// aggregating per shard then over shards gives the unsharded answer.
func TestShardMatcherSplitsSeries(t *testing.T) {
	start := time.Now().Add(-time.Hour).UnixMilli()
	a := newTestTSDB(t, "receive_replica", "a", "tenant_id", "t1")
	b := newTestTSDB(t, "receive_replica", "b", "tenant_id", "t1")
	const n = 40
	for i := range n {
		lset := labels.FromStrings("__name__", "sharded_total", "instance", string(rune('a'+i%26))+string(rune('a'+i/26)))
		// Both replicas hold every series: a series whose replicas fell in
		// different shards would be counted twice.
		a.fill(t, lset, start, 60, float64(i), nil)
		b.fill(t, lset, start, 60, float64(i), nil)
	}
	store := storeapi.NewLocal("local", storeapi.ComponentReceive, func() []storeapi.TSDB { return []storeapi.TSDB{a, b} })
	q := New(func() []storeapi.Store { return []storeapi.Store{store} }, DefaultOptions(), nil, prometheus.NewRegistry())
	ctx := withQueryOptions(context.Background(), queryOptions{tenant: "t1", dedup: true})
	at := time.UnixMilli(start + 59_000)

	whole := evalInstant(t, q, ctx, `sum(sharded_total)`, at)
	seen := map[string]int{}
	total := 0.0
	for i := 1; i <= 3; i++ {
		shard := `{__query_shard__="` + string(rune('0'+i)) + `_of_3"}`
		for _, s := range evalInstant(t, q, ctx, `sharded_total`+shard, at) {
			seen[s.Metric.String()]++
		}
		for _, s := range evalInstant(t, q, ctx, `sum(sharded_total`+shard+`)`, at) {
			total += s.F
		}
	}
	if len(seen) != n {
		t.Fatalf("shards hold %d series, want %d", len(seen), n)
	}
	for s, c := range seen {
		if c != 1 {
			t.Fatalf("%s in %d shards", s, c)
		}
	}
	if len(whole) != 1 || whole[0].F != total {
		t.Fatalf("sum over shards %v, unsharded %v", total, whole)
	}

	qr, _ := q.Querier(start, start+60_000)
	for _, bad := range []string{"0_of_3", "4_of_3", "x", "1_of_"} {
		set := qr.Select(ctx, false, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "sharded_total"),
			labels.MustNewMatcher(labels.MatchEqual, shardMatcherName, bad))
		if set.Next() || set.Err() == nil {
			t.Fatalf("shard %q: want an error", bad)
		}
	}
}
