package trust

import (
	"math"
	"slices"
)

// Params shape the walks that carry trust from the owner.
type Params struct {
	// Alpha is the probability a walk ends at each step (the restart
	// probability of personalized PageRank). Default 0.3.
	Alpha float64
	// Hops ends every walk after this many steps (early termination: a
	// sybil region behind an attack edge far from the owner gets nothing).
	// Default 5.
	Hops int
	// Eps drops incremental updates smaller than this much trust mass;
	// when the dropped mass adds up to PrunedMax, the next rescore starts
	// over. Default 1e-9 and 1e-6.
	Eps       float64
	PrunedMax float64
}

func (p Params) withDefaults() Params {
	if p.Alpha <= 0 || p.Alpha >= 1 {
		p.Alpha = 0.3
	}
	if p.Hops <= 0 {
		p.Hops = 5
	}
	if p.Eps <= 0 {
		p.Eps = 1e-9
	}
	if p.PrunedMax <= 0 {
		p.PrunedMax = 1e-6
	}
	return p
}

// Scorer keeps the owner's personalized PageRank over a Graph: x[h][v] is
// the mass of walks from the owner at v after exactly h steps, and a
// node's score is Alpha·Σh x[h][v], so all scores add up to at most 1.
// Rescore brings it up to date with the graph's changes incrementally:
// only the differences a changed out-list makes are propagated, starting
// from the previous vectors (a warm start that is exact up to Eps).
//
// A Scorer is not safe for concurrent use, and one Scorer per Graph follows
// its changes (Rescore takes them); several Scorers may share a Graph that
// no longer changes.
type Scorer struct {
	p      Params
	g      *Graph
	root   int32
	x      [][]float64
	score  []float64
	pruned float64
	// scratch for incremental updates
	delta   [][]float64
	touched [][]int32
	full    int // full recomputations, for tests and figures
	// in-degrees, for degree normalisation, as of indegVersion
	indeg        []int32
	indegVersion uint64
}

// NewScorer scores g from the owner key root ("" for none: every score is
// then 0 and only explicit trust counts).
func NewScorer(g *Graph, root string, p Params) *Scorer {
	s := &Scorer{p: p.withDefaults(), g: g, root: -1}
	if root != "" {
		s.root = g.id(root)
	}
	if len(g.changes) > 0 {
		g.takeChanges() // (no write when there are none: harness goroutines share g)
	}
	s.recompute()
	return s
}

// Params returns the scorer's walk parameters.
func (s *Scorer) Params() Params { return s.p }

// Root returns the owner key's node, or -1.
func (s *Scorer) Root() int32 { return s.root }

func (s *Scorer) grow() {
	n := s.g.Len()
	if len(s.score) >= n {
		return
	}
	s.score = growTo(s.score, n)
	for len(s.x) < s.p.Hops+1 {
		s.x = append(s.x, nil)
		s.delta = append(s.delta, nil)
		s.touched = append(s.touched, nil)
	}
	for h := range s.x {
		s.x[h] = growTo(s.x[h], n)
		s.delta[h] = growTo(s.delta[h], n)
	}
}

func growTo(v []float64, n int) []float64 {
	if cap(v) >= n {
		return v[:n]
	}
	w := make([]float64, n, n+n/4)
	copy(w, v)
	return w
}

// recompute scores from scratch.
func (s *Scorer) recompute() {
	s.full++
	s.pruned = 0
	s.grow()
	clear(s.score)
	for h := range s.x {
		clear(s.x[h])
	}
	if s.root < 0 {
		return
	}
	s.x[0][s.root] = 1
	front := []int32{s.root}
	var next []int32
	a := s.p.Alpha
	for h := 0; ; h++ {
		for _, v := range front {
			s.score[v] += a * s.x[h][v]
		}
		if h == s.p.Hops {
			break
		}
		next = next[:0]
		xn := s.x[h+1]
		for _, v := range front {
			out := s.g.out[v]
			if len(out) == 0 {
				continue // the walk ends: dangling mass is dropped
			}
			m := (1 - a) * s.x[h][v] / float64(len(out))
			for _, w := range out {
				if xn[w] == 0 {
					next = append(next, w)
				}
				xn[w] += m
			}
		}
		front, next = next, front
	}
}

// Rescore applies the graph's changes since the last call and reports
// whether it had to start over.
func (s *Scorer) Rescore() (full bool) {
	changes := s.g.takeChanges()
	s.grow()
	if s.root < 0 || len(changes) == 0 {
		return false
	}
	// Coalesce: a node changed twice keeps its first old list.
	olds := make(map[int32][]int32, len(changes))
	order := make([]int32, 0, len(changes))
	for _, c := range changes {
		if _, ok := olds[c.node]; !ok {
			olds[c.node] = c.old
			order = append(order, c.node)
		}
	}
	slices.Sort(order)
	if s.pruned > s.p.PrunedMax || len(order) > s.g.Len()/20 {
		s.recompute()
		return true
	}
	a := s.p.Alpha
	H := s.p.Hops
	add := func(h int, w int32, m float64) {
		d := s.delta[h]
		if d[w] == 0 {
			s.touched[h] = append(s.touched[h], w)
		}
		d[w] += m
	}
	for h := 0; h <= H; h++ {
		if h < H {
			// What the changed out-lists do to level h+1, from the old
			// mass at level h.
			for _, u := range order {
				xu := s.x[h][u]
				if xu == 0 {
					continue
				}
				if old := olds[u]; len(old) > 0 {
					m := (1 - a) * xu / float64(len(old))
					for _, w := range old {
						add(h+1, w, -m)
					}
				}
				if nw := s.g.out[u]; len(nw) > 0 {
					m := (1 - a) * xu / float64(len(nw))
					for _, w := range nw {
						add(h+1, w, m)
					}
				}
			}
		}
		// Apply level h's differences and carry them on over the new graph.
		for _, v := range s.touched[h] {
			d := s.delta[h][v]
			s.delta[h][v] = 0
			if d == 0 {
				continue
			}
			s.x[h][v] += d
			s.score[v] += a * d
			if h == H {
				continue
			}
			out := s.g.out[v]
			if len(out) == 0 {
				continue
			}
			if math.Abs(d)*(1-a) < s.p.Eps {
				s.pruned += math.Abs(d) * (1 - a)
				continue
			}
			m := (1 - a) * d / float64(len(out))
			for _, w := range out {
				add(h+1, w, m)
			}
		}
		s.touched[h] = s.touched[h][:0]
	}
	return false
}

// Full reports how many times scores were computed from scratch.
func (s *Scorer) Full() int { return s.full }

// Node returns node i's score.
func (s *Scorer) Node(i int32) float64 {
	if int(i) >= len(s.score) {
		return 0
	}
	return s.score[i]
}

// Score returns a key's score, or a DID's: its own (endorsements) plus its
// bound keys' scores, each key's split evenly among the DIDs it is bound to.
func (s *Scorer) Score(name string) float64 {
	i, ok := s.g.index[name]
	if !ok {
		return 0
	}
	return s.of(s.score, i)
}

// of is the score of node i in vector v (a DID gathers its keys').
func (s *Scorer) of(v []float64, i int32) float64 {
	x := at(v, i)
	if s.g.kinds[i] == KindDID {
		for _, k := range s.g.didKeys[i] {
			x += at(v, k) / float64(len(s.g.keyDIDs[k]))
		}
	}
	return x
}

func at(v []float64, i int32) float64 {
	if int(i) >= len(v) {
		return 0
	}
	return v[i]
}

// branches calls fn, for each first hop b of the owner (a node the owner
// follows or endorses), with the scores of walks that went through b: they
// add up, with the owner's own Alpha, to the scores. Each costs one walk;
// v is reused after fn returns.
func (s *Scorer) branches(fn func(b int32, v []float64)) {
	if s.root < 0 {
		return
	}
	first := s.g.out[s.root]
	a := s.p.Alpha
	n := s.g.Len()
	cur := make([]float64, n)
	nxt := make([]float64, n)
	v := make([]float64, n)
	var front, next, seen []int32
	for _, b := range first {
		seen = seen[:0]
		cur[b] = (1 - a) / float64(len(first))
		front = append(front[:0], b)
		for h := 1; ; h++ {
			for _, u := range front {
				if v[u] == 0 {
					seen = append(seen, u)
				}
				v[u] += a * cur[u]
			}
			if h == s.p.Hops {
				for _, u := range front {
					cur[u] = 0
				}
				break
			}
			next = next[:0]
			for _, u := range front {
				out := s.g.out[u]
				if len(out) > 0 {
					m := (1 - a) * cur[u] / float64(len(out))
					for _, w := range out {
						if nxt[w] == 0 {
							next = append(next, w)
						}
						nxt[w] += m
					}
				}
				cur[u] = 0
			}
			front, next = next, front
			cur, nxt = nxt, cur
		}
		fn(b, v)
		for _, u := range seen {
			v[u] = 0
		}
	}
}
