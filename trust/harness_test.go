package trust

import (
	"os"
	"testing"
	"time"
)

// TestHarnessSmall runs the sybil harness at CI size and holds archy's
// decisions to the goals (scaled: the attack edges are a fifth)
// and to beating plain PPR with a 3× margin.
func TestHarnessSmall(t *testing.T) {
	if os.Getenv("ARCHY_TRUST_TIMING") != "" {
		cfg := HarnessConfig{AttackEdges: []int{100}, Seeds: []int64{1}, Owners: 20}
		start := time.Now()
		rows := RunHarness(cfg)
		t.Logf("full-size world, 20 owners: %s\n%s", time.Since(start), Table(rows))
		return
	}
	rows := RunHarness(Small())
	t.Logf("\n%s", Table(rows))
	by := map[string]map[int]Row{}
	for _, r := range rows {
		if by[r.Method] == nil {
			by[r.Method] = map[int]Row{}
		}
		by[r.Method][r.AttackEdges] = r
	}
	goals := []struct {
		edges                  int
		maxMalicious, minResol float64
	}{{2, 0.05, 90}, {20, 0.05, 90}, {60, 0.1, 75}, {200, 1, 40}}
	for _, g := range goals {
		a := by["archy"][g.edges]
		if a.MaliciousPct() > g.maxMalicious || a.ResolvedPct() < g.minResol {
			t.Errorf("%d attack edges: archy %.3f%% malicious, %.1f%% resolved; want < %.2f%% and ≥ %.0f%%",
				g.edges, a.MaliciousPct(), a.ResolvedPct(), g.maxMalicious, g.minResol)
		}
		if p := by["ppr3x"][g.edges]; a.MaliciousPct() > p.MaliciousPct() {
			t.Errorf("%d attack edges: archy %.3f%% malicious, worse than PPR with a 3× margin (%.3f%%)", g.edges, a.MaliciousPct(), p.MaliciousPct())
		}
		if b := by["pagerank"][g.edges]; b.MaliciousPct() < 50 {
			t.Errorf("%d attack edges: global PageRank only %.1f%% malicious: the sybils are not attacking", g.edges, b.MaliciousPct())
		}
	}
}
