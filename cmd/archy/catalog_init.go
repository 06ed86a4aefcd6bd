package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/archy-node/archy/registry"
)

func newCatalogInitCmd() *cobra.Command {
	var (
		dir       string
		name      string
		keys      []string
		threshold int
		validity  time.Duration
		asJSON    bool
	)
	c := &cobra.Command{
		Use:   "init --root-key DID|KEYFILE... --threshold N [--dir DIR]",
		Short: "Create a curator folder: the registry root (keys, threshold) and the draft of catalog version 1",
		Long: `Create a curator folder: root.json (root version 1 with the given keys and
threshold, for node owners to pin) and draft.json (catalog version 1, empty,
expiring after --expires). Root keys are given as did:key DIDs or key files
(archy did new); co-signers need only send their DIDs.

` + curatorLayout,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(keys) == 0 {
				return fmt.Errorf("--root-key is required (repeat it for each root key)")
			}
			if validity <= 0 {
				return fmt.Errorf("--expires %s must be positive", validity)
			}
			ids := make([]string, 0, len(keys))
			for _, k := range keys {
				id, err := keyDID(k)
				if err != nil {
					return err
				}
				ids = append(ids, id)
			}
			cat, err := registry.Curator{Dir: dir}.Init(name, ids, threshold, validity, time.Now())
			if err != nil {
				return curatorError(err)
			}
			root := cat.Root
			if asJSON {
				return writeJSON(cmd, map[string]any{"dir": dir, "root": root, "version": cat.Version, "expires": cat.Expires})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "created %s: root version 1, %d-of-%d keys; draft of catalog version 1 expires %s\n",
				dir, root.Threshold, len(root.Keys), cat.Expires)
			return nil
		},
	}
	c.Flags().StringVar(&dir, "dir", ".", "curator folder")
	c.Flags().StringVar(&name, "name", "", "the registry's name")
	c.Flags().StringArrayVar(&keys, "root-key", nil, "a root key: did:key DID or key file (repeat)")
	c.Flags().IntVar(&threshold, "threshold", 1, "how many distinct root keys must sign each catalog")
	c.Flags().DurationVar(&validity, "expires", defaultValidity, "how long each catalog version stays valid")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}
