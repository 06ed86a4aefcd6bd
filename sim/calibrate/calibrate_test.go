// The race detector slows the emulation's nodes several times over and
// moves the figures compared here (completion most): make suite runs this
// test in its own step without -race, as does `make calibrate`.

//go:build !race

package calibrate

import (
	"math"
	"testing"

	"go.uber.org/goleak"

	"github.com/archy-node/archy/sim/report"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// libp2p and the DHT keep a few process-wide workers.
		goleak.IgnoreAnyFunction("github.com/ipfs/go-log/v2/writer.(*MirrorWriter).logRoutine"),
		goleak.IgnoreAnyFunction("github.com/libp2p/go-cidranger/net.(*network).Covers"),
		goleak.IgnoreTopFunction("go.opencensus.io/stats/view.(*worker).start"),
	)
}

// TestModelMatchesEmulation runs the calibration's flash crowd in both
// modes at 16, 32 and 48 nodes (three emulation seeds, the model 8 times
// on each seed's network: about two minutes on 2 cores), holds completion (p50,
// p90, max), origin copies, bytes per node and discovery p50 within
// Tolerance of the emulation's, and logs the table (and any figure marked
// a known gap). make bench's emufig runs
// 16, 32 and 64 nodes and reports the worst error over every figure.
func TestModelMatchesEmulation(t *testing.T) {
	tab, err := Run(t.Context(), Config{
		Scenario: FlashCrowd(16, 4),
		Sizes:    []int{16, 32, 48},
		// Three seeds: the emulation's completion at one size moved by up to
		// 20 % between runs of two seeds (9.9 to 11.9 s at 32 nodes).
		Seeds: []uint64{1, 2, 3},
		Progress: func(mode string, n int, seed uint64, r *report.Result) {
			if mode == report.Emulation {
				t.Logf("emulation %d nodes seed %d: wall %s, figures %+v", n, seed, r.WallTime.Round(1e6), r.Figures())
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("calibration (error = (model − emulation) / emulation):\n%s", tab.Markdown())
	for _, c := range tab.Cells {
		if !c.Compared {
			continue
		}
		if c.Gap {
			t.Logf("known gap: %d nodes, %s: model %.3g, emulation %.3g: error %+.0f %%",
				c.Nodes, c.Figure, c.Model, c.Emulation, 100*c.Error)
			continue
		}
		if math.IsNaN(c.Error) || math.Abs(c.Error) > Tolerance {
			t.Errorf("%d nodes, %s: model %.3g, emulation %.3g: error %+.0f %%, over ±%.0f %%",
				c.Nodes, c.Figure, c.Model, c.Emulation, 100*c.Error, 100*Tolerance)
		}
	}
	w := tab.Worst()
	t.Logf("worst: %d nodes, %s, %+.1f %%", w.Nodes, w.Figure, 100*w.Error)
}
