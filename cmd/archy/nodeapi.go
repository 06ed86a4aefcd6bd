package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/archy-node/archy/internal/paths"
	"github.com/archy-node/archy/node"
	"github.com/archy-node/archy/node/client"
)

// The CLI reaches a running node through one client (node/client): the
// node owns the data folder's stores and the swarm, and the CLI asks it.

// dataDirFlag registers --data, the one name of the node's data folder.
func dataDirFlag(c *cobra.Command, dir *string) {
	c.Flags().StringVar(dir, "data", "", "the node's data folder (default $"+paths.Env+", else $XDG_DATA_HOME/archy or ~/.local/share/archy)")
}

// deprecatedDataEnv is the data folder's old environment variable.
const deprecatedDataEnv = "ARCHY_DATA_DIR"

// resolveDataDir is the data folder a command works on: --data, else
// $ARCHY_DATA, else the default (internal/paths).
func resolveDataDir(dir string) (string, error) {
	if dir == "" && os.Getenv(paths.Env) == "" {
		if old := os.Getenv(deprecatedDataEnv); old != "" {
			fmt.Fprintf(os.Stderr, "archy: $%s is deprecated, set $%s instead\n", deprecatedDataEnv, paths.Env)
			dir = old
		}
	}
	d, err := paths.Resolve(dir)
	if errors.Is(err, paths.ErrNoDataDir) {
		return "", fmt.Errorf("%w: pass --data DIR or set $%s", err, paths.Env)
	}
	return d, err
}

// openNode is the client of the node running on dataDir, or at api when
// given; tokenFile overrides <data>/api.token.
func openNode(dataDir, api, tokenFile string) (*client.Client, error) {
	dir, err := resolveDataDir(dataDir)
	if err != nil {
		return nil, err
	}
	c, err := client.Open(dir, api, tokenFile)
	if errors.Is(err, client.ErrNoNode) {
		return nil, fmt.Errorf("%w (start one with `archy node run --data %s`, or pass --api URL)", err, dir)
	}
	return c, err
}

// nodeFailed words a failed operation, or the node's refusal, for the
// command's error, with the flag that fixes it when there is one.
func nodeFailed(err error) error {
	var oe *client.OpError
	if errors.As(err, &oe) {
		err = errors.New("the node refused: " + oe.End.Error)
	}
	if err != nil && strings.Contains(err.Error(), node.ErrNoPodmanSocket.Error()) {
		err = fmt.Errorf("%w (start the node with --podman-socket URL)", err)
	}
	return err
}

// warnDeprecated says on stderr that the flag old, when given, has a new
// name (cobra's own notice goes to stdout, into --json output).
func warnDeprecated(cmd *cobra.Command, old, new string) {
	if cmd.Flags().Changed(old) {
		fmt.Fprintf(cmd.ErrOrStderr(), "archy: --%s is deprecated, use --%s\n", old, new)
	}
}
