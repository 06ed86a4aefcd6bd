package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/archy-node/archy/node"
	"github.com/archy-node/archy/orchestrator"
	"github.com/archy-node/archy/orchestrator/quadlet"
	"github.com/archy-node/archy/registry"
)

func newAppRenderCmd() *cobra.Command {
	var (
		out, dataDir, nodeData, bind, podman string
		asJSON                               bool
	)
	c := &cobra.Command{
		Use:   "render PATH",
		Short: "Print the Podman Quadlet units an app runs as",
		Long: `Render an app's manifest as Podman Quadlet units: one .container unit per
container and a .network unit for the app's own network. PATH is an app folder
(holding manifest.yaml or manifest.json) or a manifest file.

Secrets are referenced as Podman secrets named archy-<app>-<secret>, never
written into a unit. --podman 4.4 renders units for Quadlet as first shipped
(no .network units, no Secret= or Health* keys).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			warnDeprecated(cmd, "data-dir", "app-data")
			l, err := registry.Load(args[0])
			if err != nil {
				return err
			}
			m := l.Manifest
			dir := dataDir
			if dir == "" {
				// Where a node on --data keeps the app's data.
				nodeDir, err := resolveDataDir(nodeData)
				if err != nil {
					return err
				}
				dir = orchestrator.AppDataDir(node.AppsDir(nodeDir), m.ID)
			}
			if dir, err = filepath.Abs(dir); err != nil {
				return fmt.Errorf("--app-data: %w", err)
			}
			units, err := quadlet.Render(m, quadlet.Options{DataDir: dir, BindAddress: bind, Podman: podman})
			if err != nil {
				return fmt.Errorf("render %s: %w", args[0], err)
			}
			if out != "" {
				if err := os.MkdirAll(out, 0o755); err != nil {
					return fmt.Errorf("--out: %w", err)
				}
				for _, u := range units {
					if err := os.WriteFile(filepath.Join(out, u.Name), []byte(u.Content), 0o644); err != nil {
						return fmt.Errorf("write unit: %w", err)
					}
				}
			}
			if asJSON {
				return writeJSON(cmd, renderOutput{App: m.ID, Version: m.Version, DataDir: dir, Units: units})
			}
			w := cmd.OutOrStdout()
			for i, u := range units {
				if out != "" {
					fmt.Fprintln(w, filepath.Join(out, u.Name))
					continue
				}
				if i > 0 {
					fmt.Fprintln(w)
				}
				fmt.Fprintf(w, "### %s\n%s", u.Name, u.Content)
			}
			return nil
		},
	}
	c.Flags().StringVar(&out, "out", "", "write the units into this folder (and print their paths) instead of printing them")
	c.Flags().StringVar(&dataDir, "app-data", "", "the app's data folder on the host (default: the one a node on --data uses, <data>/apps/data/<id>)")
	// The old name, kept for scripts; --data is the node's folder everywhere.
	c.Flags().StringVar(&dataDir, "data-dir", "", "")
	_ = c.Flags().MarkHidden("data-dir")
	dataDirFlag(c, &nodeData)
	c.Flags().StringVar(&bind, "bind", "127.0.0.1", "host address to publish ports on")
	c.Flags().StringVar(&podman, "podman", quadlet.Podman45, "oldest Podman the units must work with: 4.4 or 4.5")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON: the app, its data folder and the units")
	return c
}

// renderOutput is what `archy app render --json` prints.
type renderOutput struct {
	App     string         `json:"app"`
	Version string         `json:"version"`
	DataDir string         `json:"data_dir"`
	Units   []quadlet.Unit `json:"units"`
}
