package storegateway

import (
	"fmt"
	"slices"
	"testing"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
)

func TestIndexCacheLRU(t *testing.T) {
	id := ulid.Make()
	key := func(i int) cacheKey { return cacheKey{block: id, kind: cacheSeries, ref: uint64(i)} }
	entry := key(0).size() + 100
	c := newIndexCache(8*entry, prometheus.NewRegistry())
	for i := range 8 {
		c.set(key(i), make([]byte, 100))
	}
	if c.size() != 8*entry {
		t.Fatalf("size %d, want %d", c.size(), 8*entry)
	}
	// Touch 0 so that 1 is the least recently used.
	if _, ok := c.get(key(0)); !ok {
		t.Fatal("entry 0 missing")
	}
	c.set(key(8), make([]byte, 100))
	if _, ok := c.get(key(1)); ok {
		t.Error("least recently used entry kept")
	}
	for _, i := range []int{0, 2, 8} {
		if _, ok := c.get(key(i)); !ok {
			t.Errorf("entry %d evicted", i)
		}
	}
	// Too big for one entry: not cached, nothing evicted.
	c.set(key(9), make([]byte, 2*entry))
	if _, ok := c.get(key(9)); ok {
		t.Error("oversized entry cached")
	}
	if c.size() > 8*entry {
		t.Errorf("size %d over the cap %d", c.size(), 8*entry)
	}
	// Postings keys count their label pair.
	pk := cacheKey{block: id, kind: cachePostings, name: "job", value: "node"}
	if pk.size() != entryOverhead+7 {
		t.Errorf("postings key size %d", pk.size())
	}

	off := newIndexCache(0, prometheus.NewRegistry())
	off.set(key(1), []byte("x"))
	if _, ok := off.get(key(1)); ok {
		t.Error("disabled cache returned an entry")
	}
}

func TestMergeParts(t *testing.T) {
	for _, tc := range []struct {
		parts []part
		gap   int64
		want  string
	}{
		{[]part{{0, 10, 0}}, 0, "[0,10:0]"},
		{[]part{{20, 30, 1}, {0, 10, 0}}, 10, "[0,30:0,1]"},
		{[]part{{20, 30, 1}, {0, 10, 0}}, 9, "[0,10:0] [20,30:1]"},
		{[]part{{0, 100, 0}, {10, 20, 1}, {150, 160, 2}}, 50, "[0,160:0,1,2]"},
		{[]part{{0, 100, 0}, {10, 20, 1}, {150, 160, 2}}, 49, "[0,100:0,1] [150,160:2]"},
	} {
		var got []string
		for _, r := range mergeParts(slices.Clone(tc.parts), tc.gap) {
			s := fmt.Sprintf("[%d,%d:", r.start, r.end)
			for i, p := range r.parts {
				if i > 0 {
					s += ","
				}
				s += fmt.Sprint(p.id)
			}
			got = append(got, s+"]")
		}
		if fmt.Sprint(got) != "["+tc.want+"]" {
			t.Errorf("mergeParts(%v, %d) = %v, want [%s]", tc.parts, tc.gap, got, tc.want)
		}
	}
}
