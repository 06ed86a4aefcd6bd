// Command simfig prints the model mode's figures for `make bench`: the
// wall time of a 100,000-node flash crowd (sim-model-100k-s), the origin's
// egress and the last node against the uplinks' bound at 10,000 nodes
// (sim-origin-copies-10k, sim-last-vs-optimal-10k), and, with
// ARCHY_SIM_1M=1 or -only 1m (it takes tens of minutes), the wall time
// and memory of a 1,000,000-node flash crowd (sim-model-1m-s,
// sim-model-1m-mib). Every run is the shipped flash-crowd scenario (a
// 100 MiB image, a 10 MiB/s publisher) at that size, seed 1; at 10,000
// nodes it runs again with every uplink at the mean of the scenario's
// three classes (sim-last-vs-optimal-10k-equal-uplinks, no goal).
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"

	"github.com/archy-node/archy/sim"
	"github.com/archy-node/archy/sim/report"
	"github.com/archy-node/archy/sim/scenario"
	"github.com/archy-node/archy/sim/scenarios"
)

func main() {
	only := flag.String("only", "", "run one size: 10k, 100k or 1m")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	sc, err := scenarios.Load("flash-crowd")
	if err != nil {
		log.Fatal(err)
	}
	run := func(n int) *report.Result {
		rs, err := sim.Run(ctx, sc, report.Model, sim.Options{Nodes: n, Seeds: []uint64{1}})
		if err != nil {
			log.Fatal(err)
		}
		r := rs[0]
		f := r.Figures()
		fmt.Fprintf(os.Stderr, "simfig: %d nodes: %.0f%% completed, p50 %.1fs, last %.1fs, bound %.1fs, origin %.3f copies, %d last resorts, %d events, wall %.1fs, peak %.0f MiB\n",
			n, 100*f.Completed, f.CompletionP50, f.CompletionMax, r.LowerBound.Seconds(), f.OriginCopies, r.LastResorts, r.Events, r.WallTime.Seconds(), float64(r.PeakBytes)/(1<<20))
		if f.Completed != 1 {
			log.Fatalf("simfig: %d nodes: only %.3f of the fetchers completed", n, f.Completed)
		}
		return r
	}
	// The largest first, so that the process's memory high-water mark is
	// its own.
	if *only == "1m" || (*only == "" && os.Getenv("ARCHY_SIM_1M") != "") {
		r := run(1_000_000)
		fmt.Printf("figure sim-model-1m-s %.1f\n", r.WallTime.Seconds())
		fmt.Printf("figure sim-model-1m-mib %.0f\n", float64(r.PeakBytes)/(1<<20))
	}
	if *only == "" || *only == "100k" {
		r := run(100_000)
		fmt.Printf("figure sim-model-100k-s %.1f\n", r.WallTime.Seconds())
	}
	if *only == "" || *only == "10k" {
		f := run(10_000).Figures()
		fmt.Printf("figure sim-origin-copies-10k %.3f\n", f.OriginCopies)
		fmt.Printf("figure sim-last-vs-optimal-10k %.3f\n", f.LastVsOptimal)
		// The same crowd with every uplink at the mean of the three
		// classes (same capacity): what the slow third costs the tail.
		sc.Links.Uplink = scenario.Dist{Kind: "const", Value: meanUplink(sc.Links.Uplink)}
		f = run(10_000).Figures()
		fmt.Printf("figure sim-last-vs-optimal-10k-equal-uplinks %.3f\n", f.LastVsOptimal)
	}
}

// meanUplink is the mean of a choice distribution (else its value).
func meanUplink(d scenario.Dist) float64 {
	if d.Kind != "choice" {
		return d.Value
	}
	sum := 0.0
	for _, v := range d.Values {
		sum += v
	}
	return sum / float64(len(d.Values))
}
