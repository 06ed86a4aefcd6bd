package trust

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// k names a test key (64 hex digits).
func k(name string) string { return fmt.Sprintf("%064x", name) }

func near(t *testing.T, what string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > 1e-12 {
		t.Errorf("%s = %.15g, want %.15g", what, got, want)
	}
}

func TestScoreKnownAnswers(t *testing.T) {
	g := NewGraph()
	o, a, b, p, far := k("owner"), k("a"), k("b"), k("p"), k("far")
	g.SetFollows(o, 1, "e1", []string{a, b})
	g.SetFollows(a, 1, "e2", []string{p})
	g.SetFollows(b, 1, "e3", []string{p, far})
	s := NewScorer(g, o, Params{Alpha: 0.5, Hops: 2})
	near(t, "owner", s.Score(o), 0.5)
	near(t, "a", s.Score(a), 0.5*0.25)
	near(t, "b", s.Score(b), 0.5*0.25)
	// p: half of a's 0.125 mass and a quarter of b's... a sends 0.5·0.25, b sends 0.5·0.25/2.
	near(t, "p", s.Score(p), 0.5*(0.5*0.25+0.5*0.25/2))
	near(t, "far", s.Score(far), 0.5*(0.5*0.25/2))
	// One more hop is past Hops: nothing reaches it.
	g.SetFollows(p, 1, "e4", []string{k("beyond")})
	s.Rescore()
	near(t, "beyond", s.Score(k("beyond")), 0)
	// A DID gathers its bound key's score, split among the DIDs the key is bound to.
	g.Bind("did:key:one", p, 5)
	near(t, "did one", s.Score("did:key:one"), s.Score(p))
	g.Bind("did:key:two", p, 5)
	near(t, "did two", s.Score("did:key:two"), s.Score(p)/2)
	// No owner: nothing is scored.
	if x := NewScorer(g, "", Params{}).Score(a); x != 0 {
		t.Errorf("score without an owner = %g, want 0", x)
	}
}

func TestReplaceableDedup(t *testing.T) {
	g := NewGraph()
	a, b, c := k("a"), k("b"), k("c")
	if !g.SetFollows(a, 10, "bb", []string{b}) {
		t.Fatal("first follow list refused")
	}
	if g.SetFollows(a, 9, "aa", []string{c}) {
		t.Error("an older follow list replaced a newer one")
	}
	if g.SetFollows(a, 10, "cc", []string{c}) {
		t.Error("a same-time follow list with a higher id replaced the held one")
	}
	if !g.SetFollows(a, 10, "ab", []string{c}) {
		t.Error("a same-time follow list with a lower id did not replace the held one")
	}
	if got := g.Out(a); len(got) != 1 || got[0] != c {
		t.Errorf("out(a) = %v, want [c]", got)
	}
	g.SetLabel(a, "did:key:x", 5, "l1", false)
	g.SetLabel(a, "did:key:x", 6, "l2", true)
	if got := g.Out(a); len(got) != 1 {
		t.Errorf("a revoked endorsement is still an edge: %v", got)
	}
}

// TestIncrementalMatchesFull changes follow lists one by one and checks
// that the warm-started rescoring gives what scoring from scratch does.
func TestIncrementalMatchesFull(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	g := NewGraph()
	const n = 400
	for i := range n {
		var ts []string
		for range 1 + rng.IntN(8) {
			ts = append(ts, k(fmt.Sprint(rng.IntN(n))))
		}
		g.SetFollows(k(fmt.Sprint(i)), 1, "e", ts)
	}
	s := NewScorer(g, k("0"), Params{Eps: 1e-15})
	for step := range 30 {
		a := rng.IntN(n)
		if step%5 == 0 {
			a = 0 // the owner's own list too
		}
		var ts []string
		for range rng.IntN(6) {
			ts = append(ts, k(fmt.Sprint(rng.IntN(n+20)))) // some new accounts
		}
		g.SetFollows(k(fmt.Sprint(a)), int64(2+step), "e", ts)
		if step%7 == 0 {
			g.SetLabel(k(fmt.Sprint(rng.IntN(n))), "did:key:d", int64(2+step), "l", false)
		}
		s.Rescore()
		want := NewScorer(g, k("0"), Params{})
		for i := range g.Len() {
			if d := math.Abs(s.Node(int32(i)) - want.Node(int32(i))); d > 1e-12 {
				t.Fatalf("step %d: node %d: incremental %g, full %g", step, i, s.Node(int32(i)), want.Node(int32(i)))
			}
		}
	}
	if s.Full() != 1 {
		t.Errorf("rescoring started over %d times, want never", s.Full()-1)
	}
}

// world builds: the owner follows a, b, c; each endorses the honest DID H
// (bound to key hk); sybil DID S is endorsed through a only.
func world(t *testing.T) (*Graph, *Scorer) {
	t.Helper()
	g := NewGraph()
	o, a, b, c := k("owner"), k("a"), k("b"), k("c")
	g.SetFollows(o, 1, "f0", []string{a, b, c})
	for _, x := range []string{a, b, c} {
		g.SetLabel(x, "did:key:H", 1, "l"+x[:4], false)
	}
	g.SetLabel(a, "did:key:S", 1, "ls", false)
	g.Bind("did:key:H", k("hk"), 1)
	return g, NewScorer(g, o, Params{Alpha: 0.5, Hops: 4})
}

var cands = []Candidate{{DID: "did:key:H"}, {DID: "did:key:S"}}

func TestDecideMarginAndCap(t *testing.T) {
	g, s := world(t)
	// Each of a, b, c has 1/6 of the mass at hop 1 and sends half of it on,
	// split among its labels: a → H and S get 1/24 each, b and c → H 1/12.
	hScore := 0.5 * (0.5 * (1.0 / 3) * 0.5 * (0.5 + 1 + 1))
	d := s.Decide(Policy{Floor: 1e-9, DegreeNorm: -1}, "vault", cands)
	if d.Selected != "did:key:H" {
		t.Fatalf("selected %q, want did:key:H: %v", d.Selected, d.Reasons)
	}
	near(t, "H score", d.Candidates[0].Score, hScore)
	// Branch cap: H's a-branch share is under its second largest, so
	// nothing is cut; S has one branch, cut to a quarter (TrimKeep).
	near(t, "H capped", d.Candidates[0].Capped, hScore)
	near(t, "S capped", d.Candidates[1].Capped, 0.25*d.Candidates[1].Score)
	// Without the cap, S is 1/5 of H: 5× ≥ 3× still selects H.
	d = s.Decide(Policy{Floor: 1e-9, Trim: -1, DegreeNorm: -1}, "vault", cands)
	if d.Selected != "did:key:H" || math.Abs(d.Margin-5) > 1e-9 {
		t.Errorf("uncapped: selected %q with margin %g, want H at 5", d.Selected, d.Margin)
	}
	// b endorses S too: with u a branch's label mass, S has a: u/2 and
	// b: u/2; H has a: u/2, b: u/2, c: u, capped at the second largest
	// (u/2): 1.5u over u, abstain; uncapped 2u over u.
	g.SetLabel(k("b"), "did:key:S", 2, "ls2", false)
	s.Rescore()
	d = s.Decide(Policy{Floor: 1e-9, DegreeNorm: -1}, "vault", cands)
	if d.Selected != "" || math.Abs(d.Margin-1.5) > 1e-9 || !strings.Contains(strings.Join(d.Reasons, " "), "margin") {
		t.Errorf("selected %q, margin %g, reasons %v; want an abstention at 1.5×", d.Selected, d.Margin, d.Reasons)
	}
	if d = s.Decide(Policy{Floor: 1e-9, Trim: -1, DegreeNorm: -1}, "vault", cands); d.Selected != "" || math.Abs(d.Margin-2) > 1e-9 {
		t.Errorf("uncapped: selected %q at %g, want an abstention at 2×", d.Selected, d.Margin)
	}
	if d = s.Decide(Policy{Floor: 1e-9, Margin: 1.5, DegreeNorm: -1}, "vault", cands); d.Selected != "did:key:H" {
		t.Errorf("margin 1.5: selected %q, want H", d.Selected)
	}
}

func TestDecideFloor(t *testing.T) {
	_, s := world(t)
	d := s.Decide(Policy{Floor: 0.2}, "vault", cands)
	if d.Selected != "" || !strings.Contains(strings.Join(d.Reasons, " "), "below the floor") {
		t.Errorf("selected %q (%v), want an abstention below the floor", d.Selected, d.Reasons)
	}
	if d := s.Decide(Policy{Floor: 0.01}, "vault", cands); d.Selected != "did:key:H" {
		t.Errorf("floor 0.01: selected %q (%v), want H", d.Selected, d.Reasons)
	}
}

func TestDecidePinAllowDeny(t *testing.T) {
	g, s := world(t)
	pinS := []Candidate{{DID: "did:key:H"}, {DID: "did:key:S", Pinned: true}}
	if d := s.Decide(Policy{}, "vault", pinS); d.Selected != "did:key:S" {
		t.Errorf("pinned S: selected %q", d.Selected)
	}
	if d := s.Decide(Policy{Deny: []string{"did:key:S"}}, "vault", pinS); d.Selected != "did:key:H" {
		t.Errorf("denied pinned S: selected %q (%v)", d.Selected, d.Reasons)
	}
	d0 := s.Decide(Policy{}, "vault", []Candidate{{DID: "did:key:H"}})
	if b, err := json.Marshal(d0); err != nil || !strings.Contains(string(b), `"margin":null`) {
		t.Errorf("a lone candidate's decision encodes as %s (%v), want margin null", b, err)
	}
	if d := s.Decide(Policy{Allow: []string{"did:key:S"}}, "vault", cands); d.Selected != "did:key:S" {
		t.Errorf("allowed S: selected %q", d.Selected)
	}
	if d := s.Decide(Policy{Listed: []string{"did:key:S"}}, "vault", cands); d.Selected != "did:key:S" || d.Reasons[0] != "listed by a catalog the owner follows" {
		t.Errorf("catalog-listed S: selected %q (%v)", d.Selected, d.Reasons)
	}
	if d := s.Decide(Policy{Listed: []string{"did:key:S"}, Allow: []string{"did:key:H"}}, "vault", cands); d.Selected != "" {
		t.Errorf("H allowed and S listed: selected %q, want the owner to choose", d.Selected)
	}
	g.SetLabel(k("owner"), "did:key:S", 3, "own", false)
	s.Rescore()
	d := s.Decide(Policy{}, "vault", cands)
	if d.Selected != "did:key:S" || !strings.Contains(d.Reasons[0], "endorsed by the owner") {
		t.Errorf("owner-endorsed S: selected %q (%v)", d.Selected, d.Reasons)
	}
}

// TestReportsCappedPerBranch: twenty reporters behind one of the owner's
// follows count as one branch, under the quorum of two; reporters in two
// branches keep the publisher from being chosen.
func TestReportsCappedPerBranch(t *testing.T) {
	g, s := world(t)
	var crowd []string
	for i := range 20 {
		crowd = append(crowd, k(fmt.Sprint("r", i)))
	}
	g.SetFollows(k("c"), 2, "fc", crowd)
	for i, r := range crowd {
		g.AddReport(Report{Reporter: r, Target: "did:key:H", Type: ReportMalware, EventID: fmt.Sprint("rep", i), At: 2})
	}
	s.Rescore()
	pol := Policy{Floor: 1e-4, DegreeNorm: -1}
	d := s.Decide(pol, "vault", cands)
	h := d.Candidates[0]
	if h.DID != "did:key:H" || len(h.Reported) != 20 || h.Reports > 1+1e-9 {
		t.Fatalf("H: %d reports seen, weight %g; want 20 seen, weight ≤ 1", len(h.Reported), h.Reports)
	}
	if d.Selected != "did:key:H" {
		t.Errorf("one branch of reporters kept H out: %v", d.Reasons)
	}
	// Reporters below the floor do not count at all.
	if d := s.Decide(Policy{Floor: 0.01}, "vault", cands); d.Candidates[0].Reports != 0 {
		t.Errorf("reporters below the floor counted %g", d.Candidates[0].Reports)
	}
	// a reports H too: two branches, quorum reached.
	g.AddReport(Report{Reporter: k("a"), Target: k("hk"), Type: ReportImpersonation, EventID: "repa", At: 3})
	s.Rescore()
	d = s.Decide(pol, "vault", cands)
	if d.Selected != "" || !strings.Contains(strings.Join(d.Reasons, " "), "reported") {
		t.Errorf("reported by two branches: selected %q (%v)", d.Selected, d.Reasons)
	}
	// The owner's own report is enough, and the decision still encodes.
	g3, s3 := world(t)
	g3.AddReport(Report{Reporter: k("owner"), Target: "did:key:H", Type: ReportMalware, EventID: "own", At: 1})
	d = s3.Decide(pol, "vault", cands)
	if d.Selected != "" || !d.Candidates[0].OwnerReported {
		t.Errorf("reported by the owner: selected %q (%v)", d.Selected, d.Reasons)
	}
	if _, err := json.Marshal(d); err != nil {
		t.Errorf("decision does not encode: %v", err)
	}
	// A spam report type is shown, not counted.
	g2, s2 := world(t)
	g2.AddReport(Report{Reporter: k("a"), Target: "did:key:H", Type: "spam", EventID: "x", At: 1})
	g2.AddReport(Report{Reporter: k("b"), Target: "did:key:H", Type: "spam", EventID: "y", At: 1})
	if d := s2.Decide(pol, "vault", cands); d.Selected != "did:key:H" || d.Candidates[0].Reports != 0 {
		t.Errorf("spam reports counted: %+v", d.Candidates[0])
	}
}

func TestExplain(t *testing.T) {
	_, s := world(t)
	e := s.Explain("did:key:H")
	if len(e.Paths) == 0 {
		t.Fatal("no paths")
	}
	for _, p := range e.Paths {
		if p.Nodes[0] != k("owner") || p.Nodes[len(p.Nodes)-1] != "did:key:H" || len(p.Nodes) != 3 || p.Flow <= 0 {
			t.Errorf("path %v (flow %g), want owner → friend → H", p.Nodes, p.Flow)
		}
	}
	if len(e.Endorsers) != 3 || len(e.Keys) != 1 || e.Keys[0] != k("hk") || e.FirstSeen != 1 {
		t.Errorf("explanation %+v: want 3 endorsers and the bound key", e)
	}
	// b and c send twice a's mass per label: they come first.
	if e.Paths[0].Nodes[1] == k("a") {
		t.Errorf("heaviest path goes through a: %v", e.Paths[0].Nodes)
	}
}

// TestDegreeNorm: a publisher propped up by many accounts that each hold
// little trust ranks below one endorsed by a few trusted accounts, though
// its raw score is higher.
func TestDegreeNorm(t *testing.T) {
	g := NewGraph()
	o, a, b := k("owner"), k("a"), k("b")
	var crowd []string
	for i := range 30 {
		crowd = append(crowd, k(fmt.Sprint("crowd", i)))
	}
	g.SetFollows(o, 1, "f", []string{a, b})
	g.SetLabel(a, "did:key:H", 1, "la", false)
	g.SetFollows(b, 1, "fb", crowd)
	for i, c := range crowd {
		g.SetLabel(c, "did:key:S", 1, fmt.Sprint("l", i), false)
	}
	s := NewScorer(g, o, Params{Alpha: 0.5, Hops: 4})
	// H: a's onward mass, 1/8, ended: 1/16. S: b's 1/8 through 30 accounts,
	// half of it onward: 1/32 — a quarter of H's per endorser ×30.
	if s.Score("did:key:S") >= s.Score("did:key:H") {
		t.Fatalf("set-up: S %g not below H %g", s.Score("did:key:S"), s.Score("did:key:H"))
	}
	d := s.Decide(Policy{Floor: 1e-9, Trim: -1}, "x", cands)
	if d.Selected != "did:key:H" || d.Candidates[0].Endorsers != 1 || d.Candidates[1].Endorsers != 30 {
		t.Fatalf("selected %q: %+v", d.Selected, d.Candidates)
	}
	near(t, "margin", d.Margin, (1.0/16)/((1.0/32)/30))
	if d := s.Decide(Policy{Floor: 1e-9, Trim: -1, DegreeNorm: -1}, "x", cands); d.Selected != "" {
		t.Errorf("without degree normalisation: selected %q at %g×, want an abstention at 2×", d.Selected, d.Margin)
	}
}
