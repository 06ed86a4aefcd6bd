package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
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
			cur := curator{dir: dir}
			cat, err := cur.loadDraft()
			if err != nil {
				return err
			}
			pub, name, err := cur.published()
			if err != nil {
				return err
			}
			rotation := cat.Root.Version == pub.Version+1
			if !rotation && !cat.Root.Equal(pub) {
				return fmt.Errorf("the draft's root (version %d) is not the published root (version %d) nor its next version; use archy catalog rotate to change the root",
					cat.Root.Version, pub.Version)
			}
			key, err := did.LoadKey(keyFile)
			if err != nil {
				return err
			}
			if !contains(cat.Root.Keys, key.DID()) && !(rotation && contains(pub.Keys, key.DID())) {
				return fmt.Errorf("key %s (%s) is not a root key of this catalog", keyFile, key.DID())
			}
			payload, err := cat.Payload()
			if err != nil {
				return err
			}
			path := cur.signedPath(cat.Version)
			env, err := readEnvelopeFile(path)
			switch {
			case errors.Is(err, fs.ErrNotExist):
				if env, err = registry.SignCatalog(payload, key); err != nil {
					return err
				}
			case err != nil:
				return err
			case !bytes.Equal(env.Payload, payload):
				return fmt.Errorf("%s holds other bytes for catalog version %d than the draft: the draft was edited after signing began; restore it or remove %s to start over",
					path, cat.Version, path)
			default:
				env.AddSignature(key)
			}
			if err := writeEnvelope(path, env); err != nil {
				return err
			}

			count := func(r registry.Root) int {
				n := 0
				for _, s := range env.Signatures {
					if contains(r.Keys, s.KeyID) {
						if _, err := (&did.Envelope{PayloadType: env.PayloadType, Payload: env.Payload, Signatures: []did.Signature{s}}).Verify(registry.CatalogPayloadType, 1, nil); err == nil {
							n++
						}
					}
				}
				return n
			}
			newN, oldN := count(cat.Root), count(pub)
			done := newN >= cat.Root.Threshold && (!rotation || oldN >= pub.Threshold)
			res := map[string]any{
				"version": cat.Version, "signed_by": key.DID(), "file": path,
				"signatures": newN, "threshold": cat.Root.Threshold, "published": false,
			}
			if rotation {
				res["old_root_signatures"], res["old_root_threshold"] = oldN, pub.Threshold
			}
			var published []string
			if done {
				if published, err = cur.publish(env, cat, pub, name, rotation); err != nil {
					return err
				}
				res["published"] = published
			}
			if asJSON {
				return writeJSON(cmd, res)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "signed catalog version %d as %s: %d root key(s) signed, %d needed", cat.Version, key.DID(), newN, cat.Root.Threshold)
			if rotation {
				fmt.Fprintf(w, " (new root %d); old root %d: %d signed, %d needed", cat.Root.Version, pub.Version, oldN, pub.Threshold)
			}
			fmt.Fprintln(w)
			if done {
				fmt.Fprintf(w, "threshold reached: published %v\n", published)
			}
			return nil
		},
	}
	c.Flags().StringVar(&dir, "dir", ".", "curator folder")
	c.Flags().StringVar(&keyFile, "key", "", "root key file to sign with")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// publish checks a fully signed catalog as a node would and writes the
// published files.
func (c curator) publish(env *did.Envelope, cat *registry.Catalog, pub registry.Root, name string, rotation bool) ([]string, error) {
	data, err := env.Marshal()
	if err != nil {
		return nil, err
	}
	if _, err := registry.VerifyCatalog(bytes.NewReader(data), cat.Root, time.Now()); err != nil {
		return nil, fmt.Errorf("the signed catalog would be refused by nodes: %w", err)
	}
	if old, err := readEnvelopeFile(c.path(catalogFile)); err == nil {
		if prev, err := registry.ParseCatalog(old.Payload); err == nil && prev.Version >= cat.Version && !bytes.Equal(old.Payload, env.Payload) {
			return nil, fmt.Errorf("%s already holds catalog version %d; not publishing version %d over it", c.path(catalogFile), prev.Version, cat.Version)
		}
	}
	var out []string
	if rotation {
		p := c.path(rootsDir, strconv.FormatInt(cat.Root.Version, 10)+".json")
		if err := writeEnvelope(p, env); err != nil {
			return nil, err
		}
		if err := registry.WriteRootFile(c.path(registry.RootFileName), name, cat.Root); err != nil {
			return nil, err
		}
		out = append(out, p, c.path(registry.RootFileName))
	}
	if err := writeEnvelope(c.path(catalogFile), env); err != nil {
		return nil, err
	}
	return append([]string{c.path(catalogFile)}, out...), nil
}
