package trust

import (
	"cmp"
	"slices"
)

// Path is a chain of trust edges from the owner to a node, with the mass
// of walks it carried into its last edge.
type Path struct {
	Nodes []string `json:"nodes"`
	Flow  float64  `json:"flow"`
}

// Attestation is an endorsement that counted: its author and the author's
// score.
type Attestation struct {
	Author string  `json:"author"`
	Target string  `json:"target"`
	Score  float64 `json:"author_score"`
}

// Explanation says where a key's or DID's score came from.
type Explanation struct {
	Name      string        `json:"name"`
	Score     float64       `json:"score"`
	Keys      []string      `json:"bound_keys,omitempty"`
	FirstSeen int64         `json:"first_seen,omitempty"`
	Paths     []Path        `json:"paths"`
	Endorsers []Attestation `json:"endorsements"`
	Followers []Attestation `json:"followers"`
	Reports   []Report      `json:"reports,omitempty"`
}

// maxPaths and maxListed bound an explanation.
const (
	maxPaths  = 3
	maxListed = 10
)

// Explain returns the paths from the owner that carried name's score
// (each step back taking the in-edge that brought the most mass), the
// endorsements and follows by scored authors, the bound keys and reports.
func (s *Scorer) Explain(name string) Explanation {
	e := Explanation{Name: name, Score: s.Score(name)}
	id, ok := s.g.index[name]
	if !ok {
		return e
	}
	e.Keys = s.g.namesOf(s.g.didKeys[id])
	if at, ok := s.g.firstSeen[id]; ok {
		e.FirstSeen = at
	}
	targets := append([]int32{id}, s.g.didKeys[id]...)
	in := make(map[int32][]int32)
	for v, out := range s.g.out {
		for _, w := range out {
			in[w] = append(in[w], int32(v))
		}
	}
	flow := func(v int32) float64 {
		if len(s.g.out[v]) == 0 {
			return 0
		}
		return s.score[v] / s.p.Alpha * (1 - s.p.Alpha) / float64(len(s.g.out[v]))
	}
	// Endorsers and followers of the DID and its keys.
	for _, t := range targets {
		for _, v := range in[t] {
			if s.score[v] == 0 {
				continue
			}
			a := Attestation{Author: s.g.names[v], Target: s.g.names[t], Score: s.score[v]}
			if l := s.g.labels[v][t]; l != nil && !l.revoked {
				e.Endorsers = append(e.Endorsers, a)
			} else {
				e.Followers = append(e.Followers, a)
			}
		}
		for _, r := range s.g.reports[t] {
			e.Reports = append(e.Reports, *r)
		}
	}
	byScore := func(a, b Attestation) int {
		if c := cmp.Compare(b.Score, a.Score); c != 0 {
			return c
		}
		return cmp.Compare(a.Author, b.Author)
	}
	slices.SortFunc(e.Endorsers, byScore)
	slices.SortFunc(e.Followers, byScore)
	e.Endorsers = e.Endorsers[:min(len(e.Endorsers), maxListed)]
	e.Followers = e.Followers[:min(len(e.Followers), maxListed)]
	slices.SortFunc(e.Reports, func(a, b Report) int { return cmp.Compare(a.EventID, b.EventID) })
	if s.root < 0 {
		return e
	}
	// Paths: the heaviest in-edges into the targets, each followed back.
	type start struct {
		v, t int32
		f    float64
	}
	var starts []start
	for _, t := range targets {
		for _, v := range in[t] {
			if f := flow(v); f > 0 {
				starts = append(starts, start{v, t, f})
			}
		}
	}
	slices.SortFunc(starts, func(a, b start) int {
		if c := cmp.Compare(b.f, a.f); c != 0 {
			return c
		}
		return cmp.Compare(a.v, b.v)
	})
	for _, st := range starts {
		if len(e.Paths) == maxPaths {
			break
		}
		chain := []int32{st.t, st.v}
		on := map[int32]bool{st.t: true, st.v: true}
		cur := st.v
		for cur != s.root && len(chain) <= s.p.Hops+1 {
			best, bf := int32(-1), 0.0
			for _, u := range in[cur] {
				if f := flow(u); !on[u] && f > bf {
					best, bf = u, f
				}
			}
			if best < 0 {
				break
			}
			chain = append(chain, best)
			on[best] = true
			cur = best
		}
		if cur != s.root {
			continue
		}
		p := Path{Flow: st.f}
		for i := len(chain) - 1; i >= 0; i-- {
			p.Nodes = append(p.Nodes, s.g.names[chain[i]])
		}
		e.Paths = append(e.Paths, p)
	}
	return e
}
