// Package blockset reads the blocks of a bucket the way every Atoll reader
// must: a block exists once its meta.json does, and a block whose data
// another block of the same resolution holds in full (by compaction
// sources) is not read, so that no sample is counted twice while the
// compactor replaces blocks. It also defines the marker objects the
// compactor leaves beside blocks (deletion-mark.json, no-compact-mark.json),
// in Thanos's format.
//
// Fetcher lists a bucket and returns a Set; Set.Live applies the rule.
// Superseded exposes the rule alone for readers that keep their own list.
// The store gateway and the compactor both use it.
package blockset
