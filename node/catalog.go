package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/archy-node/archy/p2p"
	"github.com/archy-node/archy/registry"
)

// Follow names a curated registry the node follows: its catalogs arrive by
// gossip (or from the owner through the API), and only those that pass the
// registry's rules against the root the owner pinned are kept and passed on.
type Follow struct {
	// Name is the registry's name: the gossip topic and the state folder.
	Name string
	// RootFile is the registry root the owner pinned (archy catalog
	// init/rotate writes it as root.json).
	RootFile string
}

var registryName = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{0,62}$`)

// follower is one followed registry.
type follower struct {
	name  string
	store *registry.TrustStore
	rot   registry.RotationDir
	topic *p2p.Catalog
}

func (n *Node) follow(f Follow) (*follower, error) {
	if !registryName.MatchString(f.Name) {
		return nil, fmt.Errorf("follow registry %q: the name must match %s", f.Name, registryName)
	}
	root, _, err := registry.ReadRootFile(f.RootFile)
	if err != nil {
		return nil, fmt.Errorf("follow registry %s: %w", f.Name, err)
	}
	dir := filepath.Join(n.cfg.DataDir, "registries", f.Name)
	st, err := registry.OpenTrustStore(registry.TrustConfig{Dir: filepath.Join(dir, "trust"), Root: root,
		Logger: n.log.With("registry", f.Name)})
	if err != nil {
		return nil, err
	}
	fl := &follower{name: f.Name, store: st, rot: registry.RotationDir(filepath.Join(dir, "roots"))}
	if err := os.MkdirAll(string(fl.rot), 0o700); err != nil {
		return nil, fmt.Errorf("follow registry %s: %w", f.Name, err)
	}
	fl.topic, err = n.p2p.JoinCatalog(f.Name, func(ctx context.Context, from peer.ID, data []byte) p2p.Verdict {
		if err := fl.update(ctx, data); err != nil {
			n.log.Debug("catalog from peer refused", "registry", f.Name, "peer", from, "err", err)
			return verdict(err)
		}
		return p2p.Accept
	})
	if err != nil {
		return nil, err
	}
	return fl, nil
}

// verdict says whether a refused catalog counts against the peer that sent
// it: an older or expired catalog is what an honest peer that is behind
// forwards, so it is only ignored; anything else is rejected.
func verdict(err error) p2p.Verdict {
	if errors.Is(err, registry.ErrRollback) || errors.Is(err, registry.ErrExpired) {
		return p2p.Ignore
	}
	return p2p.Reject
}

// update applies a signed catalog to the trust store; a catalog the store
// already trusts is accepted again (a no-op), so peers keep passing the
// current one on.
func (fl *follower) update(ctx context.Context, data []byte) error {
	_, err := fl.store.Update(ctx, bytes.NewReader(data), fl.rot)
	return err
}

// drain reads the topic so gossipsub keeps delivering; the validator has
// already applied every message it let through.
func (fl *follower) drain(ctx context.Context) error {
	for {
		if _, _, err := fl.topic.Next(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("registry %s: %w", fl.name, err)
		}
	}
}

// CatalogStatus is what GET /api/v1/catalogs reports per registry.
type CatalogStatus struct {
	Name    string          `json:"name"`
	Status  registry.Status `json:"status"`
	Entries []string        `json:"entries,omitempty"` // id@version (channel)
}

func (n *Node) catalogs() []CatalogStatus {
	out := []CatalogStatus{}
	for _, fl := range n.followers {
		cs := CatalogStatus{Name: fl.name, Status: fl.store.Status()}
		if cur := fl.store.Current(); cur != nil {
			for _, e := range cur.Catalog.Entries {
				cs.Entries = append(cs.Entries, fmt.Sprintf("%s@%s (%s)", e.ID, e.Version, e.Channel))
			}
		}
		out = append(out, cs)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// handlePublishCatalog takes a signed catalog from the owner (or a
// curator on this machine), applies it, and gossips it to the registry's
// followers.
func (n *Node) handlePublishCatalog(w http.ResponseWriter, r *http.Request) {
	fl := n.followers[r.PathValue("name")]
	if fl == nil {
		http.Error(w, "this node does not follow that registry (archy node run --follow NAME=ROOTFILE)", http.StatusNotFound)
		return
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, p2p.MaxCatalogSize))
	if err != nil {
		http.Error(w, "read catalog: "+err.Error(), http.StatusRequestEntityTooLarge)
		return
	}
	if err := fl.update(r.Context(), data); err != nil {
		code := http.StatusBadRequest
		if errors.Is(err, registry.ErrRollback) {
			code = http.StatusConflict
		}
		http.Error(w, "catalog refused: "+err.Error(), code)
		return
	}
	if err := fl.topic.Publish(r.Context(), data); err != nil {
		n.log.Warn("gossip catalog", "registry", fl.name, "err", err)
	}
	writeJSON(w, CatalogStatus{Name: fl.name, Status: fl.store.Status()})
}
