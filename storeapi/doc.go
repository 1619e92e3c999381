// Package storeapi is the Store API: the contract between whoever holds
// series (receivers over their TSDBs, store gateways over bucket blocks)
// and whoever queries them (the querier), and its gRPC transport.
//
//   - Store is the contract: Info (external label sets and time range, so
//     queries skip stores that cannot match), Series (streamed, with encoded
//     Prometheus chunks), LabelNames, LabelValues, Exemplars, Metadata.
//     MatchExternal is the one rule for matchers on external labels.
//   - Local serves the TSDBs of this process (tsdbshard tenants, as TSDB)
//     as a Store; `atoll all` and `atoll receive` use it in process and
//     behind RegisterServer.
//   - RegisterServer serves a Store over gRPC; Remote is a Store reached
//     over gRPC; Endpoints keeps a Remote per discovered or configured
//     address and health-checks them, so queries use only stores that
//     answered.
//   - WithTenant scopes requests to one tenant: Remote sends the scope as
//     gRPC metadata and the server adds it as a tenant_id matcher the
//     caller cannot widen, so a request scoped to tenant a gets nothing of
//     tenant b (tenancy.go). Unscoped requests read every tenant; mutual
//     TLS on the server keeps them to components.
//   - storepb holds the generated protobuf and gRPC code. Only grpc.go, the
//     transport, touches it: no storepb type crosses Store.
//
// storeapi imports Prometheus, storepb and tenant only. Stores (the store gateway,
// the receivers' wiring) and the querier import it; it must not import any
// of them.
package storeapi
