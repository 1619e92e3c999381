package ring

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// receivers returns n receivers named receiver-00, receiver-01... with their
// real tokens, in zones[i%len(zones)].
func receivers(n, numTokens int, zones ...string) []Member {
	ms := make([]Member, n)
	for i := range ms {
		id := fmt.Sprintf("receiver-%02d", i)
		ms[i] = Member{ID: id, Role: RoleReceiver, State: StateActive, Tokens: tokensFor(id, numTokens)}
		if len(zones) > 0 {
			ms[i].Zone = zones[i%len(zones)]
		}
	}
	return ms
}

// snapshotOf builds a snapshot in which every member is healthy except
// those named in unhealthy.
func snapshotOf(members []Member, rf int, unhealthy ...string) *Snapshot {
	ms := slices.Clone(members)
	slices.SortFunc(ms, func(a, b Member) int { return cmp.Compare(a.ID, b.ID) })
	healthy := make([]bool, len(ms))
	for i, m := range ms {
		healthy[i] = !slices.Contains(unhealthy, m.ID)
	}
	s := newSnapshot(ms, healthy, make([]uint64, len(ms)), "", rf)
	s.buildWriteRing()
	return s
}

// memberNumbers maps snapshot indices to the number in "receiver-NN", so
// owner sets of different snapshots can be compared.
func memberNumbers(s *Snapshot) []int {
	nums := make([]int, len(s.Members()))
	for i, m := range s.Members() {
		nums[i], _ = strconv.Atoi(strings.TrimPrefix(m.ID, "receiver-"))
	}
	return nums
}

func TestChurnMovesOnlyItsShare(t *testing.T) {
	const (
		keys = 1_000_000
		n    = 10
		rf   = 3
	)
	all := receivers(n+1, 128)
	ring := snapshotOf(all[:n], rf)
	withJoiner := snapshotOf(all, rf)                               // receiver-10 joins
	withoutLeaver := snapshotOf(append(all[:4:4], all[5:n]...), rf) // receiver-04 leaves
	cases := []struct {
		name   string
		after  *Snapshot
		mover  int // the only member that may enter or leave owner sets
		joined bool
		size   int // ring size the mover's share is measured in
	}{
		{"join", withJoiner, n, true, n + 1},
		{"leave", withoutLeaver, 4, false, n},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			beforeNums, afterNums := memberNumbers(ring), memberNumbers(tc.after)
			var before, after []int
			movedReplicas, movedPrimaries := 0, 0
			for i := range keys {
				key := keyFor("tenant", uint64(i)*0x9E3779B97F4A7C15)
				before = ring.Owners(key, before)
				after = tc.after.Owners(key, after)
				if len(before) != rf || len(after) != rf {
					t.Fatalf("key %d: %d and %d owners, want %d", key, len(before), len(after), rf)
				}
				if beforeNums[before[0]] != afterNums[after[0]] {
					movedPrimaries++
				}
				for _, a := range after {
					if !slices.ContainsFunc(before, func(b int) bool { return beforeNums[b] == afterNums[a] }) {
						movedReplicas++
						// A join may only add the joiner; a leave may only
						// replace the leaver. Nobody else's keys move.
						if tc.joined && afterNums[a] != tc.mover {
							t.Fatalf("key %d: member %d gained a replica on %s of %d", key, afterNums[a], tc.name, tc.mover)
						}
					}
				}
				if !tc.joined {
					for _, b := range before {
						if !slices.ContainsFunc(after, func(a int) bool { return beforeNums[b] == afterNums[a] }) && beforeNums[b] != tc.mover {
							t.Fatalf("key %d: member %d lost a replica on %s of %d", key, beforeNums[b], tc.name, tc.mover)
						}
					}
				}
			}
			want := 1 / float64(tc.size)
			replicaShare := float64(movedReplicas) / (keys * rf)
			primaryShare := float64(movedPrimaries) / keys
			t.Logf("%s: %.4f of replicas and %.4f of primaries moved; 1/N = %.4f", tc.name, replicaShare, primaryShare, want)
			for what, got := range map[string]float64{"replicas": replicaShare, "primaries": primaryShare} {
				if got < 0.6*want || got > 1.4*want {
					t.Errorf("%s moved: %.4f, want about %.4f", what, got, want)
				}
			}
		})
	}
}

func TestLoadIsBalanced(t *testing.T) {
	const keys = 1_000_000
	for _, tc := range []struct{ n, rf int }{{3, 3}, {5, 3}, {10, 3}, {20, 1}} {
		t.Run(fmt.Sprintf("%d members rf %d", tc.n, tc.rf), func(t *testing.T) {
			s := snapshotOf(receivers(tc.n, 128), tc.rf)
			load := make([]int, tc.n)
			var owners []int
			for i := range keys {
				owners = s.Owners(keyFor("tenant", uint64(i)), owners)
				for _, o := range owners {
					load[o]++
				}
			}
			mean := float64(keys*tc.rf) / float64(tc.n)
			lo, hi := math.Inf(1), 0.0
			for _, l := range load {
				lo, hi = min(lo, float64(l)/mean), max(hi, float64(l)/mean)
			}
			t.Logf("load relative to the mean: min %.3f max %.3f", lo, hi)
			if lo < 0.75 || hi > 1.25 {
				t.Errorf("unbalanced: min %.3f max %.3f of the mean", lo, hi)
			}
			share := s.ownership()
			total := 0.0
			for _, x := range share {
				total += x
			}
			if math.Abs(total-1) > 1e-9 {
				t.Errorf("ownership sums to %v", total)
			}
		})
	}
}

func TestOwnersSkipUnhealthyMembers(t *testing.T) {
	ms := receivers(5, 128)
	s := snapshotOf(ms, 3, "receiver-01", "receiver-03")
	var owners []int
	for i := range 10_000 {
		owners = s.Owners(uint32(i)*429497, owners)
		if len(owners) != 3 {
			t.Fatalf("want 3 owners, got %v", owners)
		}
		for _, o := range owners {
			if !s.Healthy(s.Members()[o].ID) {
				t.Fatalf("unhealthy owner %s", s.Members()[o].ID)
			}
		}
	}
	// Fewer healthy receivers than replicas: everyone healthy owns everything.
	s = snapshotOf(ms, 3, "receiver-00", "receiver-01", "receiver-02", "receiver-03")
	if owners = s.Owners(7, owners); len(owners) != 1 || s.Members()[owners[0]].ID != "receiver-04" {
		t.Fatalf("want only receiver-04, got %v", owners)
	}
	s = snapshotOf(ms, 3, "receiver-00", "receiver-01", "receiver-02", "receiver-03", "receiver-04")
	if owners = s.Owners(7, owners); len(owners) != 0 {
		t.Fatalf("want no owners, got %v", owners)
	}
	// Members without tokens (queriers) never own keys.
	q := Member{ID: "querier", Role: RoleQuerier, State: StateActive}
	s = snapshotOf(append(receivers(1, 16), q), 3)
	if owners = s.Owners(7, owners); len(owners) != 1 || s.Members()[owners[0]].ID != "receiver-00" {
		t.Fatalf("want only receiver-00, got %v", owners)
	}
}

func TestOwnersSpreadOverZones(t *testing.T) {
	cases := []struct {
		name      string
		members   []Member
		unhealthy []string
		rf        int
		zones     int // distinct zones every owner set must span
	}{
		{"three zones rf 3", receivers(9, 128, "a", "b", "c"), nil, 3, 3},
		{"uneven zones rf 3", receivers(7, 128, "a", "a", "a", "a", "b", "c", "c"), nil, 3, 3},
		{"two zones rf 3", receivers(6, 128, "a", "b"), nil, 3, 2},
		{"four zones rf 3", receivers(8, 128, "a", "b", "c", "d"), nil, 3, 3},
		{"zone c down", receivers(9, 128, "a", "b", "c"), []string{"receiver-02", "receiver-05", "receiver-08"}, 3, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := snapshotOf(tc.members, tc.rf, tc.unhealthy...)
			var owners []int
			for i := range 100_000 {
				owners = s.Owners(keyFor("t", uint64(i)), owners)
				zones := map[string]bool{}
				for _, o := range owners {
					zones[s.Members()[o].Zone] = true
				}
				if len(owners) != tc.rf || len(zones) != tc.zones {
					t.Fatalf("key %d: owners %v span %d zones, want %d owners in %d zones", i, owners, len(zones), tc.rf, tc.zones)
				}
			}
		})
	}
}

func TestSharedTokensResolveDeterministically(t *testing.T) {
	a := Member{ID: "a", Role: RoleReceiver, State: StateActive, Tokens: []uint32{100, 1000}}
	b := Member{ID: "b", Role: RoleReceiver, State: StateActive, Tokens: []uint32{100, 2000}}
	c := Member{ID: "c", Role: RoleReceiver, State: StateActive, Tokens: []uint32{3000}}
	for _, order := range [][]Member{{a, b, c}, {c, b, a}, {b, c, a}} {
		s := snapshotOf(order, 2)
		ids := func(key uint32) string {
			var out []string
			for _, o := range s.Owners(key, nil) {
				out = append(out, s.Members()[o].ID)
			}
			return strings.Join(out, ",")
		}
		for key, want := range map[uint32]string{50: "a,b", 100: "a,b", 101: "a,b", 1500: "b,c", 2500: "c,a", 4000: "a,b"} {
			if got := ids(key); got != want {
				t.Fatalf("key %d: owners %s, want %s", key, got, want)
			}
		}
	}
}

func TestOwnersDoesNotAllocate(t *testing.T) {
	s := snapshotOf(receivers(20, 128, "a", "b", "c"), 3)
	dst := make([]int, 0, 3)
	key := uint32(0)
	if n := testing.AllocsPerRun(1000, func() {
		key += 2654435761
		dst = s.Owners(key, dst)
	}); n != 0 {
		t.Fatalf("Owners allocates %v times per call", n)
	}
}

func BenchmarkOwners(b *testing.B) {
	for _, n := range []int{10, 100} {
		b.Run(fmt.Sprintf("%d members", n), func(b *testing.B) {
			s := snapshotOf(receivers(n, 128, "a", "b", "c"), 3)
			dst := make([]int, 0, 3)
			b.ReportAllocs()
			i := uint64(0)
			for b.Loop() {
				i++
				dst = s.Owners(keyFor("tenant", i), dst)
			}
		})
	}
}

func BenchmarkBuildWriteRing(b *testing.B) {
	ms := receivers(100, 128, "a", "b", "c")
	b.ReportAllocs()
	for b.Loop() {
		snapshotOf(ms, 3)
	}
}
