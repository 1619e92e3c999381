package tsdbshard

import (
	"context"
	"math"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/atoll-metrics/atoll/ship"
)

// Tenant is one tenant's TSDB with the external labels that identify it.
type Tenant struct {
	id        string
	dir       string
	extLabels labels.Labels
	db        *tsdb.DB
	refs      *SeriesCache
	metadata  *metadataStore
	shipper   *ship.Shipper
}

var (
	_ storage.AppendableV2      = (*Tenant)(nil)
	_ storage.Queryable         = (*Tenant)(nil)
	_ storage.ChunkQueryable    = (*Tenant)(nil)
	_ storage.ExemplarQueryable = (*Tenant)(nil)
)

// ID is the tenant id.
func (t *Tenant) ID() string { return t.id }

// Dir is the TSDB directory, where finished blocks wait to be shipped.
func (t *Tenant) Dir() string { return t.dir }

// ExternalLabels tell this TSDB apart from every other one: the tenant label
// plus the receiver's own external labels (its replica label).
func (t *Tenant) ExternalLabels() labels.Labels { return t.extLabels }

// AppenderV2 returns an appender on the tenant's head. Commit writes the WAL
// before returning, so a committed sample survives the process being killed.
func (t *Tenant) AppenderV2(ctx context.Context) storage.AppenderV2 { return t.db.AppenderV2(ctx) }

// SeriesRefs remembers the TSDB series ref of label sets seen before.
func (t *Tenant) SeriesRefs() *SeriesCache { return t.refs }

// Querier implements storage.Queryable over the tenant's head and blocks.
func (t *Tenant) Querier(mint, maxt int64) (storage.Querier, error) { return t.db.Querier(mint, maxt) }

// ChunkQuerier implements storage.ChunkQueryable.
func (t *Tenant) ChunkQuerier(mint, maxt int64) (storage.ChunkQuerier, error) {
	return t.db.ChunkQuerier(mint, maxt)
}

// ExemplarQuerier implements storage.ExemplarQueryable.
func (t *Tenant) ExemplarQuerier(ctx context.Context) (storage.ExemplarQuerier, error) {
	return t.db.ExemplarQuerier(ctx)
}

// TimeRange is the span of samples held, blocks and head together. An empty
// TSDB reports math.MaxInt64, math.MinInt64 so it matches no query.
func (t *Tenant) TimeRange() (mint, maxt int64) {
	mint, maxt = int64(math.MaxInt64), int64(math.MinInt64)
	for _, b := range t.db.Blocks() {
		m := b.Meta()
		mint = min(mint, m.MinTime)
		maxt = max(maxt, m.MaxTime)
	}
	if h := t.db.Head(); h.NumSeries() > 0 {
		mint = min(mint, h.MinTime())
		maxt = max(maxt, h.MaxTime())
	}
	return mint, maxt
}

// BlockIDs lists the blocks on disk, so a store over the bucket they are
// shipped to can leave them to this TSDB.
func (t *Tenant) BlockIDs() []ulid.ULID {
	bs := t.db.Blocks()
	out := make([]ulid.ULID, len(bs))
	for i, b := range bs {
		out[i] = b.Meta().ULID
	}
	return out
}

// HeadSeries is the number of series in the head.
func (t *Tenant) HeadSeries() uint64 { return t.db.Head().NumSeries() }

// DB exposes the TSDB for block lifecycle work (shipping, flushing).
func (t *Tenant) DB() *tsdb.DB { return t.db }

func (t *Tenant) close() error { return t.db.Close() }
