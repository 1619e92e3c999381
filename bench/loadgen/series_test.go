package main

import (
	"strings"
	"testing"
)

func TestCatalogShape(t *testing.T) {
	cat := NewCatalog()
	if n := cat.Metrics(); n < 180 || n > 260 {
		t.Errorf("catalogue has %d metric names, want about 200", n)
	}
	const series = 100_000 // over a hundred targets
	seen := make(map[string]int, series)
	var ls []Label
	var sb strings.Builder
	minBytes, maxBytes, total := 1<<30, 0, 0
	for i := range series {
		ls = cat.Labels(ls[:0], i)
		for j := 1; j < len(ls); j++ {
			if ls[j-1].Name >= ls[j].Name {
				t.Fatalf("series %d: labels not sorted or duplicated: %v", i, ls)
			}
		}
		names := map[string]bool{}
		for _, l := range ls {
			names[l.Name] = true
			if l.Value == "" {
				t.Fatalf("series %d: empty value for %s", i, l.Name)
			}
		}
		for _, want := range []string{"__name__", "job", "instance"} {
			if !names[want] {
				t.Fatalf("series %d lacks %s: %v", i, want, ls)
			}
		}
		if extra := len(ls) - 3; extra < 3 || extra > 6 {
			t.Fatalf("series %d has %d labels besides __name__, job and instance, want 3 to 6: %v", i, extra, ls)
		}
		sb.Reset()
		for _, l := range ls {
			sb.WriteString(l.Name)
			sb.WriteByte(0)
			sb.WriteString(l.Value)
			sb.WriteByte(0)
		}
		key := sb.String()
		if prev, dup := seen[key]; dup {
			t.Fatalf("series %d and %d have the same labels: %v", prev, i, ls)
		}
		seen[key] = i
		b := labelBytesOf(ls)
		minBytes, maxBytes, total = min(minBytes, b), max(maxBytes, b), total+b
	}
	avg := total / series
	t.Logf("label bytes per series: min %d, avg %d, max %d; %d series per target", minBytes, avg, maxBytes, cat.SeriesPerTarget())
	if avg < 150 || avg > 300 {
		t.Errorf("average label bytes %d, want 150 to 300", avg)
	}
}

func TestCatalogValues(t *testing.T) {
	cat := NewCatalog()
	for i := range cat.SeriesPerTarget() {
		m := cat.metrics[cat.slots[i].metric]
		if !m.sub.counter {
			continue
		}
		prev := cat.Value(i, 0)
		for r := 1; r < 50; r++ {
			v := cat.Value(i, r)
			if v < prev {
				t.Fatalf("counter %s (series %d) went down in round %d: %v < %v", m.name, i, r, v, prev)
			}
			prev = v
		}
	}
}
