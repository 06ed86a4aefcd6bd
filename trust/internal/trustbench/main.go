// Command trustbench prints the trust figures of `make bench`: the sybil
// harness of issue 10 at full size (archy's decisions and the baselines,
// side by side, over the same worlds) and the incremental rescoring time
// on a 100,000-account, 1,000,000-edge graph. -small runs the CI size.
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
	flag.Parse()
	if !*skipHarness {
		cfg := trust.HarnessConfig{}
		if *small {
			cfg = trust.Small()
		}
		start := time.Now()
		rows := trust.RunHarness(cfg)
		for _, r := range rows {
			if r.Method == "archy" {
				fmt.Printf("figure trust-malicious-pct-%d %.3f\n", r.AttackEdges, r.MaliciousPct())
				fmt.Printf("figure trust-resolved-pct-%d %.1f\n", r.AttackEdges, r.ResolvedPct())
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
	r := trust.MeasureRescore(100_000, 1_000_000, 200, 1)
	fmt.Printf("figure trust-rescore-ms %.3f\n", r.MedianMS)
	fmt.Printf("figure trust-rescore-mean-ms %.3f\n", r.MeanMS)
	fmt.Printf("figure trust-rescore-max-ms %.2f\n", r.MaxMS)
	fmt.Printf("figure trust-rescore-hop1-ms %.2f\n", r.Hop1MS)
	fmt.Printf("figure trust-score-full-ms %.2f\n", r.FullMS)
	fmt.Printf("figure trust-graph-mib %.1f\n", r.GraphMiB)
	fmt.Fprintf(os.Stderr, "rescoring: %d of 100000 accounts reached, %d of 200 rescorings started over\n", r.Reached, r.Full)
}
