// Package ingest accepts Prometheus remote-write requests.
//
// Handler translates HTTP into calls on the write path and errors back into
// status codes; it owns nothing else. The decoder reads snappy-compressed
// prompb.WriteRequest bodies without allocating per label, validation rejects
// malformed series with a message naming them, and the Router splits a request
// by ring owner, appends the local share, forwards the rest and reduces the
// per-series replica outcomes to one status for the whole request.
package ingest
