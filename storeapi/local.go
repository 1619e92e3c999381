package storeapi

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
)

// TSDB is one local TSDB and the external labels that identify it; a
// tsdbshard tenant is one.
type TSDB interface {
	ExternalLabels() labels.Labels
	// TimeRange bounds the samples held; an empty TSDB returns
	// (math.MaxInt64, math.MinInt64).
	TimeRange() (mint, maxt int64)
	storage.Queryable
	storage.ChunkQueryable
	storage.ExemplarQueryable
	Metadata(metric string, limit int) map[string]metadata.Metadata
}

// Local serves the TSDBs of this process as a Store.
type Local struct {
	name      string
	component string
	tsdbs     func() []TSDB
}

// NewLocal returns a Store over the TSDBs that tsdbs lists at each
// call, so TSDBs opened later (a new tenant) are seen at once.
func NewLocal(name, component string, tsdbs func() []TSDB) *Local {
	return &Local{name: name, component: component, tsdbs: tsdbs}
}

var _ Store = (*Local)(nil)

// Name implements Store.
func (s *Local) Name() string { return s.name }

// Info implements Store.
func (s *Local) Info(context.Context) (Info, error) {
	info := emptyRange
	info.Component = s.component
	for _, db := range s.tsdbs() {
		mint, maxt := db.TimeRange()
		info.MinTime = min(info.MinTime, mint)
		info.MaxTime = max(info.MaxTime, maxt)
		info.LabelSets = append(info.LabelSets, db.ExternalLabels())
	}
	return info, nil
}

// selected returns the TSDBs that may hold data for the request and the
// matchers left for each once its external labels are checked.
func (s *Local) selected(mint, maxt int64, ms []*labels.Matcher) ([]TSDB, [][]*labels.Matcher) {
	var dbs []TSDB
	var rest [][]*labels.Matcher
	for _, db := range s.tsdbs() {
		lo, hi := db.TimeRange()
		if lo > maxt || hi < mint {
			continue
		}
		r, ok := MatchExternal(db.ExternalLabels(), ms)
		if !ok {
			continue
		}
		r = orEverySeries(r)
		dbs = append(dbs, db)
		rest = append(rest, r)
	}
	return dbs, rest
}

// everySeries selects every series a TSDB holds: every stored series has a
// name.
var everySeries = labels.MustNewMatcher(labels.MatchRegexp, labels.MetricName, ".+")

// orEverySeries returns ms, or a matcher of every series when external
// labels took all of them: a TSDB needs one matcher to select anything.
func orEverySeries(ms []*labels.Matcher) []*labels.Matcher {
	if len(ms) == 0 {
		return []*labels.Matcher{everySeries}
	}
	return ms
}

// Series implements Store.
func (s *Local) Series(ctx context.Context, req *SeriesRequest, f SeriesFunc) (annotations.Annotations, error) {
	p, err := s.open(req)
	if err != nil {
		return nil, err
	}
	defer p.close()
	return p.series(ctx, req, f)
}

// blockLister is a TSDB that names its persisted blocks, as a tsdbshard
// tenant does.
type blockLister interface {
	BlockIDs() []ulid.ULID
}

// openTSDBs is a request's TSDBs with their chunk queriers open: the blocks
// the queriers read stay on disk until close, even past retention.
type openTSDBs struct {
	dbs []TSDB
	qs  []storage.ChunkQuerier
	ms  [][]*labels.Matcher
}

func (s *Local) open(req *SeriesRequest) (*openTSDBs, error) {
	dbs, rest := s.selected(req.MinTime, req.MaxTime, req.Matchers)
	p := &openTSDBs{ms: rest}
	for _, db := range dbs {
		q, err := db.ChunkQuerier(req.MinTime, req.MaxTime)
		if err != nil {
			p.close()
			return nil, fmt.Errorf("open chunk querier: %w", err)
		}
		p.dbs = append(p.dbs, db)
		p.qs = append(p.qs, q)
	}
	return p, nil
}

// blocks lists the blocks of the open TSDBs. Listed after the queriers
// opened, it holds every block they read that still exists, plus at most
// blocks cut from the head since (not shipped yet, so in no bucket).
func (p *openTSDBs) blocks() map[ulid.ULID]struct{} {
	out := map[ulid.ULID]struct{}{}
	for _, db := range p.dbs {
		if bl, ok := db.(blockLister); ok {
			for _, id := range bl.BlockIDs() {
				out[id] = struct{}{}
			}
		}
	}
	return out
}

func (p *openTSDBs) close() {
	for _, q := range p.qs {
		_ = q.Close()
	}
}

func (p *openTSDBs) series(ctx context.Context, req *SeriesRequest, f SeriesFunc) (annotations.Annotations, error) {
	var warns annotations.Annotations
	for i, q := range p.qs {
		w, err := seriesFromQuerier(ctx, q, p.dbs[i].ExternalLabels(), req, p.ms[i], f)
		warns.Merge(w)
		if err != nil {
			return warns, err
		}
	}
	return warns, nil
}

func seriesFromQuerier(ctx context.Context, q storage.ChunkQuerier, ext labels.Labels, req *SeriesRequest, ms []*labels.Matcher, f SeriesFunc) (annotations.Annotations, error) {
	hints := &storage.SelectHints{Start: req.MinTime, End: req.MaxTime}
	if req.Hints != nil {
		h := *req.Hints
		hints = &h
	}
	if req.SkipChunks {
		hints.Func = "series"
	}
	set := q.Select(ctx, false, hints, ms...)
	b := labels.NewBuilder(labels.EmptyLabels())
	var (
		it   chunks.Iterator
		chks []chunks.Meta
	)
	for set.Next() {
		series := set.At()
		b.Reset(series.Labels())
		ext.Range(func(l labels.Label) { b.Set(l.Name, l.Value) })
		chks = chks[:0]
		if !req.SkipChunks {
			it = series.Iterator(it)
			for it.Next() {
				chks = append(chks, it.At())
			}
			if err := it.Err(); err != nil {
				return set.Warnings(), fmt.Errorf("iterate chunks of %s: %w", series.Labels(), err)
			}
		}
		if err := f(Series{Labels: b.Labels(), Chunks: chks}); err != nil {
			return set.Warnings(), err
		}
	}
	return set.Warnings(), set.Err()
}

// LabelNames implements Store.
func (s *Local) LabelNames(ctx context.Context, req *LabelsRequest) ([]string, annotations.Annotations, error) {
	dbs, rest := s.selected(req.MinTime, req.MaxTime, req.Matchers)
	var (
		sets  [][]string
		warns annotations.Annotations
	)
	for i, db := range dbs {
		names, w, err := labelQuery(db, req, func(q storage.Querier) ([]string, annotations.Annotations, error) {
			if len(req.Matchers) == 0 {
				return q.LabelNames(ctx, &storage.LabelHints{Limit: req.Limit})
			}
			return q.LabelNames(ctx, &storage.LabelHints{Limit: req.Limit}, rest[i]...)
		})
		warns.Merge(w)
		if err != nil {
			return nil, warns, err
		}
		db.ExternalLabels().Range(func(l labels.Label) { names = append(names, l.Name) })
		sets = append(sets, names)
	}
	return MergeStrings(sets, req.Limit), warns, nil
}

// LabelValues implements Store.
func (s *Local) LabelValues(ctx context.Context, name string, req *LabelsRequest) ([]string, annotations.Annotations, error) {
	dbs, rest := s.selected(req.MinTime, req.MaxTime, req.Matchers)
	var (
		sets  [][]string
		warns annotations.Annotations
	)
	for i, db := range dbs {
		if ext := db.ExternalLabels(); ext.Has(name) {
			sets = append(sets, []string{ext.Get(name)})
			continue
		}
		values, w, err := labelQuery(db, req, func(q storage.Querier) ([]string, annotations.Annotations, error) {
			if len(req.Matchers) == 0 {
				return q.LabelValues(ctx, name, &storage.LabelHints{Limit: req.Limit})
			}
			return q.LabelValues(ctx, name, &storage.LabelHints{Limit: req.Limit}, rest[i]...)
		})
		warns.Merge(w)
		if err != nil {
			return nil, warns, err
		}
		sets = append(sets, values)
	}
	return MergeStrings(sets, req.Limit), warns, nil
}

func labelQuery(db TSDB, req *LabelsRequest, f func(storage.Querier) ([]string, annotations.Annotations, error)) ([]string, annotations.Annotations, error) {
	q, err := db.Querier(req.MinTime, req.MaxTime)
	if err != nil {
		return nil, nil, fmt.Errorf("open querier: %w", err)
	}
	defer q.Close()
	out, warns, err := f(q)
	// Strings from a TSDB may point into memory that Close releases.
	out = slices.Clone(out)
	for i := range out {
		out[i] = strings.Clone(out[i])
	}
	return out, warns, err
}

// Exemplars implements Store.
func (s *Local) Exemplars(ctx context.Context, mint, maxt int64, matchers [][]*labels.Matcher) ([]exemplar.QueryResult, error) {
	var out []exemplar.QueryResult
	for _, db := range s.tsdbs() {
		ext := db.ExternalLabels()
		var sets [][]*labels.Matcher
		for _, ms := range matchers {
			if r, ok := MatchExternal(ext, ms); ok {
				sets = append(sets, orEverySeries(r))
			}
		}
		if len(sets) == 0 {
			continue
		}
		q, err := db.ExemplarQuerier(ctx)
		if err != nil {
			return nil, fmt.Errorf("open exemplar querier: %w", err)
		}
		res, err := q.Select(mint, maxt, sets...)
		if err != nil {
			return nil, err
		}
		b := labels.NewBuilder(labels.EmptyLabels())
		for _, r := range res {
			b.Reset(r.SeriesLabels)
			ext.Range(func(l labels.Label) { b.Set(l.Name, l.Value) })
			out = append(out, exemplar.QueryResult{SeriesLabels: b.Labels(), Exemplars: r.Exemplars})
		}
	}
	return out, nil
}

// Metadata implements Store.
func (s *Local) Metadata(_ context.Context, req *MetadataRequest) (map[string][]metadata.Metadata, error) {
	out := map[string][]metadata.Metadata{}
	for _, db := range s.tsdbs() {
		if _, ok := MatchExternal(db.ExternalLabels(), req.Matchers); !ok {
			continue
		}
		for name, m := range db.Metadata(req.Metric, req.Limit) {
			if !slices.Contains(out[name], m) {
				out[name] = append(out[name], m)
			}
		}
	}
	return out, nil
}

// MergeStrings unites label names or values from several sources into one
// sorted set without duplicates, cut at limit when limit is positive. Stores
// answer label questions with it.
func MergeStrings(sets [][]string, limit int) []string {
	n := 0
	for _, s := range sets {
		n += len(s)
	}
	out := make([]string, 0, n)
	for _, s := range sets {
		out = append(out, s...)
	}
	sort.Strings(out)
	out = slices.Compact(out)
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}
