package ingest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"

	"github.com/atoll-metrics/atoll/tenant"
	"github.com/atoll-metrics/atoll/tsdbshard"
)

// seriesResult is what happened to the series of one write: the worst
// outcome and, per refused series, its index into the request and one line
// on the first refusal.
type seriesResult struct {
	outcome   outcome
	conflicts []uint32
	invalid   []uint32
	limited   []uint32
	message   string
	// stored counts float and histogram samples appended.
	stored int
	// refused counts samples not appended, by conflict or invalid input.
	refused int
}

func (r *seriesResult) refuse(o outcome, idx uint32, samples int, msg string) {
	switch o {
	case outcomeConflict:
		r.conflicts = append(r.conflicts, idx)
	case outcomeInvalid:
		r.invalid = append(r.invalid, idx)
	case outcomeLimited:
		r.limited = append(r.limited, idx)
	}
	r.refused += samples
	if o > r.outcome {
		r.outcome = o
		r.message = msg
	} else if r.message == "" {
		r.message = msg
	}
}

// localWriter appends series to this process's tenant TSDBs.
type localWriter struct {
	shards   *tsdbshard.MultiTSDB
	limits   LimitsConfig
	reserved reservedLabels
	pool     sync.Pool // of *appendScratch
}

// appendScratch is per-request reusable state.
type appendScratch struct {
	builder   labels.ScratchBuilder
	exemplars []exemplar.Exemplar
	// seriesRoom is how many new series the tenant may still create in
	// this request; negative means unlimited.
	seriesRoom int
	// opts are the append options of this request.
	opts storage.AOptions
}

func newLocalWriter(shards *tsdbshard.MultiTSDB, limits LimitsConfig, reserved []string) *localWriter {
	return &localWriter{shards: shards, limits: limits, reserved: newReservedLabels(reserved)}
}

// write appends the series of wr listed in only (all of them when only is
// nil). A returned error means nothing was stored (the commit failed or the
// TSDB is closed); otherwise the result tells series by series.
//
// rejectOOO refuses out-of-order samples even when the TSDB's window would
// take them: client writes get the out-of-order policy they asked for,
// while a replica's copy that a newer write overtook on the way still fits
// in the window.
func (w *localWriter) write(ctx context.Context, tenantID string, wr *writeRequest, only []uint32, rejectOOO bool) (seriesResult, error) {
	var res seriesResult
	t, err := w.shards.Tenant(tenantID)
	if err != nil {
		if errors.Is(err, tenant.ErrInvalid) {
			return res, err
		}
		return res, fmt.Errorf("%w: %w", errUnavailable, err)
	}
	scratch, _ := w.pool.Get().(*appendScratch)
	if scratch == nil {
		scratch = &appendScratch{}
	}
	defer w.pool.Put(scratch)

	scratch.opts = storage.AOptions{RejectOutOfOrder: rejectOOO}
	scratch.seriesRoom = -1
	if maxSeries := w.limits.For(tenantID).MaxSeries; maxSeries > 0 {
		scratch.seriesRoom = max(0, maxSeries-int(t.HeadSeries()))
	}
	app := t.AppenderV2(ctx)
	refs := t.SeriesRefs()
	if only == nil {
		for i := range wr.Timeseries {
			w.appendSeries(app, refs, scratch, &wr.Timeseries[i], uint32(i), &res)
		}
	} else {
		for _, i := range only {
			w.appendSeries(app, refs, scratch, &wr.Timeseries[i], i, &res)
		}
	}
	if err := app.Commit(); err != nil {
		return seriesResult{}, fmt.Errorf("%w: commit to tenant %q: %w", errUnavailable, tenantID, err)
	}
	for _, m := range wr.Metadata {
		if len(m.FamilyName) == 0 {
			continue
		}
		t.SetMetadata(string(m.FamilyName), metadata.Metadata{
			Type: metricTypeOf(m.Type),
			Unit: string(m.Unit),
			Help: string(m.Help),
		})
	}
	return res, nil
}

// appendSeries is the hot path. A series seen before is found in the ref
// cache by the hash the decoder computed, checked against the stored labels,
// and appended by ref: no label building, validation or hashing. A new
// series is validated and its labels copied once, for the head to keep.
func (w *localWriter) appendSeries(app storage.AppenderV2, refs *tsdbshard.SeriesCache, scratch *appendScratch, ts *timeSeries, idx uint32, res *seriesResult) {
	ref, lset, cached := refs.Get(ts.LabelsHash)
	if cached && !sameLabels(lset, ts.Labels) {
		cached = false
	}
	if !cached || len(ts.Exemplars) > 0 {
		err := validateSeries(ts)
		if err == nil {
			err = w.reserved.check(ts)
		}
		if err != nil {
			res.refuse(outcomeInvalid, idx, len(ts.Samples)+len(ts.Histograms), err.Error())
			return
		}
	}
	if !cached {
		lset = ts.BuildLabels(&scratch.builder)
		ref = 0
		if scratch.seriesRoom >= 0 {
			if !seriesExists(app, lset) {
				if scratch.seriesRoom == 0 {
					res.refuse(outcomeLimited, idx, len(ts.Samples)+len(ts.Histograms),
						fmt.Sprintf("series %s: tenant is at its limit of series on this receiver", labelsString(ts.Labels)))
					return
				}
				scratch.seriesRoom--
			}
		}
	}

	var (
		worst    = outcomeStored
		failed   int
		firstErr error
	)
	note := func(err error, o outcome) {
		failed++
		worst = max(worst, o)
		if firstErr == nil {
			firstErr = err
		}
	}
	for _, s := range ts.Samples {
		r, err := app.Append(ref, lset, 0, s.T, s.V, nil, nil, scratch.opts)
		if err != nil {
			note(err, classifyAppendError(err))
			continue
		}
		ref = r
	}
	for _, hs := range ts.Histograms {
		h, fh, err := hs.Decode()
		if err != nil {
			note(fmt.Errorf("%w: %w", errMalformedRequest, err), outcomeInvalid)
			continue
		}
		r, err := app.Append(ref, lset, 0, hs.T, 0, h, fh, scratch.opts)
		if err != nil {
			note(err, classifyAppendError(err))
			continue
		}
		ref = r
	}
	if ref != 0 && len(ts.Exemplars) > 0 {
		w.appendExemplars(app, ref, lset, scratch, ts)
	}
	if ref != 0 && !cached {
		refs.Put(ts.LabelsHash, ref, lset)
	}
	res.stored += len(ts.Samples) + len(ts.Histograms) - failed
	if failed > 0 {
		if worst == outcomeStored {
			worst = outcomeInternal
		}
		res.refuse(worst, idx, failed, fmt.Sprintf("series %s: %v", labelsString(ts.Labels), firstErr))
	}
}

// appendExemplars stores exemplars best-effort, as Prometheus does: a
// duplicate or out-of-order exemplar never fails the write of its samples.
func (w *localWriter) appendExemplars(app storage.AppenderV2, ref storage.SeriesRef, lset labels.Labels, scratch *appendScratch, ts *timeSeries) {
	ea, ok := app.(storage.ExemplarAppenderV2)
	if !ok {
		return
	}
	scratch.exemplars = scratch.exemplars[:0]
	var b labels.ScratchBuilder
	for _, e := range ts.Exemplars {
		scratch.exemplars = append(scratch.exemplars, exemplar.Exemplar{
			Labels: buildLabels(&b, e.Labels),
			Value:  e.V,
			Ts:     e.T,
			HasTs:  true,
		})
	}
	// The exemplar storage wants them in time order.
	slices.SortStableFunc(scratch.exemplars, func(a, b exemplar.Exemplar) int { return cmp.Compare(a.Ts, b.Ts) })
	_, _ = ea.AppendExemplars(ref, lset, scratch.exemplars)
}

// sameLabels reports whether the labels the head stored equal the wire
// labels of a series, guarding the ref cache against hash collisions. It
// walks the stored labels once: asking their length first would walk them
// twice, which showed in profiles of the steady state.
func sameLabels(lset labels.Labels, wire []label) bool {
	i, same := 0, true
	lset.Range(func(l labels.Label) {
		if !same {
			return
		}
		if i >= len(wire) {
			same = false
			return
		}
		w := wire[i]
		same = l.Name == wireUnsafeString(w.Name) && l.Value == wireUnsafeString(w.Value)
		i++
	})
	return same && i == len(wire)
}

// metricTypeOf maps the wire enum to Prometheus's metric type, whose string
// values are the enum names in lower case.
func metricTypeOf(t prompb.MetricMetadata_MetricType) model.MetricType {
	return model.MetricType(strings.ToLower(t.String()))
}

// seriesExists reports whether the head already holds lset, so a series
// limit refuses only series that would be new.
func seriesExists(app storage.AppenderV2, lset labels.Labels) bool {
	g, ok := app.(storage.GetRef)
	if !ok {
		return false
	}
	ref, _ := g.GetRef(lset, lset.Hash())
	return ref != 0
}
