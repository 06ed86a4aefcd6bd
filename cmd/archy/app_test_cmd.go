package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/archy-node/archy/did"
	"github.com/archy-node/archy/node"
	"github.com/archy-node/archy/orchestrator"
	"github.com/archy-node/archy/orchestrator/gate"
	"github.com/archy-node/archy/orchestrator/podman"
)

func newAppTestCmd() *cobra.Command {
	var (
		all              bool
		iterations       int
		examples, socket string
		keyFile, workDir string
		asJSON, verbose  bool
		readTimeout      time.Duration
	)
	c := &cobra.Command{
		Use:   "test APP... | --all [--iterations N] [--examples DIR]",
		Short: "Run apps through their whole lifecycle on real Podman (the lifecycle gate)",
		Long: `Run each app, against the rootless Podman service at --podman-socket
(default $ARCHY_PODMAN_SOCKET, else this user's socket), through: install, reachable (its UI answers with its
version), stop, start, restart, update to update/, update to broken/ (must
roll back automatically, the old version answering), uninstall keeping data,
reinstall (data and secrets intact), node restart (every container adopted,
none recreated), and uninstall with purge (no container, network, state,
secret or data left). APP is an app folder name under --examples (its
current release, with update/ and broken/ beside it). Prints a table; exits
non-zero on any failure, ghost or data change.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if all == (len(args) > 0) {
				return fmt.Errorf("give app names or --all, not both or neither")
			}
			if iterations < 1 {
				return fmt.Errorf("--iterations %d: must be at least 1", iterations)
			}
			warnDeprecated(cmd, "socket", "podman-socket")
			if socket == "" {
				socket = node.DefaultPodmanSocket()
			}
			if socket == "" {
				return fmt.Errorf("%w: the lifecycle gate needs one", errNoPodmanSocket)
			}
			if err := orchestrator.CheckSocketOwner(socket); err != nil {
				var oe *orchestrator.OwnerError
				if errors.As(err, &oe) {
					return fmt.Errorf("%w; for example:\n  runuser -u %s -- env XDG_RUNTIME_DIR=/run/user/%d %s",
						err, oe.OwnerName(), oe.Owner, strings.Join(os.Args, " "))
				}
				return err
			}
			key, err := did.LoadKey(keyFile)
			if err != nil {
				return fmt.Errorf("--key: %w", err)
			}
			if workDir == "" {
				if workDir, err = os.MkdirTemp("", "archy-app-test-"); err != nil {
					return err
				}
				defer os.RemoveAll(workDir)
			}
			workDir, err = filepath.Abs(workDir)
			if err != nil {
				return err
			}
			level := slog.LevelWarn
			if verbose {
				level = slog.LevelDebug
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
			rt, err := podman.New(cmd.Context(), podman.Config{Socket: socket, ReadTimeout: readTimeout, Logger: log})
			if err != nil {
				return err
			}
			cfg := gate.Config{
				Runtime: rt, AppsDir: examples, Apps: args, Iterations: iterations, Key: key,
				WorkDir: workDir, IDMapper: &orchestrator.PodmanUnshare{}, Logger: log, Progress: cmd.ErrOrStderr(),
			}
			rep, err := gate.Run(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			if asJSON {
				if err := writeJSON(cmd, rep.Steps); err != nil {
					return err
				}
			} else if err := rep.WriteTable(cmd.OutOrStdout()); err != nil {
				return err
			}
			if n := rep.Failed(); n > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "archy: app test: %d of %d steps failed\n", n, len(rep.Steps))
				return errSilent
			}
			return nil
		},
	}
	c.Flags().BoolVar(&all, "all", false, "test every app under --examples")
	c.Flags().IntVar(&iterations, "iterations", 1, "run the gate this many times per app")
	c.Flags().StringVar(&examples, "examples", "examples/apps", "folder holding the app folders")
	c.Flags().StringVar(&socket, "podman-socket", "", "rootless Podman API socket URL (default $ARCHY_PODMAN_SOCKET or $XDG_RUNTIME_DIR/podman/podman.sock), as archy node run takes it")
	// The old name, kept for scripts.
	c.Flags().StringVar(&socket, "socket", "", "")
	_ = c.Flags().MarkHidden("socket")
	c.Flags().StringVar(&keyFile, "key", "examples/keys/example-publisher.key", "key that signs the manifests (must be their publisher's)")
	c.Flags().StringVar(&workDir, "work-dir", "", "folder for the orchestrators' state and data (default: a temporary folder, removed)")
	c.Flags().BoolVar(&asJSON, "json", false, "print the steps as JSON")
	c.Flags().BoolVarP(&verbose, "verbose", "v", false, "log what the orchestrator does")
	c.Flags().DurationVar(&readTimeout, "read-timeout", 0, "deadline of Podman reads (default 10s)")
	return c
}
