// Package ring places series on receivers.
//
// A Ring is a consistent-hash ring of 32-bit tokens. Every receiver owns many
// tokens, so a member joining or leaving moves only its own share of keys.
// Members find each other with hashicorp/memberlist gossip: a process joins by
// starting with the address of any member, and a member that stops
// heartbeating is first skipped for writes and later forgotten, so no operator
// edits a hashring file or restarts anyone.
//
// Use Ring.ReplicationSet to find the RF members that own a key, and the
// quorum helpers on ReplicationSet to decide when a write is safe. Members that
// own no tokens (queriers, store gateways) join the same gossip to discover
// the receivers.
package ring
