package bucket

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Operation label values of the bucket metrics.
const (
	opGet        = "get"
	opGetRange   = "get_range"
	opUpload     = "upload"
	opDelete     = "delete"
	opIter       = "iter"
	opExists     = "exists"
	opAttributes = "attributes"
)

type bucketMetrics struct {
	ops      *prometheus.CounterVec
	failures *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// instrumentedBucket counts and times every operation of the bucket it
// wraps. Reads are timed until the reader is closed, since the transfer, not
// the request, is what a slow bucket stretches.
type instrumentedBucket struct {
	Bucket
	m bucketMetrics
}

func instrumentBucket(b Bucket, reg prometheus.Registerer) (Bucket, error) {
	m := bucketMetrics{
		ops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "atoll_bucket_operations_total",
			Help: "Bucket operations started, by operation.",
		}, []string{"operation"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "atoll_bucket_operation_failures_total",
			Help: "Bucket operations that failed, by operation. A missing object and a canceled context are not failures.",
		}, []string{"operation"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "atoll_bucket_operation_duration_seconds",
			Help:    "Duration of bucket operations, by operation; reads last until their reader is closed.",
			Buckets: []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120},
		}, []string{"operation"}),
	}
	for _, op := range []string{opGet, opGetRange, opUpload, opDelete, opIter, opExists, opAttributes} {
		// Pre-create the series so rate() works from the first operation.
		m.ops.WithLabelValues(op)
		m.failures.WithLabelValues(op)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.ops, m.failures, m.duration} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return &instrumentedBucket{Bucket: b, m: m}, nil
}

// observe records one finished operation.
func (b *instrumentedBucket) observe(op string, start time.Time, err error) {
	b.m.duration.WithLabelValues(op).Observe(time.Since(start).Seconds())
	if err != nil && !IsNotFound(err) && !errors.Is(err, context.Canceled) {
		b.m.failures.WithLabelValues(op).Inc()
	}
}

func (b *instrumentedBucket) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	b.m.ops.WithLabelValues(opGet).Inc()
	start := time.Now()
	rc, err := b.Bucket.Get(ctx, name)
	if err != nil {
		b.observe(opGet, start, err)
		return nil, err
	}
	return &timedReader{rc: rc, done: func(err error) { b.observe(opGet, start, err) }}, nil
}

func (b *instrumentedBucket) GetRange(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	b.m.ops.WithLabelValues(opGetRange).Inc()
	start := time.Now()
	rc, err := b.Bucket.GetRange(ctx, name, off, length)
	if err != nil {
		b.observe(opGetRange, start, err)
		return nil, err
	}
	return &timedReader{rc: rc, done: func(err error) { b.observe(opGetRange, start, err) }}, nil
}

func (b *instrumentedBucket) Upload(ctx context.Context, name string, r io.Reader, size int64) error {
	b.m.ops.WithLabelValues(opUpload).Inc()
	start := time.Now()
	err := b.Bucket.Upload(ctx, name, r, size)
	b.observe(opUpload, start, err)
	return err
}

func (b *instrumentedBucket) Delete(ctx context.Context, name string) error {
	b.m.ops.WithLabelValues(opDelete).Inc()
	start := time.Now()
	err := b.Bucket.Delete(ctx, name)
	b.observe(opDelete, start, err)
	return err
}

func (b *instrumentedBucket) Iter(ctx context.Context, dir string, f func(string) error, recursive bool) error {
	b.m.ops.WithLabelValues(opIter).Inc()
	start := time.Now()
	// An error returned by f is the caller's, not the bucket's.
	var callerErr error
	err := b.Bucket.Iter(ctx, dir, func(name string) error {
		callerErr = f(name)
		return callerErr
	}, recursive)
	if callerErr != nil && errors.Is(err, callerErr) {
		b.observe(opIter, start, nil)
	} else {
		b.observe(opIter, start, err)
	}
	return err
}

func (b *instrumentedBucket) Exists(ctx context.Context, name string) (bool, error) {
	b.m.ops.WithLabelValues(opExists).Inc()
	start := time.Now()
	ok, err := b.Bucket.Exists(ctx, name)
	b.observe(opExists, start, err)
	return ok, err
}

func (b *instrumentedBucket) Attributes(ctx context.Context, name string) (ObjectAttributes, error) {
	b.m.ops.WithLabelValues(opAttributes).Inc()
	start := time.Now()
	attrs, err := b.Bucket.Attributes(ctx, name)
	b.observe(opAttributes, start, err)
	return attrs, err
}

// timedReader reports a read operation once: at the first read error other
// than EOF, or at Close.
type timedReader struct {
	rc   io.ReadCloser
	once sync.Once
	done func(error)
}

func (t *timedReader) Read(p []byte) (int, error) {
	n, err := t.rc.Read(p)
	if err != nil && err != io.EOF {
		t.once.Do(func() { t.done(err) })
	}
	return n, err
}

func (t *timedReader) Close() error {
	err := t.rc.Close()
	t.once.Do(func() { t.done(err) })
	return err
}
