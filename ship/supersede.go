package ship

import "github.com/oklog/ulid/v2"

// Superseded returns the blocks whose data another block holds in full,
// each mapped to one block that holds it. Block B is superseded by C when
// both have the same resolution and C's compaction sources include all of
// B's; of two blocks with equal sources, the one with the smaller ULID is
// superseded.
//
// This is the rule that keeps every reader (store gateways, the compactor's
// planner) from counting data twice while the compactor replaces blocks: the
// compactor uploads the new block first and marks its inputs for deletion
// after, so for a while both are in the bucket, and readers must ignore the
// inputs from the moment the new block's meta.json exists.
func Superseded(metas []*Meta) map[ulid.ULID]ulid.ULID {
	type key struct {
		res    int64
		source ulid.ULID
	}
	containing := map[key][]*Meta{}
	for _, m := range metas {
		for _, s := range blockSources(m) {
			k := key{m.Thanos.Downsample.Resolution, s}
			containing[k] = append(containing[k], m)
		}
	}
	out := map[ulid.ULID]ulid.ULID{}
	for _, b := range metas {
		src := blockSources(b)
		for _, c := range containing[key{b.Thanos.Downsample.Resolution, src[0]}] {
			if c == b || !coversBlock(c, b) {
				continue
			}
			out[b.ULID] = c.ULID
			break
		}
	}
	return out
}

// coversBlock reports whether c holds all of b's data and wins over it.
func coversBlock(c, b *Meta) bool {
	cs, bs := blockSources(c), blockSources(b)
	if len(cs) < len(bs) {
		return false
	}
	set := make(map[ulid.ULID]struct{}, len(cs))
	for _, s := range cs {
		set[s] = struct{}{}
	}
	for _, s := range bs {
		if _, ok := set[s]; !ok {
			return false
		}
	}
	if len(cs) == len(bs) {
		return c.ULID.Compare(b.ULID) > 0
	}
	return true
}

// blockSources returns a block's compaction sources; a block that lists
// none (written by a tool that leaves them out) is its own source.
func blockSources(m *Meta) []ulid.ULID {
	if len(m.Compaction.Sources) == 0 {
		return []ulid.ULID{m.ULID}
	}
	return m.Compaction.Sources
}
