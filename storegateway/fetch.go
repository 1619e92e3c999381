package storegateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/atoll-metrics/atoll/block"
	"github.com/atoll-metrics/atoll/bucket"
)

// What range reads are for, as counted in metrics.
const (
	fetchHeader   = "header"
	fetchPostings = "postings"
	fetchSeries   = "series"
	fetchChunks   = "chunks"
)

// bucketReader reads byte ranges of block objects and counts them.
type bucketReader struct {
	bkt   bucket.Bucket
	bytes *prometheus.CounterVec
	reads *prometheus.CounterVec
}

// open returns a reader of length bytes of name from off.
func (r *bucketReader) open(ctx context.Context, kind, name string, off, length int64) (io.ReadCloser, error) {
	rc, err := r.bkt.GetRange(ctx, name, off, length)
	if err != nil {
		return nil, err
	}
	r.reads.WithLabelValues(kind).Inc()
	return &countingReader{ReadCloser: rc, c: r.bytes.WithLabelValues(kind)}, nil
}

// read returns length bytes of name from off; fewer when the object ends
// sooner.
func (r *bucketReader) read(ctx context.Context, kind, name string, off, length int64) ([]byte, error) {
	rc, err := r.open(ctx, kind, name, off, length)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	// Exactly sized: a growing buffer would double its capacity at the end.
	buf := make([]byte, length)
	n, err := io.ReadFull(rc, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read %s [%d, +%d): %w", name, off, length, err)
	}
	return buf[:n], nil
}

// as returns r as a block.RangeReader whose reads count as kind.
func (r *bucketReader) as(kind string) block.RangeReader { return kindReader{r: r, kind: kind} }

type kindReader struct {
	r    *bucketReader
	kind string
}

func (k kindReader) GetRange(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	return k.r.open(ctx, k.kind, name, off, length)
}

type countingReader struct {
	io.ReadCloser
	c prometheus.Counter
}

func (r *countingReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	r.c.Add(float64(n))
	return n, err
}

// part is one wanted byte range [start, end) of an object, with the index
// of whoever asked for it.
type part struct {
	start, end int64
	id         int
}

// fetchRange is a range read that serves several parts.
type fetchRange struct {
	start, end int64
	parts      []part
}

// mergeParts groups parts whose gaps are at most maxGap into one read, so
// that nearby entries cost one round trip and a few wasted bytes rather
// than a request each. Parts may overlap.
func mergeParts(parts []part, maxGap int64) []fetchRange {
	if len(parts) == 0 {
		return nil
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i].start < parts[j].start })
	var out []fetchRange
	cur := fetchRange{start: parts[0].start, end: parts[0].end, parts: parts[:1:1]}
	for _, p := range parts[1:] {
		if p.start <= cur.end+maxGap {
			cur.end = max(cur.end, p.end)
			cur.parts = append(cur.parts, p)
			continue
		}
		out = append(out, cur)
		cur = fetchRange{start: p.start, end: p.end, parts: []part{p}}
	}
	return append(out, cur)
}
