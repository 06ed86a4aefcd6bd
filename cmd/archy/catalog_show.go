package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/archy-node/archy/registry"
)

func newCatalogShowCmd() *cobra.Command {
	var (
		dir    string
		asJSON bool
	)
	c := &cobra.Command{
		Use:   "show [FILE] [--dir DIR]",
		Short: "Print a catalog: a signed one, or the draft (default: catalog.json, else draft.json)",
		Long: `Print a catalog: version, expiry, root, delegations, entries and, for a
signed catalog, who signed it. Signatures are listed, not verified: use
archy catalog verify for that.

` + curatorLayout,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := registry.Curator{Dir: dir}.Latest()
			if len(args) == 1 {
				path = args[0]
			}
			f, err := registry.ReadCatalogFile(path)
			if err != nil {
				return err
			}
			cat, signed, kind := f.Catalog, f.KeyIDs, "draft (unsigned)"
			if f.Signed {
				kind = "signed (signatures not verified here)"
			}
			type entry struct {
				ID       string   `json:"id"`
				Version  string   `json:"version"`
				Channel  string   `json:"channel"`
				Manifest string   `json:"manifest"`
				Images   []string `json:"images,omitempty"`
				Signer   string   `json:"signer"`
			}
			var entries []entry
			for _, e := range cat.Entries {
				en := entry{ID: e.ID, Version: e.Version, Channel: e.Channel, Manifest: e.Manifest, Images: e.Images}
				if e.Envelope != nil && len(e.Envelope.Signatures) > 0 {
					en.Signer = e.Envelope.Signatures[0].KeyID
				}
				entries = append(entries, en)
			}
			if asJSON {
				return writeJSON(cmd, map[string]any{
					"file": path, "kind": kind, "name": cat.Name, "version": cat.Version, "expires": cat.Expires,
					"root": cat.Root, "delegations": cat.Delegations, "entries": entries, "signatures": signed,
				})
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "%s: %s\n", path, kind)
			if cat.Name != "" {
				fmt.Fprintf(w, "registry:  %s\n", cat.Name)
			}
			fmt.Fprintf(w, "version:   %d\nexpires:   %s\n", cat.Version, cat.Expires)
			fmt.Fprintf(w, "root:      version %d, %d of %d keys\n", cat.Root.Version, cat.Root.Threshold, len(cat.Root.Keys))
			for _, k := range cat.Root.Keys {
				fmt.Fprintf(w, "  key      %s\n", k)
			}
			for _, d := range cat.Delegations {
				fmt.Fprintf(w, "delegate:  %s → %v\n", d.Developer, d.Apps)
			}
			for _, e := range entries {
				fmt.Fprintf(w, "app:       %s %s (%s) manifest %s, %d image(s)\n", e.ID, e.Version, e.Channel, e.Manifest, len(e.Images))
			}
			for _, s := range signed {
				fmt.Fprintf(w, "signed by: %s\n", s)
			}
			return nil
		},
	}
	c.Flags().StringVar(&dir, "dir", ".", "curator folder")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}
