package downsample

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/tsdb/index"

	"github.com/atoll-metrics/atoll/block"
)

// writer streams a downsampled block to disk. Every input series S becomes
// up to five output series S+{__aggr__=...}. The index wants series sorted by
// labels and chunk references rising in that order, and adding the label
// reorders the series: when every label name sorts after __aggr__ (the usual
// case: __name__ and lowercase names), the label comes first and the output
// order is aggregate by aggregate, each in input order. So encoded chunks
// are spilled to a file as series arrive, and at the end the chunks and
// index are written in five sequential passes over the spill; only when some
// label name sorts before __aggr__ are the output series sorted in memory
// (labels and spill offsets only).
type writer struct {
	dir    string
	chunkw *chunks.Writer

	spill    *os.File
	spillW   *bufio.Writer
	spillPos int64
	offsets  []int64

	symbols  []string
	needSort bool
	stats    tsdb.BlockStats
	buf      []byte
}

// aggregateOrder lists block.Aggregates() sorted, the order their series take
// in the index when __aggr__ is the first label.
var aggregateOrder = func() []string {
	a := slices.Clone(block.Aggregates())
	slices.Sort(a)
	return a
}()

func aggregateIndex(name string) int { return slices.Index(aggregateOrder, name) }

func newWriter(dir string, inputSymbols []string) (*writer, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	cw, err := chunks.NewWriter(filepath.Join(dir, "chunks"))
	if err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(filepath.Dir(dir), "downsample-spill-")
	if err != nil {
		cw.Close()
		return nil, err
	}
	syms := append(slices.Clone(inputSymbols), block.AggregateLabel)
	syms = append(syms, block.Aggregates()...)
	slices.Sort(syms)
	return &writer{
		dir:     dir,
		chunkw:  cw,
		spill:   f,
		spillW:  bufio.NewWriterSize(f, 1<<20),
		symbols: slices.Compact(syms),
	}, nil
}

// add spills the chunks of one input series' aggregates, indexed as in
// aggregateOrder.
func (w *writer) add(lset labels.Labels, aggs *[5][]chunks.Meta) error {
	empty := true
	for _, chks := range aggs {
		if len(chks) == 0 {
			continue
		}
		empty = false
		w.stats.NumSeries++
		w.stats.NumChunks += uint64(len(chks))
		for _, c := range chks {
			n := uint64(c.Chunk.NumSamples())
			w.stats.NumSamples += n
			if c.Chunk.Encoding() == chunkenc.EncXOR {
				w.stats.NumFloatSamples += n
			} else {
				w.stats.NumHistogramSamples += n
			}
		}
	}
	if empty {
		return nil
	}
	lset.Range(func(l labels.Label) {
		if l.Name < block.AggregateLabel {
			w.needSort = true
		}
	})
	b := w.buf[:0]
	b = binary.AppendUvarint(b, uint64(lset.Len()))
	lset.Range(func(l labels.Label) {
		b = binary.AppendUvarint(b, uint64(len(l.Name)))
		b = append(b, l.Name...)
		b = binary.AppendUvarint(b, uint64(len(l.Value)))
		b = append(b, l.Value...)
	})
	for _, chks := range aggs {
		b = binary.AppendUvarint(b, uint64(len(chks)))
		for _, c := range chks {
			b = binary.AppendVarint(b, c.MinTime)
			b = binary.AppendVarint(b, c.MaxTime-c.MinTime)
			b = append(b, byte(c.Chunk.Encoding()))
			data := c.Chunk.Bytes()
			b = binary.AppendUvarint(b, uint64(len(data)))
			b = append(b, data...)
		}
	}
	w.buf = b
	if _, err := w.spillW.Write(b); err != nil {
		return err
	}
	w.offsets = append(w.offsets, w.spillPos)
	w.spillPos += int64(len(b))
	return nil
}

// record is one spilled input series.
type record struct {
	lset labels.Labels
	aggs [5][]chunks.Meta
}

func readRecord(r *bufio.Reader, sb *labels.ScratchBuilder) (*record, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, err
	}
	readString := func() (string, error) {
		l, err := binary.ReadUvarint(r)
		if err != nil {
			return "", err
		}
		b := make([]byte, l)
		if _, err := io.ReadFull(r, b); err != nil {
			return "", err
		}
		return string(b), nil
	}
	sb.Reset()
	for range n {
		name, err := readString()
		if err != nil {
			return nil, err
		}
		val, err := readString()
		if err != nil {
			return nil, err
		}
		sb.Add(name, val)
	}
	rec := &record{lset: sb.Labels()}
	for i := range rec.aggs {
		k, err := binary.ReadUvarint(r)
		if err != nil {
			return nil, err
		}
		for range k {
			mint, err1 := binary.ReadVarint(r)
			d, err2 := binary.ReadVarint(r)
			enc, err3 := r.ReadByte()
			n, err4 := binary.ReadUvarint(r)
			if err := errors.Join(err1, err2, err3, err4); err != nil {
				return nil, err
			}
			data := make([]byte, n)
			if _, err := io.ReadFull(r, data); err != nil {
				return nil, err
			}
			c, err := chunkenc.FromData(chunkenc.Encoding(enc), data)
			if err != nil {
				return nil, err
			}
			rec.aggs[i] = append(rec.aggs[i], chunks.Meta{MinTime: mint, MaxTime: mint + d, Chunk: c})
		}
	}
	return rec, nil
}

func (w *writer) readAll(fn func(*record) error) error {
	if _, err := w.spill.Seek(0, io.SeekStart); err != nil {
		return err
	}
	r := bufio.NewReaderSize(w.spill, 1<<20)
	var sb labels.ScratchBuilder
	for range w.offsets {
		rec, err := readRecord(r, &sb)
		if err != nil {
			return fmt.Errorf("read spill: %w", err)
		}
		if err := fn(rec); err != nil {
			return err
		}
	}
	return nil
}

// finish writes the chunks and the index and closes everything; the
// block's meta.json is the caller's.
func (w *writer) finish(ctx context.Context) (tsdb.BlockStats, error) {
	defer w.discardSpill()
	if err := w.spillW.Flush(); err != nil {
		return w.stats, err
	}
	iw, err := index.NewWriter(ctx, filepath.Join(w.dir, "index"))
	if err != nil {
		return w.stats, err
	}
	for _, s := range w.symbols {
		if err := iw.AddSymbol(s); err != nil {
			iw.Close()
			return w.stats, err
		}
	}
	var ref storage.SeriesRef
	addSeries := func(lset labels.Labels, chks []chunks.Meta) error {
		if err := w.chunkw.WriteChunks(chks...); err != nil {
			return err
		}
		if err := iw.AddSeries(ref, lset, chks...); err != nil {
			return err
		}
		ref++
		return nil
	}
	if !w.needSort {
		for i, aggr := range aggregateOrder {
			err := w.readAll(func(rec *record) error {
				if len(rec.aggs[i]) == 0 {
					return nil
				}
				return addSeries(labels.NewBuilder(rec.lset).Set(block.AggregateLabel, aggr).Labels(), rec.aggs[i])
			})
			if err != nil {
				iw.Close()
				return w.stats, err
			}
		}
	} else if err := w.finishSorted(addSeries); err != nil {
		iw.Close()
		return w.stats, err
	}
	if err := w.chunkw.Close(); err != nil {
		iw.Close()
		return w.stats, err
	}
	return w.stats, iw.Close()
}

// finishSorted writes the output series in label order for series with
// label names sorting before __aggr__.
func (w *writer) finishSorted(addSeries func(labels.Labels, []chunks.Meta) error) error {
	type entry struct {
		lset labels.Labels
		rec  int
		aggr int
	}
	var entries []entry
	rec := 0
	err := w.readAll(func(r *record) error {
		for i, aggr := range aggregateOrder {
			if len(r.aggs[i]) > 0 {
				entries = append(entries, entry{labels.NewBuilder(r.lset).Set(block.AggregateLabel, aggr).Labels(), rec, i})
			}
		}
		rec++
		return nil
	})
	if err != nil {
		return err
	}
	slices.SortFunc(entries, func(a, b entry) int { return labels.Compare(a.lset, b.lset) })
	var sb labels.ScratchBuilder
	for _, e := range entries {
		r := bufio.NewReader(io.NewSectionReader(w.spill, w.offsets[e.rec], w.spillPos-w.offsets[e.rec]))
		rec, err := readRecord(r, &sb)
		if err != nil {
			return fmt.Errorf("read spill: %w", err)
		}
		if err := addSeries(e.lset, rec.aggs[e.aggr]); err != nil {
			return err
		}
	}
	return nil
}

func (w *writer) discardSpill() {
	name := w.spill.Name()
	_ = w.spill.Close()
	_ = os.Remove(name)
}

// abort releases everything after a failure; the caller removes the
// directory.
func (w *writer) abort() {
	_ = w.chunkw.Close()
	w.discardSpill()
}
