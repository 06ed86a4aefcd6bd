// Command archy-sim is archy's swarm simulator (`archy sim`, which runs
// this binary): scenarios run in the model or as real nodes emulated on
// one machine, with a report and plots. It is a binary of its own so that
// the node does not carry the plotting code and its fonts (gonum/plot
// parses twelve embedded fonts at start, about 10 MiB of resident memory).
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/archy-node/archy/sim"
	"github.com/archy-node/archy/sim/emulate"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "archy sim:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	// This binary embeds the node, so it offers the emulation mode too.
	sim.RegisterEmulation(emulate.Run)
	root := &cobra.Command{
		Use:           "archy sim",
		Short:         "Simulate a swarm: a scenario in model or emulation mode, with a report and plots",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newSimRunCmd())
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	return root.ExecuteContext(ctx)
}
