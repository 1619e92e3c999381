package web

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"sync"
	"time"
)

// TenantStatus is one tenant's TSDB on one receiver.
type TenantStatus struct {
	ID string `json:"tenant"`
	// HeadSeries are the series in the head.
	HeadSeries uint64 `json:"headSeries"`
	// HeadMinTime and HeadMaxTime bound the head's samples in
	// milliseconds; both 0 for an empty head.
	HeadMinTime int64 `json:"headMinTime"`
	HeadMaxTime int64 `json:"headMaxTime"`
	// Blocks are the blocks on local disk (cut, maybe not yet shipped).
	Blocks int `json:"blocks"`
	// SamplesAppended counts the samples the head took since the process
	// started; the rate served comes from its increase between requests.
	SamplesAppended float64 `json:"-"`
	// SamplesPerSecond is filled by the UI: null until two readings exist.
	SamplesPerSecond *float64    `json:"samplesPerSecond"`
	Limits           TenantLimit `json:"limits"`
}

// TenantLimit is what a tenant may write to one receiver; 0 is no limit.
type TenantLimit struct {
	IngestionRate  float64 `json:"ingestionRate"`
	IngestionBurst int     `json:"ingestionBurst"`
	MaxSeries      int     `json:"maxSeries"`
}

// Receiver is a receiver a querier gathers tenants from.
type Receiver struct {
	Name string
	// Address is the receiver's HTTP address (host:port).
	Address string
}

// receiverTenants is one receiver's part of /api/v1/tenants.
type receiverTenants struct {
	Name    string         `json:"name"`
	Address string         `json:"address"`
	Error   string         `json:"error,omitempty"`
	Tenants []TenantStatus `json:"tenants"`
}

type tenantsJSON struct {
	Receivers []receiverTenants `json:"receivers"`
}

// tenants answers /api/v1/tenants: this process's tenants, or, in a
// querier, every receiver's (asked with scope=local, which a receiver
// answers from its own TSDBs).
func (u *UI) tenants(w http.ResponseWriter, r *http.Request) {
	out := tenantsJSON{Receivers: []receiverTenants{}}
	if u.opts.Tenants != nil {
		list, err := u.opts.Tenants(r.Context())
		if err != nil {
			writeError(w, http.StatusInternalServerError, "internal", err)
			return
		}
		u.rates.fill(time.Now(), list)
		out.Receivers = append(out.Receivers, receiverTenants{Name: u.opts.InstanceID, Tenants: nonNil(list)})
	}
	if u.opts.Receivers != nil && r.URL.Query().Get("scope") != "local" {
		out.Receivers = append(out.Receivers, u.gatherTenants(r.Context(), r.Header.Get("Authorization"), u.opts.Receivers())...)
	}
	writeData(w, out)
}

func nonNil(list []TenantStatus) []TenantStatus {
	if list == nil {
		return []TenantStatus{}
	}
	return list
}

// gatherTenants asks every receiver for its tenants at once; a receiver
// that does not answer is listed with its error.
func (u *UI) gatherTenants(ctx context.Context, auth string, receivers []Receiver) []receiverTenants {
	out := make([]receiverTenants, len(receivers))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i, rc := range receivers {
		out[i] = receiverTenants{Name: rc.Name, Address: rc.Address, Tenants: []TenantStatus{}}
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			list, err := u.fetchTenants(ctx, auth, rc.Address)
			if err != nil {
				out[i].Error = err.Error()
				return
			}
			out[i].Tenants = list
		})
	}
	wg.Wait()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (u *UI) fetchTenants(ctx context.Context, auth, addr string) ([]TenantStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	scheme := u.opts.ReceiverScheme
	if scheme == "" {
		scheme = "http"
	}
	target := url.URL{Scheme: scheme, Host: addr, Path: "/api/v1/tenants", RawQuery: "scope=local"}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target.String(), nil)
	if err != nil {
		return nil, err
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := u.opts.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s answered %s", target.String(), resp.Status)
	}
	var env struct {
		Data tenantsJSON `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, fmt.Errorf("%s: %w", target.String(), err)
	}
	var list []TenantStatus
	for _, rt := range env.Data.Receivers {
		list = append(list, rt.Tenants...)
	}
	return nonNil(list), nil
}

// tenantRates turns the cumulative sample counts of successive requests
// into rates, so samples/s costs nothing while nobody looks at the page.
type tenantRates struct {
	mtx      sync.Mutex
	readings []rateReading
}

type rateReading struct {
	at      time.Time
	samples map[string]float64
}

const (
	// rateWindow is the longest span a rate is measured over.
	rateWindow = time.Minute
	// rateMinSpan is the shortest: closer readings are too noisy.
	rateMinSpan = time.Second
)

func newTenantRates() *tenantRates { return &tenantRates{} }

// fill sets SamplesPerSecond of every tenant from the oldest reading of
// the last minute, then records this reading.
func (t *tenantRates) fill(now time.Time, list []TenantStatus) {
	t.mtx.Lock()
	defer t.mtx.Unlock()
	keep := t.readings[:0]
	for _, r := range t.readings {
		if now.Sub(r.at) <= rateWindow {
			keep = append(keep, r)
		}
	}
	t.readings = keep
	var base *rateReading
	for i := range t.readings {
		if now.Sub(t.readings[i].at) >= rateMinSpan {
			base = &t.readings[i]
			break
		}
	}
	cur := rateReading{at: now, samples: make(map[string]float64, len(list))}
	for i := range list {
		ts := &list[i]
		cur.samples[ts.ID] = ts.SamplesAppended
		if base == nil {
			continue
		}
		if old, ok := base.samples[ts.ID]; ok && ts.SamplesAppended >= old {
			rate := (ts.SamplesAppended - old) / now.Sub(base.at).Seconds()
			ts.SamplesPerSecond = &rate
		}
	}
	if n := len(t.readings); n == 0 || now.Sub(t.readings[n-1].at) >= rateMinSpan {
		t.readings = append(t.readings, cur)
	}
}
