package main

import (
	"bytes"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/archy-node/archy/did"
	"github.com/archy-node/archy/registry"
)

func newAppVerifyCmd() *cobra.Command {
	var asJSON bool
	var signer string
	c := &cobra.Command{
		Use:   "verify FILE",
		Short: "Verify a signed app manifest and print its signer DID and manifest CID",
		Long: `Verify a signed app manifest (a DSSE envelope, as archy app sign writes
it; - reads stdin): the payload type, the Ed25519 signature by the DID in the
keyid, that the signer is the manifest's publisher, the strict canonical
form of the payload, and every validation rule. The envelope itself must be
byte for byte in the form archy writes, so any changed byte fails.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := readEnvelope(cmd, args[0])
			if err != nil {
				return err
			}
			v, err := registry.VerifyEnvelope(data)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			// DSSE signs the payload type and payload only; refuse any
			// other spelling of the envelope (reformatted JSON, base64
			// slack bits) so that a changed byte never goes unnoticed.
			canon, err := v.Envelope.Marshal()
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			if !bytes.Equal(bytes.TrimSuffix(data, []byte("\n")), canon) {
				return fmt.Errorf("%s: the signature holds but the envelope bytes were altered or re-encoded (not the form archy app sign writes)", args[0])
			}
			if signer != "" && v.Signer != signer {
				return fmt.Errorf("%s: signed by %s, not by %s", args[0], v.Signer, signer)
			}
			if asJSON {
				return writeJSON(cmd, map[string]string{"signer": v.Signer, "cid": v.CID.String(), "id": v.Manifest.ID, "version": v.Manifest.Version, "name": v.Manifest.Name})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "signer: %s\ncid: %s\napp: %s %s\n", v.Signer, v.CID, v.Manifest.ID, v.Manifest.Version)
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	c.Flags().StringVar(&signer, "signer", "", "also require this signer DID")
	return c
}

// readEnvelope reads an envelope file (or stdin for -), capped at the
// envelope size limit.
func readEnvelope(cmd *cobra.Command, name string) ([]byte, error) {
	var r io.Reader
	if name == "-" {
		r = cmd.InOrStdin()
	} else {
		f, err := os.Open(name)
		if err != nil {
			return nil, fmt.Errorf("read signed manifest: %w", err)
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, did.MaxEnvelopeSize+1))
	if err != nil {
		return nil, fmt.Errorf("read signed manifest %s: %w", name, err)
	}
	if len(data) > did.MaxEnvelopeSize {
		return nil, fmt.Errorf("read signed manifest %s: larger than the %d-byte cap", name, did.MaxEnvelopeSize)
	}
	return data, nil
}
