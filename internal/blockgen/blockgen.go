package blockgen

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"golang.org/x/sync/errgroup"

	"github.com/atoll-metrics/atoll/block"
	"github.com/atoll-metrics/atoll/bucket"
)

// Kind is what a synthetic series holds.
type Kind int

// Kinds of series.
const (
	Counter Kind = iota
	Gauge
	Histogram
)

// Metric names of the kinds.
const (
	CounterMetric   = "gen_requests_total"
	GaugeMetric     = "gen_temperature"
	HistogramMetric = "gen_latency_seconds"
)

// Config describes a synthetic bucket.
type Config struct {
	// Start is the time of the first scrape; it is aligned down to
	// BlockDuration. Default: 2026-01-01T00:00:00Z, a multiple of 14 days since the epoch.
	Start time.Time
	// Duration is how much data to make, in whole blocks.
	Duration time.Duration
	// Interval is the scrape interval. Default 1m.
	Interval time.Duration
	// BlockDuration is the span of each block. Default 2h.
	BlockDuration time.Duration
	// Series is the number of float series, alternately counters and gauges.
	Series int
	// HistogramSeries is the number of native histogram counter series.
	HistogramSeries int
	// ExternalLabels go into every block's meta.json besides the replica
	// label. Default tenant="default".
	ExternalLabels map[string]string
	// ReplicaLabel names the replica external label. Default receive_replica.
	ReplicaLabel string
	// Replicas are the replica label values; each replica gets every block.
	// Default a and b.
	Replicas []string
	// NoGaps makes every replica hold every scrape.
	NoGaps bool
	// Seed varies values and gaps.
	Seed uint64
}

func (c *Config) defaults() {
	if c.Start.IsZero() {
		c.Start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	if c.Interval <= 0 {
		c.Interval = time.Minute
	}
	if c.BlockDuration <= 0 {
		c.BlockDuration = 2 * time.Hour
	}
	bd := c.BlockDuration.Milliseconds()
	c.Start = time.UnixMilli(c.Start.UnixMilli() / bd * bd).UTC()
	if c.ExternalLabels == nil {
		c.ExternalLabels = map[string]string{"tenant": "default"}
	}
	if c.ReplicaLabel == "" {
		c.ReplicaLabel = "receive_replica"
	}
	if c.Replicas == nil {
		c.Replicas = []string{"a", "b"}
	}
}

// WithDefaults returns the config with defaults filled in.
func (c Config) WithDefaults() Config {
	c.defaults()
	return c
}

// MinTime and MaxTime bound the data in milliseconds, MaxTime exclusive.
func (c Config) MinTime() int64 { c.defaults(); return c.Start.UnixMilli() }

// MaxTime is the end of the last block.
func (c Config) MaxTime() int64 {
	c.defaults()
	bd := c.BlockDuration.Milliseconds()
	n := (c.Duration.Milliseconds() + bd - 1) / bd
	return c.MinTime() + n*bd
}

// Series is one synthetic series.
type Series struct {
	Index  int
	Kind   Kind
	Labels labels.Labels
}

// AllSeries returns the series, sorted by labels.
func (c Config) AllSeries() []Series {
	var out []Series
	for i := range c.Series + c.HistogramSeries {
		k := Counter
		name := CounterMetric
		switch {
		case i >= c.Series:
			k, name = Histogram, HistogramMetric
		case i%2 == 1:
			k, name = Gauge, GaugeMetric
		}
		out = append(out, Series{Index: i, Kind: k, Labels: labels.FromStrings(
			labels.MetricName, name,
			"instance", fmt.Sprintf("host-%03d", i/10),
			"job", "blockgen",
			"series", fmt.Sprintf("%05d", i),
		)})
	}
	slices.SortFunc(out, func(a, b Series) int { return labels.Compare(a.Labels, b.Labels) })
	return out
}

// hash mixes its inputs into a well-spread 64-bit value (splitmix64).
func hash(vs ...uint64) uint64 {
	var h uint64 = 0x9e3779b97f4a7c15
	for _, v := range vs {
		h ^= v + 0x9e3779b97f4a7c15 + (h << 6) + (h >> 2)
		h ^= h >> 30
		h *= 0xbf58476d1ce4e5b9
		h ^= h >> 27
		h *= 0x94d049bb133111eb
		h ^= h >> 31
	}
	return h
}

// Present reports whether replica r (an index into Replicas) has the
// scrape at t. Each replica misses 3 to 10 consecutive scrapes once per
// block, in a part of the block no other replica misses, and every 12th
// block all replicas miss the same 4 scrapes near its end.
func (c Config) Present(r int, t int64) bool {
	if c.NoGaps {
		return true
	}
	c.defaults()
	bd := c.BlockDuration.Milliseconds()
	iv := c.Interval.Milliseconds()
	start := c.Start.UnixMilli()
	b := (t - start) / bd
	blockStart := start + b*bd
	section := bd / int64(len(c.Replicas)+1)
	scrapes := section / iv
	if scrapes < 12 {
		return true // blocks too short for gaps
	}
	h := hash(c.Seed, uint64(r), uint64(b))
	gapStart := blockStart + int64(r)*section + int64(h%uint64(scrapes/2))*iv
	gapLen := int64(3+h/7%8) * iv
	if t >= gapStart && t < gapStart+gapLen {
		return false
	}
	if b%12 == 11 {
		common := blockStart + int64(len(c.Replicas))*section + iv
		if t >= common && t < common+4*iv {
			return false
		}
	}
	return true
}

// InTruth reports whether any replica has the scrape at t.
func (c Config) InTruth(t int64) bool {
	for r := range c.Replicas {
		if c.Present(r, t) {
			return true
		}
	}
	return false
}

// counterPhase returns how far into its reset period series i is at t, in
// seconds.
func (c Config) counterPhase(i int, t int64) float64 {
	period := int64(3*24*time.Hour/time.Millisecond) + int64(hash(c.Seed, uint64(i), 1)%uint64(5*24*time.Hour/time.Millisecond))
	offset := int64(hash(c.Seed, uint64(i), 2) % uint64(period))
	return float64(((t+offset)%period+period)%period) / 1000
}

// Float returns the value of float series s at t.
func (c Config) Float(s Series, t int64) float64 {
	switch s.Kind {
	case Gauge:
		p := float64(6*time.Hour/time.Millisecond) * (1 + float64(hash(c.Seed, uint64(s.Index), 3)%5))
		return 20 + float64(s.Index%7) + 10*math.Sin(2*math.Pi*float64(t)/p)
	default:
		x := c.counterPhase(s.Index, t)
		a := 0.5 + float64(hash(c.Seed, uint64(s.Index), 4)%100)/20
		return math.Floor(a*x + 30*math.Sqrt(x))
	}
}

// Histogram returns the value of histogram series s at t: an exponential
// (schema 0) histogram of four buckets whose counts grow with the series'
// counter phase.
func (c Config) Histogram(s Series, t int64) *histogram.Histogram {
	x := c.counterPhase(s.Index, t)
	h := &histogram.Histogram{
		Schema:        0,
		ZeroThreshold: 1e-128,
		PositiveSpans: []histogram.Span{{Offset: 0, Length: 4}},
	}
	var prev int64
	for j := range 4 {
		n := uint64(x * float64(j+1) / float64(10*(s.Index%3+1)))
		h.Count += n
		h.Sum += float64(n) * math.Pow(2, float64(j)-0.5)
		h.PositiveBuckets = append(h.PositiveBuckets, int64(n)-prev)
		prev = int64(n)
	}
	return h
}

// Stats describes what Generate wrote.
type Stats struct {
	Blocks  int
	Samples int64
}

// Generate writes every replica's blocks to bkt, using scratch for block
// directories on the way. Blocks are written with bounded parallelism.
func Generate(ctx context.Context, bkt bucket.Bucket, scratch string, cfg Config) (Stats, error) {
	cfg.defaults()
	series := cfg.AllSeries()
	bd := cfg.BlockDuration.Milliseconds()
	var st Stats
	type result struct{ samples int64 }
	results := make(chan result, 64)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	done := make(chan struct{})
	go func() {
		for r := range results {
			st.Blocks++
			st.Samples += r.samples
		}
		close(done)
	}()
	for mint := cfg.MinTime(); mint < cfg.MaxTime(); mint += bd {
		for r := range cfg.Replicas {
			g.Go(func() error {
				n, err := cfg.writeReplicaBlock(gctx, bkt, scratch, series, r, mint, mint+bd)
				if err == nil && n > 0 {
					results <- result{n}
				}
				return err
			})
		}
	}
	err := g.Wait()
	close(results)
	<-done
	return st, err
}

// ReplicaBlock returns the series data replica r ships for [mint, maxt).
func (c Config) ReplicaBlock(r int, mint, maxt int64) []SeriesData {
	c.defaults()
	iv := c.Interval.Milliseconds()
	first := c.MinTime() + (max(mint-c.MinTime(), 0)+iv-1)/iv*iv
	var out []SeriesData
	for _, s := range c.AllSeries() {
		sd := SeriesData{Labels: s.Labels}
		for t := first; t < maxt; t += iv {
			if !c.Present(r, t) {
				continue
			}
			if s.Kind == Histogram {
				sd.Histograms = append(sd.Histograms, HistogramSample{T: t, H: c.Histogram(s, t)})
			} else {
				sd.Floats = append(sd.Floats, FloatSample{T: t, V: c.Float(s, t)})
			}
		}
		out = append(out, sd)
	}
	return out
}

func (c Config) writeReplicaBlock(ctx context.Context, bkt bucket.Bucket, scratch string, series []Series, r int, mint, maxt int64) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	data := c.ReplicaBlock(r, mint, maxt)
	ext := map[string]string{c.ReplicaLabel: c.Replicas[r]}
	for k, v := range c.ExternalLabels {
		ext[k] = v
	}
	entropy := ulidEntropy(hash(c.Seed, uint64(r), uint64(mint)))
	id := ulid.MustNew(uint64(maxt), entropy)
	dir, err := os.MkdirTemp(scratch, "blockgen-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	meta, err := WriteBlock(ctx, dir, id, mint, maxt, ext, data)
	if err != nil {
		return 0, err
	}
	if _, err := block.Upload(ctx, bkt, filepath.Join(dir, id.String()), meta, nil); err != nil {
		return 0, err
	}
	return int64(meta.Stats.NumSamples), nil
}

// ulidEntropy is a deterministic entropy source for ULIDs.
type ulidEntropy uint64

func (e ulidEntropy) Read(p []byte) (int, error) {
	x := uint64(e)
	for i := range p {
		if i%8 == 0 {
			x = hash(x, uint64(i))
		}
		p[i] = byte(x >> (8 * (i % 8)))
	}
	return len(p), nil
}
