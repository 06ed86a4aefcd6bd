package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/archy-node/archy/did"
)

func newDIDCmd() *cobra.Command {
	c := &cobra.Command{Use: "did", Short: "Create, show and resolve did:key identities"}
	c.AddCommand(newDIDNewCmd(), newDIDShowCmd(), newDIDResolveCmd())
	return c
}

func newDIDNewCmd() *cobra.Command {
	var out string
	var asJSON bool
	c := &cobra.Command{
		Use:   "new --out KEYFILE",
		Short: "Create an Ed25519 did:key, store its private key (mode 0600) and print the DID",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return fmt.Errorf("--out is required: the file to store the new private key in")
			}
			k, err := did.Generate()
			if err != nil {
				return err
			}
			if err := k.Save(out); err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd, map[string]string{"did": k.DID(), "key_file": out})
			}
			fmt.Fprintln(cmd.OutOrStdout(), k.DID())
			return nil
		},
	}
	c.Flags().StringVar(&out, "out", "", "file to write the private key to (created with mode 0600; never overwritten)")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func newDIDShowCmd() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "show KEYFILE",
		Short: "Print the DID of a key file",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			k, err := did.LoadKey(args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd, map[string]string{"did": k.DID()})
			}
			fmt.Fprintln(cmd.OutOrStdout(), k.DID())
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func newDIDResolveCmd() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "resolve DID",
		Short: "Resolve a did:key to its DID document",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			doc, err := did.Resolve(args[0])
			if err != nil {
				return fmt.Errorf("resolve %q: %w", args[0], err)
			}
			if asJSON {
				return writeJSON(cmd, doc)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "id: %s\n", doc.ID)
			for _, vm := range doc.VerificationMethod {
				fmt.Fprintf(cmd.OutOrStdout(), "key: %s %s\n", vm.Type, vm.PublicKeyMultibase)
			}
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print the DID document as JSON")
	return c
}
