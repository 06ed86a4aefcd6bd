package main

import (
	"fmt"
	"os"
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
			cur := curator{dir: dir}
			cat, err := cur.loadDraft()
			if err != nil {
				return err
			}
			if _, err := os.Stat(cur.signedPath(cat.Version)); err == nil {
				if cat.Version >= registry.MaxCatalogVersion {
					return fmt.Errorf("draft: version %d is the last one", cat.Version)
				}
				cat.Version++
			}
			cat.Expires = registry.FormatExpires(time.Now().Add(validity))
			if _, err := cat.Payload(); err != nil {
				return err
			}
			if err := cur.saveDraft(cat); err != nil {
				return err
			}
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
