package ingest

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/protobuf/encoding/protowire"
)

func TestBodyReaderRead(t *testing.T) {
	req := benchRequest(100)
	raw := mustMarshal(t, req)
	compressed := snappy.Encode(nil, raw)
	limits := BodyLimits{MaxCompressedBytes: len(compressed), MaxDecodedBytes: len(raw)}

	// A snappy header announcing 4 GiB - 1 of output, followed by nothing.
	hugeHeader := protowire.AppendVarint(nil, 1<<32-1)

	tests := []struct {
		name          string
		limits        BodyLimits
		body          io.Reader
		contentLength int64
		wantErr       error  // nil for success
		wantMsg       string // in the error
	}{
		{"exactly at both limits", limits, bytes.NewReader(compressed), int64(len(compressed)), nil, ""},
		{"unknown length", limits, bytes.NewReader(compressed), -1, nil, ""},
		{"one byte at a time", limits, iotest.OneByteReader(bytes.NewReader(compressed)), -1, nil, ""},
		{"data with the last read's EOF", limits, iotest.DataErrReader(bytes.NewReader(compressed)), -1, nil, ""},
		{"default limits", BodyLimits{}, bytes.NewReader(compressed), int64(len(compressed)), nil, ""},
		{"empty body", limits, bytes.NewReader(snappy.Encode(nil, nil)), 1, nil, ""},
		{"Content-Length over the limit", limits, bytes.NewReader(compressed), int64(len(compressed)) + 1, errRequestTooLarge, "Content-Length"},
		{"Content-Length absurd", limits, strings.NewReader(""), 1 << 62, errRequestTooLarge, "Content-Length"},
		{"body over the limit, length unknown", BodyLimits{MaxCompressedBytes: len(compressed) - 1, MaxDecodedBytes: len(raw)}, bytes.NewReader(compressed), -1, errRequestTooLarge, "compressed"},
		{"body longer than its Content-Length", BodyLimits{MaxCompressedBytes: len(compressed) - 1, MaxDecodedBytes: len(raw)}, bytes.NewReader(compressed), 10, errRequestTooLarge, "compressed"},
		{"decoded over the limit", BodyLimits{MaxCompressedBytes: len(compressed), MaxDecodedBytes: len(raw) - 1}, bytes.NewReader(compressed), -1, errRequestTooLarge, "decoded"},
		{"snappy header claims 4 GiB", limits, bytes.NewReader(hugeHeader), -1, errRequestTooLarge, "decoded"},
		{"snappy header claims more than the data can hold", limits, bytes.NewReader(append(protowire.AppendVarint(nil, 1000), 0x00)), -1, errMalformedRequest, "more than 3 compressed bytes"},
		{"empty input", limits, strings.NewReader(""), 0, errMalformedRequest, "snappy header"},
		{"corrupt snappy header", limits, bytes.NewReader(bytes.Repeat([]byte{0xff}, 11)), -1, errMalformedRequest, "snappy header"},
		{"truncated snappy data", limits, bytes.NewReader(compressed[:len(compressed)/2]), -1, errMalformedRequest, "snappy"},
		{"uncompressed protobuf", BodyLimits{}, bytes.NewReader(raw), -1, errMalformedRequest, "snappy"},
		{"framed snappy stream", BodyLimits{}, bytes.NewReader(framedSnappy(t, raw)), -1, errMalformedRequest, "snappy"},
	}
	br := newBodyReader(BodyLimits{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			br.limits = tt.limits.withDefaults()
			body, err := br.Read(tt.body, tt.contentLength)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.wantMsg) {
					t.Fatalf("Read = %v, want %v saying %q", err, tt.wantErr, tt.wantMsg)
				}
				if body != nil {
					t.Errorf("Read returned a body with its error")
				}
				return
			}
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			defer body.Release()
			wantBytes := raw
			if tt.name == "empty body" {
				wantBytes = nil
			}
			if !bytes.Equal(body.Bytes(), wantBytes) {
				t.Fatalf("Bytes differ from the encoded request")
			}
			wr, err := body.Decode()
			if err != nil {
				t.Fatal(err)
			}
			var want prompb.WriteRequest
			if err := want.Unmarshal(wantBytes); err != nil {
				t.Fatal(err)
			}
			if err := diffWithPrompb(wr, &want); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func framedSnappy(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	w := snappy.NewBufferedWriter(&buf)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestBodyReaderReadError(t *testing.T) {
	boom := errors.New("connection reset")
	br := newBodyReader(BodyLimits{})
	_, err := br.Read(iotest.TimeoutReader(bytes.NewReader(make([]byte, 1))), -1)
	if !errors.Is(err, iotest.ErrTimeout) {
		t.Errorf("Read = %v, want the reader's error", err)
	}
	_, err = br.Read(io.MultiReader(strings.NewReader("abc"), iotest.ErrReader(boom)), -1)
	if !errors.Is(err, boom) || errors.Is(err, errMalformedRequest) || errors.Is(err, errRequestTooLarge) {
		t.Errorf("Read = %v, want only the reader's error", err)
	}
}

// The limits are there to stop hostile headers from costing memory: neither
// a Content-Length nor a snappy length prefix may be allocated before it is
// checked.
func TestBodyReaderDoesNotTrustHeaders(t *testing.T) {
	// Limits high enough that believing a header would show.
	br := newBodyReader(BodyLimits{MaxCompressedBytes: 1 << 30, MaxDecodedBytes: 1 << 30})
	tests := []struct {
		name          string
		body          []byte
		contentLength int64
		wantErr       error
	}{
		{"snappy length prefix over the limit", protowire.AppendVarint(nil, 1<<32-1), -1, errRequestTooLarge},
		{"snappy length prefix under the limit", protowire.AppendVarint([]byte{}, 1<<30-1), -1, errMalformedRequest},
		{"Content-Length over the limit", []byte("x"), 1 << 40, errRequestTooLarge},
		{"Content-Length under the limit, body short", []byte("\x00"), 1<<30 - 1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			for range 10 {
				body, err := br.Read(bytes.NewReader(tt.body), tt.contentLength)
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Read = %v, want %v", err, tt.wantErr)
				}
				if body != nil {
					body.Release()
				}
			}
			runtime.ReadMemStats(&after)
			// Content-Length may size the first buffer up to 1 MiB; the pool
			// usually keeps it, but may drop it (always may, under -race).
			if n := after.TotalAlloc - before.TotalAlloc; n > 10*(2<<20) {
				t.Errorf("10 reads allocated %d bytes", n)
			}
		})
	}
}

func TestPooledBodyTrimForPool(t *testing.T) {
	small := mustMarshal(t, benchRequest(10))
	big := mustMarshal(t, benchRequest(2000))
	tests := []struct {
		name        string
		body        []byte
		maxRetained int
		keepDecoded bool
	}{
		{"small request is kept", small, 1 << 20, true},
		{"big request is dropped", big, 64 << 10, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &pooledBody{compressed: snappy.Encode(nil, tt.body), decoded: bytes.Clone(tt.body)}
			if _, err := b.Decode(); err != nil {
				t.Fatal(err)
			}
			b.trimForPool(tt.maxRetained)
			if len(b.compressed) != 0 || len(b.decoded) != 0 || len(b.req.Timeseries) != 0 {
				t.Fatalf("trimmed body still holds data")
			}
			if kept := cap(b.decoded) > 0; kept != tt.keepDecoded {
				t.Errorf("decoded buffer kept = %v, want %v", kept, tt.keepDecoded)
			}
			if !tt.keepDecoded && (cap(b.req.Timeseries) != 0 || cap(b.req.labels) != 0) {
				t.Errorf("arenas pointing into the dropped buffer were kept")
			}
			if b.req.wireFootprint() > tt.maxRetained || cap(b.compressed) > tt.maxRetained {
				t.Errorf("keeps %d bytes, more than %d", b.req.wireFootprint(), tt.maxRetained)
			}
		})
	}
}

func TestBodyReaderConcurrent(t *testing.T) {
	br := newBodyReader(BodyLimits{})
	bodies := make([][]byte, 4)
	for i := range bodies {
		bodies[i] = mustMarshal(t, benchRequest(50*(i+1)))
	}
	done := make(chan error)
	for g := range 4 {
		go func() {
			for i := range 50 {
				raw := bodies[(g+i)%len(bodies)]
				body, err := br.Read(bytes.NewReader(snappy.Encode(nil, raw)), -1)
				if err != nil {
					done <- err
					return
				}
				wr, err := body.Decode()
				if err == nil && len(wr.Timeseries) != 50*((g+i)%len(bodies)+1) {
					err = errors.New("decoded the wrong request")
				}
				body.Release()
				if err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

func BenchmarkBodyRead(b *testing.B) {
	raw := mustMarshal(b, benchRequest(2000))
	compressed := snappy.Encode(nil, raw)
	b.Run("atoll", func(b *testing.B) {
		br := newBodyReader(BodyLimits{})
		var r bytes.Reader
		b.ReportAllocs()
		b.SetBytes(int64(len(compressed)))
		for b.Loop() {
			r.Reset(compressed)
			body, err := br.Read(&r, int64(len(compressed)))
			if err != nil {
				b.Fatal(err)
			}
			body.Release()
		}
	})
	b.Run("prometheus", func(b *testing.B) {
		var r bytes.Reader
		b.ReportAllocs()
		b.SetBytes(int64(len(compressed)))
		for b.Loop() {
			// What Prometheus's remote-write handler does.
			r.Reset(compressed)
			c, err := io.ReadAll(io.LimitReader(&r, 32<<20))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := snappy.Decode(nil, c); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkReceive is the whole share of the receive path in this package:
// read, snappy, decode and validate, against Prometheus's read, snappy and
// unmarshal (whose labels are validated later, while appending).
func BenchmarkReceive(b *testing.B) {
	raw := mustMarshal(b, benchRequest(2000))
	compressed := snappy.Encode(nil, raw)
	b.Run("atoll", func(b *testing.B) {
		br := newBodyReader(BodyLimits{})
		var r bytes.Reader
		b.ReportAllocs()
		for b.Loop() {
			r.Reset(compressed)
			body, err := br.Read(&r, int64(len(compressed)))
			if err != nil {
				b.Fatal(err)
			}
			wr, err := body.Decode()
			if err != nil {
				b.Fatal(err)
			}
			for i := range wr.Timeseries {
				if err := validateSeries(&wr.Timeseries[i]); err != nil {
					b.Fatal(err)
				}
			}
			body.Release()
		}
	})
	b.Run("prometheus", func(b *testing.B) {
		var r bytes.Reader
		b.ReportAllocs()
		for b.Loop() {
			r.Reset(compressed)
			c, err := io.ReadAll(io.LimitReader(&r, 32<<20))
			if err != nil {
				b.Fatal(err)
			}
			d, err := snappy.Decode(nil, c)
			if err != nil {
				b.Fatal(err)
			}
			var req prompb.WriteRequest
			if err := req.Unmarshal(d); err != nil {
				b.Fatal(err)
			}
		}
	})
}
