// Package ship owns the block meta.json format and the Shipper that moves
// finished TSDB blocks into a bucket (package bucket).
//
// # Block layout and meta.json
//
// A block lives under its ULID: "<ulid>/chunks/000001", "<ulid>/index",
// "<ulid>/tombstones" and "<ulid>/meta.json". Meta is the Prometheus block
// meta plus the Thanos-compatible "thanos" section (external labels,
// downsampling resolution, source, file list), so Thanos tools read Atoll
// buckets and Atoll reads Thanos and plain Prometheus blocks. A block exists
// for readers only once its meta.json does; writers upload it last.
//
// # Shipping
//
// A Shipper watches one TSDB directory (one tenant). Sync uploads each
// finished level-1 block exactly once, data files first and meta.json last,
// and records shipped blocks in "atoll-shipper.json" in that directory; if
// the record is lost, blocks whose meta.json is already in the bucket are not
// uploaded again. A bucket outage makes Sync fail (the caller retries; Run
// does so with backoff) and loses nothing. The TSDB owner deletes a local
// block only once Shipped or IsShipped reports it.
package ship
