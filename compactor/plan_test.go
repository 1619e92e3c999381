package compactor

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/atoll-metrics/atoll/block"
)

func TestPlan(t *testing.T) {
	const h = int64(3600_000)
	ranges := []int64{2 * h, 8 * h, 48 * h}
	var seq uint64
	mk := func(mint, maxt int64) *block.Block {
		seq++
		m := &block.Meta{BlockMeta: tsdb.BlockMeta{ULID: ulid.MustNew(seq, nil), MinTime: mint * h, MaxTime: maxt * h}}
		return &block.Block{Meta: m}
	}
	spans := func(bs []*block.Block) string {
		var out []string
		for _, b := range bs {
			out = append(out, fmt.Sprintf("%d-%d", b.Meta.MinTime/h, b.Meta.MaxTime/h))
		}
		slices.Sort(out)
		return strings.Join(out, " ")
	}
	twoH := func(from, to int64) []*block.Block {
		var out []*block.Block
		for t := from; t < to; t += 2 {
			out = append(out, mk(t, t+2))
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		blocks []*block.Block
		want   string
	}{
		{"nothing", nil, ""},
		{"one block", twoH(0, 2), ""},
		{"incomplete 8h window", twoH(0, 6), ""},
		{"complete 8h window by span", twoH(0, 8), "0-2 2-4 4-6 6-8"},
		{"complete 8h window by a later block", append(twoH(0, 4), mk(8, 10)), "0-2 2-4"},
		{"oldest window first", append(twoH(8, 16), twoH(0, 8)...), "0-2 2-4 4-6 6-8"},
		{"replicas overlap in an open window", append(twoH(0, 4), twoH(2, 4)...), "2-4 2-4"},
		{"replicas in a complete window go with it", append(twoH(0, 8), twoH(0, 8)...), "0-2 0-2 2-4 2-4 4-6 4-6 6-8 6-8"},
		{"8h blocks complete a 2d window", []*block.Block{mk(0, 8), mk(8, 16), mk(16, 24), mk(24, 32), mk(32, 40), mk(40, 48)}, "0-8 16-24 24-32 32-40 40-48 8-16"},
		{"late block across a window boundary", []*block.Block{mk(0, 8), mk(8, 16), mk(6, 10)}, "0-8 6-10 8-16"},
		{"no overlap, nothing complete", []*block.Block{mk(0, 8), mk(8, 16)}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := spans(plan(tc.blocks, ranges)); got != tc.want {
				t.Errorf("Plan = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestReplicaKey(t *testing.T) {
	labels := []string{"receive_replica", "replica"}
	for _, tc := range []struct {
		ext  map[string]string
		want string
	}{
		{map[string]string{"tenant": "a"}, ""},
		{map[string]string{"tenant": "a", "receive_replica": "r1"}, "r1\xff"},
		{map[string]string{"replica": "p"}, "\xffp"},
	} {
		if got := replicaKey(tc.ext, labels); got != tc.want {
			t.Errorf("replicaKey(%v) = %q, want %q", tc.ext, got, tc.want)
		}
	}
}
