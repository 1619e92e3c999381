package compactor

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/atoll-metrics/atoll/block"
)

// group is the unit of compaction: the blocks of one producer (external
// labels without the replica labels) at one resolution. Blocks of different
// groups are never merged.
type group struct {
	// Labels are the blocks' external labels without the replica labels;
	// they become the external labels of every block the group produces.
	Labels     labels.Labels
	Resolution int64
}

// Key identifies the group.
func (g group) Key() string {
	return fmt.Sprintf("%s@%d", g.Labels.String(), g.Resolution)
}

// dirName is a file name unique to the group, for scratch space.
func (g group) dirName() string {
	return fmt.Sprintf("%016x", xxhash.Sum64String(g.Key()))
}

// groupOf returns the group of a block.
func groupOf(b *block.Block, replicaLabels []string) group {
	lb := labels.NewBuilder(b.Meta.ExternalLabels())
	lb.Del(replicaLabels...)
	return group{Labels: lb.Labels(), Resolution: b.Resolution()}
}

// plan returns the next blocks to compact into one, or nil when the group is
// in order. blocks are the group's live blocks that may be compacted (not
// marked no-compact); ranges are the block spans of the compaction levels in
// milliseconds, smallest first (the first is the span blocks arrive with).
//
// The planner first looks for an aligned window of a level above the first
// (8h, 2d, 14d by default) that holds at least two blocks and is complete:
// its blocks span it exactly, or a block of the group starts at or after
// its end, so no more data will come for it. The smallest level's oldest
// such window wins. Overlapping blocks inside such a window are merged in
// the same step, so a backlog of replica blocks is deduplicated while it is
// compacted. Failing that, it returns the oldest set of blocks that overlap
// in time (replicas of the newest blocks, a late upload): those are merged
// at once, whatever their span, so overlaps never linger.
func plan(blocks []*block.Block, ranges []int64) []*block.Block {
	if len(blocks) < 2 {
		return nil
	}
	bs := slices.Clone(blocks)
	slices.SortFunc(bs, func(a, b *block.Block) int {
		return cmp.Or(
			cmp.Compare(a.Meta.MinTime, b.Meta.MinTime),
			cmp.Compare(a.Meta.MaxTime, b.Meta.MaxTime),
			a.ID().Compare(b.ID()),
		)
	})
	newestMint := bs[len(bs)-1].Meta.MinTime

	for _, r := range ranges[min(1, len(ranges)):] {
		var (
			window  int64
			members []*block.Block
			started bool
		)
		check := func() []*block.Block {
			if len(members) < 2 {
				return nil
			}
			lo, hi := members[0].Meta.MinTime, members[0].Meta.MaxTime
			for _, m := range members {
				lo, hi = min(lo, m.Meta.MinTime), max(hi, m.Meta.MaxTime)
			}
			if (lo == window && hi == window+r) || window+r <= newestMint {
				return members
			}
			return nil
		}
		for _, b := range bs {
			w := alignDown(b.Meta.MinTime, r)
			if b.Meta.MaxTime > w+r {
				continue // spans more than one window of this level
			}
			if !started || w != window {
				if job := check(); job != nil {
					return job
				}
				window, members, started = w, nil, true
			}
			members = append(members, b)
		}
		if job := check(); job != nil {
			return job
		}
	}

	// Overlaps the levels do not resolve yet.
	cluster := []*block.Block{bs[0]}
	clusterMax := bs[0].Meta.MaxTime
	for _, b := range bs[1:] {
		if b.Meta.MinTime < clusterMax {
			cluster = append(cluster, b)
			clusterMax = max(clusterMax, b.Meta.MaxTime)
			continue
		}
		if len(cluster) > 1 {
			return cluster
		}
		cluster, clusterMax = []*block.Block{b}, b.Meta.MaxTime
	}
	if len(cluster) > 1 {
		return cluster
	}
	return nil
}

// alignDown returns the start of the window of size r holding t.
func alignDown(t, r int64) int64 {
	w := t / r * r
	if t < 0 && t%r != 0 {
		w -= r
	}
	return w
}
