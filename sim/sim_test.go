package sim

import (
	"context"
	"strings"
	"testing"

	"github.com/archy-node/archy/sim/report"
	"github.com/archy-node/archy/sim/scenario"
	"github.com/archy-node/archy/sim/scenarios"
)

func TestModes(t *testing.T) {
	sc, err := scenarios.Load("flash-crowd")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Mode("quantum"); err == nil || !strings.Contains(err.Error(), "model") {
		t.Errorf("unknown mode: %v", err)
	}
	var got []uint64
	RegisterEmulation(func(_ context.Context, s *scenario.Scenario, seed uint64) (*report.Result, error) {
		got = append(got, seed)
		return &report.Result{Mode: report.Emulation, Nodes: s.Nodes, Seed: seed}, nil
	})
	defer RegisterEmulation(nil)
	rs, err := Run(context.Background(), sc, report.Emulation, Options{Nodes: 16, Seeds: []uint64{7, 8}})
	if err != nil || len(rs) != 2 || rs[0].Nodes != 16 || len(got) != 2 || got[1] != 8 {
		t.Fatalf("emulation through the registry: %v, %d results, seeds %v", err, len(rs), got)
	}
	if sc.Nodes == 16 {
		t.Error("Run changed the caller's scenario")
	}
	RegisterEmulation(nil)
	if _, err := Run(context.Background(), sc, report.Emulation, Options{}); err == nil {
		t.Error("emulation ran with nothing registered")
	}
	if _, err := Run(context.Background(), sc, report.Model, Options{Nodes: 1}); err == nil || !strings.Contains(err.Error(), "nodes") {
		t.Errorf("1 node: %v", err)
	}
	rs, err = Run(context.Background(), sc, report.Model, Options{Nodes: 12, Seeds: []uint64{3}})
	if err != nil || len(rs) != 1 || rs[0].Mode != report.Model || rs[0].Seed != 3 {
		t.Fatalf("model: %v %+v", err, rs)
	}
}
