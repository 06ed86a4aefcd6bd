package main

import (
	stdjson "encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/archy-node/archy/did"
	"github.com/archy-node/archy/internal/atomicfile"
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

// The curator folder's files.
const (
	draftFile   = "draft.json"
	catalogFile = "catalog.json"
	signedDir   = "signed"
	rootsDir    = "roots"
)

// defaultValidity is how long a new catalog version stays valid.
const defaultValidity = 30 * 24 * time.Hour

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

// curator is an open curator folder.
type curator struct {
	dir string
}

func (c curator) path(name ...string) string {
	return filepath.Join(append([]string{c.dir}, name...)...)
}

func (c curator) signedPath(v int64) string {
	return c.path(signedDir, strconv.FormatInt(v, 10)+".json")
}

// loadDraft reads draft.json.
func (c curator) loadDraft() (*registry.Catalog, error) {
	data, err := readFileCapped(c.path(draftFile), registry.MaxCatalogSize)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no draft in %s: run archy catalog init first (or pass --dir)", c.dir)
	}
	if err != nil {
		return nil, err
	}
	var cat registry.Catalog
	if err := registry.StrictUnmarshal(data, &cat); err != nil {
		return nil, fmt.Errorf("read %s: %w", c.path(draftFile), err)
	}
	return &cat, nil
}

func (c curator) saveDraft(cat *registry.Catalog) error {
	data, err := stdjson.MarshalIndent(cat, "", "  ")
	if err != nil {
		return fmt.Errorf("save draft: %w", err)
	}
	if err := atomicfile.Write(c.path(draftFile), append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("save draft %s: %w", c.path(draftFile), err)
	}
	return nil
}

// published returns the root nodes pin now (root.json).
func (c curator) published() (registry.Root, string, error) {
	return registry.ReadRootFile(c.path(registry.RootFileName))
}

// openForEdit returns the draft ready for a change: if its version has
// signatures already, the next version, valid for validity from now.
func (c curator) openForEdit(validity time.Duration, now time.Time) (*registry.Catalog, bool, error) {
	cat, err := c.loadDraft()
	if err != nil {
		return nil, false, err
	}
	if _, err := os.Stat(c.signedPath(cat.Version)); err == nil {
		if cat.Version >= registry.MaxCatalogVersion {
			return nil, false, fmt.Errorf("draft: version %d is the last one", cat.Version)
		}
		cat.Version++
		cat.Expires = registry.FormatExpires(now.Add(validity))
		return cat, true, nil
	}
	return cat, false, nil
}

// readFileCapped reads a file but no more than max bytes of it.
func readFileCapped(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("read %s: larger than %d bytes", path, max)
	}
	return data, nil
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

// writeEnvelope writes an envelope's JSON atomically.
func writeEnvelope(path string, env *did.Envelope) error {
	data, err := env.Marshal()
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := atomicfile.Write(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// readEnvelopeFile reads and parses a catalog envelope file.
func readEnvelopeFile(path string) (*did.Envelope, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	_, env, err := registry.ReadCatalog(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return env, nil
}
