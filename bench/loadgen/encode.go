package main

import (
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/golang/snappy"
	"google.golang.org/protobuf/encoding/protowire"
)

// Request is one pre-encoded remote-write 1.0 request: a snappy-compressed
// prometheus.WriteRequest.
type Request struct {
	Body    []byte
	Samples int
}

// Round is every series' sample for one timestamp, split into requests.
type Round struct {
	Requests  []Request
	Timestamp int64 // milliseconds
}

// EncodeStats describes what was encoded.
type EncodeStats struct {
	Requests        int
	Samples         int
	RawBytes        int64
	CompressedBytes int64
	// LabelBytes is the summed name and value bytes of every series' label
	// set, to report the average size.
	LabelBytes int64
	Series     int
}

// sendOrder is the order series are sent in within a round. Prometheus
// shards its queue by series hash, so a batch mixes series of many targets;
// a fixed shuffle imitates that. The same order every round keeps each
// series' samples in one request per round.
func sendOrder(series int, seed uint64) []int32 {
	order := make([]int32, series)
	for i := range order {
		order[i] = int32(i)
	}
	r := rand.New(rand.NewPCG(seed, seed^0x5eed))
	r.Shuffle(len(order), func(a, b int) { order[a], order[b] = order[b], order[a] })
	return order
}

// EncodeRounds pre-encodes one round per timestamp, batch samples per
// request, using all CPUs. Round k carries the catalogue's round firstRound+k
// values, so a later call continues where an earlier one stopped.
func EncodeRounds(cat *Catalog, order []int32, batch int, timestamps []int64, firstRound int) ([]Round, EncodeStats) {
	perRound := (len(order) + batch - 1) / batch
	rounds := make([]Round, len(timestamps))
	for r, ts := range timestamps {
		rounds[r] = Round{Requests: make([]Request, perRound), Timestamp: ts}
	}
	var (
		next  atomic.Int64
		stats EncodeStats
		mu    sync.Mutex
		wg    sync.WaitGroup
	)
	// A job is one batch of series in every round, so each series' labels
	// are built once however many rounds there are.
	jobs := int64(perRound)
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			var (
				raw   []byte
				flat  []Label
				spans []int
				st    EncodeStats
			)
			for {
				b := next.Add(1) - 1
				if b >= jobs {
					break
				}
				idx := order[int(b)*batch : min(int(b+1)*batch, len(order))]
				flat, spans = flat[:0], spans[:0]
				for _, i := range idx {
					flat = cat.Labels(flat, int(i))
					spans = append(spans, len(flat))
				}
				st.LabelBytes += int64(labelBytesOf(flat))
				st.Series += len(idx)
				for r, ts := range timestamps {
					raw = encodeWriteRequest(raw[:0], cat, idx, flat, spans, firstRound+r, ts)
					body := snappy.Encode(nil, raw)
					rounds[r].Requests[b] = Request{Body: body, Samples: len(idx)}
					st.Requests++
					st.Samples += len(idx)
					st.RawBytes += int64(len(raw))
					st.CompressedBytes += int64(len(body))
				}
			}
			mu.Lock()
			stats.Requests += st.Requests
			stats.Samples += st.Samples
			stats.RawBytes += st.RawBytes
			stats.CompressedBytes += st.CompressedBytes
			stats.LabelBytes += st.LabelBytes
			stats.Series += st.Series
			mu.Unlock()
		})
	}
	wg.Wait()
	return rounds, stats
}

// Field numbers of prometheus.WriteRequest (remote write 1.0).
const (
	fieldWriteRequestTimeseries protowire.Number = 1
	fieldTimeSeriesLabels       protowire.Number = 1
	fieldTimeSeriesSamples      protowire.Number = 2
	fieldLabelName              protowire.Number = 1
	fieldLabelValue             protowire.Number = 2
	fieldSampleValue            protowire.Number = 1
	fieldSampleTimestamp        protowire.Number = 2
)

// encodeWriteRequest appends a WriteRequest holding one sample at ts for
// each series in idx to dst. Series k's labels are
// flat[spans[k-1]:spans[k]].
func encodeWriteRequest(dst []byte, cat *Catalog, idx []int32, flat []Label, spans []int, round int, ts int64) []byte {
	from := 0
	for k, i := range idx {
		ls := flat[from:spans[k]]
		from = spans[k]
		sample := protowire.SizeTag(fieldSampleValue) + protowire.SizeFixed64() +
			protowire.SizeTag(fieldSampleTimestamp) + protowire.SizeVarint(uint64(ts))
		size := protowire.SizeTag(fieldTimeSeriesSamples) + protowire.SizeBytes(sample)
		for _, l := range ls {
			size += protowire.SizeTag(fieldTimeSeriesLabels) + protowire.SizeBytes(labelSize(l))
		}
		dst = protowire.AppendTag(dst, fieldWriteRequestTimeseries, protowire.BytesType)
		dst = protowire.AppendVarint(dst, uint64(size))
		for _, l := range ls {
			dst = protowire.AppendTag(dst, fieldTimeSeriesLabels, protowire.BytesType)
			dst = protowire.AppendVarint(dst, uint64(labelSize(l)))
			dst = protowire.AppendTag(dst, fieldLabelName, protowire.BytesType)
			dst = protowire.AppendString(dst, l.Name)
			dst = protowire.AppendTag(dst, fieldLabelValue, protowire.BytesType)
			dst = protowire.AppendString(dst, l.Value)
		}
		dst = protowire.AppendTag(dst, fieldTimeSeriesSamples, protowire.BytesType)
		dst = protowire.AppendVarint(dst, uint64(sample))
		dst = protowire.AppendTag(dst, fieldSampleValue, protowire.Fixed64Type)
		dst = protowire.AppendFixed64(dst, math.Float64bits(cat.Value(int(i), round)))
		dst = protowire.AppendTag(dst, fieldSampleTimestamp, protowire.VarintType)
		dst = protowire.AppendVarint(dst, uint64(ts))
	}
	return dst
}

func labelSize(l Label) int {
	return protowire.SizeTag(fieldLabelName) + protowire.SizeBytes(len(l.Name)) +
		protowire.SizeTag(fieldLabelValue) + protowire.SizeBytes(len(l.Value))
}
