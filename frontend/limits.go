package frontend

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"
)

// TenantLimits are what one tenant's queries may do. Zero means no limit.
type TenantLimits struct {
	// MaxQueryLength is the longest range (end - start) of a range query.
	MaxQueryLength model.Duration `yaml:"max_query_length"`
	// MaxQueryLookback is how far before now a query may read.
	MaxQueryLookback model.Duration `yaml:"max_query_lookback"`
	// MaxSamples is passed to the queriers as max_samples_read on every
	// request made for a query (each piece and shard of it), which makes
	// them refuse a request that would read more samples (422).
	MaxSamples uint64 `yaml:"max_samples"`
	// MaxConcurrentQueries bounds the tenant's queries in flight in this
	// frontend; more wait their turn.
	MaxConcurrentQueries int `yaml:"max_concurrent_queries"`
	// MaxQueuedQueries bounds the tenant's queries waiting for a turn;
	// more are refused with 429. It applies only with
	// MaxConcurrentQueries. Default 100.
	MaxQueuedQueries int `yaml:"max_queued_queries"`
}

// Limits are the per-tenant limits file:
//
//	default:              # every tenant not listed below
//	  max_query_length: 32d
//	  max_query_lookback: 0s
//	  max_samples: 0
//	  max_concurrent_queries: 0
//	  max_queued_queries: 100
//	tenants:
//	  team-a:             # settings left out are the default's
//	    max_query_length: 7d
type Limits struct {
	Default TenantLimits            `yaml:"default"`
	Tenants map[string]TenantLimits `yaml:"tenants,omitempty"`
}

// defaultMaxQueued is the queue of a tenant with a concurrency limit and no
// queue size of its own.
const defaultMaxQueued = 100

// ParseLimits reads a limits file. A tenant's section starts from the
// default section, so it names only what differs.
func ParseLimits(data []byte) (Limits, error) {
	var raw struct {
		Default yaml.Node            `yaml:"default"`
		Tenants map[string]yaml.Node `yaml:"tenants"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&raw); err != nil && !errors.Is(err, io.EOF) {
		return Limits{}, fmt.Errorf("parse limits: %w", err)
	}
	l := Limits{Default: TenantLimits{MaxQueuedQueries: defaultMaxQueued}, Tenants: map[string]TenantLimits{}}
	if err := decodeStrict(&raw.Default, &l.Default); err != nil {
		return Limits{}, fmt.Errorf("parse limits: default: %w", err)
	}
	for name, node := range raw.Tenants {
		t := l.Default
		if err := decodeStrict(&node, &t); err != nil {
			return Limits{}, fmt.Errorf("parse limits: tenant %q: %w", name, err)
		}
		l.Tenants[name] = t
	}
	return l, nil
}

func decodeStrict(n *yaml.Node, into *TenantLimits) error {
	if n.Kind == 0 {
		return nil
	}
	// Re-encode and decode strictly: yaml.Node.Decode ignores unknown
	// fields.
	b, err := yaml.Marshal(n)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	return dec.Decode(into)
}

// For returns the limits of tenant.
func (l *Limits) For(tenant string) TenantLimits {
	if l == nil {
		return TenantLimits{}
	}
	if t, ok := l.Tenants[tenant]; ok {
		return t
	}
	return l.Default
}

// check refuses a query of the points from start to end the tenant may
// not run, naming the limit.
func (t TenantLimits) check(tenant string, start, end int64, now time.Time) (string, *apiError) {
	if max := time.Duration(t.MaxQueryLength); max > 0 && time.Duration(end-start)*time.Millisecond > max {
		return "max_query_length", &apiError{status: http.StatusBadRequest, errorType: "bad_data", msg: fmt.Sprintf(
			"the query time range exceeds the limit (query length: %s, limit: %s) of tenant %q",
			model.Duration(time.Duration(end-start)*time.Millisecond), t.MaxQueryLength, tenant)}
	}
	if max := time.Duration(t.MaxQueryLookback); max > 0 && now.Sub(time.UnixMilli(start)) > max {
		return "max_query_lookback", &apiError{status: http.StatusBadRequest, errorType: "bad_data", msg: fmt.Sprintf(
			"the query reads from %s, further back than the limit (max query lookback: %s) of tenant %q",
			time.UnixMilli(start).UTC().Format(time.RFC3339), t.MaxQueryLookback, tenant)}
	}
	return "", nil
}

// applySamples adds the tenant's max_samples_read to what is asked of the
// queriers, keeping a lower one the client asked for.
func (t TenantLimits) applySamples(params map[string][]string) {
	if t.MaxSamples == 0 {
		return
	}
	if v, ok := params["max_samples_read"]; ok && len(v) > 0 {
		if n, err := strconv.ParseUint(v[0], 10, 64); err == nil && n > 0 && n <= t.MaxSamples {
			return
		}
	}
	params["max_samples_read"] = []string{strconv.FormatUint(t.MaxSamples, 10)}
}

// tenantQueues bounds each tenant's queries in flight.
type tenantQueues struct {
	mtx    sync.Mutex
	queues map[string]*tenantQueue
}

// tenantQueue is a tenant's slots, kept while someone uses or waits for
// them, so tenants that come and go leave nothing behind.
type tenantQueue struct {
	slots   chan struct{}
	users   int
	waiting int
}

var errQueueFull = errors.New("too many queries queued")

// acquire waits for one of the tenant's slots. It returns how long it
// waited and a release func to call when the query ends.
func (q *tenantQueues) acquire(ctx context.Context, tenant string, l TenantLimits) (time.Duration, func(), error) {
	if l.MaxConcurrentQueries <= 0 {
		return 0, func() {}, nil
	}
	maxQueued := l.MaxQueuedQueries
	if maxQueued <= 0 {
		maxQueued = defaultMaxQueued
	}
	start := time.Now()
	q.mtx.Lock()
	if q.queues == nil {
		q.queues = map[string]*tenantQueue{}
	}
	tq, ok := q.queues[tenant]
	if !ok {
		tq = &tenantQueue{slots: make(chan struct{}, l.MaxConcurrentQueries)}
		q.queues[tenant] = tq
	}
	tq.users++
	q.mtx.Unlock()

	leave := func() {
		q.mtx.Lock()
		tq.users--
		if tq.users == 0 {
			delete(q.queues, tenant)
		}
		q.mtx.Unlock()
	}
	select {
	case tq.slots <- struct{}{}:
	default:
		q.mtx.Lock()
		if tq.waiting >= maxQueued {
			q.mtx.Unlock()
			leave()
			return time.Since(start), nil, errQueueFull
		}
		tq.waiting++
		q.mtx.Unlock()
		var err error
		select {
		case tq.slots <- struct{}{}:
		case <-ctx.Done():
			err = ctx.Err()
		}
		q.mtx.Lock()
		tq.waiting--
		q.mtx.Unlock()
		if err != nil {
			leave()
			return time.Since(start), nil, err
		}
	}
	var once sync.Once
	return time.Since(start), func() {
		once.Do(func() {
			<-tq.slots
			leave()
		})
	}, nil
}
