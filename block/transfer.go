package block

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/oklog/ulid/v2"

	"github.com/atoll-metrics/atoll/bucket"
)

// Files of a block directory, as TSDB writes them.
const (
	chunksDir      = "chunks"
	indexFile      = "index"
	tombstonesFile = "tombstones"
)

// Upload copies the block directory dir to the bucket under meta.ULID in
// the order that keeps readers safe: chunk segments, index, tombstones,
// then meta.json, which is meta with the Thanos section's version and file
// lists filled in from dir. The meta.json in dir is neither read nor changed, so a TSDB's own
// block can be shipped as it is. If beforeMeta is not nil it runs just
// before meta.json is uploaded, and an error from it stops the upload,
// leaving a partial block that readers ignore. Upload returns the meta as
// uploaded.
func Upload(ctx context.Context, bkt bucket.Bucket, dir string, meta *Meta, beforeMeta func() error) (*Meta, error) {
	id := meta.ULID
	files, err := dataFiles(dir)
	if err != nil {
		return nil, fmt.Errorf("upload block %s: %w", id, err)
	}
	for _, f := range files {
		if err := uploadFile(ctx, bkt, filepath.Join(dir, filepath.FromSlash(f.RelPath)), path.Join(id.String(), f.RelPath), f.SizeBytes); err != nil {
			return nil, fmt.Errorf("upload block %s: %w", id, err)
		}
	}
	out := *meta
	out.Thanos.Version = thanosMetaVersion
	out.Thanos.Files = append(slices.Clone(files), File{RelPath: MetaFilename})
	slices.SortFunc(out.Thanos.Files, func(a, b File) int { return strings.Compare(a.RelPath, b.RelPath) })
	out.Thanos.SegmentFiles = nil
	for _, f := range files {
		if name, ok := strings.CutPrefix(f.RelPath, chunksDir+"/"); ok {
			out.Thanos.SegmentFiles = append(out.Thanos.SegmentFiles, name)
		}
	}
	data, err := encodeMeta(&out)
	if err != nil {
		return nil, fmt.Errorf("upload block %s: encode meta: %w", id, err)
	}
	if beforeMeta != nil {
		if err := beforeMeta(); err != nil {
			return nil, fmt.Errorf("upload block %s: %w", id, err)
		}
	}
	if err := bkt.Upload(ctx, path.Join(id.String(), MetaFilename), bytes.NewReader(data), int64(len(data))); err != nil {
		return nil, fmt.Errorf("upload block %s: %w", id, err)
	}
	return &out, nil
}

// dataFiles lists a block's files other than meta.json in upload order:
// chunk segments (sorted), index, then tombstones when present.
func dataFiles(dir string) ([]File, error) {
	var files []File
	entries, err := os.ReadDir(filepath.Join(dir, chunksDir))
	if err != nil {
		return nil, fmt.Errorf("list chunks: %w", err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			return nil, err
		}
		files = append(files, File{RelPath: chunksDir + "/" + e.Name(), SizeBytes: fi.Size()})
	}
	for _, name := range []string{indexFile, tombstonesFile} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if errors.Is(err, fs.ErrNotExist) && name == tombstonesFile {
			continue
		}
		if err != nil {
			return nil, err
		}
		files = append(files, File{RelPath: name, SizeBytes: fi.Size()})
	}
	return files, nil
}

func uploadFile(ctx context.Context, bkt bucket.Bucket, src, name string, size int64) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	return bkt.Upload(ctx, name, f, size)
}

// ErrIncomplete is returned, wrapped, by Download when the bucket lacks a
// file the block's meta.json lists, or the block has no meta.json.
var ErrIncomplete = errors.New("block incomplete in bucket")

// Download copies block id into dir/<id> and returns the directory. Only
// the block's data files and meta.json are copied, not its marks. A block
// missing from the bucket, or missing a file its meta lists, yields an
// error matching ErrIncomplete.
func Download(ctx context.Context, bkt bucket.Bucket, id ulid.ULID, dir string) (string, error) {
	dst := filepath.Join(dir, id.String())
	if err := os.RemoveAll(dst); err != nil {
		return "", err
	}
	meta, err := readMeta(ctx, bkt, id)
	if err != nil {
		if bucket.IsNotFound(err) {
			return "", fmt.Errorf("block %s: %w: no %s", id, ErrIncomplete, MetaFilename)
		}
		return "", err
	}
	var names []string
	if len(meta.Thanos.Files) > 0 {
		for _, f := range meta.Thanos.Files {
			names = append(names, f.RelPath)
		}
	} else {
		// Blocks from tools that leave the file list out: take what is there.
		err := bkt.Iter(ctx, id.String()+"/", func(name string) error {
			rel := strings.TrimPrefix(name, id.String()+"/")
			if rel == indexFile || rel == tombstonesFile || rel == MetaFilename || strings.HasPrefix(rel, chunksDir+"/") {
				names = append(names, rel)
			}
			return nil
		}, true)
		if err != nil {
			return "", err
		}
	}
	if !slices.Contains(names, MetaFilename) {
		names = append(names, MetaFilename)
	}
	if err := os.MkdirAll(filepath.Join(dst, chunksDir), 0o755); err != nil {
		return "", err
	}
	for _, rel := range names {
		if err := downloadFile(ctx, bkt, path.Join(id.String(), rel), filepath.Join(dst, filepath.FromSlash(rel))); err != nil {
			if bucket.IsNotFound(err) {
				return "", fmt.Errorf("block %s: %w: %s missing", id, ErrIncomplete, rel)
			}
			return "", fmt.Errorf("download block %s: %w", id, err)
		}
	}
	return dst, nil
}

func downloadFile(ctx context.Context, bkt bucket.Bucket, name, dst string) error {
	rc, err := bkt.Get(ctx, name)
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, rc); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Delete removes block id from the bucket: meta.json first, so readers stop
// seeing the block at once and an interrupted deletion leaves a partial
// block, then the data files, then every other object (marks last, the
// deletion mark very last, so a directory that still has it is known to be
// mid-deletion, not a partial upload).
func Delete(ctx context.Context, bkt bucket.Bucket, id ulid.ULID) error {
	prefix := id.String()
	if err := bkt.Delete(ctx, path.Join(prefix, MetaFilename)); err != nil {
		return fmt.Errorf("delete block %s: %w", id, err)
	}
	var data, marks []string
	err := bkt.Iter(ctx, prefix+"/", func(name string) error {
		if strings.HasSuffix(name, ".json") && !strings.Contains(strings.TrimPrefix(name, prefix+"/"), "/") {
			marks = append(marks, name)
		} else {
			data = append(data, name)
		}
		return nil
	}, true)
	if err != nil {
		return fmt.Errorf("delete block %s: %w", id, err)
	}
	slices.SortFunc(marks, func(a, b string) int {
		return boolCmp(path.Base(a) == DeletionMarkFilename, path.Base(b) == DeletionMarkFilename)
	})
	for _, name := range append(data, marks...) {
		if err := bkt.Delete(ctx, name); err != nil {
			return fmt.Errorf("delete block %s: %w", id, err)
		}
	}
	return nil
}

func boolCmp(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	default:
		return -1
	}
}
