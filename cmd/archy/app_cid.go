package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/archy-node/archy/registry"
)

func newAppCIDCmd() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "cid PATH",
		Short: "Print the CID of an app manifest (the BLAKE3 CID of its canonical bytes)",
		Long: `Print the CID of an app manifest: CIDv1, raw codec, BLAKE3, base32, over
the manifest's canonical (RFC 8785) bytes, after validation. PATH is an app
folder or a manifest file. The same manifest written with other key order,
whitespace or format (YAML or JSON) has the same CID.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := registry.Load(args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd, map[string]string{"cid": l.CID.String(), "id": l.Manifest.ID, "version": l.Manifest.Version, "file": l.File})
			}
			fmt.Fprintln(cmd.OutOrStdout(), l.CID)
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}
