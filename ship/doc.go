// Package ship is the shipper: it moves the finished blocks of a TSDB
// directory into a bucket, each exactly once, for receivers (and, later, a
// sidecar beside Prometheus). What a block is and how it is uploaded belong
// to package block; ship adds when to upload and the record of what was
// shipped. It imports block and bucket, and must not import any reader of
// blocks (store gateway, compactor, querier).
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
