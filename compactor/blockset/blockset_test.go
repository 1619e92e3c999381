package blockset

import (
	"bytes"
	"context"
	"os"
	"path"
	"path/filepath"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/atoll-metrics/atoll/bucket"
	"github.com/atoll-metrics/atoll/ship"
)

func meta(id uint64, res int64, sources ...uint64) *ship.Meta {
	m := &ship.Meta{BlockMeta: tsdb.BlockMeta{ULID: ulid.MustNew(id, nil), Version: 1}}
	for _, s := range sources {
		m.Compaction.Sources = append(m.Compaction.Sources, ulid.MustNew(s, nil))
	}
	m.Thanos.Downsample.Resolution = res
	return m
}

func TestSuperseded(t *testing.T) {
	for _, tc := range []struct {
		name   string
		blocks []*ship.Meta
		want   map[uint64]uint64 // superseded -> by
	}{
		{"independent", []*ship.Meta{meta(1, 0, 1), meta(2, 0, 2)}, nil},
		{"compacted covers its sources", []*ship.Meta{meta(1, 0, 1), meta(2, 0, 2), meta(3, 0, 1, 2)}, map[uint64]uint64{1: 3, 2: 3}},
		{"equal sources: larger ULID wins", []*ship.Meta{meta(4, 0, 1, 2), meta(5, 0, 1, 2)}, map[uint64]uint64{4: 5}},
		{"resolutions apart", []*ship.Meta{meta(3, 0, 1, 2), meta(4, ship.Resolution5m, 1, 2)}, nil},
		{"partial overlap is not supersession", []*ship.Meta{meta(3, 0, 1, 2), meta(4, 0, 2, 5)}, nil},
		{"no sources: own source", []*ship.Meta{meta(1, 0), meta(3, 0, 1, 2)}, map[uint64]uint64{1: 3}},
		{"chains", []*ship.Meta{meta(3, 0, 1, 2), meta(6, 0, 1, 2, 5), meta(7, 5*60000, 1, 2), meta(8, 5*60000, 1, 2, 5)}, map[uint64]uint64{3: 6, 7: 8}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var bs []*Block
			for _, m := range tc.blocks {
				bs = append(bs, &Block{Meta: m})
			}
			got := Superseded(bs)
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

func TestFetchAndLive(t *testing.T) {
	ctx := context.Background()
	bkt, err := bucket.NewFilesystem(filepath.Join(t.TempDir(), "b"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	put := func(m *ship.Meta) {
		dir := t.TempDir()
		if err := ship.WriteMetaToDir(dir, m); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(filepath.Join(dir, ship.MetaFilename))
		if err != nil {
			t.Fatal(err)
		}
		if err := bkt.Upload(ctx, path.Join(m.ULID.String(), ship.MetaFilename), bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatal(err)
		}
	}
	put(meta(1, 0, 1))
	put(meta(2, 0, 2))
	put(meta(3, 0, 1, 2))
	put(meta(9, 0, 9))
	if err := WriteDeletionMark(ctx, bkt, ulid.MustNew(9, nil), "retention", now.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := WriteNoCompactMark(ctx, bkt, ulid.MustNew(2, nil), NoCompactReasonManual, "", now); err != nil {
		t.Fatal(err)
	}
	if err := bkt.Upload(ctx, ulid.MustNew(7, nil).String()+"/index", bytes.NewReader([]byte("x")), 1); err != nil {
		t.Fatal(err)
	}
	set, err := NewFetcher(bkt, nil).Fetch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Blocks) != 4 || len(set.Partial) != 1 {
		t.Fatalf("%d blocks and %d partial, want 4 and 1", len(set.Blocks), len(set.Partial))
	}
	if set.Blocks[ulid.MustNew(2, nil)].NoCompact == nil {
		t.Error("no-compact mark not read")
	}
	ids := func(bs []*Block) (out []uint64) {
		for _, b := range bs {
			out = append(out, b.ID().Time())
		}
		return out
	}
	if got := ids(set.Live(now, 0)); len(got) != 1 || got[0] != 3 {
		t.Errorf("Live for the compactor: %v, want [3]", got)
	}
	// A reader keeps a marked block while the mark is young.
	if got := ids(set.Live(now, 2*time.Hour)); len(got) != 2 {
		t.Errorf("Live keeping young marks: %v, want [3 9]", got)
	}
}
