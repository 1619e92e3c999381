// Package tsdbshard owns the local Prometheus TSDBs of a receiver: one head,
// WAL and set of blocks per tenant, opened on the first write for that tenant.
//
// MultiTSDB is the main type. It appends decoded remote-write series through
// the TSDB AppenderV2, remembering the series ref of each label set so that a
// series seen before is appended without rebuilding or hashing its labels, and
// it exposes every tenant's TSDB to the read path together with the external
// labels (tenant, replica) that tell them apart.
//
// tsdbshard imports ship, to ship each tenant's finished blocks, block and
// bucket, for what a block is and where it goes, and tenant. It must not
// import ingest or the read path: the querier reaches a tenant through
// storeapi.TSDB, which Tenant satisfies without tsdbshard knowing.
package tsdbshard
