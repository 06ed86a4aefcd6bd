package model

import (
	"context"
	"os"
	"regexp"
	"testing"

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
		"../../p2p/fetch.go": {
			`peerWindow\s+= 4 << 20`, `fetchWindow\s+= 16 << 20`, `seedWindow\s+= 1 << 20`,
			`lastResortAfter = 2 \* time.Second`, `slowGrace\s+= 2 \* time.Second`,
			`const reviveAfter = 5 \* time.Second`, `const rediscoverEvery = 30 \* time.Second`,
			`5\*lastResortAfter`,
		},
		"../../p2p/wire.go": {`maxHints\s+= 4 `},
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
