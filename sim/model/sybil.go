package model

import (
	"fmt"

	"github.com/archy-node/archy/sim/report"
	"github.com/archy-node/archy/sim/scenario"
	"github.com/archy-node/archy/trust"
)

// maxOwners bounds the owners deciding per attack-edge count: each
// decision is one personalised walk over the whole social graph.
const maxOwners = 150

// SybilRows runs the trust harness (trust.RunHarness, archy's method
// only) for the scenario's sybil attack: sc.Sybil.Honest honest accounts,
// sc.Sybil.Accounts sybils of which sc.Sybil.Publishers clone the app,
// and owners (up to maxOwners) deciding which publisher to install.
func SybilRows(sc *scenario.Scenario, seed int64, owners int) ([]report.SybilRow, error) {
	y := sc.Sybil
	if y == nil {
		return nil, nil
	}
	cfg := trust.HarnessConfig{
		Honest:          y.Honest,
		Publishers:      max(1, min(100, y.Honest/30)),
		Sybils:          y.Accounts,
		SybilPublishers: y.Publishers,
		AttackEdges:     y.AttackEdges,
		Owners:          max(1, min(owners, maxOwners)),
		Seeds:           []int64{seed},
		ArchyOnly:       true,
	}
	if cfg.Publishers >= cfg.Honest {
		return nil, fmt.Errorf("field sybil.honest: %d accounts are too few for a social graph", y.Honest)
	}
	var rows []report.SybilRow
	for _, r := range trust.RunHarness(cfg) {
		if r.Method != "archy" {
			continue
		}
		rows = append(rows, report.SybilRow{AttackEdges: r.AttackEdges, Decisions: r.Decisions, Malicious: r.Malicious})
	}
	return rows, nil
}
