package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/archy-node/archy/registry"
)

func newCatalogRotateCmd() *cobra.Command {
	var (
		dir       string
		add, rm   []string
		threshold int
		validity  time.Duration
		asJSON    bool
	)
	c := &cobra.Command{
		Use:   "rotate [--add-key DID|KEYFILE]... [--remove-key DID|KEYFILE]... [--threshold N] [--dir DIR]",
		Short: "Start a new root version: add or remove root keys, change the threshold",
		Long: `Start a new root version in the draft catalog (the published root's version
plus one) with keys added or removed and, optionally, a new threshold. The
catalog that carries it must be signed by a threshold of the old root and a
threshold of the new one; archy catalog sign says which are missing. Once it
is published, root.json is the new root and roots/R.json lets nodes that
pinned an older root follow. To recover from a leaked key, remove it here:
nodes then refuse anything it signs, whatever version it claims.

` + curatorLayout,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ch := registry.RootChange{Threshold: threshold}
			for _, k := range rm {
				id, err := keyDID(k)
				if err != nil {
					return fmt.Errorf("--remove-key: %w", err)
				}
				ch.Remove = append(ch.Remove, id)
			}
			for _, k := range add {
				id, err := keyDID(k)
				if err != nil {
					return fmt.Errorf("--add-key: %w", err)
				}
				ch.Add = append(ch.Add, id)
			}
			ed, pub, err := registry.Curator{Dir: dir}.Rotate(ch, validity, time.Now())
			if err != nil {
				return curatorError(err)
			}
			cat, root := ed.Draft, ed.Draft.Root
			if asJSON {
				return writeJSON(cmd, map[string]any{"version": cat.Version, "root": root, "previous_root": pub})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "draft catalog version %d rotates root %d → %d: %d-of-%d keys; sign with %d of the old keys and %d of the new\n",
				cat.Version, pub.Version, root.Version, root.Threshold, len(root.Keys), pub.Threshold, root.Threshold)
			return nil
		},
	}
	c.Flags().StringVar(&dir, "dir", ".", "curator folder")
	c.Flags().StringArrayVar(&add, "add-key", nil, "a root key to add: did:key DID or key file (repeat)")
	c.Flags().StringArrayVar(&rm, "remove-key", nil, "a root key to remove: did:key DID or key file (repeat)")
	c.Flags().IntVar(&threshold, "threshold", 0, "the new threshold (default: unchanged)")
	c.Flags().DurationVar(&validity, "expires", defaultValidity, "validity of a newly started catalog version")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}
