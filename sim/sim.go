// Package sim runs a scenario in one of the simulator's modes: the model
// (sim/model, always there) or the emulation, which plugs itself in with
// RegisterEmulation so that this package does not import the node code.
package sim

import (
	"context"
	"fmt"
	"sync"

	"github.com/archy-node/archy/sim/model"
	"github.com/archy-node/archy/sim/report"
	"github.com/archy-node/archy/sim/scenario"
)

// RunFunc runs one scenario at one seed; both modes have this shape.
type RunFunc func(ctx context.Context, sc *scenario.Scenario, seed uint64) (*report.Result, error)

var (
	mu        sync.Mutex
	emulation RunFunc
)

// RegisterEmulation installs the emulation mode (called from the
// emulation package's init, or by a test).
func RegisterEmulation(f RunFunc) {
	mu.Lock()
	emulation = f
	mu.Unlock()
}

// Options adjust a run.
type Options struct {
	// Nodes, when > 0, replaces the scenario's node count.
	Nodes int
	// Seeds, when set, replace the scenario's seeds.
	Seeds []uint64
}

// Mode returns the run function of a mode.
func Mode(mode string) (RunFunc, error) {
	switch mode {
	case report.Model, "":
		return model.Run, nil
	case report.Emulation:
		mu.Lock()
		f := emulation
		mu.Unlock()
		if f == nil {
			return nil, fmt.Errorf("mode %q: no emulation in this binary (sim/emulate not linked)", mode)
		}
		return f, nil
	}
	return nil, fmt.Errorf("mode %q: one of %s, %s", mode, report.Model, report.Emulation)
}

// Resize returns a copy of sc with n nodes, validated again.
func Resize(sc *scenario.Scenario, n int) (*scenario.Scenario, error) {
	c := *sc
	c.Nodes = n
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("scenario %s at %d nodes: %w", sc.Name, n, err)
	}
	return &c, nil
}

// Run runs sc in mode once per seed.
func Run(ctx context.Context, sc *scenario.Scenario, mode string, opts Options) ([]*report.Result, error) {
	f, err := Mode(mode)
	if err != nil {
		return nil, err
	}
	if opts.Nodes > 0 {
		if sc, err = Resize(sc, opts.Nodes); err != nil {
			return nil, err
		}
	}
	seeds := sc.Seeds
	if len(opts.Seeds) > 0 {
		seeds = opts.Seeds
	}
	var out []*report.Result
	for _, seed := range seeds {
		r, err := f(ctx, sc, seed)
		if err != nil {
			return nil, fmt.Errorf("run %s (%s, seed %d): %w", sc.Name, mode, seed, err)
		}
		out = append(out, r)
	}
	return out, nil
}
