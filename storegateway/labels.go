package storegateway

import (
	"context"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/util/annotations"
	"golang.org/x/sync/errgroup"

	"github.com/atoll-metrics/atoll/block"
	"github.com/atoll-metrics/atoll/storeapi"
)

// LabelNames implements storeapi.Store. Without matchers (besides those on
// external labels) names come from the index headers alone; with matchers,
// from the labels of the matching series.
func (g *Gateway) LabelNames(ctx context.Context, req *storeapi.LabelsRequest) ([]string, annotations.Annotations, error) {
	defer g.observe("label_names", time.Now())
	sets, err := g.perBlock(ctx, req, func(ctx context.Context, b *bucketBlock, rest []*labels.Matcher) ([]string, error) {
		var names []string
		if len(rest) == 0 {
			for _, n := range b.header.labelNames() {
				if !b.isAggregateLabel(n) {
					names = append(names, n)
				}
			}
		} else {
			seen := map[string]struct{}{}
			err := g.scanLabels(ctx, b, rest, func(ls labels.Labels) {
				ls.Range(func(l labels.Label) {
					if _, ok := seen[l.Name]; !ok && !b.isAggregateLabel(l.Name) {
						seen[l.Name] = struct{}{}
						names = append(names, l.Name)
					}
				})
			})
			if err != nil {
				return nil, err
			}
		}
		b.ext.Range(func(l labels.Label) { names = append(names, l.Name) })
		return names, nil
	})
	if err != nil {
		return nil, nil, err
	}
	return storeapi.MergeStrings(sets, req.Limit), nil, nil
}

// LabelValues implements storeapi.Store, with the same sources as
// LabelNames. The value of an external label is its only value.
func (g *Gateway) LabelValues(ctx context.Context, name string, req *storeapi.LabelsRequest) ([]string, annotations.Annotations, error) {
	defer g.observe("label_values", time.Now())
	sets, err := g.perBlock(ctx, req, func(ctx context.Context, b *bucketBlock, rest []*labels.Matcher) ([]string, error) {
		if b.ext.Has(name) {
			return []string{b.ext.Get(name)}, nil
		}
		if b.isAggregateLabel(name) {
			return nil, nil
		}
		var values []string
		if len(rest) == 0 {
			err := b.header.labelValuesFrom(name, "", func(v []byte, _, _ int64) bool {
				values = append(values, string(v))
				return true
			})
			return values, err
		}
		seen := map[string]struct{}{}
		err := g.scanLabels(ctx, b, rest, func(ls labels.Labels) {
			if v := ls.Get(name); v != "" {
				if _, ok := seen[v]; !ok {
					seen[v] = struct{}{}
					values = append(values, v)
				}
			}
		})
		return values, err
	})
	if err != nil {
		return nil, nil, err
	}
	return storeapi.MergeStrings(sets, req.Limit), nil, nil
}

func (b *bucketBlock) isAggregateLabel(name string) bool {
	return name == block.AggregateLabel && b.resolution() > 0
}

// perBlock calls f for every block in the request's time range whose
// external labels the matchers accept, QueryConcurrency at once, with the
// matchers left for the block's index.
func (g *Gateway) perBlock(ctx context.Context, req *storeapi.LabelsRequest, f func(context.Context, *bucketBlock, []*labels.Matcher) ([]string, error)) ([][]string, error) {
	blocks, release := g.acquire(req.MinTime, req.MaxTime)
	defer release()
	var (
		mtx  sync.Mutex
		sets [][]string
	)
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(g.opts.QueryConcurrency)
	for _, b := range blocks {
		rest, ok := storeapi.MatchExternal(b.ext, req.Matchers)
		if !ok {
			continue
		}
		eg.Go(func() error {
			out, err := f(ectx, b, rest)
			if err != nil {
				return blockError(b, err)
			}
			mtx.Lock()
			sets = append(sets, out)
			mtx.Unlock()
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return nil, err
	}
	return sets, nil
}

// scanLabels calls f with the labels (as stored, without external labels)
// of every series of b that matches ms, whatever its time range, as a
// TSDB block's label queries do.
func (g *Gateway) scanLabels(ctx context.Context, b *bucketBlock, ms []*labels.Matcher, f func(labels.Labels)) error {
	if b.resolution() > 0 {
		// One of the aggregates of each raw series is enough.
		ms = append(slices.Clip(ms), labels.MustNewMatcher(labels.MatchEqual, block.AggregateLabel, block.AggrCount))
	}
	refs, err := b.seriesRefs(ctx, ms)
	if err != nil {
		return err
	}
	d := newSeriesDecoder(blockQuery{b: b, ms: ms, mint: math.MinInt64, maxt: math.MaxInt64})
	for len(refs) > 0 {
		n := min(len(refs), g.opts.SeriesBatchSize)
		entries, err := b.series(ctx, refs[:n])
		if err != nil {
			return err
		}
		refs = refs[n:]
		for _, e := range entries {
			if err := d.dec.Series(e, &d.scratch, nil); err != nil {
				return err
			}
			f(d.scratch.Labels())
		}
	}
	return nil
}
