// Package dedup merges the series that several stores return for one query and
// collapses replicas of the same series into one.
//
// Every Atoll receiver stores what it received under an external replica label
// (receive_replica="<instance>"), and Prometheus HA pairs use labels such as
// replica or prometheus_replica. Two series are replicas when they differ only in
// those labels. The package speaks Prometheus types only, so the querier (over
// Store API results) and the compactor (vertical compaction of overlapping
// replica blocks) share it:
//
//   - NewSeriesSet merges the series sets of several stores, removes the replica
//     labels and deduplicates the series that become equal. Use it in the querier.
//   - ChunkMergeFunc deduplicates series that already carry equal labels,
//     with the signature the TSDB compactor expects. Use it for vertical
//     compaction.
//
// # Same replica, several stores
//
// A receiver head and a gateway block of the same receiver can overlap in time.
// Their series carry the same replica label values, so they are one replica: they
// are united with storage.ChainedSeriesMerge, which keeps one sample per
// timestamp, before replicas are compared.
//
// # Choosing samples from replicas
//
// The iterator follows one replica and takes its samples as they are. It
// keeps an estimate of the scrape interval: the distance between emitted
// samples, allowed to at most double from one sample to the next so that one
// long gap does not blind it, and learned from the replicas' own spacing
// before the second sample. The followed replica keeps the lead while its
// next sample is within the penalty, twice the interval, of the last one
// emitted; a single missed scrape therefore stays a gap, as it would in
// Prometheus. Past the penalty it has a gap and the earliest sample of any
// replica wins, the followed replica winning ties. Samples less than half an
// interval after the last one emitted are never taken: replicas scraped at
// other offsets must not raise the sample rate, while replicas scraped in step
// (Atoll's receivers hold identical timestamps) fill a gap from its first
// missing sample. A stale marker of the followed replica is dropped when
// another replica has a live sample within the penalty window: one replica
// losing its target must not end the series.
//
// # Counters
//
// At a switch the new replica's counter can read slightly lower than the value
// just emitted, because it scraped a little earlier or its exporter lagged.
// PromQL would take that drop for a counter reset and add the whole counter value
// to rate() and increase(). Whether a series is a counter is not known inside
// Select, so the correction only runs when the caller names the consuming PromQL
// function with WithFunc and it is one of rate, increase, irate or resets; for
// anything else, gauges included, values pass through unchanged.
//
// With the correction on, floats carry one offset that is added to every emitted
// value. At a switch to a lower value the offset grows so the output stays flat
// (the increase across the switch is lost, at most the skew between replicas),
// unless the new replica itself shows a reset that the output has not emitted
// yet: its own previous sample is higher and lies after the last emitted reset.
// Then the reset is real and is kept. Any reset, on the followed replica or at a
// switch, drops the offset to zero so the value after the reset is what PromQL
// adds. Native histograms get no offset; their counter reset hint carries the
// decision instead. At a switch it becomes NotCounterReset for a drop without
// evidence of a real reset (the histogram's own hint says CounterReset after
// the last reset shown), and UnknownCounterReset otherwise, so PromQL compares
// the histograms itself. Without the correction every switch yields
// UnknownCounterReset, because the replica's hint relates to a sample the
// output may not contain.
//
// # Seeking
//
// Once iteration has begun, Seek steps with Next, so the samples after a Seek
// are those Next alone would have produced. Only a Seek before the first Next
// moves the replicas directly, and may therefore start on another replica.
//
// # Inputs of ChunkMergeFunc
//
// ChunkMergeFunc treats every input as a replica of its own. Inputs from the same
// replica that overlap in time with different timestamps (out-of-order data)
// lose the interleaved samples; chain them with storage.ChainedSeriesMerge
// first, as NewSeriesSet does for series with equal replica labels.
//
// # Imports
//
// dedup imports Prometheus only: it sits below the querier and the
// compactor, which both import it, and must import neither, nor anything of
// Atoll's storage (block, storeapi).
package dedup
