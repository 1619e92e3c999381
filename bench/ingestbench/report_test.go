package main

import (
	"bytes"
	"strings"
	"testing"
)

func fakeRun(perCPU float64) *instanceResult {
	return &instanceResult{SeriesFound: 10, Load: loadResult{Series: 10, Phases: []phase{
		{Name: "warmup", SamplesPerCPU: perCPU / 10, Status: map[string]int{"204": 1}},
		{Name: "steady", SamplesPerCPU: perCPU, Status: map[string]int{"204": 3}},
	}}}
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		name        string
		runs        []float64
		med, lo, hi float64
	}{
		{"one", []float64{5}, 5, 5, 5},
		{"odd", []float64{9, 1, 5}, 5, 1, 9},
		{"even takes the lower middle", []float64{4, 8, 2, 6}, 4, 2, 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &targetResult{}
			for _, v := range tc.runs {
				r.Throughput = append(r.Throughput, fakeRun(v))
			}
			med, lo, hi := r.median()
			if got := med.steady().SamplesPerCPU; got != tc.med || lo != tc.lo || hi != tc.hi {
				t.Errorf("median %v (%v-%v), want %v (%v-%v)", got, lo, hi, tc.med, tc.lo, tc.hi)
			}
		})
	}
	var none *targetResult
	if med, _, _ := none.median(); med != nil {
		t.Error("median of nothing is not nil")
	}
}

func TestPrintReport(t *testing.T) {
	c := config{series: 10, rounds: 3, batch: 2, concurrency: 1, repeat: 2, rssSeries: 1_000_000, rssRounds: 3}
	failing := fakeRun(300)
	failing.Load.Phases[1].Status = map[string]int{"204": 2, "503": 1}
	failing.Load.Phases[1].FirstError = "503: overloaded"
	results := []targetResult{
		{Target: "prometheus", Throughput: []*instanceResult{fakeRun(100), fakeRun(120)},
			Memory: &instanceResult{Load: loadResult{RSSBytes: 2 << 30}}},
		{Target: "atoll", Throughput: []*instanceResult{fakeRun(500), failing},
			Memory: &instanceResult{Load: loadResult{RSSBytes: 1 << 30}}},
		{Target: "victoriametrics", Failures: []string{"throughput run 1: exited"}},
	}
	var out bytes.Buffer
	printReport(&out, c, results)
	text := out.String()
	for _, want := range []string{
		"RSS at 1M series",
		"3.00x", // atoll's median, 300, over Prometheus's, 100
		"0.50x", // atoll's RSS over Prometheus's
		"2048 MiB",
		"atoll steady: status map[204:2 503:1], first error: 503: overloaded",
		"victoriametrics FAILED: throughput run 1: exited",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q:\n%s", want, text)
		}
	}
}

func TestCount(t *testing.T) {
	for n, want := range map[int]string{1_000_000: "1M", 100_000: "100k", 2500: "2500", 12: "12"} {
		if got := count(n); got != want {
			t.Errorf("count(%d) = %q, want %q", n, got, want)
		}
	}
}
