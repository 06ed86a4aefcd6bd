package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/archy-node/archy/did"
	"github.com/archy-node/archy/registry"
)

// curatorLayout is the curator folder, documented once for every command.
const curatorLayout = `The curator folder (--dir, default "."):

  draft.json         the next catalog version, unsigned (archy.catalog/v1);
                     init creates it, add and rotate change it
  root.json          the registry's current root (keys, threshold, version):
                     node owners pin it in their trust store
  signed/V.json      catalog version V as its signatures accumulate
  catalog.json       the latest catalog that reached its threshold: publish it
  roots/R.json       the catalog that introduced root version R (R >= 2):
                     publish the folder beside catalog.json; nodes that pin
                     an older root walk it to the current one

Once version V has a signature, add and rotate start version V+1, so signed
bytes never change under the co-signers.`

// defaultValidity is how long a new catalog version stays valid.
const defaultValidity = registry.DefaultValidity

func newCatalogCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "catalog",
		Short: "Curate a signed registry catalog, and verify one on a node",
		Long: `A registry curator keeps a signed, versioned catalog of vetted app manifests
that nodes follow. The workflow:

  archy catalog init --root-key DID... --threshold N     root keys and the first draft
  archy catalog add SIGNED-MANIFEST...                   vet developer manifests into the draft
  archy catalog sign --key KEYFILE                       co-sign; run once per key
  archy catalog rotate --add-key DID --remove-key DID    new root keys (signed by old and new)
  archy catalog bump                                     next version, fresh expiry, same apps
  archy catalog verify catalog.json --store DIR          what a node does with it
  archy catalog show [FILE]                              print a catalog

` + curatorLayout,
	}
	c.AddCommand(
		newCatalogInitCmd(),
		newCatalogAddCmd(),
		newCatalogSignCmd(),
		newCatalogRotateCmd(),
		newCatalogBumpCmd(),
		newCatalogVerifyCmd(),
		newCatalogStatusCmd(),
		newCatalogShowCmd(),
	)
	return c
}

// curatorError words a curator library error with the command's flags.
func curatorError(err error) error {
	var opt *registry.OptionError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, registry.ErrNoDraft):
		return fmt.Errorf("%w: run archy catalog init first (or pass --dir)", err)
	case errors.Is(err, registry.ErrDraftRoot):
		return fmt.Errorf("%w; use archy catalog rotate to change the root", err)
	case errors.As(err, &opt):
		switch opt.Option {
		case "root":
			return fmt.Errorf("--root-key/--threshold: %w", err)
		case "validity":
			return fmt.Errorf("--expires: %w", err)
		case "add":
			return fmt.Errorf("--add-key %w", err)
		case "remove":
			return fmt.Errorf("--remove-key %w", err)
		}
	}
	var del *registry.DelegationError
	if errors.As(err, &del) {
		return fmt.Errorf("%w; pass --delegate to let %s publish it too", err, del.Signer)
	}
	return err
}

// keyDID takes a DID or a key file and returns the DID.
func keyDID(s string) (string, error) {
	if strings.HasPrefix(s, did.Prefix) {
		pub, err := did.Parse(s)
		if err != nil {
			return "", fmt.Errorf("root key %q: %w", s, err)
		}
		return did.FromPublicKey(pub), nil
	}
	k, err := did.LoadKey(s)
	if err != nil {
		return "", fmt.Errorf("root key %q is neither a did:key nor a key file: %w", s, err)
	}
	return k.DID(), nil
}
