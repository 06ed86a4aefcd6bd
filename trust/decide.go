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
	// counts for at most its (Trim+1)-th largest, and no less than
	// TrimKeep of its largest, so one captured friend (or one friend's
	// attack edge) cannot carry a publisher. Defaults 1 and 0.25; a
	// negative Trim turns the cap off.
	Trim     int
	TrimKeep float64
	// ReporterFloor: the least score a reporter needs for its reports to
	// count; reports are cheap, so it is higher than Floor. Default 1e-4.
	ReporterFloor float64
	// ReportQuorum: the counted report weight that keeps a publisher from
	// being chosen. Each first-hop branch of the owner adds at most 1: the
	// trust of the reporters (each above Floor) through that branch over
	// the publisher's own support through it. Default 2.
	ReportQuorum float64
	// DegreeNorm: the margin compares capped scores divided by the number
	// of accounts that follow or endorse the publisher (its DID and bound
	// keys) to this power, SybilRank's degree normalisation: a publisher
	// propped up by a crowd of accounts that each hold little trust ranks
	// below one endorsed by fewer, trusted accounts. 0 turns it off; the
	// default is 1, negative means 0.
	DegreeNorm float64
	// Allow and Deny list publisher DIDs the owner trusts or refuses.
	Allow []string
	Deny  []string
	// Listed are the DIDs listed by catalogs the owner follows: explicit
	// trust, as the catalogs' curators endorse them.
	Listed []string
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
	if p.TrimKeep <= 0 {
		p.TrimKeep = 0.25
	}
	if p.DegreeNorm == 0 {
		p.DegreeNorm = 1
	} else if p.DegreeNorm < 0 {
		p.DegreeNorm = 0
	}
	if p.ReporterFloor <= 0 {
		p.ReporterFloor = max(1e-4, p.Floor)
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
	Score  float64 `json:"score"`
	Capped float64 `json:"capped"`
	// Ranked is Capped over the endorser count to the DegreeNorm: what
	// the margin compares.
	Ranked    float64 `json:"ranked"`
	Endorsers int     `json:"endorsers"`
	Branches  int     `json:"branches"`
	// Reports is the counted report weight (per-branch capped); Reported
	// lists every report seen, counted or not.
	Reports       float64  `json:"report_weight"`
	OwnerReported bool     `json:"owner_reported,omitempty"`
	Reported      []Report `json:"reports,omitempty"`
	Pinned        bool     `json:"pinned,omitempty"`
	Allowed       bool     `json:"allowed,omitempty"`
	Denied        bool     `json:"denied,omitempty"`
	Reasons       []string `json:"reasons,omitempty"`
}

// Decision is the choice of a publisher for one app id, or an abstention.
type Decision struct {
	AppID string `json:"app_id"`
	// Selected is the chosen DID; empty when the node abstains.
	Selected string `json:"selected,omitempty"`
	// Margin is the top ranked score over the runner-up's: +Inf when
	// there is no runner-up or it scores 0 (JSON: null).
	Margin     float64  `json:"-"`
	MarginJSON *float64 `json:"margin"`
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
		} else if slices.Contains(pol.Listed, c.DID) {
			ch.Allowed = true
			ch.Reasons = append(ch.Reasons, "listed by a catalog the owner follows")
		} else if s.ownerEndorses(c.DID) {
			ch.Allowed = true
			ch.Reasons = append(ch.Reasons, "endorsed by the owner")
		}
		d.Candidates = append(d.Candidates, ch)
	}
	s.fill(pol, d.Candidates)
	slices.SortStableFunc(d.Candidates, func(a, b Choice) int {
		if c := cmp.Compare(b.Ranked, a.Ranked); c != 0 {
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
		top, run := d.Candidates[live[0]].Ranked, d.Candidates[live[1]].Ranked
		if run > 0 {
			d.Margin = top / run
		} else if top == 0 {
			d.Margin = 0
		}
	}
	if !math.IsInf(d.Margin, 0) && !math.IsNaN(d.Margin) {
		m := d.Margin
		d.MarginJSON = &m
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
	case len(allowed) == 1 && d.Candidates[allowed[0]].Reports < pol.ReportQuorum && !d.Candidates[allowed[0]].OwnerReported:
		why := "endorsed by the owner"
		switch did := d.Candidates[allowed[0]].DID; {
		case slices.Contains(pol.Allow, did):
			why = "allowed by the owner"
		case slices.Contains(pol.Listed, did):
			why = "listed by a catalog the owner follows"
		}
		return pick(allowed[0], why)
	case len(allowed) > 1:
		d.Reasons = append(d.Reasons, fmt.Sprintf("%d candidates are allowed or endorsed by the owner: the owner chooses", len(allowed)))
		return d
	}
	top := d.Candidates[live[0]]
	switch {
	case top.OwnerReported:
		d.Reasons = append(d.Reasons, fmt.Sprintf("top candidate %s is reported by the owner", top.DID))
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
	for _, t := range append([]int32{i}, s.g.didKeys[i]...) {
		if x := l[t]; x != nil && !x.revoked {
			return true
		}
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
					cs[i].OwnerReported = true
					continue
				}
				if s.score[rep] >= pol.ReporterFloor {
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
			if len(vals) > 0 {
				lim = max(lim, pol.TrimKeep*vals[0])
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
		cs[i].Endorsers = s.endorsers(c.node)
		cs[i].Ranked = capped / math.Pow(float64(max(cs[i].Endorsers, 1)), pol.DegreeNorm)
		// Per branch, reports weigh the reporters' trust against the
		// publisher's own support there, and count at most one.
		for bi, r := range c.repPer {
			own := max(pol.Floor, math.Abs(c.per[bi]))
			cs[i].Reports += min(1, r/own)
		}
	}
}

// endorsers counts the accounts with a trust edge to a DID or its bound
// keys (for a key, to the key).
func (s *Scorer) endorsers(i int32) int {
	if s.indegVersion != s.g.version || len(s.indeg) != s.g.Len() {
		s.indeg = make([]int32, s.g.Len())
		for _, out := range s.g.out {
			for _, w := range out {
				s.indeg[w]++
			}
		}
		s.indegVersion = s.g.version
	}
	n := int(s.indeg[i])
	if s.g.kinds[i] == KindDID {
		for _, k := range s.g.didKeys[i] {
			n += int(s.indeg[k])
		}
	}
	return n
}
