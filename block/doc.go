// Package block gives the objects of a bucket their meaning: a Prometheus
// TSDB block in object storage, with everything every reader and writer of
// blocks must agree on. It imports package bucket and nothing else of
// Atoll; the shipper, the store gateway, the compactor and the `atoll
// bucket` tools import it, never each other, for what a block is.
//
//   - Meta is meta.json: the Prometheus block meta plus the Thanos
//     "thanos" section (external labels, resolution, source, file list), so
//     Thanos tools read Atoll buckets and Atoll reads Thanos and plain
//     Prometheus blocks. ReadMetaFromDir and WriteMetaToDir read and write
//     it in a block directory; in a bucket, Fetcher reads it.
//   - Marks: DeletionMark and NoCompactMark, in Thanos's format, beside a
//     block's files.
//   - Superseded, the supersession rule (below), and Meta.Sources and
//     Meta.ContainsSources it is made of.
//   - The vocabulary of downsampled blocks: AggregateLabel and the Aggr*
//     aggregates, the Resolution* constants.
//   - Fetcher lists a bucket and returns a Set; Set.Visible applies the
//     rule below plus the caller's Filters (UnlessDeletionMarked,
//     InTimeRange). It is the one place that decides what is visible.
//   - Upload, Download and Delete move whole blocks in the order that keeps
//     readers safe: an upload writes meta.json last, a deletion removes it
//     first, so a block is either complete in the bucket or absent.
//   - IndexReader reads a block's index in the bucket by range, a section
//     at a time; the store gateway builds its index headers with it and
//     Inspect and Verify (the `atoll bucket` tools) read indexes with it.
//
// # Layout
//
// A block lives under its ULID: "<ulid>/chunks/000001", "<ulid>/index",
// "<ulid>/tombstones", "<ulid>/meta.json" and the marks. A block exists for
// readers only once its meta.json does; writers upload it last.
//
// # The rule readers follow
//
// Every reader (the store gateway, the compactor's planner, `atoll bucket`
// tools) applies this rule through Fetcher and Set.Visible, so a fix to
// what is visible is made once and no two components disagree about what
// the bucket holds:
//
//  1. A block exists once its meta.json exists. Directories without it are
//     ignored.
//  2. Within one resolution, a block whose compaction.sources are all among
//     another block's sources is superseded and must not be read: the other
//     block holds all its data. Of two blocks with equal sources the one with
//     the smaller ULID is superseded. Sources are ULIDs of receiver blocks,
//     unique in a bucket, so this holds across external labels too: a
//     replica's 2h block is superseded by the deduplicated block made from
//     it, which has no replica label.
//  3. A block with a deletion mark is superseded or past retention. A reader
//     may stop reading it once the mark is older than half the delete delay
//     (UnlessDeletionMarked's grace): by then its replacement is visible to any
//     reader that syncs more often than that. Dropping it at once is also
//     safe from double counting but may hide data for one sync.
//  4. Blocks of different resolutions with shared sources hold the same
//     samples at different resolutions: a query reads one resolution for a
//     given time range, never adds them up.
//
// A reader must swap its whole block set at once when it syncs (add a
// compacted block and drop what it supersedes together). Two readers that
// sync at different times (sharded gateways) can briefly serve a block and
// the block superseding it; raw series are then deduplicated by the querier
// (the same samples under equal or replica-stripped labels), and
// downsampled aggregates of the same raw data carry the same timestamps, so
// a chained merge drops them.
package block
