package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/archy-node/archy/registry"
)

func newCatalogBumpCmd() *cobra.Command {
	var (
		dir      string
		validity time.Duration
		asJSON   bool
	)
	c := &cobra.Command{
		Use:   "bump [--expires DURATION] [--dir DIR]",
		Short: "Start the next catalog version with a fresh expiry (to re-publish before the current one expires)",
		Long: `Start the next catalog version with the same apps and a fresh expiry, then
sign it as usual. Nodes refuse an expired catalog and report themselves
stale, so a registry re-publishes before its catalog expires even when no
app changed.

` + curatorLayout,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if validity <= 0 {
				return fmt.Errorf("--expires %s must be positive", validity)
			}
			ed, err := registry.Curator{Dir: dir}.Bump(validity, time.Now())
			if err != nil {
				return curatorError(err)
			}
			cat := ed.Draft
			if asJSON {
				return writeJSON(cmd, map[string]any{"version": cat.Version, "expires": cat.Expires})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "draft catalog version %d expires %s; sign it to publish\n", cat.Version, cat.Expires)
			return nil
		},
	}
	c.Flags().StringVar(&dir, "dir", ".", "curator folder")
	c.Flags().DurationVar(&validity, "expires", defaultValidity, "how long the new version stays valid")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}
