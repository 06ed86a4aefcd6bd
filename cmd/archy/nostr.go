package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/archy-node/archy/p2p/discovery"
)

func newNostrCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "nostr",
		Short: "Create and show the Nostr key that signs a publisher's announcements",
		Long: `A publisher announces releases on Nostr relays with a Nostr key
(secp256k1), bound to their DID by a DID-signed statement in every
announcement. Key files hold one secret key, as an nsec or 64 hex digits, and
must be readable by their owner only (mode 0600).`,
	}
	c.AddCommand(newNostrNewCmd(), newNostrShowCmd())
	return c
}

// nostrKeyInfo is what the nostr commands print: public parts only.
type nostrKeyInfo struct {
	PubKey  string `json:"pubkey"`
	Npub    string `json:"npub"`
	KeyFile string `json:"key_file"`
}

func printNostrKey(cmd *cobra.Command, k *discovery.Key, file string, asJSON bool) error {
	info := nostrKeyInfo{PubKey: k.PublicKey(), Npub: k.Npub(), KeyFile: file}
	if asJSON {
		return writeJSON(cmd, info)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "pubkey: %s\nnpub: %s\n", info.PubKey, info.Npub)
	return nil
}

func newNostrNewCmd() *cobra.Command {
	var out string
	var asJSON bool
	c := &cobra.Command{
		Use:   "new --out KEYFILE",
		Short: "Create a Nostr key, store it (mode 0600, never over an existing file) and print its public key",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return fmt.Errorf("--out is required: the file to store the new Nostr secret key in")
			}
			k, err := discovery.GenerateKey()
			if err != nil {
				return err
			}
			if err := k.Save(out); err != nil {
				return err
			}
			return printNostrKey(cmd, k, out, asJSON)
		},
	}
	c.Flags().StringVar(&out, "out", "", "file to write the secret key to (created with mode 0600; never overwritten)")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func newNostrShowCmd() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "show KEYFILE",
		Short: "Print the public key (hex and npub) of a Nostr key file",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			k, err := discovery.LoadKey(args[0])
			if err != nil {
				return err
			}
			return printNostrKey(cmd, k, args[0], asJSON)
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}
