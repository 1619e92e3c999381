package ingest

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"unsafe"

	"github.com/golang/snappy"
)

// errRequestTooLarge is matched (errors.Is) when a body, compressed or
// decoded, is over its limit.
var errRequestTooLarge = errors.New("remote-write request too large")

// BodyLimits bound what a bodyReader reads and keeps. Zero fields take the
// defaults below.
type BodyLimits struct {
	// MaxCompressedBytes bounds the snappy-compressed body. Default 16 MiB.
	MaxCompressedBytes int
	// MaxDecodedBytes bounds the body after snappy decoding, which is what a
	// writeRequest points into. Default 64 MiB.
	MaxDecodedBytes int
	// MaxRetainedBytes is the largest buffer, and the largest writeRequest
	// backing array, kept for reuse after Release; bigger ones go to the
	// garbage collector so one huge request does not pin its memory.
	// Default 4 MiB.
	MaxRetainedBytes int
}

const (
	defaultMaxCompressedBytes = 16 << 20
	defaultMaxDecodedBytes    = 64 << 20
	defaultMaxRetainedBytes   = 4 << 20

	// wireBodyInitialHint caps the allocation made up front from a
	// Content-Length that passed the limit. A client that announces a large
	// body gets the rest allocated only as the bytes actually arrive.
	wireBodyInitialHint = 1 << 20

	// wireSnappyMaxRatio bounds how much a snappy block can expand: 64/3,
	// rounded up.
	wireSnappyMaxRatio = 22
)

func (l BodyLimits) withDefaults() BodyLimits {
	if l.MaxCompressedBytes <= 0 {
		l.MaxCompressedBytes = defaultMaxCompressedBytes
	}
	if l.MaxDecodedBytes <= 0 {
		l.MaxDecodedBytes = defaultMaxDecodedBytes
	}
	if l.MaxRetainedBytes <= 0 {
		l.MaxRetainedBytes = defaultMaxRetainedBytes
	}
	return l
}

// bodyReader reads snappy-compressed remote-write bodies into pooled buffers
// under size limits. It is safe for concurrent use; share one per process.
//
//	body, err := br.Read(req.Body, req.ContentLength)
//	if err != nil { ... }
//	defer body.Release()
//	wr, err := body.Decode()
type bodyReader struct {
	limits BodyLimits
	pool   sync.Pool // of *pooledBody
}

// newBodyReader returns a bodyReader enforcing limits.
func newBodyReader(limits BodyLimits) *bodyReader {
	return &bodyReader{limits: limits.withDefaults()}
}

// Limits returns the limits in force, defaults filled in.
func (br *bodyReader) Limits() BodyLimits { return br.limits }

// pooledBody is one request's buffers: the compressed body, the decoded
// body and the writeRequest decoded from it. It comes from bodyReader.Read
// and goes back with Release.
type pooledBody struct {
	owner      *bodyReader
	compressed []byte
	decoded    []byte
	req        writeRequest
}

// Read reads the whole body from r and snappy-decodes it. contentLength is
// the request's Content-Length, or -1 if unknown; a claim over the limit is
// refused before anything is read or allocated.
//
// It reads at most MaxCompressedBytes+1 bytes, checks the length that the
// snappy header announces against MaxDecodedBytes, and against what the
// compressed bytes could possibly expand to, before allocating for it, and
// decodes into a reused buffer. Errors match errRequestTooLarge,
// errMalformedRequest (corrupt snappy data), or wrap r's read error.
func (br *bodyReader) Read(r io.Reader, contentLength int64) (*pooledBody, error) {
	if contentLength > int64(br.limits.MaxCompressedBytes) {
		return nil, fmt.Errorf("%w: Content-Length %d exceeds the limit of %d bytes",
			errRequestTooLarge, contentLength, br.limits.MaxCompressedBytes)
	}
	b, _ := br.pool.Get().(*pooledBody)
	if b == nil {
		b = &pooledBody{}
	}
	b.owner = br
	if err := b.read(r, contentLength, br.limits); err != nil {
		b.Release()
		return nil, err
	}
	return b, nil
}

func (b *pooledBody) read(r io.Reader, contentLength int64, limits BodyLimits) error {
	hint := 0
	if contentLength > 0 {
		hint = int(min(contentLength+1, wireBodyInitialHint))
	}
	// One byte more than allowed tells an oversized body from one that is
	// exactly at the limit.
	lr := io.LimitedReader{R: r, N: int64(limits.MaxCompressedBytes) + 1}
	buf, err := wireReadAll(b.compressed[:0], &lr, hint, limits.MaxCompressedBytes+1)
	b.compressed = buf
	if err != nil {
		return fmt.Errorf("read remote-write body: %w", err)
	}
	if len(buf) > limits.MaxCompressedBytes {
		return fmt.Errorf("%w: compressed body exceeds the limit of %d bytes",
			errRequestTooLarge, limits.MaxCompressedBytes)
	}

	n, err := snappy.DecodedLen(buf)
	if err != nil {
		return fmt.Errorf("%w: snappy header: %w", errMalformedRequest, err)
	}
	if n > limits.MaxDecodedBytes {
		return fmt.Errorf("%w: decoded body of %d bytes exceeds the limit of %d bytes",
			errRequestTooLarge, n, limits.MaxDecodedBytes)
	}
	// No snappy element yields more than 64 bytes from 3 (a two-byte-offset
	// copy), so a header announcing more is lying: refuse it before
	// allocating, or a few bytes would buy MaxDecodedBytes of memory.
	if n > wireSnappyMaxRatio*len(buf) {
		return fmt.Errorf("%w: snappy header announces %d bytes, more than %d compressed bytes can hold",
			errMalformedRequest, n, len(buf))
	}
	if cap(b.decoded) < n {
		b.decoded = make([]byte, n)
	}
	out, err := snappy.Decode(b.decoded[:cap(b.decoded)], buf)
	if err != nil {
		b.decoded = b.decoded[:0]
		return fmt.Errorf("%w: snappy: %w", errMalformedRequest, err)
	}
	b.decoded = out
	return nil
}

// wireReadAll appends everything r yields to dst. It grows dst itself rather
// than through append, to never reserve more than limit bytes. r is concrete
// so that it stays on the caller's stack.
func wireReadAll(dst []byte, r *io.LimitedReader, hint, limit int) ([]byte, error) {
	if cap(dst) < hint {
		dst = make([]byte, 0, hint)
	}
	for {
		if len(dst) == cap(dst) {
			if len(dst) >= limit {
				// Only a reader ignoring the limit gets here.
				return dst, nil
			}
			grown := make([]byte, len(dst), min(limit, max(2*cap(dst), 64<<10)))
			copy(grown, dst)
			dst = grown
		}
		n, err := r.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return dst, err
		}
	}
}

// Bytes returns the decoded body: a prompb.WriteRequest in protobuf. It is
// valid until Release.
func (b *pooledBody) Bytes() []byte { return b.decoded }

// Decode decodes Bytes into the writeRequest that belongs to this body and
// returns it. The writeRequest and everything it points to are valid until
// Release; calling Decode again decodes afresh into the same writeRequest.
func (b *pooledBody) Decode() (*writeRequest, error) {
	if err := b.req.Decode(b.decoded); err != nil {
		return nil, err
	}
	return &b.req, nil
}

// Release returns the buffers for reuse by later requests. Call it exactly
// once per successful Read, after the last use of Bytes, the writeRequest and
// anything pointing into them.
func (b *pooledBody) Release() {
	owner := b.owner
	if owner == nil {
		return
	}
	b.trimForPool(owner.limits.MaxRetainedBytes)
	b.owner = nil
	owner.pool.Put(b)
}

// trimForPool drops whatever is bigger than maxRetained, and every reference
// into a dropped decoded buffer, so the pool never holds on to it.
func (b *pooledBody) trimForPool(maxRetained int) {
	if cap(b.compressed) > maxRetained {
		b.compressed = nil
	}
	b.compressed = b.compressed[:0]
	if cap(b.decoded) > maxRetained || b.req.wireFootprint() > maxRetained {
		b.decoded = nil
		b.req = writeRequest{}
	}
	b.decoded = b.decoded[:0]
	b.req.wireReset()
}

// wireFootprint is the size in bytes of the largest backing array r holds.
func (r *writeRequest) wireFootprint() int {
	return max(
		cap(r.Timeseries)*int(unsafe.Sizeof(timeSeries{})),
		cap(r.Metadata)*int(unsafe.Sizeof(metricMetadata{})),
		cap(r.labels)*int(unsafe.Sizeof(label{})),
		cap(r.samples)*int(unsafe.Sizeof(sample{})),
		cap(r.histograms)*int(unsafe.Sizeof(wireHistogram{})),
		cap(r.exemplars)*int(unsafe.Sizeof(wireExemplar{})),
		cap(r.exemplarLabels)*int(unsafe.Sizeof(label{})),
		cap(r.hashScratch),
	)
}
