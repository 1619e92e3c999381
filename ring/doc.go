// Package ring places series on receivers.
//
// A Ring is a consistent-hash ring of 32-bit tokens. Every receiver owns many
// tokens (128 by default), derived from its instance id, so a restarted
// receiver owns the same keys again without a tokens file, and a member
// joining or leaving moves only its own share of keys (about 1/N).
//
// # Using it
//
// Every Atoll process that takes part (receivers, queriers, store gateways)
// creates a Ring with New and runs Ring.Run. Only receivers own tokens; the
// others join the same gossip to discover the receivers. A receiver starts
// JOINING and calls SetState(StateActive) once its storage can take writes.
//
// Ring.Snapshot returns an immutable view that is replaced atomically on
// every change. On the write path:
//
//	s := r.Snapshot() // once per request
//	owners := s.Owners(ring.KeyForTenant(ring.TenantHash(tenant), lset.Hash()), buf[:0])
//	// owners index s.Members(); compare len(owners) with ring.Quorum(s.ReplicationFactor())
//
// Owners returns up to ReplicationFactor distinct healthy receivers, walking
// clockwise from the key and skipping unhealthy ones; when healthy receivers
// span several zones, the owners go to distinct zones (all distinct once
// there are at least ReplicationFactor zones). It is a binary search and a
// copy: the owners of every ring position are computed when a snapshot is
// built. With exactly ReplicationFactor zones every zone holds a replica of
// every key, so keep zones equally sized: a smaller zone's receivers carry
// more load each.
//
// Components that keep connections to members (ingest's forwarding
// clients, the querier's store list) watch Snapshot.Changed, which is
// closed when members, states, addresses or health change.
//
// Ring.ServeHTTP serves the /ring page, HTML or JSON.
//
// # Membership
//
// Members find each other with hashicorp/memberlist: a process starts with
// the address (or DNS name) of any members and keeps retrying until it gets
// in, so members may start in any order. A cluster label keeps two clusters
// on one network apart.
//
// Each member writes only its own record: id, addresses, zone, role,
// tokens, state and a heartbeat timestamp that doubles as the record's
// version. Everyone keeps the newest version of each record, which makes
// merging idempotent, commutative and associative, so views converge
// whatever order gossip delivers updates in. Full records travel by gossip
// when they change and by periodic push/pull; heartbeats travel as small
// messages that carry only a digest of the rest of the record.
//
// A member is healthy when it is ACTIVE, its heartbeat is younger than the
// heartbeat timeout, and memberlist's failure detector has not declared its
// process dead; that detector usually notices a crash within a few probe
// intervals, well before the heartbeat timeout. A member silent for the
// forget-after period is dropped by every member, and records that old are
// refused, so a peer with a stale view cannot bring it back. A member that
// stops gracefully goes LEAVING, then gossips a tombstone that outranks its
// older records, and disappears from every view at once; nobody edits a
// hashring file or restarts anyone.
//
// Members compare heartbeats with their own clocks, so clocks must agree to
// well within the heartbeat timeout.
//
// # Trust
//
// With Config.SecretKeyFile every gossip message is encrypted and
// authenticated (memberlist's keyring, rotated by editing the file), so a
// process without a key can neither join nor be heard; the cluster label is
// checked on every packet and stream. With Config.Probe a member is
// healthy only once it answered at the gRPC address it advertises, as
// itself, and stops being so when it stops answering: a member advertising
// an address nobody answers at never takes writes.
//
// ring imports nothing of Atoll; ingest and cmd/atoll import it.
package ring
