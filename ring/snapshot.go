package ring

import (
	"cmp"
	"slices"
)

// Snapshot is an immutable view of the ring. Ring.Snapshot returns the
// current one; a new one replaces it atomically on every change, so holding
// a Snapshot for the duration of a request gives that request one consistent
// view.
type Snapshot struct {
	members []Member // sorted by ID
	healthy []bool   // parallel to members
	digests []uint64 // parallel to members; tells a heartbeat from a real change
	self    int
	rf      int

	// The write ring: tokens of healthy receivers, ascending (ties by member
	// index), and for each position the replicas members that own the keys
	// up to that token, found by walking clockwise at build time.
	tokens   []uint32
	owners   []int
	replicas int

	changed chan struct{}
}

// Members returns every known member, healthy or not, sorted by ID. The
// slice is shared and must not be modified.
func (s *Snapshot) Members() []Member { return s.members }

// Healthy reports whether the member is ACTIVE, heartbeating and not
// declared dead by gossip's failure detector, as of when the snapshot was
// built. Only healthy receivers own keys for writes.
func (s *Snapshot) Healthy(id string) bool {
	i, ok := s.index(id)
	return ok && s.healthy[i]
}

// Self returns the index of the local member in Members, or -1.
func (s *Snapshot) Self() int { return s.self }

// ReplicationFactor is the number of owners a key has when enough receivers
// are healthy.
func (s *Snapshot) ReplicationFactor() int { return s.rf }

// Owners appends to dst[:0] the indices (into Members) of the distinct
// healthy receivers that own key, primary first, and returns it. Walking
// clockwise from key, it skips unhealthy members and, when the healthy
// receivers span several zones, spreads the owners over as many zones as it
// can. It returns fewer than ReplicationFactor owners only when fewer
// receivers are healthy. It does not allocate when cap(dst) is at least
// ReplicationFactor.
func (s *Snapshot) Owners(key uint32, dst []int) []int {
	dst = dst[:0]
	if len(s.tokens) == 0 {
		return dst
	}
	// A token owns the keys after the previous token, up to and including
	// itself; keys past the last token wrap around to the first.
	p, _ := slices.BinarySearch(s.tokens, key)
	if p == len(s.tokens) {
		p = 0
	}
	return append(dst, s.owners[p*s.replicas:(p+1)*s.replicas]...)
}

// Changed returns a channel that is closed when a snapshot with different
// members, states, addresses or health replaces this one. Heartbeats alone
// do not close it. Watch it to learn of changes without missing any:
//
//	for {
//		s := r.Snapshot()
//		use(s)
//		select {
//		case <-s.Changed():
//		case <-ctx.Done():
//			return
//		}
//	}
//
// After Ring.Run returns the channel is never closed again.
func (s *Snapshot) Changed() <-chan struct{} { return s.changed }

func (s *Snapshot) index(id string) (int, bool) {
	return slices.BinarySearchFunc(s.members, id, func(m Member, id string) int { return cmp.Compare(m.ID, id) })
}

// sameView reports whether s and o differ only in heartbeats.
func (s *Snapshot) sameView(o *Snapshot) bool {
	return o != nil && s.self == o.self && s.rf == o.rf &&
		slices.Equal(s.digests, o.digests) && slices.Equal(s.healthy, o.healthy) &&
		slices.EqualFunc(s.members, o.members, func(a, b Member) bool { return a.State == b.State })
}

// buildWriteRing computes the owners of every position of the write ring.
// This is the expensive part of a snapshot, done once per view change so
// that Owners is a binary search and a copy.
func (s *Snapshot) buildWriteRing() {
	type position struct {
		token  uint32
		member int
	}
	var pos []position
	zoneOf := make([]int, len(s.members))
	zones := map[string]int{}
	receivers := 0
	for i, m := range s.members {
		if !s.healthy[i] || len(m.Tokens) == 0 {
			continue
		}
		receivers++
		z, ok := zones[m.Zone]
		if !ok {
			z = len(zones)
			zones[m.Zone] = z
		}
		zoneOf[i] = z
		for _, t := range m.Tokens {
			pos = append(pos, position{t, i})
		}
	}
	s.replicas = min(s.rf, receivers)
	if s.replicas == 0 {
		s.tokens, s.owners = nil, nil
		return
	}
	slices.SortFunc(pos, func(a, b position) int {
		return cmp.Or(cmp.Compare(a.token, b.token), cmp.Compare(a.member, b.member))
	})

	n := len(pos)
	zoneTarget := min(s.replicas, len(zones))
	s.tokens = make([]uint32, n)
	s.owners = make([]int, n*s.replicas)
	usedZones := make([]int, 0, s.replicas)
	for p := range pos {
		s.tokens[p] = pos[p].token
		set := s.owners[p*s.replicas : p*s.replicas : (p+1)*s.replicas]
		// First walk: one owner per zone, for as many zones as there are
		// (with no zones configured that is just the primary).
		usedZones = usedZones[:0]
		for q := 0; q < n && len(usedZones) < zoneTarget; q++ {
			m := pos[(p+q)%n].member
			if slices.Contains(usedZones, zoneOf[m]) {
				continue
			}
			set = append(set, m)
			usedZones = append(usedZones, zoneOf[m])
		}
		// Second walk: fill up with the next distinct members clockwise.
		for q := 0; q < n && len(set) < s.replicas; q++ {
			m := pos[(p+q)%n].member
			if !slices.Contains(set, m) {
				set = append(set, m)
			}
		}
	}
}

// newSnapshot builds a snapshot from members sorted by ID.
func newSnapshot(members []Member, healthy []bool, digests []uint64, selfID string, rf int) *Snapshot {
	s := &Snapshot{members: members, healthy: healthy, digests: digests, self: -1, rf: rf}
	if i, ok := s.index(selfID); ok {
		s.self = i
	}
	return s
}

// ownership returns, per member, the fraction of the key space whose
// primary owner it is when every member with tokens is counted, healthy or
// not: the share a member is meant to hold, for the ring page.
func (s *Snapshot) ownership() []float64 {
	type position struct {
		token  uint32
		member int
	}
	var pos []position
	for i, m := range s.members {
		for _, t := range m.Tokens {
			pos = append(pos, position{t, i})
		}
	}
	share := make([]float64, len(s.members))
	if len(pos) == 0 {
		return share
	}
	slices.SortFunc(pos, func(a, b position) int {
		return cmp.Or(cmp.Compare(a.token, b.token), cmp.Compare(a.member, b.member))
	})
	prev := pos[len(pos)-1].token
	for _, p := range pos {
		share[p.member] += float64(p.token-prev) / (1 << 32) // wraps for the first position
		prev = p.token
	}
	if len(pos) == 1 { // a lone token owns the whole circle, not an empty range
		share[pos[0].member] = 1
	}
	return share
}
