package block

import "github.com/oklog/ulid/v2"

// Superseded returns the blocks whose data another block holds in full,
// each mapped to one block that holds it. Block B is superseded by C when
// both have the same resolution and C's compaction sources include all of
// B's; of two blocks with equal sources, the one with the smaller ULID is
// superseded.
//
// This is the rule that keeps every reader (store gateways, the compactor's
// planner, the bucket tools) from counting data twice while the compactor
// replaces blocks: the compactor uploads the new block first and marks its
// inputs for deletion after, so for a while both are in the bucket, and
// readers must ignore the inputs from the moment the new block's meta.json
// exists.
func Superseded(metas []*Meta) map[ulid.ULID]ulid.ULID {
	type key struct {
		res    int64
		source ulid.ULID
	}
	containing := map[key][]*Meta{}
	for _, m := range metas {
		for _, s := range m.Sources() {
			k := key{m.Thanos.Downsample.Resolution, s}
			containing[k] = append(containing[k], m)
		}
	}
	out := map[ulid.ULID]ulid.ULID{}
	for _, b := range metas {
		for _, c := range containing[key{b.Thanos.Downsample.Resolution, b.Sources()[0]}] {
			if c == b || !supersedes(c, b) {
				continue
			}
			out[b.ULID] = c.ULID
			break
		}
	}
	return out
}

// supersedes reports whether c holds all of b's data and wins over it.
func supersedes(c, b *Meta) bool {
	if !c.ContainsSources(b) {
		return false
	}
	if len(c.Sources()) == len(b.Sources()) {
		return c.ULID.Compare(b.ULID) > 0
	}
	return true
}

// Sources returns the block's compaction sources: the receiver blocks whose
// data it holds. A block that lists none (written by a tool that leaves
// them out) is its own source.
func (m *Meta) Sources() []ulid.ULID {
	if len(m.Compaction.Sources) == 0 {
		return []ulid.ULID{m.ULID}
	}
	return m.Compaction.Sources
}

// ContainsSources reports whether m's compaction sources include all of
// o's: at the same resolution m then holds all of o's data, and at another
// resolution the same samples downsampled.
func (m *Meta) ContainsSources(o *Meta) bool {
	ms, os := m.Sources(), o.Sources()
	if len(ms) < len(os) {
		return false
	}
	set := make(map[ulid.ULID]struct{}, len(ms))
	for _, s := range ms {
		set[s] = struct{}{}
	}
	for _, s := range os {
		if _, ok := set[s]; !ok {
			return false
		}
	}
	return true
}
