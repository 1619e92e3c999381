// Package storegateway is the store gateway: it serves the blocks of a
// bucket through the Store API (a storeapi.Store), with memory bounded by
// configuration rather than by what the bucket holds.
//
// Gateway is the one type. New builds it over a bucket.Bucket; Sync loads
// the current block list and Run keeps it current every SyncInterval; the
// storeapi.Store methods answer queries; Close releases everything.
//
// It imports storeapi (the contract it serves), block (what a block is,
// which blocks are visible, how an index is read) and bucket. It must not
// import the querier, the compactor or the shipper: it is their peer,
// reading the same bucket through the same block.Fetcher.
//
// # Blocks served
//
// A block is served once block.Set.Visible shows it (its meta.json exists,
// no other block supersedes it), while it overlaps the MinTime and MaxTime
// window (block.InTimeRange), and until DeletionMarkDelay after the
// compactor put a deletion-mark.json in it (block.UnlessDeletionMarked).
// The delay lets every gateway load the block that replaced a marked one
// before the marked one disappears; the compactor must wait longer than it
// before deleting. A block that cannot
// be loaded (unreadable meta, missing or corrupt index) is skipped, logged
// once, counted in atoll_gateway_blocks_load_failures_total and tried again
// at every sync. Tombstones are not applied: Atoll never writes them into
// shipped blocks.
//
// # Index headers
//
// Loading a block reads three ranges of its index through
// block.IndexReader: the first bytes, the TOC, and the symbol and postings
// offset tables, which are written to a local index-header file under Dir.
// The header is memory-mapped; the Go heap holds only every 32nd symbol
// offset and, per label name, every 32nd value with its position in the
// mapped postings offset table. A lookup
// binary-searches the samples and walks at most 32 entries of the file.
// The series and postings sections, the bulk of an index, stay in the
// bucket. A header survives restarts and is rebuilt when it is torn or was
// made for another index.
//
// # Reading series
//
// Matchers become label pairs through the header; their postings lists are
// read with range reads (merged when less than MaxRangeGap apart) and
// combined with the Prometheus postings operations, matchers accepting the
// empty value subtracting the pairs they reject. Series entries of the
// matching references are then read the same way, SeriesBatchSize at a
// time, and their chunks from the chunk segment files, nearby chunks
// sharing a read. Postings lists and series entries go through an LRU
// index cache of IndexCacheBytes; chunks are not cached. A request reads
// QueryConcurrency blocks at once, and each block holds one batch at a
// time, so a request's memory does not grow with the number of blocks or
// series it reads.
//
// External labels of a block (meta.json's thanos.labels) are added to every
// series; matchers on them select blocks and are not passed to the index.
//
// # Downsampled blocks
//
// For each set of external labels and each part of the requested range,
// Series reads the coarsest resolution not above the request's
// MaxResolution that has a block there, and finer blocks where it has none.
// A downsampled block holds one series per raw series and aggregate
// (block.AggregateLabel); the gateway returns the aggregate the request
// names without that label, or for the average (the default) divides sum
// by count per window and encodes new XOR chunks. Series carry the block's
// resolution.
package storegateway
