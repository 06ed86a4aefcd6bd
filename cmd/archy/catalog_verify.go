package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/archy-node/archy/registry"
)

func newCatalogVerifyCmd() *cobra.Command {
	var (
		store    string
		rootFile string
		roots    string
		asJSON   bool
	)
	c := &cobra.Command{
		Use:   "verify CATALOG --store DIR [--root ROOTFILE] [--roots DIR]",
		Short: "Verify a signed catalog against a node's trust store and, if it holds, trust it",
		Long: `Verify a signed catalog as a node does, against the trust store in --store,
and make it the trusted catalog if every rule holds: a threshold of distinct
root keys, strict parse, no rollback (older version, older root, or the same
version with other bytes), not expired, root rotations walked one version at
a time from roots/ (signed by the old and the new root), and every entry's
manifest hashing to its pinned CID, matching its entry, and signed by a
developer delegated that app. Nothing changes on any failure.

The store trusts the root pinned in DIR/root.json, never one learnt from the
catalog. Pin it on first use with --root (the curator's root.json, obtained
out of band). A damaged state file falls back to that root.

Trust store folder: root.json (the pinned root), state.json (trusted root
and highest version), catalog-CID.json (the trusted catalog).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if store == "" {
				return fmt.Errorf("--store is required: the node's trust store folder")
			}
			ts, err := openStore(store, rootFile)
			if err != nil {
				return err
			}
			if roots == "" {
				roots = filepath.Join(filepath.Dir(args[0]), registry.RootsDir)
			}
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			res, err := ts.Update(cmd.Context(), f, registry.RotationDir(roots))
			if err != nil {
				return fmt.Errorf("catalog %s refused: %w", args[0], err)
			}
			st := ts.Status()
			if asJSON {
				return writeJSON(cmd, map[string]any{
					"accepted": true, "changed": res.Changed, "rotations": res.Rotations,
					"signers": res.Catalog.Signers, "apps": len(res.Catalog.Entries), "status": st,
				})
			}
			w := cmd.OutOrStdout()
			if res.Rotations > 0 {
				fmt.Fprintf(w, "followed %d root rotation(s) to root version %d\n", res.Rotations, st.Root.Version)
			}
			if res.Changed {
				fmt.Fprintf(w, "accepted catalog version %d (root version %d, %d apps, signed by %d root keys, %d needed), expires %s\n",
					st.Version, st.Root.Version, len(res.Catalog.Entries), len(res.Catalog.Signers), st.Root.Threshold, st.Expires)
			} else {
				fmt.Fprintf(w, "catalog version %d is already trusted; nothing changed\n", st.Version)
			}
			return nil
		},
	}
	c.Flags().StringVar(&store, "store", "", "the node's trust store folder")
	c.Flags().StringVar(&rootFile, "root", "", "the registry root to pin (curator's root.json); required on first use")
	c.Flags().StringVar(&roots, "roots", "", "folder of root rotations R.json (default: roots/ beside CATALOG)")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

// openStore opens a trust store folder, pinning rootFile on first use.
func openStore(dir, rootFile string) (*registry.TrustStore, error) {
	ts, err := registry.PinnedTrustStore(dir, rootFile)
	switch {
	case errors.Is(err, registry.ErrPinnedRoot):
		return nil, fmt.Errorf("--root %w", err)
	case errors.Is(err, registry.ErrNoPinnedRoot):
		return nil, fmt.Errorf("%w: pass --root with the registry's root.json", err)
	}
	return ts, err
}

func newCatalogStatusCmd() *cobra.Command {
	var (
		store  string
		asJSON bool
	)
	c := &cobra.Command{
		Use:   "status --store DIR",
		Short: "Show a node trust store's catalog: root, version, expiry, stale or not, apps",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if store == "" {
				return fmt.Errorf("--store is required: the node's trust store folder")
			}
			ts, err := openStore(store, "")
			if err != nil {
				return err
			}
			st := ts.Status()
			apps := registry.Merge(ts.Current(), st.Stale, nil)
			if asJSON {
				return writeJSON(cmd, map[string]any{"status": st, "apps": apps})
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "root version %d (%d-of-%d keys)\n", st.Root.Version, st.Root.Threshold, len(st.Root.Keys))
			if st.Version > 0 {
				fmt.Fprintf(w, "catalog version %d, expires %s\n", st.Version, st.Expires)
			}
			if st.Stale {
				fmt.Fprintf(w, "STALE: %s\n", st.Reason)
			}
			if st.Reset != "" {
				fmt.Fprintf(w, "reset: %s\n", st.Reset)
			}
			for _, a := range apps {
				fmt.Fprintf(w, "%-24s %-12s %-8s %s\n", a.ID, a.Version, a.Channel, a.Label)
			}
			return nil
		},
	}
	c.Flags().StringVar(&store, "store", "", "the node's trust store folder")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}
