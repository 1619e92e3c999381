package ring

import (
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"github.com/cespare/xxhash/v2"
)

// State is where a member is in its life. Only the member itself changes its
// state; everyone else learns it by gossip.
type State uint8

// Member states, in the order a member goes through them.
const (
	// StateJoining: announced, but not ready to take writes yet (for a
	// receiver: still replaying its WAL).
	StateJoining State = iota + 1
	// StateActive: takes writes and queries.
	StateActive
	// StateLeaving: shutting down; skipped for writes, may still answer
	// queries for the data it holds.
	StateLeaving

	// stateLeft is the tombstone of a member that left on purpose. It exists
	// only in gossip, so that older news about the member cannot bring it
	// back, and never appears in a Snapshot. It ranks above the others so
	// that it wins a tie on the heartbeat.
	stateLeft
)

func (s State) String() string {
	switch s {
	case StateJoining:
		return "JOINING"
	case StateActive:
		return "ACTIVE"
	case StateLeaving:
		return "LEAVING"
	case stateLeft:
		return "LEFT"
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// MarshalText makes states readable in JSON.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads what MarshalText writes, so ring pages can be decoded.
func (s *State) UnmarshalText(text []byte) error {
	for _, st := range []State{StateJoining, StateActive, StateLeaving} {
		if string(text) == st.String() {
			*s = st
			return nil
		}
	}
	return fmt.Errorf("unknown ring state %q", text)
}

// Member is one member as a Snapshot saw it. Members are values; Tokens is
// shared between snapshots and must not be modified.
type Member struct {
	ID         string
	Role       Role
	State      State
	Zone       string
	GRPCAddr   string
	HTTPAddr   string
	GossipAddr string
	// Tokens are the ring positions the member owns, ascending. Empty for
	// members that are not receivers.
	Tokens []uint32
	// Heartbeat is when the member last refreshed its entry, on its clock.
	Heartbeat time.Time
}

// Quorum is how many of rf replicas must accept a write for it to succeed.
func Quorum(rf int) int { return rf/2 + 1 }

// keyFor places a series of a tenant on the ring. seriesHash is a 64-bit
// hash of the series' label set; mixing in the tenant spreads equal series
// of different tenants over different owners. A write path placing many
// series of one tenant hashes the tenant once with TenantHash and calls
// KeyForTenant.
func keyFor(tenant string, seriesHash uint64) uint32 {
	return KeyForTenant(TenantHash(tenant), seriesHash)
}

// TenantHash is the tenant's part of keyFor.
func TenantHash(tenant string) uint64 { return xxhash.Sum64String(tenant) }

// KeyForTenant is keyFor with the tenant already hashed by TenantHash.
func KeyForTenant(tenantHash, seriesHash uint64) uint32 {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], tenantHash)
	binary.LittleEndian.PutUint64(b[8:], seriesHash)
	return fold(xxhash.Sum64(b[:]))
}

func fold(h uint64) uint32 { return uint32(h ^ h>>32) }

// tokensFor derives a receiver's tokens from its instance id alone, so a
// restarted receiver owns the same keys again without a tokens file. The
// rare repeat within one member is skipped (the next counter value is
// tried); a token shared by two members stays with both, ordered by member
// id, which every member computes the same way.
func tokensFor(id string, n int) []uint32 {
	seen := make(map[uint32]struct{}, n)
	tokens := make([]uint32, 0, n)
	buf := make([]byte, 0, len(id)+1+binary.MaxVarintLen64)
	for i := uint64(0); len(tokens) < n; i++ {
		buf = append(append(buf[:0], id...), 0)
		buf = binary.AppendUvarint(buf, i)
		t := fold(xxhash.Sum64(buf))
		if _, dup := seen[t]; dup {
			continue
		}
		seen[t] = struct{}{}
		tokens = append(tokens, t)
	}
	slices.Sort(tokens)
	return tokens
}

// record is one member's entry in the gossiped state. Only the member named
// id writes it; everyone else keeps the newest copy they have seen. Records
// are never modified once built: an update is a new record.
type record struct {
	id string
	// nodeName is the memberlist name of the process that wrote the
	// record. It changes on every restart, so the failure detector's
	// verdict about an old process never applies to its successor.
	nodeName   string
	role       Role
	state      State
	heartbeat  int64 // unix nanoseconds on the writer's clock: the record's version
	zone       string
	grpcAddr   string
	httpAddr   string
	gossipAddr string
	tokens     []uint32
	// digest hashes everything except state and heartbeat. Heartbeat
	// messages carry it instead of the full record, and a digest change is
	// what makes an update more than a heartbeat.
	digest uint64
}

func (r *record) computeDigest() {
	d := xxhash.New()
	for _, s := range []string{r.id, r.nodeName, string(r.role), r.zone, r.grpcAddr, r.httpAddr, r.gossipAddr} {
		_, _ = d.WriteString(s)
		_, _ = d.Write([]byte{0})
	}
	var b [4]byte
	for _, t := range r.tokens {
		binary.LittleEndian.PutUint32(b[:], t)
		_, _ = d.Write(b[:])
	}
	r.digest = d.Sum64()
}

// newerThan orders the versions of one member's record: by heartbeat, then
// state, then digest. It is a strict total order, so keeping the greatest
// version is idempotent, commutative and associative: members converge on
// the same record whatever order gossip delivers versions in. Ties on the
// heartbeat only happen when a member is declared gone locally (state
// decides) or when two processes wrongly share an id (digest decides).
func (r *record) newerThan(o *record) bool {
	if r.heartbeat != o.heartbeat {
		return r.heartbeat > o.heartbeat
	}
	if r.state != o.state {
		return r.state > o.state
	}
	return r.digest > o.digest
}

// tombstone is what remains of a member that left: enough to outrank older
// versions of its record, nothing that a ring would use.
func (r *record) tombstone(heartbeat int64) *record {
	t := &record{id: r.id, nodeName: r.nodeName, role: r.role, state: stateLeft, heartbeat: heartbeat}
	t.computeDigest()
	return t
}

func (r *record) member() Member {
	return Member{
		ID:         r.id,
		Role:       r.role,
		State:      r.state,
		Zone:       r.zone,
		GRPCAddr:   r.grpcAddr,
		HTTPAddr:   r.httpAddr,
		GossipAddr: r.gossipAddr,
		Tokens:     r.tokens,
		Heartbeat:  time.Unix(0, r.heartbeat),
	}
}
