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
// group never mixes with another. Within a group, the planner picks the next job:
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
// dedup's ChunkMergeFunc, the querier's own algorithm, so a
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
// at least 10 days to 1h (package downsample; the format is block's
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
// # What readers read
//
// The compactor and every other reader see the bucket through
// block.Fetcher and Set.Visible, so they agree on which blocks hold which
// data; the rule is documented in package block. The compactor reads with
// block.UnlessDeletionMarked(now, 0): a marked block is gone for it.
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
//
// # Imports
//
// compactor imports block (what a block is, which are visible, how they
// move), bucket, dedup (the querier's replica merge, so a compacted block
// holds what a deduplicating query returns) and its own downsample. It
// must not import the shipper, the store gateway or the querier.
package compactor
