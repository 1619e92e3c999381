package bucket

import (
	"context"
	"io"
	"strings"
)

// prefixedBucket keeps every object of the bucket it wraps under prefix
// (ending in "/"), as Thanos's objstore prefix does, so the names callers
// see are the same with or without one.
type prefixedBucket struct {
	Bucket
	prefix string
}

func (b *prefixedBucket) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	if err := validateObjectName(name); err != nil {
		return nil, err
	}
	return b.Bucket.Get(ctx, b.prefix+name)
}

func (b *prefixedBucket) GetRange(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	if err := validateObjectName(name); err != nil {
		return nil, err
	}
	return b.Bucket.GetRange(ctx, b.prefix+name, off, length)
}

func (b *prefixedBucket) Upload(ctx context.Context, name string, r io.Reader, size int64) error {
	if err := validateObjectName(name); err != nil {
		return err
	}
	return b.Bucket.Upload(ctx, b.prefix+name, r, size)
}

func (b *prefixedBucket) Delete(ctx context.Context, name string) error {
	if err := validateObjectName(name); err != nil {
		return err
	}
	return b.Bucket.Delete(ctx, b.prefix+name)
}

func (b *prefixedBucket) Iter(ctx context.Context, dir string, f func(string) error, recursive bool) error {
	if err := validateDirName(dir); err != nil {
		return err
	}
	inner := b.prefix + strings.TrimSuffix(dir, "/")
	return b.Bucket.Iter(ctx, strings.TrimSuffix(inner, "/"), func(name string) error {
		return f(strings.TrimPrefix(name, b.prefix))
	}, recursive)
}

func (b *prefixedBucket) Exists(ctx context.Context, name string) (bool, error) {
	if err := validateObjectName(name); err != nil {
		return false, err
	}
	return b.Bucket.Exists(ctx, b.prefix+name)
}

func (b *prefixedBucket) Attributes(ctx context.Context, name string) (ObjectAttributes, error) {
	if err := validateObjectName(name); err != nil {
		return ObjectAttributes{}, err
	}
	return b.Bucket.Attributes(ctx, b.prefix+name)
}

func (b *prefixedBucket) Name() string {
	return b.Bucket.Name() + "/" + strings.TrimSuffix(b.prefix, "/")
}
