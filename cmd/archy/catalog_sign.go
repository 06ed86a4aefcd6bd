package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/archy-node/archy/did"
	"github.com/archy-node/archy/registry"
)

func newCatalogSignCmd() *cobra.Command {
	var (
		dir     string
		keyFile string
		asJSON  bool
	)
	c := &cobra.Command{
		Use:   "sign --key KEYFILE [--dir DIR]",
		Short: "Co-sign the draft catalog with one root key; publish it once the threshold is reached",
		Long: `Co-sign the draft catalog with one root key. The payload is produced once
(RFC 8785 canonical JSON) into signed/V.json; every later signature is over
exactly those bytes. Run it once per key, on the machine that holds the key;
copy the curator folder between co-signers. When a threshold of the root's
keys has signed (for a rotation: a threshold of the old root and of the new
one), the catalog is checked as a node would and published to catalog.json
(and, for a rotation, roots/R.json and root.json).

` + curatorLayout,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if keyFile == "" {
				return fmt.Errorf("--key is required: a root key file")
			}
			key, err := did.LoadKey(keyFile)
			if err != nil {
				return err
			}
			s, err := registry.Curator{Dir: dir}.Sign(key, time.Now())
			if errors.Is(err, registry.ErrNotRootKey) {
				return fmt.Errorf("--key %s: %w", keyFile, err)
			}
			if err != nil {
				return curatorError(err)
			}
			cat, done := s.Draft, s.Done()
			res := map[string]any{
				"version": cat.Version, "signed_by": key.DID(), "file": s.File,
				"signatures": s.Signatures, "threshold": cat.Root.Threshold, "published": false,
			}
			if s.Rotation {
				res["old_root_signatures"], res["old_root_threshold"] = s.PreviousSignatures, s.Previous.Threshold
			}
			if done {
				res["published"] = s.Published
			}
			if asJSON {
				return writeJSON(cmd, res)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "signed catalog version %d as %s: %d root key(s) signed, %d needed", cat.Version, key.DID(), s.Signatures, cat.Root.Threshold)
			if s.Rotation {
				fmt.Fprintf(w, " (new root %d); old root %d: %d signed, %d needed", cat.Root.Version, s.Previous.Version, s.PreviousSignatures, s.Previous.Threshold)
			}
			fmt.Fprintln(w)
			if done {
				fmt.Fprintf(w, "threshold reached: published %v\n", s.Published)
			}
			return nil
		},
	}
	c.Flags().StringVar(&dir, "dir", ".", "curator folder")
	c.Flags().StringVar(&keyFile, "key", "", "root key file to sign with")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}
