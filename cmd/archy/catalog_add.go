package main

import (
	"fmt"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/archy-node/archy/did"
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
			cur := curator{dir: dir}
			cat, bumped, err := cur.openForEdit(validity, time.Now())
			if err != nil {
				return err
			}
			type added struct {
				ID        string `json:"id"`
				Version   string `json:"version"`
				Channel   string `json:"channel"`
				CID       string `json:"cid"`
				Developer string `json:"developer"`
				Delegated bool   `json:"delegated"`
			}
			var out []added
			for _, path := range args {
				data, err := readFileCapped(path, did.MaxEnvelopeSize)
				if err != nil {
					return fmt.Errorf("add %s: %w", path, err)
				}
				v, err := registry.VerifyEnvelope(data)
				if err != nil {
					return fmt.Errorf("add %s: %w", path, err)
				}
				id := v.Manifest.ID
				holders := cat.Delegates(id)
				newDelegation := false
				switch {
				case slices.Contains(holders, v.Signer):
				case len(holders) == 0 || delegate:
					cat.Delegate(v.Signer, id)
					newDelegation = true
				default:
					return fmt.Errorf("add %s: app %q is delegated to %v, not to its signer %s; pass --delegate to let %s publish it too",
						path, id, holders, v.Signer, v.Signer)
				}
				if err := cat.Put(v); err != nil {
					return fmt.Errorf("add %s: %w", path, err)
				}
				e := cat.Entries[slices.IndexFunc(cat.Entries, func(e registry.Entry) bool { return e.ID == id && e.Manifest == v.CID.String() })]
				out = append(out, added{ID: id, Version: e.Version, Channel: e.Channel, CID: e.Manifest, Developer: v.Signer, Delegated: newDelegation})
			}
			if _, err := cat.Payload(); err != nil {
				return err
			}
			if err := cur.saveDraft(cat); err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd, map[string]any{"version": cat.Version, "added": out})
			}
			w := cmd.OutOrStdout()
			if bumped {
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
