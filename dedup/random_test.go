package dedup

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
)

// randomReplicas returns 2 to 4 replicas of a counter growing by 0.1/s,
// scraped every 15s at random offsets with random gaps; each replica may read
// up to lag behind.
func randomReplicas(rng *rand.Rand, lag float64) [][]chunks.Sample {
	n := 2 + rng.IntN(3)
	res := make([][]chunks.Sample, n)
	for i := range res {
		offset := int64(0)
		if rng.IntN(2) == 0 {
			offset = rng.Int64N(15) * sec
		}
		var gaps [][2]int64
		for range rng.IntN(4) {
			start := rng.Int64N(3600) * sec
			gaps = append(gaps, [2]int64{start, start + rng.Int64N(600)*sec})
		}
		behind := rng.Float64() * lag
		res[i] = ramp(0, 3600*sec, 15*sec, offset, func(t int64) float64 {
			return math.Max(float64(t)/10000-behind, 0)
		}, gaps...)
	}
	return res
}

func TestIteratorRandomized(t *testing.T) {
	for seed := range uint64(300) {
		rng := rand.New(rand.NewPCG(seed, 1))
		replicas := randomReplicas(rng, 3)
		gauge := expand(t, dedupIterator(nil, replicas...))
		counter := expand(t, dedupIterator([]Option{WithFunc("rate")}, replicas...))

		known := map[int64]map[float64]bool{}
		for _, r := range replicas {
			for _, s := range r {
				if known[s.T()] == nil {
					known[s.T()] = map[float64]bool{}
				}
				known[s.T()][s.F()] = true
			}
		}
		for i, o := range gauge {
			if i > 0 && o.t <= gauge[i-1].t {
				t.Fatalf("seed %d: timestamps not increasing at %d", seed, i)
			}
			if !known[o.t][o.f] {
				t.Fatalf("seed %d: sample %v is in no replica", seed, o)
			}
		}
		if len(counter) != len(gauge) {
			t.Fatalf("seed %d: counter mode picked %d samples, gauge mode %d", seed, len(counter), len(gauge))
		}
		for i := range counter {
			if counter[i].t != gauge[i].t {
				t.Fatalf("seed %d: counter mode picked %d, gauge mode %d", seed, counter[i].t, gauge[i].t)
			}
		}
		if d := drops(counter); d != 0 {
			t.Fatalf("seed %d: %d drops in a counter without resets: %v", seed, d, brief(counter))
		}

		// Seek lands where Next alone would.
		if len(gauge) == 0 {
			continue
		}
		for range 20 {
			k := 1 + rng.IntN(len(gauge))
			target := gauge[rng.IntN(len(gauge))].t + rng.Int64N(40*sec) - 20*sec
			for _, opts := range [][]Option{nil, {WithFunc("rate")}} {
				full := gauge
				if opts != nil {
					full = counter
				}
				it := dedupIterator(opts, replicas...)
				for range k {
					it.Next()
				}
				i := k - 1
				for i < len(full) && full[i].t < target {
					i++
				}
				typ := it.Seek(target)
				if i == len(full) {
					if typ != chunkenc.ValNone {
						t.Fatalf("seed %d: Seek(%d) after %d found %v", seed, target, k, typ)
					}
					continue
				}
				rest := append([]out{readAt(it, typ)}, expand(t, it)...)
				sameFloats(t, rest, full[i:])
			}
		}
	}
}
