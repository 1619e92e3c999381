// Package compactor keeps a bucket small and fast: it merges blocks into
// longer ones, removes replica duplicates, downsamples to 5m and 1h
// resolutions and applies retention. Exactly one compactor writes to a
// bucket.
//
// # Use
//
// New builds a Compactor from a bucket and Options (start from
// DefaultOptions); Run takes the bucket's lease and makes one pass, or a
// pass every Options.Interval. `atoll compact` wraps it.
//
// # Groups and levels
//
// Blocks are grouped by their external labels without the replica labels
// (Options.ReplicaLabels, receive_replica by default) and by resolution; a
// Group never mixes with another. Within a group, Plan picks the next job:
// the blocks inside an aligned window of the next level (8h, 2d, 14d by
// default, Options.Ranges) once the window is complete, or else blocks that
// overlap in time. Replicas of the same 2h span overlap, so they are merged
// (deduplicated) as soon as both are there, or together with their whole
// window when a backlog is compacted. Overlaps never stop the compactor.
//
// A job's blocks are downloaded into Options.DataDir and merged with
// Prometheus's LeveledCompactor and a block populator of this package: raw
// inputs of one replica (same replica label values) are chained
// (storage.ChainedSeriesMerge), then the replicas are deduplicated with
// querier/dedup's ChunkMergeFunc, the querier's own algorithm, so a
// compacted block holds what a deduplicating query would have returned.
// Overlapping downsampled inputs (only possible after late raw data) are
// merged by precedence: within a newer input's time range its aggregates
// replace an older input's. The new block is a plain Prometheus block whose
// meta.json "thanos" section has the group's labels (no replica labels),
// its resolution and source "compactor", and compaction.sources listing
// every receiver block it contains.
//
// An input the compactor cannot read (missing or truncated files, an index
// out of order, chunks outside the block or overlapping) gets a
// no-compact-mark.json with a reason and is left out of compaction and
// downsampling from then on; it stays readable and subject to retention.
//
// # Downsampling
//
// Raw blocks spanning at least 40h are downsampled to 5m, 5m blocks spanning
// at least 10 days to 1h (package downsample; the format is ship's
// AggregateLabel series). A block is downsampled once: not when a block of
// the target resolution already contains all its sources. Downsampled
// blocks keep their input's time range and sources and are compacted by
// level like raw ones.
//
// # Writing safely
//
// Every write follows one order, so that a kill -9 at any point leaves the
// bucket readable without counting data twice:
//
//  1. a new block is uploaded data files first, meta.json last;
//  2. only then are its inputs marked for deletion (deletion-mark.json);
//  3. a marked block is deleted once its mark is Options.DeleteDelay old
//     (48h by default): meta.json first, then the data, the mark last.
//
// A crash between 1 and 2 leaves the inputs unmarked next to the new block;
// the next pass marks them (they are superseded, see below). A crash during
// an upload leaves a partial block (no meta.json) that readers ignore; it is
// deleted once nothing has been written to it for DeleteDelay (at least an
// hour, since receivers upload too). A crash during a deletion leaves a
// directory with a deletion mark and no meta.json, whose deletion the next
// pass finishes.
//
// # The rule readers follow
//
// Readers (the store gateway, the planner, `atoll bucket` tools) must apply
// this rule, which package blockset implements (blockset.Fetcher and
// Set.Live, or blockset.Superseded on a list of metas):
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
//     (Set.Live's keepMarkedFor): by then its replacement is visible to any
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
//
// # The lease
//
// A compactor holds the bucket through the object LeaseObject
// (atoll-compactor-lease.json): holder id, session and expiry, renewed every
// quarter of Options.LeaseDuration. A lease being renewed is never taken,
// whoever asks: a second compactor refuses to start (ErrLeaseHeld, naming
// the holder), even one with the same holder id. Only a compactor restarted
// with the holder id of a lease whose renewals stopped (no renewal for two
// renewal intervals, half the duration) takes it over before it expires.
// Object storage has no compare-and-swap, so acquisition writes the record,
// waits a settle delay
// (a tenth of the duration, at most 2s) and reads it back; the window left
// is a competitor that stalls between reading a free lease and writing its
// own for longer than the settle delay. Both would then believe they hold
// the lease until the next renewal, when the overwritten one stops
// (ErrLeaseLost). The harm of that window is bounded by the rule above: two
// blocks made from overlapping inputs overlap, so the next pass merges them
// with deduplication, and readers deduplicate them meanwhile. A holder acts
// only while its last renewal is less than three quarters of the duration
// old, so one cut off from the bucket stops writing before another may
// take over; machines' clocks must agree to well within a quarter of the
// duration.
package compactor
