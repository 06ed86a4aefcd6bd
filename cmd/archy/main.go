// Command archy is the archy binary: the node daemon, the developer and
// catalog tooling, the relay, and the front end of the simulator (which is
// archy-sim, a binary of its own). It only parses flags and config and
// calls into the library packages.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, errSilent) {
			fmt.Fprintln(os.Stderr, "archy:", err)
		}
		os.Exit(1)
	}
}

// errSilent is returned by commands that already printed why they failed.
var errSilent = errors.New("failed")

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	return root.ExecuteContext(ctx)
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "archy",
		Short:         "archy: a peer-to-peer, decentralized app registry node",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		newDIDCmd(),
		newAppCmd(),
		newCatalogCmd(),
		newBlobCmd(),
		newImageCmd(),
		newRelayCmd(),
		newNostrCmd(),
		newNodeCmd(),
		newSimCmd(),
		withNodeTrust(newTrustCmd()),
	)
	return root
}

// writeJSON prints v as indented JSON on the command's stdout.
func writeJSON(cmd *cobra.Command, v any) error {
	enc := json.NewEncoder(cmd.OutOrStdout())
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
