package storegateway

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sort"
	"unsafe"

	"github.com/prometheus/prometheus/tsdb/encoding"
	"github.com/prometheus/prometheus/tsdb/fileutil"
	"github.com/prometheus/prometheus/tsdb/index"

	"github.com/atoll-metrics/atoll/block"
)

// The index header is a small local file per block holding what every
// lookup in the block's index needs and nothing else: the index's TOC, its
// symbol table and its postings offset table, the last two copied byte for
// byte (with their CRCs) from range reads of the index in the bucket. The
// series and postings sections, the bulk of an index, stay in the bucket
// and are read by range when a query needs them.
//
// File layout, big endian:
//
//	magic u32 | version u8 | index version u8 | 0 u16 | index size u64
//	TOC: symbols, series, label indices, label indices table, postings,
//	     postings table (6 x u64)
//	symbols section offset u64 | length u64
//	postings offset table offset u64 | length u64
//	CRC32 (Castagnoli) of everything above
//	symbols section (len u32 | count u32 | entries | CRC32)
//	postings offset table (len u32 | count u32 | entries | CRC32)
//
// The prologue is written last, so a header torn by a crash fails its CRC
// and is rebuilt.
const (
	headerFilename = "index-header"
	headerMagic    = 0xA7011E4D
	headerVersion  = 1
	prologueSize   = 100

	// symbolSampling is how many symbols share one remembered offset,
	// and postingsSampling how many values of a label name share one
	// remembered offset table position: lookups walk at most that many
	// entries of the mapped file.
	symbolSampling   = 32
	postingsSampling = 32
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// byteSlice adapts a byte slice to the Prometheus index decoders.
type byteSlice []byte

func (b byteSlice) Len() int                    { return len(b) }
func (b byteSlice) Range(start, end int) []byte { return b[start:end] }

// indexHeaderInfo is what the prologue records.
type indexHeaderInfo struct {
	indexVersion int
	indexSize    int64
	toc          index.TOC
	symbolsOff   int64
	symbolsLen   int64
	postingsOff  int64
	postingsLen  int64
}

func (p *indexHeaderInfo) encode() []byte {
	b := make([]byte, prologueSize)
	binary.BigEndian.PutUint32(b[0:], headerMagic)
	b[4] = headerVersion
	b[5] = byte(p.indexVersion)
	binary.BigEndian.PutUint64(b[8:], uint64(p.indexSize))
	for i, v := range []uint64{p.toc.Symbols, p.toc.Series, p.toc.LabelIndices, p.toc.LabelIndicesTable, p.toc.Postings, p.toc.PostingsTable} {
		binary.BigEndian.PutUint64(b[16+8*i:], v)
	}
	binary.BigEndian.PutUint64(b[64:], uint64(p.symbolsOff))
	binary.BigEndian.PutUint64(b[72:], uint64(p.symbolsLen))
	binary.BigEndian.PutUint64(b[80:], uint64(p.postingsOff))
	binary.BigEndian.PutUint64(b[88:], uint64(p.postingsLen))
	binary.BigEndian.PutUint32(b[96:], crc32.Checksum(b[:96], castagnoli))
	return b
}

func decodePrologue(b []byte) (indexHeaderInfo, error) {
	var p indexHeaderInfo
	if len(b) < prologueSize {
		return p, fmt.Errorf("%w: index header of %d bytes", block.ErrCorrupt, len(b))
	}
	if binary.BigEndian.Uint32(b[96:]) != crc32.Checksum(b[:96], castagnoli) {
		return p, fmt.Errorf("%w: index header checksum mismatch", block.ErrCorrupt)
	}
	if m := binary.BigEndian.Uint32(b); m != headerMagic {
		return p, fmt.Errorf("%w: index header magic %x", block.ErrCorrupt, m)
	}
	if b[4] != headerVersion {
		return p, fmt.Errorf("%w: index header version %d", block.ErrCorrupt, b[4])
	}
	p.indexVersion = int(b[5])
	p.indexSize = int64(binary.BigEndian.Uint64(b[8:]))
	toc := make([]uint64, 6)
	for i := range toc {
		toc[i] = binary.BigEndian.Uint64(b[16+8*i:])
	}
	p.toc = index.TOC{Symbols: toc[0], Series: toc[1], LabelIndices: toc[2], LabelIndicesTable: toc[3], Postings: toc[4], PostingsTable: toc[5]}
	p.symbolsOff = int64(binary.BigEndian.Uint64(b[64:]))
	p.symbolsLen = int64(binary.BigEndian.Uint64(b[72:]))
	p.postingsOff = int64(binary.BigEndian.Uint64(b[80:]))
	p.postingsLen = int64(binary.BigEndian.Uint64(b[88:]))
	return p, nil
}

// buildIndexHeader writes the index header of the index object name (size
// bytes) to path, from range reads of the index: its header and table of
// contents, checked by block.OpenIndex, and the two sections it copies.
func buildIndexHeader(ctx context.Context, r block.RangeReader, name string, size int64, path string) (err error) {
	ix, err := block.OpenIndex(ctx, r, name, size)
	if err != nil {
		return err
	}
	p := indexHeaderInfo{indexVersion: ix.Version(), indexSize: size, toc: ix.TOC()}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer func() {
		if f != nil {
			_ = f.Close()
		}
		if err != nil {
			_ = os.Remove(tmp)
		}
	}()
	w := bufio.NewWriterSize(f, 1<<16)
	if _, err := w.Write(make([]byte, prologueSize)); err != nil {
		return err
	}
	p.symbolsOff = prologueSize
	if p.symbolsLen, err = ix.CopySymbols(ctx, w); err != nil {
		return err
	}
	p.postingsOff = p.symbolsOff + p.symbolsLen
	if p.postingsLen, err = ix.CopyPostingsOffsetTable(ctx, w); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if _, err := f.WriteAt(p.encode(), 0); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		f = nil
		return err
	}
	f = nil
	return os.Rename(tmp, path)
}

// indexHeader is an open index header: the file mapped into memory, every
// 32nd symbol offset, and per label name every 32nd value with its position
// in the postings offset table. Only those samples live on the Go heap.
type indexHeader struct {
	file *fileutil.MmapFile
	b    []byte
	info indexHeaderInfo

	symbolOffsets []int
	symbolCount   int

	// postings offset table entries lie in b[tableStart:tableEnd].
	tableStart, tableEnd int
	// postingsEnd is where the last postings list ends in the index.
	postingsEnd int64
	names       map[string]*nameSamples
	sortedNames []string
}

// nameSamples are the sampled values of one label name, in order; the
// last value is always kept so that lookups know where the name ends.
type nameSamples struct {
	values []string
	pos    []int
}

func openIndexHeader(path string) (h *indexHeader, err error) {
	f, err := fileutil.OpenMmapFile(path)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = f.Close()
		}
	}()
	b := f.Bytes()
	info, err := decodePrologue(b)
	if err != nil {
		return nil, err
	}
	if info.symbolsOff != prologueSize || info.postingsOff != info.symbolsOff+info.symbolsLen ||
		info.postingsOff+info.postingsLen != int64(len(b)) {
		return nil, fmt.Errorf("%w: index header sections do not match its size %d", block.ErrCorrupt, len(b))
	}
	h = &indexHeader{file: f, b: b, info: info, names: map[string]*nameSamples{}}
	if err := h.loadSymbols(); err != nil {
		return nil, err
	}
	if err := h.loadPostingsTable(); err != nil {
		return nil, err
	}
	return h, nil
}

func (h *indexHeader) close() error { return h.file.Close() }

func (h *indexHeader) loadSymbols() error {
	d := encoding.NewDecbufAt(byteSlice(h.b), int(h.info.symbolsOff), castagnoli)
	if d.Err() != nil {
		return fmt.Errorf("%w: symbol table: %w", block.ErrCorrupt, d.Err())
	}
	total := d.Len()
	base := int(h.info.symbolsOff) + 4
	h.symbolCount = d.Be32int()
	h.symbolOffsets = make([]int, 0, h.symbolCount/symbolSampling+1)
	for i := 0; i < h.symbolCount && d.Err() == nil; i++ {
		if i%symbolSampling == 0 {
			h.symbolOffsets = append(h.symbolOffsets, base+total-d.Len())
		}
		d.UvarintBytes()
	}
	if d.Err() != nil {
		return fmt.Errorf("%w: symbol table: %w", block.ErrCorrupt, d.Err())
	}
	return nil
}

// lookupSymbol returns symbol o. The string points into the mapped file:
// it is valid while the header is open, and must be copied to outlive it.
func (h *indexHeader) lookupSymbol(_ context.Context, o uint32) (string, error) {
	if int(o) >= h.symbolCount {
		return "", fmt.Errorf("%w: symbol %d of %d", block.ErrCorrupt, o, h.symbolCount)
	}
	d := encoding.Decbuf{B: h.b[h.symbolOffsets[o/symbolSampling]:h.info.postingsOff]}
	for i := o % symbolSampling; i > 0; i-- {
		d.UvarintBytes()
	}
	s := d.UvarintBytes()
	if d.Err() != nil {
		return "", fmt.Errorf("%w: symbol %d: %w", block.ErrCorrupt, o, d.Err())
	}
	return yoloString(s), nil
}

// yoloString views b as a string without copying; b must not change while
// the string is in use.
func yoloString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

func (h *indexHeader) loadPostingsTable() error {
	off := int(h.info.postingsOff)
	d := encoding.NewDecbufAt(byteSlice(h.b), off, castagnoli)
	if d.Err() != nil {
		return fmt.Errorf("%w: postings offset table: %w", block.ErrCorrupt, d.Err())
	}
	h.tableStart = off + 4 + 4
	h.tableEnd = off + 4 + d.Len()
	h.postingsEnd = block.PostingsEnd(h.info.toc)

	var (
		cur      *nameSamples
		curName  []byte
		count    int
		lastVal  []byte
		lastPos  int
		lastSeen bool
	)
	finish := func() {
		if cur != nil && lastSeen {
			cur.values = append(cur.values, string(lastVal))
			cur.pos = append(cur.pos, lastPos)
		}
	}
	prevOff := uint64(0)
	err := index.ReadPostingsOffsetTable(byteSlice(h.b), uint64(off), func(name, value []byte, postingsOff uint64, labelOffset int) error {
		if postingsOff < prevOff || int64(postingsOff) >= h.postingsEnd {
			return fmt.Errorf("%w: postings offset %d out of order or range", block.ErrCorrupt, postingsOff)
		}
		prevOff = postingsOff
		pos := off + 4 + labelOffset
		if cur == nil || string(name) != string(curName) {
			finish()
			cur = &nameSamples{}
			curName = name
			h.names[string(name)] = cur
			count = 0
		}
		if count%postingsSampling == 0 {
			cur.values = append(cur.values, string(value))
			cur.pos = append(cur.pos, pos)
			lastSeen = false
		} else {
			lastVal, lastPos, lastSeen = value, pos, true
		}
		count++
		return nil
	})
	if err != nil {
		if errors.Is(err, block.ErrCorrupt) {
			return err
		}
		return fmt.Errorf("%w: postings offset table: %w", block.ErrCorrupt, err)
	}
	finish()
	for n := range h.names {
		if n != "" {
			h.sortedNames = append(h.sortedNames, n)
		}
	}
	sort.Strings(h.sortedNames)
	return nil
}

// tableEntry is one decoded postings offset table entry.
type tableEntry struct {
	name, value []byte
	off         uint64
	next        int // position of the following entry
}

func (h *indexHeader) entryAt(pos int) (tableEntry, error) {
	d := encoding.Decbuf{B: h.b[pos:h.tableEnd]}
	n := d.Len()
	if k := d.Uvarint(); k != 2 && d.Err() == nil {
		return tableEntry{}, fmt.Errorf("%w: postings offset table entry with %d keys", block.ErrCorrupt, k)
	}
	e := tableEntry{name: d.UvarintBytes(), value: d.UvarintBytes(), off: d.Uvarint64()}
	if d.Err() != nil {
		return tableEntry{}, fmt.Errorf("%w: postings offset table: %w", block.ErrCorrupt, d.Err())
	}
	e.next = pos + n - d.Len()
	return e, nil
}

// scanFrom walks the postings offset table from pos, giving f each entry
// with the byte range of its postings list in the index, until f returns
// false or the table ends.
func (h *indexHeader) scanFrom(pos int, f func(name, value []byte, start, end int64) bool) error {
	if pos >= h.tableEnd {
		return nil
	}
	cur, err := h.entryAt(pos)
	if err != nil {
		return err
	}
	for {
		end := h.postingsEnd
		var next tableEntry
		last := cur.next >= h.tableEnd
		if !last {
			if next, err = h.entryAt(cur.next); err != nil {
				return err
			}
			end = int64(next.off)
		}
		if !f(cur.name, cur.value, int64(cur.off), end) || last {
			return nil
		}
		cur = next
	}
}

// postingsRange returns where the postings list of name=value lies in the
// index; ok is false when no series has that label pair.
func (h *indexHeader) postingsRange(name, value string) (start, end int64, ok bool, err error) {
	ns := h.names[name]
	if ns == nil {
		return 0, 0, false, nil
	}
	i := sort.SearchStrings(ns.values, value)
	if i < len(ns.values) && ns.values[i] == value {
		// A sampled value: start right at it.
	} else if i == 0 || i == len(ns.values) {
		// Before the first or after the last value of the name.
		return 0, 0, false, nil
	} else {
		i--
	}
	err = h.scanFrom(ns.pos[i], func(n, v []byte, s, e int64) bool {
		if string(n) != name || string(v) > value {
			return false
		}
		if string(v) == value {
			start, end, ok = s, e, true
			return false
		}
		return true
	})
	return start, end, ok, err
}

// labelValuesFrom calls f with the values of name from the first one not
// below from, in order, with the range of each postings list, until f
// returns false. The value bytes point into the mapped file.
func (h *indexHeader) labelValuesFrom(name, from string, f func(value []byte, start, end int64) bool) error {
	ns := h.names[name]
	if ns == nil || len(ns.pos) == 0 {
		return nil
	}
	i := sort.SearchStrings(ns.values, from)
	if (i == len(ns.values) || ns.values[i] != from) && i > 0 {
		i--
	}
	return h.scanFrom(ns.pos[i], func(n, v []byte, s, e int64) bool {
		if string(n) != name {
			return false
		}
		if string(v) < from {
			return true
		}
		return f(v, s, e)
	})
}

// labelNames returns the label names of the block, sorted. The slice is
// shared.
func (h *indexHeader) labelNames() []string { return h.sortedNames }

// seriesSection bounds the series entries in the index.
func (h *indexHeader) seriesSection() (start, end int64) { return block.SeriesSection(h.info.toc) }

// heapBytes estimates what the open header holds on the Go heap.
func (h *indexHeader) heapBytes() int {
	n := len(h.symbolOffsets) * 8
	for name, ns := range h.names {
		n += len(name) + 64 + len(ns.pos)*8
		for _, v := range ns.values {
			n += len(v) + 16
		}
	}
	return n
}
