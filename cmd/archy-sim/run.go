package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/archy-node/archy/sim"
	"github.com/archy-node/archy/sim/calibrate"
	"github.com/archy-node/archy/sim/report"
	"github.com/archy-node/archy/sim/scenario"
	"github.com/archy-node/archy/sim/scenarios"
)

func newSimRunCmd() *cobra.Command {
	var (
		out, mode, sizesFlag, seedsFlag string
		calSizes, calSeeds              string
		nodes                           int
	)
	c := &cobra.Command{
		Use:   "run SCENARIO",
		Short: "Run a scenario and write report.json, the plots and index.html",
		Long: `Run SCENARIO (a YAML file, or the name of a shipped scenario: ` + strings.Join(scenarios.Names(), ", ") + `)
once per seed in --mode (model: the discrete-event model, any size; emulation: real
nodes on an in-process network, hundreds at most) and write into --out: report.json, the plots as PNG
and SVG, and index.html showing them together.

The "vs N" plots (origin egress, DHT lookup hops) come from extra runs of the
scenario at --sizes node counts (first seed only), plus the main runs. By
default --sizes is N/16 and N/4 (those of at least 8 nodes); "none" skips them.

--calibrate SIZES also runs the calibration (sim/calibrate: its flash crowd in
both modes at those node counts, --calibrate-seeds emulation seeds each) and
puts the model's measured error into report.json and the page.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			sc, err := loadScenario(args[0])
			if err != nil {
				return err
			}
			opts := sim.Options{Nodes: nodes}
			if opts.Seeds, err = parseUints(seedsFlag); err != nil {
				return fmt.Errorf("flag --seeds: %w", err)
			}
			n := sc.Nodes
			if nodes > 0 {
				n = nodes
			}
			sizes, err := simSizes(sizesFlag, n)
			if err != nil {
				return err
			}
			var cal calibrate.Config
			if calSizes != "" {
				sizes, err := parseUints(calSizes)
				if err != nil {
					return fmt.Errorf("flag --calibrate: %w", err)
				}
				for _, v := range sizes {
					if v < 2 {
						return fmt.Errorf("flag --calibrate: %d: at least 2 nodes", v)
					}
					cal.Sizes = append(cal.Sizes, int(v))
				}
				if cal.Seeds, err = parseUints(calSeeds); err != nil || len(cal.Seeds) == 0 {
					return fmt.Errorf("flag --calibrate-seeds: %q: one seed or more, comma-separated", calSeeds)
				}
			}
			runs, err := sim.Run(cmd.Context(), sc, mode, opts)
			if err != nil {
				return err
			}
			rep := &report.Report{Scenario: sc.Name, Description: strings.TrimSpace(sc.Description), Mode: runs[0].Mode, Runs: runs}
			for _, size := range sizes {
				rs, err := sim.Run(cmd.Context(), sc, mode, sim.Options{Nodes: size, Seeds: []uint64{runs[0].Seed}})
				if err != nil {
					return err
				}
				rep.Sizes = append(rep.Sizes, report.Point(rs[0]))
			}
			rep.Sizes = append(rep.Sizes, report.Point(runs[0]))
			if rep.Mode == report.Model {
				rep.Notes = append(rep.Notes, "Model mode: a discrete-event model of archy's protocols (sim/model/README.md says what it leaves out); corrupt blocks are refused by construction, so corrupt_accepted is 0 here by the model's design, not by a measurement.")
			}
			if len(cal.Sizes) > 0 {
				cal.Scenario = calibrate.FlashCrowd(cal.Sizes[0], 4)
				if rep.Calibration, err = calibrate.Run(cmd.Context(), cal); err != nil {
					return err
				}
				w := rep.Calibration.Worst()
				fmt.Fprintf(cmd.OutOrStdout(), "calibration: worst %s at %d nodes: model %.3g, emulation %.3g, error %+.0f %%\n",
					w.Figure, w.Nodes, w.Model, w.Emulation, 100*w.Error)
			}
			if err := report.Write(out, rep); err != nil {
				return err
			}
			for i, r := range runs {
				f := rep.Figures[i]
				fmt.Fprintf(cmd.OutOrStdout(), "%s %s seed %d: %d nodes, %.1f%% completed, last %.1fs (bound %.1fs), origin %.2f copies, wall %s\n",
					sc.Name, r.Mode, r.Seed, r.Nodes, 100*f.Completed, f.CompletionMax, r.LowerBound.Seconds(), f.OriginCopies, r.WallTime.Round(1e6))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "report: %s/index.html\n", strings.TrimSuffix(out, "/"))
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&out, "out", "", "folder to write the report into (required)")
	f.StringVar(&mode, "mode", report.Model, "model or emulation")
	f.IntVar(&nodes, "nodes", 0, "run with this many nodes instead of the scenario's")
	f.StringVar(&sizesFlag, "sizes", "", `node counts for the "vs N" plots, comma-separated; "none" for none (default N/16, N/4)`)
	f.StringVar(&seedsFlag, "seeds", "", "seeds to run, comma-separated (default the scenario's)")
	f.StringVar(&calSizes, "calibrate", "", "also calibrate the model against the emulation at these node counts (e.g. 16,32,64; minutes)")
	f.StringVar(&calSeeds, "calibrate-seeds", "1,2", "the calibration's emulation seeds at each size")
	_ = c.MarkFlagRequired("out")
	return c
}

// loadScenario reads a file if arg names one, else a shipped scenario.
func loadScenario(arg string) (*scenario.Scenario, error) {
	if _, err := os.Stat(arg); err == nil || strings.ContainsAny(arg, "/.") {
		return scenario.Load(arg)
	}
	return scenarios.Load(arg)
}

func simSizes(flag string, n int) ([]int, error) {
	switch flag {
	case "none":
		return nil, nil
	case "":
		var out []int
		for _, d := range []int{16, 4} {
			if s := n / d; s >= 8 {
				out = append(out, s)
			}
		}
		return out, nil
	}
	vs, err := parseUints(flag)
	if err != nil {
		return nil, fmt.Errorf("flag --sizes: %w", err)
	}
	var out []int
	for _, v := range vs {
		if v < 2 {
			return nil, fmt.Errorf("flag --sizes: %d: at least 2 nodes", v)
		}
		out = append(out, int(v))
	}
	return out, nil
}

func parseUints(s string) ([]uint64, error) {
	if s == "" {
		return nil, nil
	}
	var out []uint64
	for _, p := range strings.Split(s, ",") {
		v, err := strconv.ParseUint(strings.TrimSpace(p), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%q is not a whole number", p)
		}
		out = append(out, v)
	}
	return out, nil
}
