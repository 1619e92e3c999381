// Package querier answers PromQL over every store that holds data.
//
// A store is anything that serves the Store API: receivers over their heads,
// store gateways over bucket blocks. The querier fans out to the stores whose
// time range and external labels can match, merges their series, removes
// replica labels and deduplicates replicas, and hands the result to the
// Prometheus PromQL engine and HTTP API v1 so that Grafana and Prometheus
// clients work unchanged.
//
// It imports storeapi (the contract of every store), dedup, tenant and
// block (the vocabulary of downsampled series). Stores do not import it:
// only components that evaluate PromQL do.
package querier
