// Command trustbench prints the trust figures of `make bench`: the sybil
// harness of issue 10 at full size (archy's decisions and the baselines,
// side by side, over the same worlds) and the incremental rescoring time
// on a 100,000-account, 1,000,000-edge graph. -small runs the CI size;
// -ablate runs archy with one defence changed (see trust/README.md).
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/archy-node/archy/trust"
)

func main() {
	small := flag.Bool("small", false, "run the harness at CI size")
	table := flag.Bool("table", false, "print the markdown table too")
	skipHarness := flag.Bool("no-harness", false, "only the rescoring figures")
	ablate := flag.Bool("ablate", false, "only the harness, with the settings below, one seed unless -seeds")
	owners := flag.Int("owners", 0, "owners per seed and row (0: 150)")
	seeds := flag.Int("seeds", 0, "seeds 1..n (0: 5)")
	alpha := flag.Float64("alpha", 0, "walk end probability (0: default)")
	hops := flag.Int("hops", 0, "walk length (0: default)")
	deg := flag.Float64("degree-norm", 0, "degree normalisation power (0: default, negative: off)")
	trim := flag.Int("trim", 0, "branch cap (0: default, negative: off)")
	sybEnd := flag.Int("sybil-endorsers", 0, "only entry sybils and this many more endorse sybil publishers (0: all)")
	flag.Parse()
	cfg := trust.HarnessConfig{}
	if *small {
		cfg = trust.Small()
	}
	if *owners > 0 {
		cfg.Owners = *owners
	}
	if *ablate && *seeds == 0 {
		*seeds = 1
	}
	if *seeds > 0 {
		cfg.Seeds = nil
		for i := 1; i <= *seeds; i++ {
			cfg.Seeds = append(cfg.Seeds, int64(i))
		}
	}
	cfg.Params = trust.Params{Alpha: *alpha, Hops: *hops}
	cfg.Policy = trust.Policy{DegreeNorm: *deg, Trim: *trim}
	cfg.SybilEndorsers = *sybEnd
	if !*skipHarness {
		start := time.Now()
		rows := trust.RunHarness(cfg)
		for _, r := range rows {
			if r.Method == "archy" {
				fmt.Printf("figure trust-malicious-pct-%d %.3f\n", r.AttackEdges, r.MaliciousPct())
				fmt.Printf("figure trust-resolved-pct-%d %.1f\n", r.AttackEdges, r.ResolvedPct())
				continue
			}
			if *ablate {
				continue
			}
			fmt.Printf("figure trust-baseline-%s-malicious-pct-%d %.3f\n", r.Method, r.AttackEdges, r.MaliciousPct())
			fmt.Printf("figure trust-baseline-%s-resolved-pct-%d %.1f\n", r.Method, r.AttackEdges, r.ResolvedPct())
		}
		if *table {
			fmt.Print(trust.Table(rows))
		}
		fmt.Fprintf(os.Stderr, "harness took %s\n", time.Since(start).Round(time.Millisecond))
	}
	if *ablate {
		return
	}
	r := trust.MeasureRescore(100_000, 1_000_000, 200, 1)
	// The headline is the mean over 200 new follow lists by accounts the
	// owner's walks reach, the restarts after dropped updates included
	// (amortised); the slowest single one, a change by one of the owner's
	// own follows included, is trust-rescore-worst-ms.
	fmt.Printf("figure trust-rescore-ms %.3f\n", r.MeanMS)
	fmt.Printf("figure trust-rescore-median-ms %.3f\n", r.MedianMS)
	fmt.Printf("figure trust-rescore-worst-ms %.2f\n", r.WorstMS)
	fmt.Printf("figure trust-rescore-max-ms %.2f\n", r.MaxMS)
	fmt.Printf("figure trust-rescore-hop1-ms %.2f\n", r.Hop1MS)
	fmt.Printf("figure trust-score-full-ms %.2f\n", r.FullMS)
	fmt.Printf("figure trust-graph-mib %.1f\n", r.GraphMiB)
	fmt.Printf("figure trust-decide-ms %.1f\n", r.DecideMS)
	fmt.Fprintf(os.Stderr, "rescoring: %d of 100000 accounts reached, %d of 200 rescorings started over; the owner has %d first hops\n", r.Reached, r.Full, r.Branches)
}
