package trust

import (
	"math/rand/v2"
	"runtime"
	"slices"
	"time"
)

// Rescoring is what MeasureRescore found.
type Rescoring struct {
	MedianMS, MaxMS float64 // one new follow list, incremental
	FullMS          float64 // scoring the same graph from scratch
	GraphMiB        float64 // heap the graph and its scores take
	Full            int     // rescorings that started over
}

// MeasureRescore builds a random graph of accounts accounts and about
// edges follows (preferential, so degrees are skewed), scores it from one
// owner, then times Rescore after each of trials new follow lists by
// random accounts.
func MeasureRescore(accounts, edges, trials int, seed int64) Rescoring {
	rng := rand.New(rand.NewPCG(uint64(seed), 7))
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	g := NewGraph()
	names := make([]string, accounts)
	for i := range names {
		names[i] = key('k', i)
	}
	per := edges / accounts
	var urn []int
	ts := make([]string, 0, 4*per)
	for i := 0; i < accounts; i++ {
		ts = ts[:0]
		m := 1 + rng.IntN(2*per-1)
		for k := 0; k < m; k++ {
			var t int
			if len(urn) == 0 || rng.IntN(2) == 0 {
				t = rng.IntN(accounts)
			} else {
				t = urn[rng.IntN(len(urn))]
			}
			ts = append(ts, names[t])
			urn = append(urn, t)
		}
		g.SetFollows(names[i], 1, "e", ts)
	}
	t0 := time.Now()
	s := NewScorer(g, names[0], Params{})
	full := time.Since(t0)
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	var ms []float64
	for k := 0; k < trials; k++ {
		a := rng.IntN(accounts)
		ts = ts[:0]
		for range per {
			ts = append(ts, names[rng.IntN(accounts)])
		}
		g.SetFollows(names[a], int64(2+k), "e", ts)
		t := time.Now()
		s.Rescore()
		ms = append(ms, float64(time.Since(t).Microseconds())/1000)
	}
	slices.Sort(ms)
	urn = nil
	runtime.KeepAlive(s)
	return Rescoring{
		MedianMS: ms[len(ms)/2], MaxMS: ms[len(ms)-1],
		FullMS:   float64(full.Microseconds()) / 1000,
		GraphMiB: float64(after.HeapAlloc-before.HeapAlloc) / (1 << 20),
		Full:     s.full - 1,
	}
}
