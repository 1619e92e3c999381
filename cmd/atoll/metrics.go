package main

import (
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
)

// tenantLabel is the label the tenant TSDBs' metrics carry.
const tenantLabel = "tenant"

// tenantsSummed serves the registry's metrics with the tenant label
// removed, so /metrics does not list the tenants (--metrics.per-tenant
// keeps them). Series that differ only by tenant become one: counters,
// histograms and summaries add up (summaries lose their quantiles), and
// gauges add up too, except timestamps, where the newest (max_time,
// timestamp) or oldest (min_time, lowest) across tenants is what a
// process-wide gauge means. The registry itself keeps every tenant for
// the UI's tenants page.
type tenantsSummed struct{ g prometheus.Gatherer }

func (t tenantsSummed) Gather() ([]*dto.MetricFamily, error) {
	mfs, err := t.g.Gather()
	for _, mf := range mfs {
		if !hasTenantLabel(mf) {
			continue
		}
		merge := gaugeMerge(mf.GetName())
		var out []*dto.Metric
		index := map[string]int{}
		for _, m := range mf.Metric {
			m = proto.Clone(m).(*dto.Metric)
			m.Label = slices.DeleteFunc(m.Label, func(l *dto.LabelPair) bool { return l.GetName() == tenantLabel })
			key := labelKey(m.Label)
			i, ok := index[key]
			if !ok {
				index[key] = len(out)
				if m.Summary != nil {
					m.Summary.Quantile = nil
				}
				out = append(out, m)
				continue
			}
			add(out[i], m, merge)
		}
		mf.Metric = out
	}
	return mfs, err
}

func hasTenantLabel(mf *dto.MetricFamily) bool {
	for _, m := range mf.Metric {
		for _, l := range m.Label {
			if l.GetName() == tenantLabel {
				return true
			}
		}
	}
	return false
}

func labelKey(ls []*dto.LabelPair) string {
	var b strings.Builder
	for _, l := range ls {
		b.WriteString(l.GetName())
		b.WriteByte(0)
		b.WriteString(l.GetValue())
		b.WriteByte(0)
	}
	return b.String()
}

// gaugeMerge is how gauges of one name combine across tenants.
func gaugeMerge(name string) func(a, b float64) float64 {
	switch {
	case strings.Contains(name, "min_time"), strings.Contains(name, "lowest_timestamp"), strings.Contains(name, "oldest"):
		return func(a, b float64) float64 { return min(a, b) }
	case strings.Contains(name, "max_time"), strings.Contains(name, "timestamp"), strings.HasSuffix(name, "_time_seconds"), strings.Contains(name, "last_"):
		return func(a, b float64) float64 { return max(a, b) }
	}
	return func(a, b float64) float64 { return a + b }
}

// add folds m into into, which has the same labels.
func add(into, m *dto.Metric, gauge func(a, b float64) float64) {
	switch {
	case into.Counter != nil && m.Counter != nil:
		into.Counter.Value = proto.Float64(into.Counter.GetValue() + m.Counter.GetValue())
	case into.Gauge != nil && m.Gauge != nil:
		into.Gauge.Value = proto.Float64(gauge(into.Gauge.GetValue(), m.Gauge.GetValue()))
	case into.Untyped != nil && m.Untyped != nil:
		into.Untyped.Value = proto.Float64(into.Untyped.GetValue() + m.Untyped.GetValue())
	case into.Summary != nil && m.Summary != nil:
		into.Summary.SampleCount = proto.Uint64(into.Summary.GetSampleCount() + m.Summary.GetSampleCount())
		into.Summary.SampleSum = proto.Float64(into.Summary.GetSampleSum() + m.Summary.GetSampleSum())
	case into.Histogram != nil && m.Histogram != nil:
		addHistogram(into.Histogram, m.Histogram)
	}
}

// addHistogram adds classic histograms bucket by bucket. Native buckets
// of different schemas do not add up simply, so a merged histogram keeps
// its classic buckets, count and sum only.
func addHistogram(into, h *dto.Histogram) {
	into.SampleCount = proto.Uint64(into.GetSampleCount() + h.GetSampleCount())
	into.SampleSum = proto.Float64(into.GetSampleSum() + h.GetSampleSum())
	into.Schema, into.ZeroThreshold, into.ZeroCount = nil, nil, nil
	into.PositiveSpan, into.PositiveDelta, into.NegativeSpan, into.NegativeDelta = nil, nil, nil, nil
	into.PositiveCount, into.NegativeCount, into.ZeroCountFloat = nil, nil, nil
	if len(into.Bucket) != len(h.Bucket) {
		into.Bucket = nil
		return
	}
	for i, b := range h.Bucket {
		if into.Bucket[i].GetUpperBound() != b.GetUpperBound() {
			into.Bucket = nil
			return
		}
		into.Bucket[i].CumulativeCount = proto.Uint64(into.Bucket[i].GetCumulativeCount() + b.GetCumulativeCount())
	}
}
