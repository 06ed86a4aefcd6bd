package trust

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"time"
)

// Rescoring is what MeasureRescore found.
type Rescoring struct {
	MedianMS, MaxMS float64 // one new follow list, incremental
	MeanMS          float64 // including the rescorings that started over
	Hop1MS          float64 // median when one of the owner's follows changes
	WorstMS         float64 // the slowest of all, hop-1 changes and restarts included
	DecideMS        float64 // one Decide among three candidates
	Branches        int     // the owner's first hops
	FullMS          float64 // scoring the same graph from scratch
	GraphMiB        float64 // heap the graph and its scores take
	Full            int     // rescorings that started over
	Reached         int     // accounts with a score
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
	full2 := time.Now()
	s.recompute()
	if d := time.Since(full2); d < full {
		full = d // the first includes growing the vectors
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	// The new lists come from accounts the owner's walks reach: a change
	// elsewhere costs nothing.
	var reached []int
	for i := range accounts {
		if s.Node(int32(i)) > 0 {
			reached = append(reached, i)
		}
	}
	var ms []float64
	for k := 0; k < trials; k++ {
		a := reached[rng.IntN(len(reached))]
		ts = ts[:0]
		for range per {
			ts = append(ts, names[rng.IntN(accounts)])
		}
		g.SetFollows(names[a], int64(2+k), "e", ts)
		t := time.Now()
		s.Rescore()
		ms = append(ms, time.Since(t).Seconds()*1000)
	}
	// The heaviest ordinary change: one of the owner's own follows
	// publishes a new list (a tenth of all walks pass through it).
	var hop1 []float64
	first := g.out[s.root]
	for k := 0; k < 10 && len(first) > 0; k++ {
		a := first[rng.IntN(len(first))]
		ts = ts[:0]
		for range per {
			ts = append(ts, names[rng.IntN(accounts)])
		}
		g.SetFollows(g.names[a], int64(10_000+k), "e", ts)
		t := time.Now()
		s.Rescore()
		hop1 = append(hop1, time.Since(t).Seconds()*1000)
	}
	slices.Sort(hop1)
	// One decision: three candidates bound to reached accounts; it walks
	// once per first hop of the owner.
	var cs []Candidate
	for i := range 3 {
		d := fmt.Sprintf("did:key:bench%d", i)
		g.Bind(d, names[reached[rng.IntN(len(reached))]], 1)
		cs = append(cs, Candidate{DID: d})
	}
	t1 := time.Now()
	s.Decide(Policy{}, "bench", cs)
	decide := time.Since(t1)
	sum := 0.0
	for _, m := range ms {
		sum += m
	}
	slices.Sort(ms)
	urn = nil
	runtime.KeepAlive(s)
	return Rescoring{
		Hop1MS:   hop1[len(hop1)/2],
		WorstMS:  max(ms[len(ms)-1], hop1[len(hop1)-1]),
		DecideMS: decide.Seconds() * 1000,
		Branches: len(first),
		MedianMS: ms[len(ms)/2], MaxMS: ms[len(ms)-1], MeanMS: sum / float64(len(ms)),
		FullMS:   float64(full.Microseconds()) / 1000,
		GraphMiB: float64(after.HeapAlloc-before.HeapAlloc) / (1 << 20),
		Full:     s.full - 1,
		Reached:  len(reached),
	}
}
