package block

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"

	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/index"
)

// ErrCorrupt is returned, wrapped, for block files whose bytes do not parse
// or fail a checksum, as opposed to a bucket that could not be read.
var ErrCorrupt = errors.New("corrupt")

func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

// castagnoli is the CRC32 table of the Prometheus index and chunk formats.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// indexTOCLen is the table of contents at the end of an index: six offsets
// and a CRC32.
const indexTOCLen = 6*8 + 4

// SeriesAlignment is the alignment of series entries in an index (format
// 2 and later): a series reference is its entry's offset divided by it.
const SeriesAlignment = 16

// RangeReader reads byte ranges of objects: a bucket.Bucket, or a wrapper
// that counts what its owner reads.
type RangeReader interface {
	// GetRange returns length bytes of object name from off, fewer when
	// the object ends sooner.
	GetRange(ctx context.Context, name string, off, length int64) (io.ReadCloser, error)
}

// IndexReader reads the index of a block in a bucket by range, a section
// at a time, so that an index of any size is read without holding it: the
// store gateway builds its index headers from the symbol table and the
// postings offset table, and Inspect and Verify walk the sections they
// check. OpenIndex checks the header and the table of contents once for
// every reader.
type IndexReader struct {
	r       RangeReader
	name    string
	size    int64
	version int
	toc     index.TOC
}

// OpenIndex reads the header and table of contents of the index object
// name, of size bytes, and checks that its sections lie in order inside
// the object, so that no later range read runs off it. Bytes that do not
// describe a format 2 or 3 index yield an error matching ErrCorrupt.
func OpenIndex(ctx context.Context, r RangeReader, name string, size int64) (*IndexReader, error) {
	ix := &IndexReader{r: r, name: name, size: size}
	if size < index.HeaderLen+indexTOCLen {
		return nil, corruptf("index of %d bytes", size)
	}
	head, err := ix.read(ctx, 0, index.HeaderLen)
	if err != nil {
		return nil, err
	}
	if m := binary.BigEndian.Uint32(head); m != index.MagicIndex {
		return nil, corruptf("index magic %x", m)
	}
	ix.version = int(head[4])
	if ix.version != index.FormatV2 && ix.version != index.FormatV3 {
		return nil, corruptf("unsupported index version %d", ix.version)
	}
	tail, err := ix.read(ctx, size-indexTOCLen, indexTOCLen)
	if err != nil {
		return nil, err
	}
	toc, err := index.NewTOCFromByteSlice(byteSlice(tail))
	if err != nil {
		return nil, corruptf("TOC: %v", err)
	}
	end := uint64(size - indexTOCLen)
	switch {
	case toc.Symbols < index.HeaderLen || toc.Symbols >= end:
		return nil, corruptf("symbols at %d of %d bytes", toc.Symbols, size)
	case toc.Series < toc.Symbols || toc.Series > end:
		return nil, corruptf("series at %d", toc.Series)
	case toc.Postings < toc.Series || toc.Postings > end:
		return nil, corruptf("postings at %d", toc.Postings)
	case toc.PostingsTable < toc.Postings || toc.PostingsTable >= end:
		return nil, corruptf("postings offset table at %d", toc.PostingsTable)
	}
	ix.toc = *toc
	return ix, nil
}

// Size is the size of the index in bytes.
func (ix *IndexReader) Size() int64 { return ix.size }

// Version is the index format version.
func (ix *IndexReader) Version() int { return ix.version }

// TOC is the index's table of contents.
func (ix *IndexReader) TOC() index.TOC { return ix.toc }

// SeriesSection bounds the series entries of an index with table of
// contents toc.
func SeriesSection(toc index.TOC) (start, end int64) {
	start, end = int64(toc.Series), int64(toc.LabelIndices)
	if end <= start {
		end = int64(toc.Postings)
	}
	return start, end
}

// PostingsEnd is where the last postings list of an index with table of
// contents toc ends.
func PostingsEnd(toc index.TOC) int64 {
	if toc.LabelIndicesTable > toc.Postings {
		return int64(toc.LabelIndicesTable)
	}
	return int64(toc.PostingsTable)
}

// read returns length bytes at off, or an error matching ErrCorrupt when
// the object ends sooner.
func (ix *IndexReader) read(ctx context.Context, off, length int64) ([]byte, error) {
	rc, err := ix.r.GetRange(ctx, ix.name, off, length)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b := make([]byte, length)
	if n, err := io.ReadFull(rc, b); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, corruptf("%s: %d bytes at %d, want %d", ix.name, n, off, length)
		}
		return nil, err
	}
	return b, nil
}

// CopySymbols copies the symbol table, with its length and checksum, to w
// and returns how many bytes it copied. The checksum is checked on the way.
func (ix *IndexReader) CopySymbols(ctx context.Context, w io.Writer) (int64, error) {
	n, err := ix.copySection(ctx, int64(ix.toc.Symbols), int64(ix.toc.Series)-int64(ix.toc.Symbols), w)
	if err != nil {
		return 0, fmt.Errorf("symbol table: %w", err)
	}
	return n, nil
}

// CopyPostingsOffsetTable copies the postings offset table, with its length
// and checksum, to w and returns how many bytes it copied. The checksum is
// checked on the way.
func (ix *IndexReader) CopyPostingsOffsetTable(ctx context.Context, w io.Writer) (int64, error) {
	off := int64(ix.toc.PostingsTable)
	n, err := ix.copySection(ctx, off, ix.size-indexTOCLen-off, w)
	if err != nil {
		return 0, fmt.Errorf("postings offset table: %w", err)
	}
	return n, nil
}

// copySection copies one length-prefixed, checksummed section of at most
// avail bytes at off.
func (ix *IndexReader) copySection(ctx context.Context, off, avail int64, w io.Writer) (int64, error) {
	if avail < 8 {
		return 0, corruptf("section of %d bytes", avail)
	}
	rc, err := ix.r.GetRange(ctx, ix.name, off, avail)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	var lenBuf [4]byte
	if _, err := io.ReadFull(rc, lenBuf[:]); err != nil {
		return 0, corruptf("length: %v", err)
	}
	l := int64(binary.BigEndian.Uint32(lenBuf[:]))
	if 4+l+4 > avail {
		return 0, corruptf("section of %d bytes overruns its %d", l, avail)
	}
	if _, err := w.Write(lenBuf[:]); err != nil {
		return 0, err
	}
	h := crc32.New(castagnoli)
	if _, err := io.CopyN(io.MultiWriter(w, h), rc, l); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, corruptf("cut short: %v", err)
		}
		return 0, err
	}
	var sum [4]byte
	if _, err := io.ReadFull(rc, sum[:]); err != nil {
		return 0, corruptf("checksum: %v", err)
	}
	if binary.BigEndian.Uint32(sum[:]) != h.Sum32() {
		return 0, corruptf("checksum mismatch")
	}
	if _, err := w.Write(sum[:]); err != nil {
		return 0, err
	}
	return 4 + l + 4, nil
}

// SymbolCount returns how many symbols the symbol table holds.
func (ix *IndexReader) SymbolCount(ctx context.Context) (int, error) {
	b, err := ix.read(ctx, int64(ix.toc.Symbols), 8)
	if err != nil {
		return 0, err
	}
	return int(binary.BigEndian.Uint32(b[4:])), nil
}

// EachPostingsList reads the postings offset table and calls f with every
// label pair, in index order, and the length of its postings list,
// computed from where the next list starts: raw postings lists hold a
// length, a count, 4 bytes per series and a checksum. The pair with an
// empty name is the list of all series.
func (ix *IndexReader) EachPostingsList(ctx context.Context, f func(name, value string, series int)) error {
	var table bytes.Buffer
	if _, err := ix.CopyPostingsOffsetTable(ctx, &table); err != nil {
		return err
	}
	end := uint64(PostingsEnd(ix.toc))
	var (
		prevName, prevValue string
		prevOff             uint64
		started             bool
	)
	emit := func(end uint64) error {
		if end < prevOff+12 {
			return corruptf("postings list %s=%q of %d bytes", prevName, prevValue, end-prevOff)
		}
		f(prevName, prevValue, int((end-prevOff-12)/4))
		return nil
	}
	err := index.ReadPostingsOffsetTable(byteSlice(table.Bytes()), 0, func(name, value []byte, o uint64, _ int) error {
		if o < ix.toc.Postings || o >= end || (started && o <= prevOff) {
			return corruptf("postings list %s=%q at %d out of order or range", name, value, o)
		}
		if started {
			if err := emit(o); err != nil {
				return err
			}
		}
		prevName, prevValue, prevOff, started = string(name), string(value), o, true
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrCorrupt) {
			return err
		}
		return corruptf("postings offset table: %v", err)
	}
	if started {
		return emit(end)
	}
	return nil
}

// EachSeries streams the series section and calls f with the offset and
// the checked entry (without its length and checksum) of every series, in
// order. The entry is only valid during the call.
func (ix *IndexReader) EachSeries(ctx context.Context, f func(off int64, entry []byte) error) error {
	start, end := SeriesSection(ix.toc)
	rc, err := ix.r.GetRange(ctx, ix.name, start, end-start)
	if err != nil {
		return err
	}
	defer rc.Close()
	r := bufio.NewReaderSize(rc, 1<<16)
	var buf []byte
	pos := start
	for {
		if pad := (SeriesAlignment - pos%SeriesAlignment) % SeriesAlignment; pad > 0 {
			if pos+pad >= end {
				return nil
			}
			if _, err := r.Discard(int(pad)); err != nil {
				return corruptf("series section: %v", err)
			}
			pos += pad
		}
		if pos >= end {
			return nil
		}
		l, err := binary.ReadUvarint(r)
		if err != nil {
			return corruptf("series at %d: %v", pos, err)
		}
		buf = binary.AppendUvarint(buf[:0], l)
		n := len(buf)
		if l == 0 || pos+int64(n)+int64(l)+4 > end {
			return corruptf("series at %d: bad length %d", pos, l)
		}
		buf = slices.Grow(buf, int(l)+4)[:n+int(l)+4]
		if _, err := io.ReadFull(r, buf[n:]); err != nil {
			return corruptf("series at %d: %v", pos, err)
		}
		entry, _, err := SeriesEntry(buf)
		if err != nil {
			return fmt.Errorf("series at %d: %w", pos, err)
		}
		if err := f(pos, entry); err != nil {
			return err
		}
		pos += int64(len(buf))
	}
}

// SeriesEntry checks the series entry at the start of buf and returns its
// data, without length and checksum. need is how many bytes the entry takes
// when buf holds fewer; data is then nil.
func SeriesEntry(buf []byte) (data []byte, need int, err error) {
	l, n := binary.Uvarint(buf)
	switch {
	case n < 0:
		return nil, 0, corruptf("bad series entry length")
	case n == 0:
		return nil, binary.MaxVarintLen32 + 1, nil
	}
	total := n + int(l) + 4
	if total > len(buf) {
		return nil, total, nil
	}
	data = buf[n : n+int(l)]
	if binary.BigEndian.Uint32(buf[n+int(l):]) != crc32.Checksum(data, castagnoli) {
		return nil, 0, corruptf("series entry checksum mismatch")
	}
	return data, 0, nil
}

// PostingsList checks the raw postings list at the start of buf and
// returns it without length and checksum.
func PostingsList(buf []byte) ([]byte, error) {
	if len(buf) < 8 {
		return nil, corruptf("postings list cut short")
	}
	l := int(binary.BigEndian.Uint32(buf))
	if 4+l+4 > len(buf) {
		return nil, corruptf("postings list longer than its range")
	}
	data := buf[4 : 4+l]
	if binary.BigEndian.Uint32(buf[4+l:]) != crc32.Checksum(data, castagnoli) {
		return nil, corruptf("postings list checksum mismatch")
	}
	return data, nil
}

// ChunkRecord checks and decodes the chunk at the start of buf, a chunk
// segment's record: length, encoding, data and checksum. need is how many
// bytes the record takes when buf holds fewer; the chunk is then nil. The
// chunk shares buf's memory.
func ChunkRecord(buf []byte) (chk chunkenc.Chunk, need int, err error) {
	l, n := binary.Uvarint(buf)
	switch {
	case n < 0:
		return nil, 0, corruptf("bad chunk length")
	case n == 0:
		return nil, binary.MaxVarintLen32 + 1, nil
	}
	total := n + 1 + int(l) + 4
	if total > len(buf) {
		return nil, total, nil
	}
	enc, data := buf[n], buf[n+1:n+1+int(l)]
	if binary.BigEndian.Uint32(buf[n+1+int(l):]) != crc32.Checksum(buf[n:n+1+int(l)], castagnoli) {
		return nil, 0, corruptf("chunk checksum mismatch")
	}
	chk, err = chunkenc.FromData(chunkenc.Encoding(enc), data)
	if err != nil {
		return nil, 0, corruptf("chunk: %v", err)
	}
	return chk, 0, nil
}

// byteSlice adapts a byte slice to the Prometheus index decoders.
type byteSlice []byte

func (b byteSlice) Len() int                    { return len(b) }
func (b byteSlice) Range(start, end int) []byte { return b[start:end] }
