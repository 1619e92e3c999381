// Package frontend is Atoll's query-frontend: an HTTP server that speaks the
// Prometheus HTTP API v1 to its clients (Grafana, the web UI) and to one or
// more queriers behind it, and makes dashboards cheap.
//
// What it does to a range query (/api/v1/query_range), in order:
//
//   - per-tenant limits: the longest range, the furthest look back, and the
//     samples one querier request may read (passed down as Prometheus's
//     max_samples_read), each refused with a 4xx in Prometheus's error shape;
//     and a per-tenant bound on queries in flight, the rest queued (the time
//     spent there is measured) and refused with 429 once the queue is full;
//   - step alignment: start and end moved down to multiples of the step, so
//     dashboards that refresh share their points (the answer Grafana gets
//     when it aligns, which it does by default);
//   - splitting at multiples of the split interval (a day by default, UTC),
//     the pieces asked in parallel, bounded per request;
//   - a results cache of extents per piece: what is cached is answered from
//     the cache, only what is missing is asked for, and nothing newer than
//     now minus max freshness is ever stored, so a cache hit is never older
//     than the stores for the recent window that may still change;
//   - vertical sharding: an aggregation that can be computed per group of
//     series (sum, count, min, max, group, avg) is asked of the queriers
//     once per shard, each shard reading the series whose label hash falls
//     in it, and the shards' answers are aggregated again here with
//     Prometheus's own PromQL engine;
//   - retries of 5xx answers and failed connections, on the next querier.
//
// Instant queries get limits, sharding and retries. Every other endpoint is
// passed through as it is (with retries), so the frontend answers the whole
// API and Grafana points at it unchanged. Request headers, the tenant's
// among them, are forwarded.
//
// # Contract with the querier
//
// A sharded query carries, on every selector, the matcher
// __query_shard__="<i>_of_<n>" (1 <= i <= n). A querier that understands it
// removes it and keeps only the series, after deduplication, whose labels
// without the metric name hash to i-1 modulo n. That matcher name and value
// format are the whole contract; Mimir uses the same. Sharding is off unless
// configured, since a downstream that does not know the matcher would answer
// nothing.
//
// # What it must not import
//
// The frontend knows its queriers only through HTTP: it imports no querier,
// storeapi, ingest, tsdbshard or ring package. It uses Prometheus's PromQL
// parser and engine, and the tenant vocabulary through Options.
package frontend
