package storeapi

import (
	"context"
	"errors"
	"fmt"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/util/annotations"
)

// LocalAndBucket is the read path of a process that ships the blocks of its
// TSDBs to a bucket and also serves that bucket (atoll all): one Store over
// both in which every block is read once. A shipped block stays on local
// disk for the TSDB's retention while it is in the bucket too; for each
// request the local TSDBs are opened first, and the bucket's store is then
// told which blocks they read (SeriesRequest.SkipBlocks), so the two agree
// by block ULID on who serves what, whatever retention or a bucket sync does
// in between.
type LocalAndBucket struct {
	local  *Local
	bucket Store
}

var _ Store = (*LocalAndBucket)(nil)

// NewLocalAndBucket joins the local TSDBs and the store over the bucket
// they ship to.
func NewLocalAndBucket(local *Local, bucket Store) *LocalAndBucket {
	return &LocalAndBucket{local: local, bucket: bucket}
}

// Name implements Store.
func (s *LocalAndBucket) Name() string { return s.local.Name() + " and " + s.bucket.Name() }

// Info implements Store: what either part holds. A bucket part that
// cannot say is left to fail at the request, where partial responses
// decide.
func (s *LocalAndBucket) Info(ctx context.Context) (Info, error) {
	info, err := s.local.Info(ctx)
	if err != nil {
		return info, err
	}
	b, err := s.bucket.Info(ctx)
	if err != nil {
		info.LabelSets = nil // may hold anything
		return info, nil
	}
	info.MinTime = min(info.MinTime, b.MinTime)
	info.MaxTime = max(info.MaxTime, b.MaxTime)
	info.LabelSets = append(info.LabelSets, b.LabelSets...)
	return info, nil
}

// Series implements Store.
func (s *LocalAndBucket) Series(ctx context.Context, req *SeriesRequest, f SeriesFunc) (annotations.Annotations, error) {
	open, err := s.local.open(req)
	if err != nil {
		return nil, err
	}
	defer open.close()
	warns, err := open.series(ctx, req, f)
	if err != nil {
		return warns, err
	}
	r := *req
	r.SkipBlocks = open.blocks()
	w, err := s.bucket.Series(ctx, &r, f)
	warns.Merge(w)
	return s.bucketFailed(warns, req.PartialResponse, err)
}

// bucketFailed turns a failure of the bucket's part into a warning when the
// request accepts a partial answer: the local part is still good.
func (s *LocalAndBucket) bucketFailed(warns annotations.Annotations, partial bool, err error) (annotations.Annotations, error) {
	if err == nil {
		return warns, nil
	}
	if !partial || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return warns, err
	}
	warns.Add(fmt.Errorf("partial response: store %s: %w", s.bucket.Name(), err))
	return warns, nil
}

// LabelNames implements Store.
func (s *LocalAndBucket) LabelNames(ctx context.Context, req *LabelsRequest) ([]string, annotations.Annotations, error) {
	return s.labels(req, func(st Store) ([]string, annotations.Annotations, error) { return st.LabelNames(ctx, req) })
}

// LabelValues implements Store.
func (s *LocalAndBucket) LabelValues(ctx context.Context, name string, req *LabelsRequest) ([]string, annotations.Annotations, error) {
	return s.labels(req, func(st Store) ([]string, annotations.Annotations, error) { return st.LabelValues(ctx, name, req) })
}

func (s *LocalAndBucket) labels(req *LabelsRequest, ask func(Store) ([]string, annotations.Annotations, error)) ([]string, annotations.Annotations, error) {
	local, warns, err := ask(s.local)
	if err != nil {
		return nil, warns, err
	}
	fromBucket, w, err := ask(s.bucket)
	warns.Merge(w)
	if warns, err = s.bucketFailed(warns, req.PartialResponse, err); err != nil {
		return nil, warns, err
	}
	return MergeStrings([][]string{local, fromBucket}, req.Limit), warns, nil
}

// Exemplars implements Store: blocks in a bucket hold none.
func (s *LocalAndBucket) Exemplars(ctx context.Context, mint, maxt int64, matchers [][]*labels.Matcher) ([]exemplar.QueryResult, error) {
	return s.local.Exemplars(ctx, mint, maxt, matchers)
}

// Metadata implements Store: blocks in a bucket hold none.
func (s *LocalAndBucket) Metadata(ctx context.Context, req *MetadataRequest) (map[string][]metadata.Metadata, error) {
	return s.local.Metadata(ctx, req)
}
