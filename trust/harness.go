package trust

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
)

// HarnessConfig sizes the sybil harness. The zero value is the full size
// of issue 10; Small is the reduced size CI runs.
type HarnessConfig struct {
	Honest          int     // honest accounts, preferential attachment (3000)
	Publishers      int     // honest publishers, one app id each (100)
	Sybils          int     // sybil accounts, densely following each other (3000)
	SybilPublishers int     // sybil publishers, each cloning every app id (43)
	AttackEdges     []int   // honest → sybil follows per row (10, 100, 300, 1000)
	Owners          int     // honest owners deciding, per seed and row (150)
	Seeds           []int64 // (1..5)
	HonestFollows   int     // mean follows of an honest account (8)
	FollowBack      float64 // chance a followed honest account follows back (0.5)
	Endorsements    int     // publishers each honest account endorses (2)
	SybilFollows    int     // sybils each sybil follows (20)
	SybilReports    int     // honest publishers each sybil reports as malware (5)
	// SybilEndorsers: only the sybils that receive attack edges, and this
	// many more, endorse the sybil publishers (the rest only follow): an
	// attacker's answer to degree normalisation. 0: every sybil endorses.
	SybilEndorsers int
	Params         Params
	Policy         Policy
}

// Small is the harness at a fifth of the size, for CI.
func Small() HarnessConfig {
	return HarnessConfig{
		Honest: 600, Publishers: 20, Sybils: 600, SybilPublishers: 9,
		AttackEdges: []int{2, 20, 60, 200}, Owners: 60, Seeds: []int64{1, 2, 3},
	}
}

func (c HarnessConfig) withDefaults() HarnessConfig {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.Honest, 3000)
	def(&c.Publishers, 100)
	def(&c.Sybils, 3000)
	def(&c.SybilPublishers, 43)
	def(&c.Owners, 150)
	def(&c.HonestFollows, 8)
	def(&c.Endorsements, 2)
	def(&c.SybilFollows, 20)
	def(&c.SybilReports, 5)
	if c.FollowBack == 0 {
		c.FollowBack = 0.5
	}
	if c.AttackEdges == nil {
		c.AttackEdges = []int{10, 100, 300, 1000}
	}
	if c.Seeds == nil {
		c.Seeds = []int64{1, 2, 3, 4, 5}
	}
	return c
}

// Methods the harness compares, archy's first.
var Methods = []string{"archy", "ppr3x", "ppr", "twohop", "pagerank", "followers"}

// Row is one method at one attack-edge count, over every seed and owner.
type Row struct {
	AttackEdges int    `json:"attack_edges"`
	Method      string `json:"method"`
	Decisions   int    `json:"decisions"`
	Malicious   int    `json:"malicious"`
	Honest      int    `json:"honest"`
}

// MaliciousPct is the share of decisions that picked a sybil publisher.
func (r Row) MaliciousPct() float64 { return 100 * float64(r.Malicious) / float64(max(r.Decisions, 1)) }

// ResolvedPct is the share of decisions that picked someone.
func (r Row) ResolvedPct() float64 {
	return 100 * float64(r.Malicious+r.Honest) / float64(max(r.Decisions, 1))
}

// World is one generated graph of the harness.
type World struct {
	Graph         *Graph
	HonestKeys    []string
	HonestDIDs    []string // publisher DID of app i
	SybilDIDs     []string
	publisherKeys map[string]bool
}

func key(prefix byte, i int) string { return fmt.Sprintf("%c%063x", prefix, i) }

// BuildWorld generates the graph for one seed and attack-edge count. It is
// deterministic.
func BuildWorld(cfg HarnessConfig, seed int64, attack int) *World {
	cfg = cfg.withDefaults()
	rng := rand.New(rand.NewPCG(uint64(seed), 0x5eed))
	w := &World{Graph: NewGraph(), publisherKeys: map[string]bool{}}
	g := w.Graph
	H, S := cfg.Honest, cfg.Sybils
	fol := make([][]int, H)
	has := make([]map[int]bool, H)
	for i := range has {
		has[i] = map[int]bool{}
	}
	link := func(a, b int) {
		if a != b && !has[a][b] {
			has[a][b] = true
			fol[a] = append(fol[a], b)
		}
	}
	// Preferential attachment: each newcomer follows earlier accounts with
	// chance ∝ followers+1; some follow back.
	var urn []int
	for i := 0; i < H; i++ {
		m := 1 + rng.IntN(2*cfg.HonestFollows-1)
		for k := 0; k < m && k < i; k++ {
			t := urn[rng.IntN(len(urn))]
			link(i, t)
			urn = append(urn, t)
			if rng.Float64() < cfg.FollowBack {
				link(t, i)
				urn = append(urn, i)
			}
		}
		urn = append(urn, i)
	}
	for i := 0; i < H; i++ {
		w.HonestKeys = append(w.HonestKeys, key('a', i))
	}
	// Publishers: random honest accounts bound to a DID each; popularity
	// is Zipf-like, and every honest account endorses a few.
	pubAcct := rng.Perm(H)[:cfg.Publishers]
	weights := make([]float64, cfg.Publishers)
	total := 0.0
	for i := range weights {
		weights[i] = 1 / float64(i+1)
		total += weights[i]
	}
	for i, a := range pubAcct {
		d := fmt.Sprintf("did:key:honest%d", i)
		w.HonestDIDs = append(w.HonestDIDs, d)
		w.publisherKeys[w.HonestKeys[a]] = true
		g.Bind(d, w.HonestKeys[a], 100)
	}
	ev := 0
	eid := func() string { ev++; return fmt.Sprintf("%016x", ev) }
	for i := 0; i < H; i++ {
		for k := 0; k < cfg.Endorsements; k++ {
			x, j := rng.Float64()*total, 0
			for ; j < len(weights)-1 && x > weights[j]; j++ {
				x -= weights[j]
			}
			g.SetLabel(w.HonestKeys[i], w.HonestDIDs[j], 10, eid(), false)
		}
	}
	// Sybils: dense follows among themselves, every one endorsing every
	// sybil publisher and reporting some honest ones.
	syb := make([]string, S)
	for i := range syb {
		syb[i] = key('b', i)
	}
	for i := 0; i < cfg.SybilPublishers; i++ {
		d := fmt.Sprintf("did:key:sybil%d", i)
		w.SybilDIDs = append(w.SybilDIDs, d)
		g.Bind(d, syb[i], 200)
	}
	// Attack edges: random honest accounts follow random sybils.
	extra := make([][]string, H)
	entry := map[int]bool{}
	for k := 0; k < attack; k++ {
		a, sy := rng.IntN(H), rng.IntN(S)
		extra[a] = append(extra[a], syb[sy])
		entry[sy] = true
	}
	for i := 0; i < S; i++ {
		var ts []string
		for k := 0; k < cfg.SybilFollows; k++ {
			ts = append(ts, syb[rng.IntN(S)])
		}
		g.SetFollows(syb[i], 10, eid(), ts)
		if cfg.SybilEndorsers == 0 || entry[i] || i < cfg.SybilEndorsers {
			for _, d := range w.SybilDIDs {
				g.SetLabel(syb[i], d, 10, eid(), false)
			}
		}
		for k := 0; k < cfg.SybilReports; k++ {
			g.AddReport(Report{Reporter: syb[i], Target: w.HonestDIDs[rng.IntN(len(w.HonestDIDs))], Type: ReportMalware, EventID: eid(), At: 10})
		}
	}
	for i := 0; i < H; i++ {
		ts := make([]string, 0, len(fol[i])+len(extra[i]))
		for _, j := range fol[i] {
			ts = append(ts, w.HonestKeys[j])
		}
		ts = append(ts, extra[i]...)
		g.SetFollows(w.HonestKeys[i], 10, eid(), ts)
	}
	g.takeChanges() // scorers built from here on share g read-only
	return w
}

// RunHarness runs every method on every row and seed; rows come out in
// AttackEdges order, methods in Methods order.
func RunHarness(cfg HarnessConfig) []Row {
	cfg = cfg.withDefaults()
	var rows []Row
	for _, e := range cfg.AttackEdges {
		acc := make(map[string]*Row)
		for _, m := range Methods {
			acc[m] = &Row{AttackEdges: e, Method: m}
		}
		for _, seed := range cfg.Seeds {
			for m, r := range runWorld(cfg, seed, e) {
				acc[m].Decisions += r.Decisions
				acc[m].Malicious += r.Malicious
				acc[m].Honest += r.Honest
			}
		}
		for _, m := range Methods {
			rows = append(rows, *acc[m])
		}
	}
	return rows
}

type outcome struct{ Decisions, Malicious, Honest int }

func (o *outcome) add(selected, honest string) {
	o.Decisions++
	switch selected {
	case "":
	case honest:
		o.Honest++
	default:
		o.Malicious++
	}
}

func runWorld(cfg HarnessConfig, seed int64, attack int) map[string]outcome {
	w := BuildWorld(cfg, seed, attack)
	g := w.Graph
	rng := rand.New(rand.NewPCG(uint64(seed), uint64(attack)+1))
	type task struct {
		owner string
		app   int
	}
	var tasks []task
	for len(tasks) < cfg.Owners {
		o := w.HonestKeys[rng.IntN(len(w.HonestKeys))]
		if w.publisherKeys[o] {
			continue
		}
		tasks = append(tasks, task{o, rng.IntN(len(w.HonestDIDs))})
	}
	followers := inDegree(g)
	pr := globalPageRank(g, 0.15, 50)
	res := make([]map[string]string, len(tasks))
	cands := func(app int) []string { return append([]string{w.HonestDIDs[app]}, w.SybilDIDs...) }
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for ti, t := range tasks {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			out := map[string]string{}
			cs := cands(t.app)
			var cc []Candidate
			for _, d := range cs {
				cc = append(cc, Candidate{DID: d})
			}
			s := NewScorer(g, t.owner, cfg.Params)
			out["archy"] = s.Decide(cfg.Policy, "app", cc).Selected
			p := NewScorer(g, t.owner, Params{Alpha: 0.15, Hops: 25})
			scores := func(f func(int32) float64) []float64 {
				v := make([]float64, len(cs))
				for i, d := range cs {
					id, _ := g.Lookup(d)
					v[i] = f(id)
				}
				return v
			}
			ppr := scores(func(i int32) float64 { return p.of(p.score, i) })
			out["ppr"] = argmax(cs, ppr, 1)
			out["ppr3x"] = argmax(cs, ppr, 3)
			out["pagerank"] = argmax(cs, scores(func(i int32) float64 { return p.of(pr, i) }), 1)
			out["followers"] = argmax(cs, scores(func(i int32) float64 { return p.of(followers, i) }), 1)
			out["twohop"] = argmax(cs, twoHop(g, t.owner, cs), 1)
			res[ti] = out
		}()
	}
	wg.Wait()
	m := map[string]outcome{}
	for ti, t := range tasks {
		for _, name := range Methods {
			o := m[name]
			o.add(res[ti][name], w.HonestDIDs[t.app])
			m[name] = o
		}
	}
	return m
}

// argmax picks the top candidate if it beats the runner-up by margin
// (strictly, for margin 1) and scores above zero.
func argmax(cs []string, v []float64, margin float64) string {
	idx := make([]int, len(cs))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(v[b], v[a]) })
	top := v[idx[0]]
	if top <= 0 {
		return ""
	}
	if len(idx) > 1 {
		run := v[idx[1]]
		if top < margin*run || (margin == 1 && top == run) {
			return ""
		}
	}
	return cs[idx[0]]
}

func inDegree(g *Graph) []float64 {
	v := make([]float64, g.Len())
	for _, out := range g.out {
		for _, w := range out {
			v[w]++
		}
	}
	return v
}

// globalPageRank is PageRank with a uniform teleport; dangling mass
// teleports too.
func globalPageRank(g *Graph, alpha float64, iters int) []float64 {
	n := g.Len()
	x := make([]float64, n)
	y := make([]float64, n)
	for i := range x {
		x[i] = 1 / float64(n)
	}
	for range iters {
		dang := 0.0
		clear(y)
		for v, out := range g.out {
			if len(out) == 0 {
				dang += x[v]
				continue
			}
			m := x[v] / float64(len(out))
			for _, w := range out {
				y[w] += m
			}
		}
		for i := range y {
			y[i] = alpha/float64(n) + (1-alpha)*(y[i]+dang/float64(n))
		}
		x, y = y, x
	}
	return x
}

// twoHop counts the owner's follows that follow or endorse each candidate
// (its DID or a bound key).
func twoHop(g *Graph, owner string, cs []string) []float64 {
	v := make([]float64, len(cs))
	o, _ := g.Lookup(owner)
	for i, d := range cs {
		id, ok := g.Lookup(d)
		if !ok {
			continue
		}
		targets := append([]int32{id}, g.didKeys[id]...)
		for _, f := range g.out[o] {
			for _, t := range targets {
				if _, found := slices.BinarySearch(g.out[f], t); found {
					v[i]++
					break
				}
			}
		}
	}
	return v
}

// Table renders rows as the markdown table of trust/README.md.
func Table(rows []Row) string {
	s := "| attack edges | method | decisions | malicious % | resolved % |\n| ---: | --- | ---: | ---: | ---: |\n"
	for _, r := range rows {
		s += fmt.Sprintf("| %d | %s | %d | %.3f | %.1f |\n", r.AttackEdges, r.Method, r.Decisions, r.MaliciousPct(), r.ResolvedPct())
	}
	return s
}

var _ = math.Inf
