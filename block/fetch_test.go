package block

import (
	"bytes"
	"context"
	"os"
	"path"
	"path/filepath"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/atoll-metrics/atoll/bucket"
)

func TestFetchAndVisible(t *testing.T) {
	ctx := context.Background()
	bkt, err := bucket.NewFilesystem(filepath.Join(t.TempDir(), "b"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	put := func(m *Meta) {
		dir := t.TempDir()
		if err := WriteMetaToDir(dir, m); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(filepath.Join(dir, MetaFilename))
		if err != nil {
			t.Fatal(err)
		}
		if err := bkt.Upload(ctx, path.Join(m.ULID.String(), MetaFilename), bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatal(err)
		}
	}
	put(meta(1, 0, 1))
	put(meta(2, 0, 2))
	put(meta(3, 0, 1, 2))
	put(meta(9, 0, 9))
	if _, err := WriteDeletionMark(ctx, bkt, ulid.MustNew(9, nil), "retention", now.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := WriteNoCompactMark(ctx, bkt, ulid.MustNew(2, nil), NoCompactReasonManual, "", now); err != nil {
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
	if got := ids(set.Visible(UnlessDeletionMarked(now, 0))); len(got) != 1 || got[0] != 3 {
		t.Errorf("Visible to the compactor: %v, want [3]", got)
	}
	// A reader keeps a marked block while the mark is young.
	if got := ids(set.Visible(UnlessDeletionMarked(now, 2*time.Hour))); len(got) != 2 {
		t.Errorf("Visible keeping young marks: %v, want [3 9]", got)
	}
}
