// Package transport is how every Atoll process talks to the outside and to
// its peers: it builds each HTTP listener and gRPC server, and the gRPC
// credentials of clients between components, with their security.
//
//   - ListenHTTP serves a handler on one address the way every listener of
//     Atoll is served (API, UI, remote write, /metrics of every component):
//     the Prometheus ecosystem's web configuration file (exporter-toolkit,
//     --http.config) for TLS and basic auth, read-header, read, write and
//     idle timeouts, a cap on open connections, a handler that panics
//     answered 500 and counted, and, with TenantCredentials, each basic-auth
//     user held to the tenants it is bound to.
//   - GRPCServerTLS and GRPCClientTLS are TLS for the Store API and for
//     writes forwarded between receivers, in Thanos's flag shape; a client
//     CA on the server makes it mutual (mTLS). Certificates are read again
//     when their files change, so rotating them needs no restart.
//   - NewGRPCServer is the one constructor of gRPC servers: credentials,
//     message sizes for batches of series, a bound on the handshake.
//
// transport imports tenant (for the header a request's tenant travels in)
// and nothing else of Atoll; cmd/atoll builds every listener with it and
// hands gRPC credentials to ingest and storeapi as dial options, so neither
// of them imports it.
package transport
