package block_test

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/atoll-metrics/atoll/block"
	"github.com/atoll-metrics/atoll/bucket"
	"github.com/atoll-metrics/atoll/internal/blockgen"
)

// inspBlock writes a block of n series of two metrics over [mint, maxt)
// with external labels ext and uploads it as the shipper does. It returns
// the block's local directory.
func inspBlock(t *testing.T, bkt bucket.Bucket, ext map[string]string, n int, mint, maxt int64) (ulid.ULID, string) {
	t.Helper()
	ctx := context.Background()
	var series []blockgen.SeriesData
	for i := range n {
		sd := blockgen.SeriesData{Labels: labels.FromStrings(labels.MetricName, []string{"up", "requests_total"}[i%2], "instance", fmt.Sprintf("i-%d", i), "job", fmt.Sprintf("j-%d", i%3))}
		for ts := mint; ts < maxt; ts += 15_000 {
			sd.Floats = append(sd.Floats, blockgen.FloatSample{T: ts, V: float64(ts)})
		}
		series = append(series, sd)
	}
	dir := t.TempDir()
	id := ulid.Make()
	meta, err := blockgen.WriteBlock(ctx, dir, id, mint, maxt, ext, series)
	if err != nil {
		t.Fatal(err)
	}
	blockDir := filepath.Join(dir, id.String())
	if _, err := block.Upload(ctx, bkt, blockDir, meta, nil); err != nil {
		t.Fatal(err)
	}
	return id, blockDir
}

func inspUpload(t *testing.T, bkt bucket.Bucket, src, name string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	inspPut(t, bkt, name, data)
}

func inspPut(t *testing.T, bkt bucket.Bucket, name string, data []byte) {
	t.Helper()
	if err := bkt.Upload(context.Background(), name, strings.NewReader(string(data)), int64(len(data))); err != nil {
		t.Fatal(err)
	}
}

func inspBucket(t *testing.T) bucket.Bucket {
	t.Helper()
	bkt, err := bucket.NewFilesystem(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return bkt
}

const hourMs = int64(time.Hour / time.Millisecond)

func TestFetch(t *testing.T) {
	bkt := inspBucket(t)
	a, _ := inspBlock(t, bkt, map[string]string{"tenant_id": "a"}, 4, 2*hourMs, 4*hourMs)
	b, _ := inspBlock(t, bkt, map[string]string{"tenant_id": "a"}, 4, 0, 2*hourMs)
	c, _ := inspBlock(t, bkt, map[string]string{"tenant_id": "0"}, 4, 0, 2*hourMs)
	partial, _ := inspBlock(t, bkt, nil, 2, 0, hourMs)
	if err := bkt.Delete(context.Background(), path.Join(partial.String(), block.MetaFilename)); err != nil {
		t.Fatal(err)
	}
	bad, _ := inspBlock(t, bkt, nil, 2, 0, hourMs)
	inspPut(t, bkt, path.Join(bad.String(), block.MetaFilename), []byte("{"))
	marked := time.Unix(1_700_000_000, 0)
	inspPut(t, bkt, path.Join(a.String(), "deletion-mark.json"), fmt.Appendf(nil, `{"id":%q,"deletion_time":%d,"version":1}`, a, marked.Unix()))
	inspPut(t, bkt, "not-a-block/file", []byte("x"))

	set, err := block.NewFetcher(bkt, nil).Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var got []ulid.ULID
	for _, b := range set.Sorted() {
		got = append(got, b.ID())
	}
	if want := []ulid.ULID{a, b, c}; !slices.Equal(got, slices.SortedFunc(slices.Values(want), ulid.ULID.Compare)) {
		t.Errorf("blocks %v, want %v", got, want)
	}
	if _, ok := set.Partial[partial]; !ok || len(set.Partial) != 1 {
		t.Errorf("partial %v, want [%s]", set.Partial, partial)
	}
	if _, ok := set.Unreadable[bad]; !ok || len(set.Unreadable) != 1 {
		t.Errorf("unreadable %v, want %s", set.Unreadable, bad)
	}
	for id, blk := range set.Blocks {
		if marked := blk.Deletion != nil; marked != (id == a) {
			t.Errorf("block %s marked for deletion: %v", id, marked)
		}
	}
	if at := set.Blocks[a].Deletion.Time(); !at.Equal(marked) {
		t.Errorf("deletion mark of %s at %v, want %v", a, at, marked)
	}
}

func TestInspectBlock(t *testing.T) {
	bkt := inspBucket(t)
	id, _ := inspBlock(t, bkt, map[string]string{"tenant_id": "a"}, 12, 0, hourMs)
	meta, st, err := block.Inspect(context.Background(), bkt, id, 2)
	if err != nil {
		t.Fatal(err)
	}
	if meta.ULID != id || meta.Thanos.Labels["tenant_id"] != "a" {
		t.Errorf("meta %+v", meta)
	}
	if st.Series != 12 || st.LabelNames != 3 || st.LabelPairs != 2+12+3 {
		t.Errorf("series %d, names %d, pairs %d; want 12, 3, 17", st.Series, st.LabelNames, st.LabelPairs)
	}
	if st.Version != 2 || st.Symbols == 0 || st.SizeBytes == 0 {
		t.Errorf("version %d, symbols %d, size %d", st.Version, st.Symbols, st.SizeBytes)
	}
	wantNames := []block.LabelNameStats{{Name: "instance", Values: 12, Series: 12}, {Name: "job", Values: 3, Series: 12}}
	if !slices.Equal(st.TopNames, wantNames) {
		t.Errorf("top names %+v, want %+v", st.TopNames, wantNames)
	}
	wantPairs := []block.LabelPairStats{{Name: "__name__", Value: "requests_total", Series: 6}, {Name: "__name__", Value: "up", Series: 6}}
	if !slices.Equal(st.TopPairs, wantPairs) {
		t.Errorf("top pairs %+v, want %+v", st.TopPairs, wantPairs)
	}
	if _, _, err := block.Inspect(context.Background(), bkt, ulid.Make(), 2); !bucket.IsNotFound(err) {
		t.Errorf("inspecting a missing block: %v, want not found", err)
	}
}

func TestVerifyBucket(t *testing.T) {
	ctx := context.Background()
	ext := map[string]string{"tenant_id": "a"}
	bkt := inspBucket(t)
	good1, _ := inspBlock(t, bkt, ext, 6, 0, 2*hourMs)
	good2, _ := inspBlock(t, bkt, ext, 6, 2*hourMs, 4*hourMs)
	inspBlock(t, bkt, map[string]string{"tenant_id": "b"}, 6, hourMs, 3*hourMs) // other stream: no overlap
	for _, deep := range []bool{false, true} {
		set, err := block.NewFetcher(bkt, nil).Fetch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		problems, err := block.Verify(ctx, bkt, set, block.VerifyOptions{Deep: deep})
		if err != nil {
			t.Fatal(err)
		}
		if len(problems) != 0 {
			t.Fatalf("healthy bucket (deep %v): %v", deep, problems)
		}
	}

	// An overlap in stream a, and a marked block overlapping that is not one.
	overlap, _ := inspBlock(t, bkt, ext, 3, hourMs, 3*hourMs)
	markedID, _ := inspBlock(t, bkt, ext, 3, 0, 4*hourMs)
	inspPut(t, bkt, path.Join(markedID.String(), "deletion-mark.json"), []byte(`{"deletion_time":1}`))
	// A corrupt postings offset table.
	corruptIdx, corruptDir := inspBlock(t, bkt, map[string]string{"tenant_id": "c"}, 6, 0, hourMs)
	idx, _ := os.ReadFile(filepath.Join(corruptDir, "index"))
	idx[len(idx)-60] ^= 0xff
	inspPut(t, bkt, path.Join(corruptIdx.String(), "index"), idx)
	// A missing chunk segment.
	noChunks, _ := inspBlock(t, bkt, map[string]string{"tenant_id": "d"}, 6, 0, hourMs)
	if err := bkt.Delete(ctx, path.Join(noChunks.String(), "chunks", "000001")); err != nil {
		t.Fatal(err)
	}
	// A flipped byte inside a chunk: found only by the deep check.
	badChunk, badChunkDir := inspBlock(t, bkt, map[string]string{"tenant_id": "e"}, 6, 0, hourMs)
	seg, _ := os.ReadFile(filepath.Join(badChunkDir, "chunks", "000001"))
	seg[len(seg)-10] ^= 0xff
	inspPut(t, bkt, path.Join(badChunk.String(), "chunks", "000001"), seg)
	// meta.json claiming another series count.
	lying, lyingDir := inspBlock(t, bkt, map[string]string{"tenant_id": "f"}, 6, 0, hourMs)
	meta, _ := block.ReadMetaFromDir(lyingDir)
	meta.Stats.NumSeries = 7
	if err := block.WriteMetaToDir(lyingDir, meta); err != nil {
		t.Fatal(err)
	}
	inspUpload(t, bkt, filepath.Join(lyingDir, block.MetaFilename), path.Join(lying.String(), block.MetaFilename))

	kinds := func(deep bool) map[string][]ulid.ULID {
		set, err := block.NewFetcher(bkt, nil).Fetch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		problems, err := block.Verify(ctx, bkt, set, block.VerifyOptions{Deep: deep})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string][]ulid.ULID{}
		for _, p := range problems {
			t.Logf("deep=%v: %s", deep, p)
			for _, id := range p.Blocks {
				if !slices.Contains(out[p.Kind], id) {
					out[p.Kind] = append(out[p.Kind], id)
				}
			}
		}
		return out
	}
	shallow := kinds(false)
	wantOverlap := []ulid.ULID{good1, overlap, good2}
	for _, id := range wantOverlap {
		if !slices.Contains(shallow[block.ProblemOverlap], id) {
			t.Errorf("overlap of %s not reported: %v", id, shallow[block.ProblemOverlap])
		}
	}
	if slices.Contains(shallow[block.ProblemOverlap], markedID) {
		t.Error("block marked for deletion reported as overlapping")
	}
	if !slices.Equal(shallow[block.ProblemCorruptIndex], []ulid.ULID{corruptIdx}) {
		t.Errorf("corrupt index reports %v, want %s", shallow[block.ProblemCorruptIndex], corruptIdx)
	}
	if !slices.Equal(shallow[block.ProblemMissingFile], []ulid.ULID{noChunks}) {
		t.Errorf("missing file reports %v, want %s", shallow[block.ProblemMissingFile], noChunks)
	}
	if !slices.Contains(shallow[block.ProblemMetaMismatch], lying) {
		t.Errorf("meta mismatch reports %v, want %s", shallow[block.ProblemMetaMismatch], lying)
	}
	if slices.Contains(shallow[block.ProblemCorruptChunks], badChunk) {
		t.Error("shallow check read chunk data")
	}
	deep := kinds(true)
	if !slices.Contains(deep[block.ProblemCorruptChunks], badChunk) {
		t.Errorf("deep check missed the corrupt chunk: %v", deep[block.ProblemCorruptChunks])
	}
}
