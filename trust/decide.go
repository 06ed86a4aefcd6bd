package trust

import (
	"cmp"
	"fmt"
	"math"
	"slices"
)

// Policy is the owner's install policy as far as choosing a publisher goes
// (pins and versions are enforced where installs happen).
type Policy struct {
	// Margin: the top candidate's score must be at least Margin times the
	// runner-up's. Default 3.
	Margin float64
	// Floor: the least score (a fraction of the owner's trust) a candidate
	// needs to be chosen, and a reporter to be heard. Default 1e-5.
	Floor float64
	// Trim: a candidate's support through any one first hop of the owner
	// counts for at most its (Trim+1)-th largest, so one captured friend
	// (or one friend's attack edge) cannot carry a publisher. Default 1;
	// negative turns the cap off.
	Trim int
	// ReportQuorum: the counted report weight that keeps a publisher from
	// being chosen. Each first-hop branch of the owner adds at most 1: the
	// trust of the reporters (each above Floor) through that branch over
	// the publisher's own support through it. Default 2.
	ReportQuorum float64
	// Allow and Deny list publisher DIDs the owner trusts or refuses.
	Allow []string
	Deny  []string
}

func (p Policy) withDefaults() Policy {
	if p.Margin <= 0 {
		p.Margin = 3
	}
	if p.Floor <= 0 {
		p.Floor = 1e-5
	}
	if p.Trim == 0 {
		p.Trim = 1
	}
	if p.ReportQuorum <= 0 {
		p.ReportQuorum = 2
	}
	return p
}

// Candidate is a publisher offering a release of an app id.
type Candidate struct {
	DID string `json:"did"`
	// Pinned: the node installed this app id from this DID (or a rotation
	// statement moved the pin to it).
	Pinned bool `json:"pinned,omitempty"`
}

// Choice is one candidate's standing in a Decision.
type Choice struct {
	DID string `json:"did"`
	// Score is the owner's personalized PageRank of the DID (its own plus
	// its bound keys'); Capped is what the decision compares: the same
	// with each first-hop branch's share capped.
	Score    float64 `json:"score"`
	Capped   float64 `json:"capped"`
	Branches int     `json:"branches"`
	// Reports is the counted report weight (per-branch capped); Reported
	// lists every report seen, counted or not.
	Reports  float64  `json:"report_weight"`
	Reported []Report `json:"reports,omitempty"`
	Pinned   bool     `json:"pinned,omitempty"`
	Allowed  bool     `json:"allowed,omitempty"`
	Denied   bool     `json:"denied,omitempty"`
	Reasons  []string `json:"reasons,omitempty"`
}

// Decision is the choice of a publisher for one app id, or an abstention.
type Decision struct {
	AppID string `json:"app_id"`
	// Selected is the chosen DID; empty when the node abstains.
	Selected string `json:"selected,omitempty"`
	// Margin is the top capped score over the runner-up's (+Inf alone).
	Margin     float64  `json:"margin"`
	Candidates []Choice `json:"candidates"`
	Reasons    []string `json:"reasons"`
}

// Decide chooses among the publishers offering appID: a pinned one; else
// the only one the owner allowed (or endorsed directly); else the top
// score if it is above the floor, at least Margin times the runner-up, and
// not reported by a quorum. Otherwise it abstains and says why.
func (s *Scorer) Decide(pol Policy, appID string, cands []Candidate) Decision {
	pol = pol.withDefaults()
	d := Decision{AppID: appID}
	seen := map[string]bool{}
	var live []int
	for _, c := range cands {
		if seen[c.DID] {
			continue
		}
		seen[c.DID] = true
		ch := Choice{DID: c.DID, Pinned: c.Pinned}
		if slices.Contains(pol.Deny, c.DID) {
			ch.Denied = true
			ch.Reasons = append(ch.Reasons, "denied by the owner")
		} else {
			live = append(live, len(d.Candidates))
		}
		if slices.Contains(pol.Allow, c.DID) {
			ch.Allowed = true
			ch.Reasons = append(ch.Reasons, "allowed by the owner")
		} else if s.ownerEndorses(c.DID) {
			ch.Allowed = true
			ch.Reasons = append(ch.Reasons, "endorsed by the owner")
		}
		d.Candidates = append(d.Candidates, ch)
	}
	s.fill(pol, d.Candidates)
	slices.SortStableFunc(d.Candidates, func(a, b Choice) int {
		if c := cmp.Compare(b.Capped, a.Capped); c != 0 {
			return c
		}
		return cmp.Compare(a.DID, b.DID)
	})
	live = live[:0]
	for i, c := range d.Candidates {
		if !c.Denied {
			live = append(live, i)
		}
	}
	d.Margin = math.Inf(1)
	if len(live) >= 2 {
		top, run := d.Candidates[live[0]].Capped, d.Candidates[live[1]].Capped
		if run > 0 {
			d.Margin = top / run
		} else if top == 0 {
			d.Margin = 0
		}
	}
	pick := func(i int, why string) Decision {
		d.Selected = d.Candidates[i].DID
		d.Reasons = append(d.Reasons, why)
		return d
	}
	if len(live) == 0 {
		d.Reasons = append(d.Reasons, "no candidate the owner has not denied")
		return d
	}
	var pinned, allowed []int
	for _, i := range live {
		if d.Candidates[i].Pinned {
			pinned = append(pinned, i)
		}
		if d.Candidates[i].Allowed {
			allowed = append(allowed, i)
		}
	}
	switch {
	case len(pinned) == 1:
		return pick(pinned[0], "pinned: the installed app came from this publisher")
	case len(pinned) > 1:
		d.Reasons = append(d.Reasons, "more than one candidate claims the pin")
		return d
	}
	switch {
	case len(allowed) == 1 && d.Candidates[allowed[0]].Reports < pol.ReportQuorum:
		why := "allowed by the owner"
		if !slices.Contains(pol.Allow, d.Candidates[allowed[0]].DID) {
			why = "endorsed by the owner"
		}
		return pick(allowed[0], why)
	case len(allowed) > 1:
		d.Reasons = append(d.Reasons, fmt.Sprintf("%d candidates are allowed or endorsed by the owner: the owner chooses", len(allowed)))
		return d
	}
	top := d.Candidates[live[0]]
	switch {
	case top.Reports >= pol.ReportQuorum:
		d.Reasons = append(d.Reasons, fmt.Sprintf("top candidate %s is reported (weight %.2f ≥ %.2f)", top.DID, top.Reports, pol.ReportQuorum))
	case top.Capped < pol.Floor:
		d.Reasons = append(d.Reasons, fmt.Sprintf("top candidate %s scores %.3g, below the floor %.3g", top.DID, top.Capped, pol.Floor))
	case d.Margin < pol.Margin:
		d.Reasons = append(d.Reasons, fmt.Sprintf("margin %.2f× over the runner-up is below %.2f×", d.Margin, pol.Margin))
	default:
		if len(live) == 1 {
			return pick(live[0], fmt.Sprintf("the only candidate, above the floor %.3g", pol.Floor))
		}
		return pick(live[0], fmt.Sprintf("%.2f× the runner-up (≥ %.2f×) and above the floor %.3g", d.Margin, pol.Margin, pol.Floor))
	}
	return d
}

// ownerEndorses reports whether the owner's own key endorses did (or one of
// its bound keys) directly: explicit trust.
func (s *Scorer) ownerEndorses(did string) bool {
	if s.root < 0 {
		return false
	}
	l := s.g.labels[s.root]
	i, ok := s.g.index[did]
	if !ok {
		return false
	}
	if x := l[i]; x != nil && !x.revoked {
		return true
	}
	return false
}

// fill computes each candidate's score, branch-capped score and counted
// report weight.
func (s *Scorer) fill(pol Policy, cs []Choice) {
	type cand struct {
		node    int32
		own     map[int32]bool // branches that are the candidate itself
		per     []float64
		reps    []int32 // counted reporters
		repPer  []float64
		hasNode bool
	}
	xs := make([]cand, len(cs))
	anyReporter := false
	for i := range cs {
		c := &xs[i]
		id, ok := s.g.index[cs[i].DID]
		c.node, c.hasNode = id, ok
		if !ok {
			cs[i].Reasons = append(cs[i].Reasons, "unknown to the trust graph")
			continue
		}
		cs[i].Score = s.of(s.score, id)
		c.own = map[int32]bool{id: true}
		targets := []int32{id}
		for _, k := range s.g.didKeys[id] {
			c.own[k] = true
			targets = append(targets, k)
		}
		if len(s.g.didKeys[id]) == 0 && s.g.kinds[id] == KindDID {
			cs[i].Reasons = append(cs[i].Reasons, "no Nostr key bound: scored by endorsements of the DID only")
		}
		for _, t := range targets {
			for rep, r := range s.g.reports[t] {
				cs[i].Reported = append(cs[i].Reported, *r)
				if r.Type != ReportMalware && r.Type != ReportImpersonation {
					continue
				}
				if rep == s.root {
					cs[i].Reports = math.Inf(1)
					continue
				}
				if s.score[rep] >= pol.Floor {
					c.reps = append(c.reps, rep)
					anyReporter = true
				}
			}
		}
		slices.SortFunc(cs[i].Reported, func(a, b Report) int { return cmp.Compare(a.EventID, b.EventID) })
	}
	nb := 0
	s.branches(func(b int32, v []float64) {
		nb++
		for i := range xs {
			c := &xs[i]
			if !c.hasNode {
				continue
			}
			x := s.of(v, c.node)
			if c.own[b] {
				x = -x // marked: never capped (the owner vouches directly)
			}
			c.per = append(c.per, x)
			if anyReporter {
				r := 0.0
				for _, rep := range c.reps {
					r += v[rep]
				}
				c.repPer = append(c.repPer, r)
			}
		}
	})
	for i := range xs {
		c := &xs[i]
		if !c.hasNode {
			continue
		}
		var direct float64
		var vals []float64
		for _, x := range c.per {
			switch {
			case x < 0:
				direct += -x
			case x > 0:
				vals = append(vals, x)
			}
		}
		cs[i].Branches = len(vals)
		slices.SortFunc(vals, func(a, b float64) int { return cmp.Compare(b, a) })
		capped := direct
		if pol.Trim > 0 && nb >= pol.Trim+2 {
			lim := 0.0
			if len(vals) > pol.Trim {
				lim = vals[pol.Trim]
			}
			for _, x := range vals {
				capped += min(x, lim)
			}
		} else {
			for _, x := range vals {
				capped += x
			}
		}
		cs[i].Capped = capped
		// Per branch, reports weigh the reporters' trust against the
		// publisher's own support there, and count at most one.
		for bi, r := range c.repPer {
			own := max(pol.Floor, math.Abs(c.per[bi]))
			cs[i].Reports += min(1, r/own)
		}
	}
}
