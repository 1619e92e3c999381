package bucket

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/atoll-metrics/atoll/internal/atomicfile"
)

// stagingDir holds uploads in flight inside a filesystem bucket. It lives in
// the bucket root so the final rename never crosses filesystems, and it is
// hidden from Iter and unusable as an object name.
const stagingDir = ".atoll-uploads"

// filesystemBucket stores each object as a file under a root directory.
// Uploads are written to stagingDir and renamed into place, so readers see
// either the old object or the complete new one.
type filesystemBucket struct {
	root string
}

// NewFilesystem returns a bucket that keeps objects as files under
// dir, creating dir if needed. It is the default bucket of a single-node
// installation and the usual bucket in tests. It records no metrics; build it
// through New with ConfigForDir to get them.
func NewFilesystem(dir string) (Bucket, error) {
	if dir == "" {
		return nil, errors.New("filesystem bucket: empty directory")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("filesystem bucket: %w", err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("filesystem bucket: %w", err)
	}
	removeStaleUploads(filepath.Join(abs, stagingDir), time.Now().Add(-staleUploadAge))
	return &filesystemBucket{root: abs}, nil
}

// staleUploadAge is how old a staged file must be before it is taken for
// the leftover of an upload interrupted by a crash. It is generous because
// another process may share the bucket directory and be mid-upload.
const staleUploadAge = 24 * time.Hour

// removeStaleUploads deletes staged files last written before cutoff, so
// crashes do not leak disk space. Errors are ignored: the files only cost
// space and the next start tries again.
func removeStaleUploads(dir string, cutoff time.Time) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if fi, err := e.Info(); err == nil && fi.ModTime().Before(cutoff) {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

func (b *filesystemBucket) Name() string { return b.root }

func (b *filesystemBucket) Close() error { return nil }

// objectPath validates name and maps it to its file.
func (b *filesystemBucket) objectPath(name string) (string, error) {
	if err := validateObjectName(name); err != nil {
		return "", err
	}
	if name == stagingDir || strings.HasPrefix(name, stagingDir+"/") {
		return "", fmt.Errorf("%w %q: reserved for uploads in flight", errInvalidName, name)
	}
	return filepath.Join(b.root, filepath.FromSlash(name)), nil
}

// openObject opens the named file, refusing directories: a directory is a
// prefix of objects, not an object.
func (b *filesystemBucket) openObject(op, name string) (*os.File, fs.FileInfo, error) {
	p, err := b.objectPath(name)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", op, err)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, nil, b.classify(op, name, err)
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, nil, fmt.Errorf("%s %q: %w", op, name, err)
	}
	if fi.IsDir() {
		_ = f.Close()
		return nil, nil, fmt.Errorf("%s %q: %w", op, name, errObjectNotFound)
	}
	return f, fi, nil
}

func (b *filesystemBucket) classify(op, name string, err error) error {
	if errors.Is(err, fs.ErrNotExist) || isNotDir(err) {
		return fmt.Errorf("%s %q: %w", op, name, errObjectNotFound)
	}
	return fmt.Errorf("%s %q: %w", op, name, err)
}

func (b *filesystemBucket) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, _, err := b.openObject("get", name)
	if err != nil {
		return nil, err
	}
	return f, nil
}

func (b *filesystemBucket) GetRange(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	if err := validateRange(off, length); err != nil {
		return nil, fmt.Errorf("get range %q: %w", name, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, fi, err := b.openObject("get range", name)
	if err != nil {
		return nil, err
	}
	if off > fi.Size() {
		off = fi.Size()
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("get range %q: %w", name, err)
	}
	if length == -1 {
		return f, nil
	}
	return &limitedFile{Reader: io.LimitReader(f, length), Closer: f}, nil
}

type limitedFile struct {
	io.Reader
	io.Closer
}

func (b *filesystemBucket) Upload(ctx context.Context, name string, r io.Reader, size int64) (err error) {
	p, err := b.objectPath(name)
	if err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	staging := filepath.Join(b.root, stagingDir)
	if err := os.MkdirAll(staging, 0o755); err != nil {
		return fmt.Errorf("upload %q: %w", name, err)
	}
	f, err := os.CreateTemp(staging, "upload-*")
	if err != nil {
		return fmt.Errorf("upload %q: %w", name, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()

	n, err := io.Copy(f, contextReader{ctx: ctx, r: r})
	if err != nil {
		return fmt.Errorf("upload %q: %w", name, err)
	}
	if size >= 0 && n != size {
		return fmt.Errorf("upload %q: read %d bytes, announced %d", name, n, size)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("upload %q: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("upload %q: %w", name, err)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("upload %q: %w", name, err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("upload %q: %w", name, err)
	}
	if err := atomicfile.SyncDir(filepath.Dir(p)); err != nil {
		return fmt.Errorf("upload %q: %w", name, err)
	}
	return nil
}

// contextReader stops a long copy once its context ends.
type contextReader struct {
	ctx context.Context
	r   io.Reader
}

func (c contextReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func (b *filesystemBucket) Delete(ctx context.Context, name string) error {
	p, err := b.objectPath(name)
	if err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	fi, err := os.Stat(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || isNotDir(err) {
			return nil
		}
		return fmt.Errorf("delete %q: %w", name, err)
	}
	if fi.IsDir() {
		// Object stores have no directories to delete; refusing keeps
		// Delete from removing a whole block by accident.
		return fmt.Errorf("delete %q: is a directory, not an object", name)
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete %q: %w", name, err)
	}
	b.removeEmptyParents(filepath.Dir(p))
	return nil
}

// removeEmptyParents drops directories left empty by a delete, so that
// listings match an object store, where a prefix vanishes with its last
// object. Failures are harmless (a concurrent upload may have refilled the
// directory) and ignored.
func (b *filesystemBucket) removeEmptyParents(dir string) {
	for dir != b.root && strings.HasPrefix(dir, b.root+string(filepath.Separator)) {
		if err := os.Remove(dir); err != nil {
			return
		}
		dir = filepath.Dir(dir)
	}
}

func (b *filesystemBucket) Iter(ctx context.Context, dir string, f func(string) error, recursive bool) error {
	if err := validateDirName(dir); err != nil {
		return fmt.Errorf("iter: %w", err)
	}
	prefix := strings.TrimSuffix(dir, "/")
	if prefix != "" {
		prefix += "/"
	}
	base := filepath.Join(b.root, filepath.FromSlash(prefix))
	if recursive {
		return b.iterRecursive(ctx, base, prefix, f)
	}

	entries, err := os.ReadDir(base)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || isNotDir(err) {
			return nil
		}
		return fmt.Errorf("iter %q: %w", dir, err)
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		if prefix == "" && e.Name() == stagingDir {
			continue
		}
		name := prefix + e.Name()
		if e.IsDir() {
			name += "/"
		}
		if err := f(name); err != nil {
			return err
		}
	}
	return nil
}

func (b *filesystemBucket) iterRecursive(ctx context.Context, base, prefix string, f func(string) error) error {
	err := filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == base && (errors.Is(err, fs.ErrNotExist) || isNotDir(err)) {
				return fs.SkipAll
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() {
			if prefix == "" && p == filepath.Join(b.root, stagingDir) {
				return fs.SkipDir
			}
			return nil
		}
		if p == base {
			// dir named a file, which holds no objects below it.
			return nil
		}
		rel, err := filepath.Rel(b.root, p)
		if err != nil {
			return err
		}
		return f(filepath.ToSlash(rel))
	})
	return err
}

func (b *filesystemBucket) Exists(ctx context.Context, name string) (bool, error) {
	_, err := b.Attributes(ctx, name)
	if IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

func (b *filesystemBucket) Attributes(ctx context.Context, name string) (ObjectAttributes, error) {
	p, err := b.objectPath(name)
	if err != nil {
		return ObjectAttributes{}, fmt.Errorf("attributes: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return ObjectAttributes{}, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return ObjectAttributes{}, b.classify("attributes", name, err)
	}
	if fi.IsDir() {
		return ObjectAttributes{}, fmt.Errorf("attributes %q: %w", name, errObjectNotFound)
	}
	return ObjectAttributes{Size: fi.Size(), LastModified: fi.ModTime()}, nil
}

// isNotDir reports ENOTDIR: a path segment is a file, so nothing can exist
// below it.
func isNotDir(err error) bool {
	return errors.Is(err, syscall.ENOTDIR)
}
