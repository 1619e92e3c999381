package main

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestTenantsSummed: with per-tenant metrics off, /metrics names no
// tenant, and what tenants had adds up (timestamps take the newest).
func TestTenantsSummed(t *testing.T) {
	reg := prometheus.NewRegistry()
	for _, tenant := range []string{"team-a", "team-b"} {
		r := prometheus.WrapRegistererWith(prometheus.Labels{"tenant": tenant}, reg)
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: "samples_total", Help: "h"})
		c.Add(map[string]float64{"team-a": 3, "team-b": 4}[tenant])
		g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "head_max_time_seconds", Help: "h"})
		g.Set(map[string]float64{"team-a": 100, "team-b": 200}[tenant])
		h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "duration_seconds", Help: "h", Buckets: []float64{1, 2}})
		h.Observe(1.5)
		r.MustRegister(c, g, h)
	}
	other := prometheus.NewCounter(prometheus.CounterOpts{Name: "requests_total", Help: "h"})
	other.Add(5)
	reg.MustRegister(other)

	want := `# HELP duration_seconds h
# TYPE duration_seconds histogram
duration_seconds_bucket{le="1"} 0
duration_seconds_bucket{le="2"} 2
duration_seconds_bucket{le="+Inf"} 2
duration_seconds_sum 3
duration_seconds_count 2
# HELP head_max_time_seconds h
# TYPE head_max_time_seconds gauge
head_max_time_seconds 200
# HELP requests_total h
# TYPE requests_total counter
requests_total 5
# HELP samples_total h
# TYPE samples_total counter
samples_total 7
`
	if err := testutil.GatherAndCompare(tenantsSummed{reg}, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	// The registry itself keeps the tenants, for the UI.
	if n, err := testutil.GatherAndCount(reg, "samples_total"); err != nil || n != 2 {
		t.Errorf("registry has %d samples_total series (%v), want 2", n, err)
	}
}
