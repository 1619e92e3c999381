// Package web is Atoll's web UI: the pages every component serves at /, the
// embedded files they are made of (HTML, CSS and JavaScript modules written
// for Atoll: no third-party script, no build step, nothing fetched from
// anywhere but the process serving them), and the JSON endpoints only the
// UI needed until now.
//
// # Pages
//
//	/query (and /graph, /)  PromQL panels: editor with completion, table, graph
//	/stores                 the stores a querier uses, and the ring's view of them
//	/ring                   the ring as this member sees it
//	/tenants                series, samples/s and limits per tenant and receiver
//	/blocks                 a timeline of the bucket's blocks
//	/status                 build, runtime, flags, TSDB head, rules and alerts
//
// A component gets the pages whose data it has: Options says which sources
// exist, and the UI hides the rest.
//
// # JSON endpoints
//
//	GET /api/v1/stores   Thanos's shape: {"<component>": [{name, lastCheck, lastError, labelSets, minTime, maxTime}]}
//	GET /api/v1/blocks   Thanos's shape: {label, blocks: [meta.json...], refreshedAt, err}, marks added to each meta
//	GET /api/v1/tenants  {receivers: [{name, address, error, tenants: [...]}]}
//
// Components without the query API also get /api/v1/status/buildinfo,
// /flags and /runtimeinfo in Prometheus's shapes, so the status page reads
// the same endpoints everywhere.
//
// # What it must not import
//
// The package sees the rest of Atoll only through the small types and
// functions of Options, filled by cmd/atoll: it imports no querier, ingest,
// tsdbshard, ring, ship or compactor package, so their insides can change
// without touching the UI.
package web
