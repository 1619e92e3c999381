package storegateway

import (
	"context"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/tsdb/index"
	"github.com/prometheus/prometheus/util/annotations"
	"golang.org/x/sync/errgroup"

	"github.com/atoll-metrics/atoll/block"
	"github.com/atoll-metrics/atoll/storeapi"
)

// blockQuery is one block a Series request reads: the time span it is read
// for (the whole request, or for a finer block the gap it fills in coarser
// data) and the matchers left once its external labels matched.
type blockQuery struct {
	b          *bucketBlock
	mint, maxt int64
	ms         []*labels.Matcher
}

// planSeries picks the blocks a request reads. Within each set of external
// labels, every part of the requested range is read from the coarsest
// resolution not above req.MaxResolution that has a block there; parts
// without such a block fall back to the next finer resolution, down to raw
// data.
func planSeries(blocks []*bucketBlock, req *storeapi.SeriesRequest) []blockQuery {
	type group struct {
		byRes map[int64][]*bucketBlock
		rest  map[*bucketBlock][]*labels.Matcher
	}
	groups := map[string]*group{}
	var keys []string
	for _, b := range blocks {
		res := b.resolution()
		if res > req.MaxResolution || res < 0 {
			continue
		}
		rest, ok := storeapi.MatchExternal(b.ext, req.Matchers)
		if !ok {
			continue
		}
		g := groups[b.extKey]
		if g == nil {
			g = &group{byRes: map[int64][]*bucketBlock{}, rest: map[*bucketBlock][]*labels.Matcher{}}
			groups[b.extKey] = g
			keys = append(keys, b.extKey)
		}
		g.byRes[res] = append(g.byRes[res], b)
		g.rest[b] = rest
	}
	sort.Strings(keys)

	var out []blockQuery
	for _, k := range keys {
		g := groups[k]
		var resolutions []int64
		for r, bs := range g.byRes {
			resolutions = append(resolutions, r)
			sort.Slice(bs, func(i, j int) bool { return bs[i].meta.MinTime < bs[j].meta.MinTime })
		}
		slices.Sort(resolutions)
		slices.Reverse(resolutions)
		var fill func(i int, mint, maxt int64)
		fill = func(i int, mint, maxt int64) {
			if i == len(resolutions) || mint > maxt {
				return
			}
			cursor := mint
			for _, b := range g.byRes[resolutions[i]] {
				lo, hi := b.meta.MinTime, b.meta.MaxTime-1
				if hi < mint || lo > maxt {
					continue
				}
				if lo > cursor {
					fill(i+1, cursor, lo-1)
				}
				out = append(out, blockQuery{b: b, mint: max(lo, mint), maxt: min(hi, maxt), ms: g.rest[b]})
				cursor = max(cursor, b.meta.MaxTime)
			}
			if cursor <= maxt {
				fill(i+1, cursor, maxt)
			}
		}
		fill(0, req.MinTime, req.MaxTime)
	}
	return out
}

// servedHere leaves out the blocks made only from blocks another store of
// the process serves (a block still on the receiver's disk after shipping,
// or compacted from such blocks), so a process reads each block once.
func servedHere(blocks []*bucketBlock, skip map[ulid.ULID]struct{}) []*bucketBlock {
	if len(skip) == 0 {
		return blocks
	}
	out := make([]*bucketBlock, 0, len(blocks))
	for _, b := range blocks {
		sources := b.meta.Compaction.Sources
		if len(sources) == 0 {
			sources = []ulid.ULID{b.meta.ULID}
		}
		elsewhere := true
		for _, id := range sources {
			if _, ok := skip[id]; !ok {
				elsewhere = false
				break
			}
		}
		if !elsewhere {
			out = append(out, b)
		}
	}
	return out
}

// seriesBatch is series of one block ready to hand to the caller.
type seriesBatch struct {
	series []storeapi.Series
}

// Series implements storeapi.Store. Series come block by block, so a series
// stored in several blocks is returned once per block, each time with the
// chunks of that block; the querier merges them. Up to QueryConcurrency
// blocks are read at once, SeriesBatchSize series at a time.
func (g *Gateway) Series(ctx context.Context, req *storeapi.SeriesRequest, f storeapi.SeriesFunc) (annotations.Annotations, error) {
	defer g.observe("series", time.Now())
	if req.MinTime > req.MaxTime {
		return nil, nil
	}
	aggr, err := aggregateOf(req.Aggregate)
	if err != nil {
		return nil, err
	}
	blocks, release := g.acquire(req.MinTime, req.MaxTime)
	defer release()
	plan := planSeries(servedHere(blocks, req.SkipBlocks), req)
	g.m.blocksQueried.Observe(float64(len(plan)))
	if len(plan) == 0 {
		return nil, nil
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(g.opts.QueryConcurrency)
	batches := make(chan *seriesBatch, g.opts.QueryConcurrency)
	send := func(b *seriesBatch) error {
		select {
		case batches <- b:
			return nil
		case <-ectx.Done():
			return ectx.Err()
		}
	}
	readErr := make(chan error, 1)
	go func() {
		for _, q := range plan {
			if ectx.Err() != nil {
				break
			}
			eg.Go(func() error {
				return blockError(q.b, g.readBlock(ectx, q, req, aggr, send))
			})
		}
		readErr <- eg.Wait()
		close(batches)
	}()

	var callErr error
	for b := range batches {
		if callErr != nil {
			continue // drain so the readers can finish
		}
		for _, s := range b.series {
			if err := f(s); err != nil {
				callErr = err
				cancel()
				break
			}
			g.m.seriesReturned.Inc()
			g.m.chunksReturned.Add(float64(len(s.Chunks)))
			n := 0
			for _, c := range s.Chunks {
				n += c.Chunk.NumSamples()
			}
			g.m.samplesReturned.Add(float64(n))
		}
	}
	err = <-readErr
	if callErr != nil {
		return nil, callErr
	}
	if err != nil {
		return nil, err
	}
	return nil, ctx.Err()
}

// readBlock reads the series of one block and sends them in batches.
func (g *Gateway) readBlock(ctx context.Context, q blockQuery, req *storeapi.SeriesRequest, aggr string, send func(*seriesBatch) error) error {
	if q.b.resolution() > 0 {
		if aggr == block.AggrAvg && !req.SkipChunks {
			return g.readAverages(ctx, q, send)
		}
		if aggr == block.AggrAvg {
			// Every downsampled series has a count: it names the series.
			aggr = block.AggrCount
		}
		q.ms = append(slices.Clip(q.ms), labels.MustNewMatcher(labels.MatchEqual, block.AggregateLabel, aggr))
	}
	refs, err := q.b.seriesRefs(ctx, q.ms)
	if err != nil {
		return err
	}
	d := newSeriesDecoder(q)
	for len(refs) > 0 {
		n := min(len(refs), g.opts.SeriesBatchSize)
		entries, err := q.b.series(ctx, refs[:n])
		if err != nil {
			return err
		}
		refs = refs[n:]
		out := &seriesBatch{series: make([]storeapi.Series, 0, len(entries))}
		var wants []chunkWant
		for _, e := range entries {
			s, ok, err := d.decode(e, req.SkipChunks)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			out.series = append(out.series, storeapi.Series{Labels: s.lset, Chunks: s.chks, Resolution: q.b.resolution()})
			wants = s.appendWants(wants)
		}
		if len(wants) > 0 {
			if err := q.b.loadChunks(ctx, wants); err != nil {
				return err
			}
		}
		if len(out.series) > 0 {
			if err := send(out); err != nil {
				return err
			}
		}
	}
	return nil
}

// decodedSeries is one series entry decoded for a query: its labels as
// returned, and the chunks in the query's span (data not yet loaded).
type decodedSeries struct {
	lset labels.Labels
	chks []chunks.Meta
	// bounds[i] is where chks[i] ends at the latest, or 0.
	bounds []int64
}

func (s *decodedSeries) appendWants(wants []chunkWant) []chunkWant {
	for i := range s.chks {
		wants = append(wants, chunkWant{meta: &s.chks[i], bound: s.bounds[i]})
	}
	return wants
}

// maxSymbolMemo bounds the symbols one block query remembers.
const maxSymbolMemo = 1 << 16

// seriesDecoder decodes series entries of one block for one query. It
// copies every symbol it looks up once, so returned labels never point
// into the mapped index header, and repeated names and values are looked
// up once.
type seriesDecoder struct {
	q       blockQuery
	dec     index.Decoder
	memo    map[uint32]string
	scratch labels.ScratchBuilder
	builder *labels.Builder
	all     []chunks.Meta
	strip   bool
}

func newSeriesDecoder(q blockQuery) *seriesDecoder {
	d := &seriesDecoder{
		q:       q,
		memo:    map[uint32]string{},
		builder: labels.NewBuilder(labels.EmptyLabels()),
		strip:   q.b.resolution() > 0,
	}
	d.dec = index.Decoder{LookupSymbol: d.lookup}
	return d
}

func (d *seriesDecoder) lookup(ctx context.Context, o uint32) (string, error) {
	if s, ok := d.memo[o]; ok {
		return s, nil
	}
	s, err := d.q.b.header.lookupSymbol(ctx, o)
	if err != nil {
		return "", err
	}
	s = strings.Clone(s)
	if len(d.memo) >= maxSymbolMemo {
		clear(d.memo)
	}
	d.memo[o] = s
	return s, nil
}

// decode returns the series of entry with the external labels added (and
// the aggregate label of a downsampled block removed) and its chunks in
// the query's span; ok is false when it has none there.
func (d *seriesDecoder) decode(entry []byte, skipChunks bool) (s decodedSeries, ok bool, err error) {
	if err := d.dec.Series(entry, &d.scratch, &d.all); err != nil {
		return s, false, err
	}
	for i, c := range d.all {
		if c.MaxTime < d.q.mint || c.MinTime > d.q.maxt {
			continue
		}
		ok = true
		if skipChunks {
			break
		}
		bound := int64(0)
		if i+1 < len(d.all) {
			seg, off := chunks.BlockChunkRef(c.Ref).Unpack()
			nseg, noff := chunks.BlockChunkRef(d.all[i+1].Ref).Unpack()
			if nseg == seg && noff > off {
				bound = int64(noff)
			}
		}
		s.chks = append(s.chks, chunks.Meta{Ref: c.Ref, MinTime: c.MinTime, MaxTime: c.MaxTime})
		s.bounds = append(s.bounds, bound)
	}
	if !ok {
		return s, false, nil
	}
	d.builder.Reset(d.scratch.Labels())
	if d.strip {
		d.builder.Del(block.AggregateLabel)
	}
	d.q.b.ext.Range(func(l labels.Label) { d.builder.Set(l.Name, l.Value) })
	s.lset = d.builder.Labels()
	return s, true, nil
}
