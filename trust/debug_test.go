package trust

import (
	"os"
	"strconv"
	"testing"
)

func TestDebugTune(t *testing.T) {
	if os.Getenv("TUNE") == "" {
		t.Skip()
	}
	f := func(k string, d float64) float64 {
		if v, err := strconv.ParseFloat(os.Getenv(k), 64); err == nil {
			return v
		}
		return d
	}
	cfg := HarnessConfig{AttackEdges: []int{100, 300, 1000}, Seeds: []int64{1}, Owners: int(f("OWNERS", 40)),
		Params:         Params{Alpha: f("ALPHA", 0.3), Hops: int(f("HOPS", 5))},
		SybilEndorsers: int(f("SE", 0)),
		Policy:         Policy{Floor: f("FLOOR", 1e-5), Trim: int(f("TRIM", 1)), TrimKeep: f("KEEP", 0.25), ReporterFloor: f("RFLOOR", 1e-4), DegreeNorm: f("DEG", 1)}}
	t.Logf("\n%s", Table(RunHarness(cfg)))
}

func TestDebugReasons(t *testing.T) {
	if os.Getenv("TUNE") == "" {
		t.Skip()
	}
	cfg := HarnessConfig{}.withDefaults()
	w := BuildWorld(cfg, 1, 300)
	for i := range 15 {
		o := w.HonestKeys[(i*197)%len(w.HonestKeys)]
		app := (i * 31) % len(w.HonestDIDs)
		cc := []Candidate{{DID: w.HonestDIDs[app]}}
		for _, d := range w.SybilDIDs {
			cc = append(cc, Candidate{DID: d})
		}
		s := NewScorer(w.Graph, o, Params{})
		d := s.Decide(Policy{Floor: 1e-6}, "x", cc)
		var h Choice
		for _, c := range d.Candidates {
			if c.DID == w.HonestDIDs[app] {
				h = c
			}
		}
		t.Logf("sel=%q m=%.2f honest: capped %.3g score %.3g br %d rep %.2f | top %s %.3g  2nd %s %.3g | %v", d.Selected, d.Margin, h.Capped, h.Score, h.Branches, h.Reports, d.Candidates[0].DID, d.Candidates[0].Capped, d.Candidates[1].DID, d.Candidates[1].Capped, d.Reasons)
	}
}
