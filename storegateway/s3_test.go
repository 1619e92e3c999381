package storegateway

import (
	"log/slog"
	"math"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/atoll-metrics/atoll/bucket"
	"github.com/atoll-metrics/atoll/bucket/buckettest"
	"github.com/atoll-metrics/atoll/storeapi"
)

// TestS3 runs the comparison with the TSDB against a real S3 server, where
// every read is a ranged HTTP request.
func TestS3(t *testing.T) {
	srv := buckettest.StartS3Server(t)
	cfg := srv.CreateBucket(t)
	bkt, err := bucket.New(bucket.Config{Type: bucket.TypeS3, S3: cfg}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bkt.Close() })

	dirs := twoTenantBlocks(t)
	var local []*localBlock
	for _, d := range dirs {
		uploadBlock(t, bkt, d)
		local = append(local, openLocal(t, d))
	}
	gw, _ := newGateway(t, bkt, func(o *Options) { o.SeriesBatchSize = 16 })
	for _, tr := range timeRanges[:3] {
		for _, mc := range matcherCases {
			t.Run(tr.name+"/"+mc.name, func(t *testing.T) {
				got, _ := collectSeries(t, gw, &storeapi.SeriesRequest{MinTime: tr.mint, MaxTime: tr.maxt, Matchers: mc.ms})
				compareSeries(t, got, expectSeries(t, local, tr.mint, tr.maxt, mc.ms))
			})
		}
	}
	t.Run("labels", func(t *testing.T) {
		req := &storeapi.LabelsRequest{MinTime: math.MinInt64, MaxTime: math.MaxInt64, Matchers: ms("job", "=~", "job-[01]")}
		values, _, err := gw.LabelValues(testContext(t), "__name__", req)
		if err != nil {
			t.Fatal(err)
		}
		if want := expectLabels(t, local, req.MinTime, req.MaxTime, req.Matchers, "__name__"); !slices.Equal(values, want) {
			t.Errorf("LabelValues = %q, want %q", values, want)
		}
	})
}
