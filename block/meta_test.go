package block

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/atoll-metrics/atoll/bucket"
)

const blockID = "01JBV4Q7ZK5D3W8N0XQ7E2M9RA"

func TestReadMetaFromDir(t *testing.T) {
	for _, tc := range []struct {
		name    string
		json    string
		check   func(t *testing.T, m *Meta)
		wantErr error
	}{
		{
			// As Prometheus writes it: no thanos section at all.
			name: "prometheus block",
			json: `{
	"ulid": "` + blockID + `",
	"minTime": 1700000000000,
	"maxTime": 1700007200000,
	"stats": {"numSamples": 1200, "numSeries": 10, "numChunks": 20},
	"compaction": {"level": 1, "sources": ["` + blockID + `"]},
	"version": 1
}`,
			check: func(t *testing.T, m *Meta) {
				if m.ULID.String() != blockID || m.MinTime != 1700000000000 || m.MaxTime != 1700007200000 {
					t.Errorf("block fields = %s [%d, %d)", m.ULID, m.MinTime, m.MaxTime)
				}
				if m.Stats.NumSamples != 1200 || m.Compaction.Level != 1 {
					t.Errorf("stats/compaction = %+v %+v", m.Stats, m.Compaction)
				}
				if m.Thanos.Labels == nil || len(m.Thanos.Labels) != 0 || m.ExternalLabels().Len() != 0 {
					t.Errorf("labels = %#v, want an empty non-nil map", m.Thanos.Labels)
				}
				if m.Thanos.Downsample.Resolution != ResolutionRaw {
					t.Errorf("resolution = %d", m.Thanos.Downsample.Resolution)
				}
			},
		},
		{
			// As a Thanos receiver writes it, including fields Atoll does not use.
			name: "thanos block",
			json: `{
	"ulid": "` + blockID + `",
	"minTime": 0, "maxTime": 7200000,
	"stats": {"numSamples": 5},
	"compaction": {"level": 2, "sources": ["` + blockID + `"]},
	"version": 1,
	"thanos": {
		"version": 1,
		"labels": {"tenant_id": "team-a", "replica": "r1"},
		"downsample": {"resolution": 300000},
		"source": "compactor",
		"segment_files": ["000001"],
		"files": [{"rel_path": "chunks/000001", "size_bytes": 512}, {"rel_path": "index", "size_bytes": 256}, {"rel_path": "meta.json"}],
		"index_stats": {"series_max_size": 100, "chunk_max_size": 200},
		"extensions": {"anything": true}
	}
}`,
			check: func(t *testing.T, m *Meta) {
				want := labels.FromStrings("replica", "r1", "tenant_id", "team-a")
				if !labels.Equal(m.ExternalLabels(), want) {
					t.Errorf("labels = %s, want %s", m.ExternalLabels(), want)
				}
				if m.Thanos.Source != SourceCompactor || m.Thanos.Downsample.Resolution != Resolution5m {
					t.Errorf("source/resolution = %q/%d", m.Thanos.Source, m.Thanos.Downsample.Resolution)
				}
				wantFiles := []File{{RelPath: "chunks/000001", SizeBytes: 512}, {RelPath: "index", SizeBytes: 256}, {RelPath: "meta.json"}}
				if !slices.Equal(m.Thanos.Files, wantFiles) || !slices.Equal(m.Thanos.SegmentFiles, []string{"000001"}) {
					t.Errorf("files = %+v, segments = %q", m.Thanos.Files, m.Thanos.SegmentFiles)
				}
			},
		},
		{
			name:    "unknown meta version",
			json:    `{"ulid": "` + blockID + `", "version": 2}`,
			wantErr: errUnsupportedMeta,
		},
		{
			name:    "unknown thanos section version",
			json:    `{"ulid": "` + blockID + `", "version": 1, "thanos": {"version": 7}}`,
			wantErr: errUnsupportedMeta,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, MetaFilename), []byte(tc.json), 0o644); err != nil {
				t.Fatal(err)
			}
			m, err := ReadMetaFromDir(dir)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("error = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, m)
		})
	}
}

func TestReadMetaFromDirErrors(t *testing.T) {
	if _, err := ReadMetaFromDir(t.TempDir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing meta.json: %v, want not exist", err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, MetaFilename), []byte(`{"ulid": "`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadMetaFromDir(dir); err == nil {
		t.Error("truncated meta.json read without error")
	}
}

// The field names are the compatibility contract with Thanos tools; check
// them in the written JSON, not through our own decoder.
func TestWriteMetaToDirUsesThanosFieldNames(t *testing.T) {
	dir := t.TempDir()
	m := &Meta{
		BlockMeta: tsdb.BlockMeta{
			ULID: ulid.MustParse(blockID), MinTime: 10, MaxTime: 20, Version: 1,
			Compaction: tsdb.BlockMetaCompaction{Level: 1, Sources: []ulid.ULID{ulid.MustParse(blockID)}},
		},
		Thanos: ThanosMeta{
			Version:      1,
			Labels:       map[string]string{"tenant": "t1"},
			Downsample:   Downsample{Resolution: Resolution1h},
			Source:       SourceReceive,
			SegmentFiles: []string{"000001"},
			Files:        []File{{RelPath: "chunks/000001", SizeBytes: 3}, {RelPath: "meta.json"}},
		},
	}
	if err := WriteMetaToDir(dir, m); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, MetaFilename))
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		ULID   string `json:"ulid"`
		Thanos struct {
			Labels     map[string]string `json:"labels"`
			Downsample struct {
				Resolution int64 `json:"resolution"`
			} `json:"downsample"`
			Source       string   `json:"source"`
			SegmentFiles []string `json:"segment_files"`
			Files        []struct {
				RelPath   string `json:"rel_path"`
				SizeBytes *int64 `json:"size_bytes"`
			} `json:"files"`
		} `json:"thanos"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	th := raw.Thanos
	if raw.ULID != blockID || th.Labels["tenant"] != "t1" || th.Downsample.Resolution != 3600000 ||
		th.Source != "receive" || len(th.SegmentFiles) != 1 || len(th.Files) != 2 ||
		th.Files[0].RelPath != "chunks/000001" || th.Files[0].SizeBytes == nil || *th.Files[0].SizeBytes != 3 ||
		th.Files[1].SizeBytes != nil {
		t.Errorf("written meta.json does not carry the Thanos fields:\n%s", data)
	}
	if !strings.Contains(string(data), "\n\t\"") {
		t.Errorf("meta.json is not tab-indented like Prometheus writes it:\n%s", data)
	}

	got, err := ReadMetaFromDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.ULID != m.ULID || got.Thanos.Source != m.Thanos.Source || !slices.Equal(got.Thanos.Files, m.Thanos.Files) {
		t.Errorf("round trip = %+v, want %+v", got, m)
	}
	// Prometheus must still open the block: its own reader ignores the
	// thanos section.
	var prom tsdb.BlockMeta
	if err := json.Unmarshal(data, &prom); err != nil || prom.ULID != m.ULID || prom.Version != 1 {
		t.Errorf("Prometheus view of meta.json = %+v, %v", prom, err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("WriteMetaToDir left %d files, want only meta.json", len(entries))
	}
}

func TestReadMetaFromBucket(t *testing.T) {
	bkt, err := bucket.NewFilesystem(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	id := ulid.MustParse(blockID)
	if _, err := readMeta(t.Context(), bkt, id); !bucket.IsNotFound(err) {
		t.Errorf("absent block: %v, want not found", err)
	}
	body := `{"ulid": "` + blockID + `", "minTime": 1, "maxTime": 2, "version": 1, "thanos": {"labels": {"a": "b"}, "source": "receive", "downsample": {"resolution": 0}}}`
	if err := bkt.Upload(t.Context(), blockID+"/meta.json", strings.NewReader(body), int64(len(body))); err != nil {
		t.Fatal(err)
	}
	m, err := readMeta(t.Context(), bkt, id)
	if err != nil {
		t.Fatal(err)
	}
	if m.ULID != id || m.Thanos.Labels["a"] != "b" {
		t.Errorf("meta = %+v", m)
	}
}
