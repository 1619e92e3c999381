package main

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/atoll-metrics/atoll/block"
	"github.com/atoll-metrics/atoll/bucket"
	"github.com/atoll-metrics/atoll/ingest"
	"github.com/atoll-metrics/atoll/ring"
	"github.com/atoll-metrics/atoll/storeapi"
	"github.com/atoll-metrics/atoll/web"
)

// The adapters below hand the web UI what it shows, from the types of the
// packages that hold it; the UI itself imports none of them.

// newWebOptions fills what every component tells the UI about itself.
func newWebOptions(component, instance string, flags map[string]string, logger *slog.Logger) web.Options {
	return web.Options{
		Component:  component,
		InstanceID: instance,
		BuildInfo:  buildInfo(),
		Flags:      flags,
		Logger:     logger.With("subsystem", "web"),
	}
}

// webOptions tells the UI about the query API this process serves.
func (c *queryConfig) webOptions(o web.Options) web.Options {
	o.QueryAPI = true
	o.DefaultTenant = c.defaultTenant
	o.AllTenants = c.allTenants
	return o
}

// endpointStores reports a querier's Store API endpoints.
func endpointStores(e *storeapi.Endpoints) func(context.Context) []web.StoreStatus {
	return func(ctx context.Context) []web.StoreStatus {
		var out []web.StoreStatus
		for _, s := range e.Status(ctx) {
			src := web.SourceRing
			if s.Static {
				src = web.SourceStatic
			}
			out = append(out, web.StoreStatus{
				Name:      s.Name,
				Component: s.Info.Component,
				Healthy:   s.Healthy,
				Source:    src,
				LastCheck: s.LastCheck,
				LastError: s.LastError,
				LabelSets: s.Info.LabelSets,
				MinTime:   s.Info.MinTime,
				MaxTime:   s.Info.MaxTime,
			})
		}
		return out
	}
}

// localStores reports stores inside this process, asked at once.
func localStores(stores ...storeapi.Store) func(context.Context) []web.StoreStatus {
	return func(ctx context.Context) []web.StoreStatus {
		out := make([]web.StoreStatus, 0, len(stores))
		for _, s := range stores {
			info, err := s.Info(ctx)
			out = append(out, web.StoreStatus{
				Name:      s.Name(),
				Component: info.Component,
				Healthy:   err == nil,
				Source:    web.SourceLocal,
				LastCheck: time.Now(),
				LastError: err,
				LabelSets: info.LabelSets,
				MinTime:   info.MinTime,
				MaxTime:   info.MaxTime,
			})
		}
		return out
	}
}

// samplesAppendedMetric counts each tenant TSDB's appended samples; the
// tenant TSDBs register it with a tenant label.
const samplesAppendedMetric = "prometheus_tsdb_head_samples_appended_total"

// receiverTenants reports the tenant TSDBs of a receiver core, with the
// limits that apply to them.
func receiverTenants(core *receiverCore, limits ingest.LimitsConfig, gatherer prometheus.Gatherer) func(context.Context) ([]web.TenantStatus, error) {
	return func(context.Context) ([]web.TenantStatus, error) {
		shards := core.shards.Load()
		if shards == nil {
			return nil, nil
		}
		appended := map[string]float64{}
		mfs, err := gatherer.Gather()
		if err != nil {
			return nil, err
		}
		for _, mf := range mfs {
			if mf.GetName() != samplesAppendedMetric {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, lp := range m.GetLabel() {
					if lp.GetName() == "tenant" {
						appended[lp.GetValue()] += m.GetCounter().GetValue()
					}
				}
			}
		}
		var out []web.TenantStatus
		for _, t := range shards.Tenants() {
			head := t.DB().Head()
			l := limits.For(t.ID())
			ts := web.TenantStatus{
				ID:              t.ID(),
				HeadSeries:      head.NumSeries(),
				Blocks:          len(t.DB().Blocks()),
				SamplesAppended: appended[t.ID()],
				Limits:          web.TenantLimit{IngestionRate: l.IngestionRate, IngestionBurst: l.IngestionBurst, MaxSeries: l.MaxSeries},
			}
			if ts.HeadSeries > 0 {
				ts.HeadMinTime, ts.HeadMaxTime = head.MinTime(), head.MaxTime()
			}
			out = append(out, ts)
		}
		return out, nil
	}
}

// ringReceivers lists the receivers of the ring, for a querier gathering
// their tenants; none until the ring is joined.
func ringReceivers(joined *atomic.Pointer[ring.Ring]) func() []web.Receiver {
	return func() []web.Receiver {
		rg := joined.Load()
		if rg == nil {
			return nil
		}
		var out []web.Receiver
		for _, m := range rg.Snapshot().Members() {
			if m.Role == ring.RoleReceiver && m.HTTPAddr != "" {
				out = append(out, web.Receiver{Name: m.ID, Address: m.HTTPAddr})
			}
		}
		return out
	}
}

// bucketBlocks lists a bucket's blocks and marks; the fetcher reads each
// meta.json and mark once and keeps it.
func bucketBlocks(bkt bucket.Bucket, logger *slog.Logger) func(context.Context) (*web.BlockList, error) {
	f := block.NewFetcher(bkt, logger)
	return func(ctx context.Context) (*web.BlockList, error) {
		set, err := f.Fetch(ctx)
		if err != nil {
			return nil, err
		}
		out := &web.BlockList{Label: bkt.Name(), Unreadable: map[string]string{}}
		for _, b := range set.Sorted() {
			wb := web.Block{Meta: b.Meta}
			if b.Deletion != nil {
				wb.Deletion = b.Deletion
			}
			if b.NoCompact != nil {
				wb.NoCompact = b.NoCompact
			}
			out.Blocks = append(out.Blocks, wb)
		}
		for id := range set.Partial {
			out.Partial = append(out.Partial, id.String())
		}
		for id, err := range set.Unreadable {
			out.Unreadable[id.String()] = err.Error()
		}
		return out, nil
	}
}
