package storegateway

import (
	"math"
	"testing"

	"github.com/atoll-metrics/atoll/storeapi"
)

// BenchmarkSeries streams every series of four 2h blocks of 1000 series
// each through Series, with a warm index cache.
func BenchmarkSeries(b *testing.B) {
	bkt := newBucket(b)
	for i := range int64(4) {
		uploadBlock(b, bkt, writeBlock(b, blockSpec{
			series: genSeries("bench_metric", 1000, i*2*hour, (i+1)*2*hour, 30_000),
			ext:    map[string]string{"tenant_id": "a"},
		}))
	}
	gw, _ := newGateway(b, bkt, nil)
	req := &storeapi.SeriesRequest{MinTime: math.MinInt64, MaxTime: math.MaxInt64, Matchers: ms("__name__", "=", "bench_metric", "job", "!=", "job-9")}
	count := func() (series, samples int) {
		_, err := gw.Series(testContext(b), req, func(s storeapi.Series) error {
			series++
			for _, c := range s.Chunks {
				samples += c.Chunk.NumSamples()
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		return series, samples
	}
	series, samples := count()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		count()
	}
	b.ReportMetric(float64(series*b.N)/b.Elapsed().Seconds(), "series/s")
	b.ReportMetric(float64(samples*b.N)/b.Elapsed().Seconds(), "samples/s")
}
