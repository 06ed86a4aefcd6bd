package main

import (
	"fmt"
	"path/filepath"

	cid "github.com/ipfs/go-cid"
	"github.com/spf13/cobra"

	"github.com/archy-node/archy/did"
	"github.com/archy-node/archy/internal/atomicfile"
	"github.com/archy-node/archy/registry"
)

// signedFile is the envelope's default name in the app folder.
const signedFile = "manifest.signed.json"

func newAppSignCmd() *cobra.Command {
	var keyFile, out string
	var asJSON bool
	c := &cobra.Command{
		Use:   "sign PATH --key KEYFILE [--out FILE]",
		Short: "Validate an app manifest and sign it with the publisher's DID key (a DSSE envelope)",
		Long: `Validate an app manifest, then sign its canonical bytes with the
publisher's key and write the DSSE envelope (JSON). The key's DID must be the
manifest's publisher. By default the envelope goes to manifest.signed.json in
the app folder; --out - writes it to stdout.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if keyFile == "" {
				return fmt.Errorf("--key is required: the publisher's key file (archy did new --out KEYFILE)")
			}
			l, err := registry.Load(args[0])
			if err != nil {
				return err
			}
			key, err := did.LoadKey(keyFile)
			if err != nil {
				return err
			}
			data, c, err := signLoaded(l, key)
			if err != nil {
				return err
			}
			if out == "-" {
				_, err := cmd.OutOrStdout().Write(data)
				return err
			}
			if out, err = writeSigned(l, out, data); err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd, map[string]string{"out": out, "cid": c.String(), "signer": key.DID(), "id": l.Manifest.ID, "version": l.Manifest.Version})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "signed %s %s\ncid: %s\nsigner: %s\nenvelope: %s\n", l.Manifest.ID, l.Manifest.Version, c, key.DID(), out)
			return nil
		},
	}
	c.Flags().StringVar(&keyFile, "key", "", "the publisher's key file (mode 0600)")
	c.Flags().StringVar(&out, "out", "", "where to write the envelope (default: <app folder>/"+signedFile+"; - for stdout)")
	c.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return c
}

// signLoaded signs a loaded manifest with the publisher's key and returns
// the DSSE envelope (JSON, newline-terminated) and the manifest's CID.
// `archy app sign` and `archy app publish` both sign through it.
func signLoaded(l *registry.Loaded, key *did.Key) ([]byte, cid.Cid, error) {
	env, c, err := registry.Sign(l.Manifest, key)
	if err != nil {
		return nil, cid.Undef, fmt.Errorf("%w: sign with the publisher's key, or set publisher: %s in %s", err, key.DID(), l.File)
	}
	if !c.Equals(l.CID) {
		return nil, cid.Undef, fmt.Errorf("sign %s: signed cid %s differs from the loaded %s", l.File, c, l.CID)
	}
	data, err := env.Marshal()
	if err != nil {
		return nil, cid.Undef, fmt.Errorf("sign %s: %w", l.File, err)
	}
	return append(data, '\n'), c, nil
}

// writeSigned writes an envelope to out, or to manifest.signed.json in
// the app folder when out is empty, and returns where it went.
func writeSigned(l *registry.Loaded, out string, data []byte) (string, error) {
	if out == "" {
		out = filepath.Join(l.Dir, signedFile)
	}
	if err := atomicfile.Write(out, data, 0o644); err != nil {
		return "", fmt.Errorf("write signed manifest: %w", err)
	}
	return out, nil
}
