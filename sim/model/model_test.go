package model

import (
	"context"
	"os"
	"reflect"
	"regexp"
	"testing"

	"github.com/archy-node/archy/sim/report"
	"github.com/archy-node/archy/sim/scenario"
)

func load(t *testing.T, name string) *scenario.Scenario {
	t.Helper()
	sc, err := scenario.Load("../scenarios/" + name + ".yaml")
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

func TestFlashCrowdSmoke(t *testing.T) {
	sc := load(t, "flash-crowd")
	r, err := Run(context.Background(), sc, 1)
	if err != nil {
		t.Fatal(err)
	}
	f := r.Figures()
	t.Logf("%+v events=%d wall=%s lb=%s refused=%v", f, r.Events, r.WallTime, r.LowerBound, r.Refused)
	if f.Completed != 1 {
		t.Errorf("completed %.3f, want 1", f.Completed)
	}
}

// TestPolicyMatchesP2P fails when p2p changes a policy constant the model
// mirrors.
func TestPolicyMatchesP2P(t *testing.T) {
	for file, want := range map[string][]string{
		"../../p2p/exchange/fetch.go": {
			`peerWindow\s+= 4 << 20`, `fetchWindow\s+= 16 << 20`, `seedWindow\s+= 1 << 20`, `batchBytes\s+= 1 << 20`,
			`lastResortAfter = 2 \* time.Second`, `slowGrace\s+= 2 \* time.Second`,
			`const reviveAfter = 5 \* time.Second`, `const rediscoverEvery = 30 \* time.Second`,
			`5\*lastResortAfter`, `busyBackoff\s+= time.Second`, `0.5 \+ f.rng.Float64\(\)`,
		},
		"../../p2p/exchange/wire.go": {`maxHints\s+= 4 `},
	} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range want {
			if !regexp.MustCompile(w).Match(b) {
				t.Errorf("%s no longer has %q: update sim/model's mirror of it", file, w)
			}
		}
	}
}

// TestDeterministic: one seed, one result; another seed, another.
func TestDeterministic(t *testing.T) {
	sc := load(t, "churn-release")
	run := func(seed uint64) *report.Result {
		r, err := Run(context.Background(), sc, seed)
		if err != nil {
			t.Fatal(err)
		}
		r.WallTime, r.PeakBytes = 0, 0
		return r
	}
	a, b, c := run(5), run(5), run(6)
	if !reflect.DeepEqual(a, b) {
		t.Error("two runs of seed 5 differ")
	}
	if reflect.DeepEqual(a.Completion, c.Completion) {
		t.Error("seeds 5 and 6 gave the same completions")
	}
}

// TestSuperSeedingSavesTheOrigin: the same crowd without super-seeding
// costs the origin many copies (the model follows the policy, not a
// constant).
func TestSuperSeedingSavesTheOrigin(t *testing.T) {
	sc := load(t, "flash-crowd")
	sc.Nodes = 32
	var with float64
	for _, off := range []bool{false, true} {
		s, err := newSim(sc, 1, sc.Draw(1))
		if err != nil {
			t.Fatal(err)
		}
		s.noSuperSeed = off
		if err := s.run(context.Background()); err != nil {
			t.Fatal(err)
		}
		s.finish()
		f := s.res.Figures()
		if f.Completed != 1 {
			t.Errorf("super-seeding off=%v: %.2f completed", off, f.Completed)
		}
		// Without it the origin is still asked last, only for pieces no
		// partial peer holds (p2p's fetch.batch), but serves each ask.
		if off && f.OriginCopies < 2*with {
			t.Errorf("without super-seeding the origin sent only %.2f copies, with it %.2f", f.OriginCopies, with)
		}
		if !off {
			with = f.OriginCopies
			if with > 1.5 {
				t.Errorf("with super-seeding the origin sent %.2f copies", f.OriginCopies)
			}
		}
		t.Logf("super-seeding off=%v: origin %.2f copies", off, f.OriginCopies)
	}
}
