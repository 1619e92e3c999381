package block

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/atoll-metrics/atoll/bucket"
	"github.com/atoll-metrics/atoll/internal/atomicfile"
)

// MetaFilename is the name of a block's meta file, in a block directory and
// under the block's ULID prefix in a bucket. A block counts as present in a
// bucket only once this object exists.
const MetaFilename = "meta.json"

// Sources of a block, as recorded in ThanosMeta.Source; the values match
// the ones Thanos writes.
const (
	SourceReceive   = "receive"
	SourceCompactor = "compactor"
)

// Downsampling resolutions in milliseconds, as recorded in
// ThanosMeta.Downsample.
const (
	ResolutionRaw int64 = 0
	Resolution5m  int64 = 5 * 60 * 1000
	Resolution1h  int64 = 60 * 60 * 1000
)

// Versions of the two parts of meta.json this package reads and writes.
const (
	metaVersion       = 1 // tsdb.BlockMeta.Version
	thanosMetaVersion = 1 // ThanosMeta.Version; 0 means 1 in old metas
)

// Meta is a block's meta.json: the Prometheus block meta plus the "thanos"
// section that identifies where the block came from. Atoll writes the
// section under the name and with the fields Thanos uses, so Thanos tools
// read Atoll buckets, and a plain Prometheus meta.json (with no section)
// reads as a block without external labels.
type Meta struct {
	tsdb.BlockMeta

	Thanos ThanosMeta `json:"thanos"`
}

// ThanosMeta is the "thanos" section of meta.json.
type ThanosMeta struct {
	// Version of the section; 1 when written by Atoll.
	Version int `json:"version,omitempty"`
	// Labels are the external labels of the block's producer (tenant,
	// replica). Reading a meta always yields a non-nil map.
	Labels map[string]string `json:"labels"`
	// Downsample records the resolution of the block's samples.
	Downsample Downsample `json:"downsample"`
	// Source names the component that wrote the block, e.g. SourceReceive.
	Source string `json:"source"`
	// SegmentFiles lists the chunk segment files (names within chunks/),
	// sorted. Thanos deprecated it in favor of Files but still reads it.
	SegmentFiles []string `json:"segment_files,omitempty"`
	// Files lists every file of the block, sorted by path, so readers know
	// object sizes without asking the bucket.
	Files []File `json:"files,omitempty"`
}

// Downsample is the downsampling part of ThanosMeta.
type Downsample struct {
	// Resolution in milliseconds; ResolutionRaw for raw samples.
	Resolution int64 `json:"resolution"`
}

// File is one file of a block.
type File struct {
	// RelPath is the slash-separated path inside the block, e.g.
	// "chunks/000001".
	RelPath string `json:"rel_path"`
	// SizeBytes is omitted for meta.json, which cannot hold its own size.
	SizeBytes int64 `json:"size_bytes,omitempty"`
}

// ExternalLabels returns the block's external labels.
func (m *Meta) ExternalLabels() labels.Labels {
	return labels.FromMap(m.Thanos.Labels)
}

// errUnsupportedMeta is returned, wrapped, for a meta.json whose format
// version this package does not understand.
var errUnsupportedMeta = errors.New("unsupported block meta version")

// errMalformedMeta is returned, wrapped, for a meta.json that does not
// decode or names no block.
var errMalformedMeta = errors.New("malformed block meta")

// decodeMeta parses and checks a meta.json.
func decodeMeta(r io.Reader) (*Meta, error) {
	var m Meta
	if err := json.NewDecoder(r).Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: decode %s: %w", errMalformedMeta, MetaFilename, err)
	}
	if m.Version != metaVersion {
		return nil, fmt.Errorf("%w: version %d", errUnsupportedMeta, m.Version)
	}
	if v := m.Thanos.Version; v != 0 && v != thanosMetaVersion {
		return nil, fmt.Errorf("%w: thanos section version %d", errUnsupportedMeta, v)
	}
	if m.ULID == (ulid.ULID{}) {
		return nil, fmt.Errorf("%w: %s: missing ulid", errMalformedMeta, MetaFilename)
	}
	if m.Thanos.Labels == nil {
		m.Thanos.Labels = map[string]string{}
	}
	return &m, nil
}

// encodeMeta renders m the way Prometheus writes meta.json (tab-indented).
func encodeMeta(m *Meta) ([]byte, error) {
	out := *m
	if out.Thanos.Labels == nil {
		// Thanos expects an object, not null.
		out.Thanos.Labels = map[string]string{}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "\t")
	if err := enc.Encode(&out); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// ReadMetaFromDir reads the meta.json of the block directory dir.
func ReadMetaFromDir(dir string) (*Meta, error) {
	f, err := os.Open(filepath.Join(dir, MetaFilename))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m, err := decodeMeta(f)
	if err != nil {
		return nil, fmt.Errorf("block %s: %w", dir, err)
	}
	return m, nil
}

// WriteMetaToDir replaces the meta.json of the block directory dir
// atomically: a crash leaves the old or the new file, never a torn one.
func WriteMetaToDir(dir string, m *Meta) error {
	data, err := encodeMeta(m)
	if err != nil {
		return fmt.Errorf("encode meta of block %s: %w", m.ULID, err)
	}
	return atomicfile.Write(filepath.Join(dir, MetaFilename), data)
}

// readMeta reads the meta.json of block id from a bucket. A block without
// one (absent, or still being uploaded) yields an error for which
// bucket.IsNotFound reports true; one that does not decode, an error
// matching errMalformedMeta or errUnsupportedMeta.
func readMeta(ctx context.Context, bkt bucket.Bucket, id ulid.ULID) (*Meta, error) {
	rc, err := bkt.Get(ctx, path.Join(id.String(), MetaFilename))
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	m, err := decodeMeta(rc)
	if err != nil {
		return nil, fmt.Errorf("block %s: %w", id, err)
	}
	return m, nil
}
