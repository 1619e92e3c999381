package bucket

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Bucket is the object storage every Atoll component reads and writes blocks
// through. Object names are slash-separated paths relative to the bucket root,
// such as "01J5.../chunks/000001"; they never start with "/" and never contain
// "." or ".." segments.
//
// Implementations are safe for concurrent use.
type Bucket interface {
	// Get returns the whole object. The caller must close the reader. A
	// missing object yields an error for which IsNotFound reports true.
	Get(ctx context.Context, name string) (io.ReadCloser, error)

	// GetRange returns length bytes of the object starting at off; a length
	// of -1 reads to the end. A range that runs past the end returns the
	// bytes that exist.
	GetRange(ctx context.Context, name string, off, length int64) (io.ReadCloser, error)

	// Upload writes the object from r, replacing any object of that name.
	// size is the exact number of bytes r yields, or -1 if unknown. Readers
	// never observe a partially written object.
	Upload(ctx context.Context, name string, r io.Reader, size int64) error

	// Delete removes the object. Deleting a missing object is not an error,
	// so retried cleanups converge.
	Delete(ctx context.Context, name string) error

	// Iter calls f with the full name of each entry under dir ("" is the
	// root), in no guaranteed order, and stops at the first error f returns.
	// Without recursive it reports the objects directly in dir and, once
	// each, the sub-directories of dir as names ending in "/" (for example
	// "01J5.../chunks/"); with recursive it reports every object below dir
	// and no directories. A dir holding no objects yields no calls.
	Iter(ctx context.Context, dir string, f func(name string) error, recursive bool) error

	// Exists reports whether the object exists.
	Exists(ctx context.Context, name string) (bool, error)

	// Attributes returns the object's size and modification time.
	Attributes(ctx context.Context, name string) (ObjectAttributes, error)

	// Name identifies the bucket in logs: the directory of a filesystem
	// bucket or the S3 bucket name.
	Name() string

	// Close releases connections and other resources held by the bucket.
	Close() error
}

// Check asks the bucket for one entry of its root listing. It returns
// nil when the bucket answers, else an error saying why it cannot be used:
// it does not exist, it cannot be reached, access is denied.
func Check(ctx context.Context, bkt Bucket) error {
	errFound := errors.New("found an entry")
	err := bkt.Iter(ctx, "", func(string) error { return errFound }, false)
	if err == nil || errors.Is(err, errFound) {
		return nil
	}
	return fmt.Errorf("bucket %s: %w", bkt.Name(), err)
}

// ObjectAttributes describes a stored object.
type ObjectAttributes struct {
	Size         int64
	LastModified time.Time
}

// errObjectNotFound is returned, wrapped, by Bucket methods when the named
// object does not exist.
var errObjectNotFound = errors.New("object not found")

// IsNotFound reports whether err says an object does not exist.
func IsNotFound(err error) bool {
	return errors.Is(err, errObjectNotFound)
}

// errInvalidName is returned, wrapped, for object names that could escape
// the bucket root or that map to no single object.
var errInvalidName = errors.New("invalid object name")

// validateObjectName rejects names that a filesystem bucket would resolve
// outside its root, so that every implementation accepts the same names and
// a bucket can move between backends.
func validateObjectName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty", errInvalidName)
	}
	if strings.HasSuffix(name, "/") {
		return fmt.Errorf("%w %q: ends with /", errInvalidName, name)
	}
	return validatePath(name)
}

// validateDirName accepts "" for the root and directory names with or
// without the trailing slash.
func validateDirName(dir string) error {
	dir = strings.TrimSuffix(dir, "/")
	if dir == "" {
		return nil
	}
	return validatePath(dir)
}

func validatePath(p string) error {
	if strings.HasPrefix(p, "/") {
		return fmt.Errorf("%w %q: absolute path", errInvalidName, p)
	}
	if strings.ContainsAny(p, "\x00\\") {
		return fmt.Errorf("%w %q: contains NUL or backslash", errInvalidName, p)
	}
	for seg := range strings.SplitSeq(p, "/") {
		switch seg {
		case "":
			return fmt.Errorf("%w %q: empty path segment", errInvalidName, p)
		case ".", "..":
			return fmt.Errorf("%w %q: %q segment", errInvalidName, p, seg)
		}
	}
	return nil
}

// validateRange checks GetRange arguments the same way for every backend.
func validateRange(off, length int64) error {
	if off < 0 {
		return fmt.Errorf("invalid range: negative offset %d", off)
	}
	if length < -1 {
		return fmt.Errorf("invalid range: length %d (want >= 0, or -1 for the rest)", length)
	}
	return nil
}
