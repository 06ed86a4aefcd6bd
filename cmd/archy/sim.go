package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/spf13/cobra"
)

// simBinary is the simulator's own executable, which `archy sim` runs:
// the node's binary stays free of the simulator's plotting code.
const simBinary = "archy-sim"

// newSimCmd forwards `archy sim ARGS` to archy-sim: $ARCHY_SIM, else the
// archy-sim beside this executable (make build and make install put it
// there), else the one on $PATH.
func newSimCmd() *cobra.Command {
	return &cobra.Command{
		Use:                "sim",
		Short:              "Simulate a swarm: a scenario in model or emulation mode, with a report and plots (runs archy-sim)",
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			bin, err := findSim()
			if err != nil {
				return err
			}
			c := exec.CommandContext(cmd.Context(), bin, args...)
			c.Stdin, c.Stdout, c.Stderr = os.Stdin, cmd.OutOrStdout(), cmd.ErrOrStderr()
			if err := c.Run(); err != nil {
				var exit *exec.ExitError
				if errors.As(err, &exit) {
					return errSilent // archy-sim said why
				}
				return fmt.Errorf("run %s: %w", bin, err)
			}
			return nil
		},
	}
}

func findSim() (string, error) {
	if p := os.Getenv("ARCHY_SIM"); p != "" {
		return p, nil
	}
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), simBinary)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath(simBinary); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("the simulator is its own binary, %s, and none is beside this archy, on $PATH or in $ARCHY_SIM: make build puts it in bin/", simBinary)
}
