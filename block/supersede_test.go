package block

import (
	"testing"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/tsdb"
)

func meta(id uint64, res int64, sources ...uint64) *Meta {
	m := &Meta{BlockMeta: tsdb.BlockMeta{ULID: ulid.MustNew(id, nil), Version: 1}}
	for _, s := range sources {
		m.Compaction.Sources = append(m.Compaction.Sources, ulid.MustNew(s, nil))
	}
	m.Thanos.Downsample.Resolution = res
	return m
}

func TestSuperseded(t *testing.T) {
	for _, tc := range []struct {
		name   string
		blocks []*Meta
		want   map[uint64]uint64 // superseded -> by
	}{
		{"independent", []*Meta{meta(1, 0, 1), meta(2, 0, 2)}, nil},
		{"compacted covers its sources", []*Meta{meta(1, 0, 1), meta(2, 0, 2), meta(3, 0, 1, 2)}, map[uint64]uint64{1: 3, 2: 3}},
		{"equal sources: larger ULID wins", []*Meta{meta(4, 0, 1, 2), meta(5, 0, 1, 2)}, map[uint64]uint64{4: 5}},
		{"resolutions apart", []*Meta{meta(3, 0, 1, 2), meta(4, Resolution5m, 1, 2)}, nil},
		{"partial overlap is not supersession", []*Meta{meta(3, 0, 1, 2), meta(4, 0, 2, 5)}, nil},
		{"no sources: own source", []*Meta{meta(1, 0), meta(3, 0, 1, 2)}, map[uint64]uint64{1: 3}},
		{"chains", []*Meta{meta(3, 0, 1, 2), meta(6, 0, 1, 2, 5), meta(7, 5*60000, 1, 2), meta(8, 5*60000, 1, 2, 5)}, map[uint64]uint64{3: 6, 7: 8}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Superseded(tc.blocks)
			if len(got) != len(tc.want) {
				t.Fatalf("superseded %v, want %v", got, tc.want)
			}
			for b, by := range tc.want {
				if g, ok := got[ulid.MustNew(b, nil)]; !ok || g != ulid.MustNew(by, nil) {
					t.Errorf("block %d superseded by %v, want %d", b, g.Time(), by)
				}
			}
		})
	}
}
