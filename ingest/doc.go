// Package ingest accepts Prometheus remote-write requests.
//
// Handler translates HTTP into calls on the write path and errors back into
// status codes; it owns nothing else. The decoder reads snappy-compressed
// prompb.WriteRequest bodies without allocating per label, validation rejects
// malformed series with a message naming them, and the Router splits a request
// by ring owner, appends the local share, forwards the rest and reduces the
// per-series replica outcomes to one status for the whole request.
//
// ingest imports ring (where a series goes), tsdbshard (the local TSDBs),
// tenant and its own writepb (the forwarding protocol, touched only by
// forward.go). It must not import the read path (querier, storeapi) or
// the bucket side (block, bucket, ship): receiving ends at the TSDB.
package ingest
