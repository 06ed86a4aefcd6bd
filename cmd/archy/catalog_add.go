package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/archy-node/archy/registry"
)

func newCatalogAddCmd() *cobra.Command {
	var (
		dir      string
		delegate bool
		validity time.Duration
		asJSON   bool
	)
	c := &cobra.Command{
		Use:   "add SIGNED-MANIFEST... [--dir DIR] [--delegate]",
		Short: "Add signed developer manifests (archy app sign output) to the draft catalog",
		Long: `Add signed developer manifests to the draft catalog. Each envelope is verified
(signature, publisher, schema); its entry pins the manifest CID and image
CIDs and embeds the envelope. An app id no developer holds yet is delegated
to the signer; an app id delegated to someone else needs --delegate to add
the signer as a co-publisher. A manifest replaces the entry of the same app
id and channel.

` + curatorLayout,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ed, out, err := registry.Curator{Dir: dir}.Add(args, delegate, validity, time.Now())
			if err != nil {
				return curatorError(err)
			}
			cat := ed.Draft
			if asJSON {
				return writeJSON(cmd, map[string]any{"version": cat.Version, "added": out})
			}
			w := cmd.OutOrStdout()
			if ed.Started {
				fmt.Fprintf(w, "started catalog version %d (version %d is being signed)\n", cat.Version, cat.Version-1)
			}
			for _, a := range out {
				fmt.Fprintf(w, "added %s %s (%s) %s to draft version %d\n", a.ID, a.Version, a.Channel, a.CID, cat.Version)
				if a.Delegated {
					fmt.Fprintf(w, "delegated %s to %s\n", a.ID, a.Developer)
				}
			}
			return nil
		},
	}
	c.Flags().StringVar(&dir, "dir", ".", "curator folder")
	c.Flags().BoolVar(&delegate, "delegate", false, "also delegate the app id to the signer when another developer holds it")
	c.Flags().DurationVar(&validity, "expires", defaultValidity, "validity of a newly started catalog version")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}
