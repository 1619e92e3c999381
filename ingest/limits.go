package ingest

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"gopkg.in/yaml.v3"
)

// Limits bound what one tenant may write to one receiver. Zero means no
// limit. They are enforced per receiver: with N receivers taking a
// tenant's writes, the tenant may write up to N times the rate.
type Limits struct {
	// IngestionRate is the samples per second the tenant may send; a
	// request over it gets 429 with Retry-After, and Prometheus retries.
	IngestionRate float64 `yaml:"ingestion_rate"`
	// IngestionBurst is how many samples may arrive at once above the
	// rate; default one second's worth, and never less than one request.
	IngestionBurst int `yaml:"ingestion_burst"`
	// MaxSeries bounds the tenant's series in this receiver's head; samples
	// of new series beyond it get 429 while samples of known series are
	// stored.
	MaxSeries int `yaml:"max_series"`
}

// LimitsConfig is the YAML file given by --receive.limits-config-file:
//
//	default:
//	  ingestion_rate: 500000
//	  max_series: 2000000
//	tenants:
//	  team-a:
//	    ingestion_rate: 1000000
//
// A tenant's entry replaces the fields it sets; the others come from default.
type LimitsConfig struct {
	Default Limits                    `yaml:"default"`
	Tenants map[string]limitsOverride `yaml:"tenants"`
}

// limitsOverride holds only the fields a tenant sets.
type limitsOverride struct {
	IngestionRate  *float64 `yaml:"ingestion_rate"`
	IngestionBurst *int     `yaml:"ingestion_burst"`
	MaxSeries      *int     `yaml:"max_series"`
}

// ParseLimitsConfig reads a limits file; unknown fields are errors, so a
// typo does not silently leave a tenant unlimited.
func ParseLimitsConfig(data []byte) (LimitsConfig, error) {
	var c LimitsConfig
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, errEOF) {
		return c, fmt.Errorf("limits config: %w", err)
	}
	check := func(who string, rate float64, burst, series int) error {
		if rate < 0 || burst < 0 || series < 0 || math.IsNaN(rate) || math.IsInf(rate, 0) {
			return fmt.Errorf("limits config: %s: limits must be finite and not negative", who)
		}
		return nil
	}
	if err := check("default", c.Default.IngestionRate, c.Default.IngestionBurst, c.Default.MaxSeries); err != nil {
		return c, err
	}
	for name := range c.Tenants {
		l := c.For(name)
		if err := check("tenant "+name, l.IngestionRate, l.IngestionBurst, l.MaxSeries); err != nil {
			return c, err
		}
	}
	return c, nil
}

// errEOF is what yaml.v3 returns for an empty document.
var errEOF = func() error {
	var v struct{}
	return yaml.NewDecoder(bytes.NewReader(nil)).Decode(&v)
}()

// For returns the limits For tenant.
func (c LimitsConfig) For(tenant string) Limits {
	l := c.Default
	if o, ok := c.Tenants[tenant]; ok {
		if o.IngestionRate != nil {
			l.IngestionRate = *o.IngestionRate
		}
		if o.IngestionBurst != nil {
			l.IngestionBurst = *o.IngestionBurst
		}
		if o.MaxSeries != nil {
			l.MaxSeries = *o.MaxSeries
		}
	}
	return l
}

// rateLimiter keeps one token bucket per tenant.
type rateLimiter struct {
	cfg LimitsConfig
	now func() time.Time

	mtx     sync.Mutex
	buckets map[string]*tokenBucket
}

type tokenBucket struct {
	tokens float64
	last   time.Time
}

func newRateLimiter(cfg LimitsConfig) *rateLimiter {
	return &rateLimiter{cfg: cfg, now: time.Now, buckets: map[string]*tokenBucket{}}
}

// allow takes a request's samples from tenant's bucket; it counts them
// with count only when the tenant has a rate limit, so unlimited tenants pay
// nothing. When it cannot take them, it takes nothing and says how many
// there were and how long until they would fit.
func (r *rateLimiter) allow(tenant string, count func() int) (ok bool, samples int, wait time.Duration) {
	l := r.cfg.For(tenant)
	if l.IngestionRate <= 0 {
		return true, 0, 0
	}
	n := count()
	if n == 0 {
		return true, 0, 0
	}
	burst := float64(l.IngestionBurst)
	if burst <= 0 {
		burst = l.IngestionRate
	}
	// A request bigger than the burst could never pass; let it through
	// when the bucket is full so limits do not turn into a hard refusal of
	// big batches.
	need := min(float64(n), burst)
	now := r.now()
	r.mtx.Lock()
	defer r.mtx.Unlock()
	b, ok := r.buckets[tenant]
	if !ok {
		b = &tokenBucket{tokens: burst, last: now}
		r.buckets[tenant] = b
	}
	b.tokens = min(burst, b.tokens+now.Sub(b.last).Seconds()*l.IngestionRate)
	b.last = now
	if b.tokens >= need {
		b.tokens -= float64(n)
		return true, n, 0
	}
	wait = time.Duration((need - b.tokens) / l.IngestionRate * float64(time.Second))
	return false, n, max(wait, time.Second)
}
