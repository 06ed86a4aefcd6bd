// Command emufig measures how large a swarm the emulation mode runs on
// this machine: a flash crowd of a small image at growing sizes, each at
// a few seeds, until a run fails, leaves a node incomplete or passes the
// memory budget. It prints `figure sim-emulation-max-nodes N` (the largest
// size every seed completed), `figure sim-emulation-mib-per-node X` (the
// peak resident memory of that size's runs over its nodes) and `figure
// sim-emulation-max-nodes-wall-s S` (the slowest of those runs), and a
// table of each run with the spread of its size's figures across seeds.
// Then it calibrates the model against the emulation (sim/calibrate) and
// prints `figure sim-calibration-error-pct E`: the largest relative error,
// in percent, of a compared headline figure of the model over the
// calibration's sizes, with the table.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/archy-node/archy/sim/calibrate"
	"github.com/archy-node/archy/sim/emulate"
	"github.com/archy-node/archy/sim/report"
	"github.com/archy-node/archy/sim/scenario"
)

func main() {
	sizes := flag.String("sizes", "16,64,256", "swarm sizes to run, in order")
	seeds := flag.Int("seeds", 2, "seeds per size")
	mib := flag.Int("mib", 4, "image size in MiB")
	window := flag.Duration("window", 5*time.Second, "the crowd's start window")
	budget := flag.Float64("budget-gib", 16, "stop past this peak resident memory")
	bad := flag.Int("corrupt", 0, "corrupting peers added")
	verbose := flag.Bool("v", false, "log the emulator's progress")
	latMax := flag.Duration("latency", 40*time.Millisecond, "the largest one-way latency of a node (uniform from 1/8 of it)")
	heap := flag.String("memprofile", "", "write a heap profile, taken when the last size's swarm is up, to this file")
	degree := flag.Int("degree", emulate.Degree, "earlier nodes each node dials when it joins")
	calSizes := flag.String("calibrate-sizes", "16,32,64", "the calibration's swarm sizes (\"\" to skip it)")
	calSeeds := flag.Int("calibrate-seeds", 2, "the calibration's emulation seeds per size")
	flag.Parse()
	if os.Getenv("ARCHY_EMU_SIZES") != "" {
		*sizes = os.Getenv("ARCHY_EMU_SIZES")
	}
	var log *slog.Logger
	if *verbose {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	maxN, perNode, wall := 0, 0.0, 0.0
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			fail("size %q: %v", s, err)
		}
		sc := flashCrowd(n, *mib, *window, *bad, *latMax)
		var runs []*report.Result
		ok := true
		for seed := range uint64(*seeds) {
			debug.FreeOSMemory()
			res, err := emulate.RunWith(context.Background(), sc, seed+1, emulate.Options{Log: log, Degree: *degree, OnSwarmUp: profileTo(*heap)})
			if err != nil {
				fmt.Fprintf(os.Stderr, "%d nodes, seed %d: %v\n", n, seed+1, err)
				ok = false
				break
			}
			f := res.Figures()
			fmt.Printf("nodes %4d seed %d: wall %6.1fs peak %6d MiB (%.1f MiB/node) completed %.3f p50 %.2fs p90 %.2fs max %.2fs origin copies %.2f discovery p50 %.3fs corrupt %d\n",
				n, res.Seed, res.WallTime.Seconds(), res.PeakBytes>>20, float64(res.PeakBytes)/float64(1<<20)/float64(n),
				f.Completed, f.CompletionP50, f.CompletionP90, f.CompletionMax, f.OriginCopies, f.DiscoveryP50, res.CorruptAccepted)
			runs = append(runs, res)
			if f.Completed < 1 || res.CorruptAccepted > 0 {
				ok = false
			}
			if float64(res.PeakBytes) > *budget*(1<<30) {
				ok = false
			}
		}
		if !ok {
			break
		}
		spread(n, runs)
		maxN = n
		var peak uint64
		wall = 0
		for _, r := range runs {
			peak = max(peak, r.PeakBytes)
			wall = max(wall, r.WallTime.Seconds())
		}
		perNode = float64(peak) / float64(1<<20) / float64(n)
	}
	fmt.Printf("figure sim-emulation-max-nodes %d\n", maxN)
	fmt.Printf("figure sim-emulation-mib-per-node %.1f\n", perNode)
	fmt.Printf("figure sim-emulation-max-nodes-wall-s %.0f\n", wall)
	if *calSizes != "" {
		calibration(*calSizes, *calSeeds, log)
	}
}

// calibration runs sim/calibrate's flash crowd at sizes and prints the
// model's worst relative error and the table.
func calibration(sizes string, seeds int, log *slog.Logger) {
	cfg := calibrate.Config{Scenario: calibrate.FlashCrowd(16, 4),
		Emulate: func(ctx context.Context, sc *scenario.Scenario, seed uint64) (*report.Result, error) {
			debug.FreeOSMemory()
			return emulate.RunWith(ctx, sc, seed, emulate.Options{Log: log, DiscoveryRounds: calibrate.DiscoveryRounds})
		},
		Progress: func(mode string, n int, seed uint64, r *report.Result) {
			if mode == report.Emulation {
				fmt.Printf("calibration: emulation %d nodes seed %d: wall %.1fs\n", n, seed, r.WallTime.Seconds())
			}
		}}
	for _, s := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			fail("calibrate-sizes %q: %v", s, err)
		}
		cfg.Sizes = append(cfg.Sizes, n)
	}
	for s := range uint64(seeds) {
		cfg.Seeds = append(cfg.Seeds, s+1)
	}
	tab, err := calibrate.Run(context.Background(), cfg)
	if err != nil {
		fail("%v", err)
	}
	fmt.Print(tab.Markdown())
	w := tab.Worst()
	fmt.Printf("calibration: worst %s at %d nodes: model %.3g, emulation %.3g\n", w.Figure, w.Nodes, w.Model, w.Emulation)
	fmt.Printf("figure sim-calibration-error-pct %.1f\n", 100*math.Abs(w.Error))
}

// profileTo returns a hook writing a heap profile to path ("" for none).
func profileTo(path string) func() {
	if path == "" {
		return nil
	}
	return func() {
		f, err := os.Create(path)
		if err != nil {
			fail("memprofile: %v", err)
		}
		defer f.Close()
		runtime.GC()
		if err := pprof.WriteHeapProfile(f); err != nil {
			fail("memprofile: %v", err)
		}
	}
}

// flashCrowd is the benchmark's scenario at n nodes.
func flashCrowd(n, mib int, window time.Duration, bad int, lat time.Duration) *scenario.Scenario {
	sc := &scenario.Scenario{
		Name:  fmt.Sprintf("emufig-%d", n),
		Nodes: n,
		Links: scenario.Links{
			Latency:         scenario.Dist{Kind: "uniform", Min: lat.Seconds() / 8, Max: lat.Seconds()},
			Uplink:          scenario.Dist{Kind: "choice", Values: []float64{2 << 20, 8 << 20}},
			Downlink:        scenario.Dist{Kind: "const", Value: 32 << 20},
			PublisherUplink: 8 << 20,
		},
		Release: scenario.Release{App: "hello", ImageBytes: int64(mib) << 20, Layers: 2},
		Crowd:   scenario.Crowd{Fraction: 1, Window: scenario.Duration(window)},
		Horizon: scenario.Duration(10 * time.Minute),
	}
	if bad > 0 {
		sc.Malicious = []scenario.Malicious{{Behaviour: scenario.Corrupt, Count: bad}}
	}
	sc.SetDefaults()
	if err := sc.Validate(); err != nil {
		fail("scenario: %v", err)
	}
	return sc
}

// spread prints the relative spread (max-min over mean) of the headline
// figures across a size's seeds.
func spread(n int, runs []*report.Result) {
	if len(runs) < 2 {
		return
	}
	type fig struct {
		name string
		get  func(report.Figures) float64
	}
	var parts []string
	for _, f := range []fig{{"p50", func(f report.Figures) float64 { return f.CompletionP50 }},
		{"max", func(f report.Figures) float64 { return f.CompletionMax }},
		{"origin", func(f report.Figures) float64 { return f.OriginCopies }},
		{"wall", nil}} {
		lo, hi, sum := math.Inf(1), math.Inf(-1), 0.0
		for _, r := range runs {
			v := r.WallTime.Seconds()
			if f.get != nil {
				v = f.get(r.Figures())
			}
			lo, hi, sum = min(lo, v), max(hi, v), sum+v
		}
		parts = append(parts, fmt.Sprintf("%s ±%.0f%%", f.name, 50*(hi-lo)/(sum/float64(len(runs)))))
	}
	fmt.Printf("nodes %4d spread across %d seeds: %s\n", n, len(runs), strings.Join(parts, ", "))
}

func fail(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "emufig: "+format+"\n", a...)
	os.Exit(1)
}
