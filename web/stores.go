package web

import (
	"net/http"
	"sort"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

// How a querier came to use a store.
const (
	// SourceLocal is a store inside this process.
	SourceLocal = "local"
	// SourceStatic is a store given on the command line (--store).
	SourceStatic = "static"
	// SourceRing is a store the ring announced.
	SourceRing = "ring"
)

// StoreStatus is what a querier knows of one store it uses.
type StoreStatus struct {
	// Name is the store's address, or its name for stores in this process.
	Name string
	// Component is what the store said it is (receive, store, all); empty
	// for a store that never answered.
	Component string
	// Healthy says the store answered its last check; unhealthy stores are
	// left out of queries.
	Healthy bool
	// Source is SourceLocal, SourceStatic or SourceRing.
	Source    string
	LastCheck time.Time
	LastError error
	// LabelSets are the external labels of the TSDBs or block groups
	// behind the store.
	LabelSets []labels.Labels
	// MinTime and MaxTime bound the samples the store holds, in
	// milliseconds.
	MinTime, MaxTime int64
}

// storeJSON is one entry of /api/v1/stores: Thanos's EndpointStatus, plus
// health and source, which Thanos's UI derives from the error and Atoll's
// shows.
type storeJSON struct {
	Name      string          `json:"name"`
	LastCheck time.Time       `json:"lastCheck"`
	LastError *string         `json:"lastError"`
	LabelSets []labels.Labels `json:"labelSets"`
	MinTime   int64           `json:"minTime"`
	MaxTime   int64           `json:"maxTime"`
	Healthy   bool            `json:"healthy"`
	Source    string          `json:"source"`
}

// stores answers /api/v1/stores in Thanos's shape: entries grouped by
// component. Stores that never answered are listed under "unknown" rather
// than left out, since they are the ones an operator looks for.
func (u *UI) stores(w http.ResponseWriter, r *http.Request) {
	out := map[string][]storeJSON{}
	for _, s := range u.opts.Stores(r.Context()) {
		c := s.Component
		if c == "" {
			c = "unknown"
		}
		e := storeJSON{
			Name:      s.Name,
			LastCheck: s.LastCheck,
			LabelSets: s.LabelSets,
			MinTime:   s.MinTime,
			MaxTime:   s.MaxTime,
			Healthy:   s.Healthy,
			Source:    s.Source,
		}
		if e.LabelSets == nil {
			e.LabelSets = []labels.Labels{}
		}
		if s.LastError != nil {
			msg := s.LastError.Error()
			e.LastError = &msg
		}
		out[c] = append(out[c], e)
	}
	for _, list := range out {
		sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	}
	writeData(w, out)
}
