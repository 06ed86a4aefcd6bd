package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"sync"

	cid "github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/archy-node/archy/cas"
	"github.com/archy-node/archy/did"
	"github.com/archy-node/archy/internal/atomicfile"
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
	p2p   *p2p.Node
	log   *slog.Logger
	store *registry.TrustStore
	// rot holds the root rotation links this node has applied
	// (<version>.json), which it passes on with the catalog.
	rot   registry.RotationDir
	blobs string // where fetched bundle blobs land before they are read
	topic *p2p.Catalog

	// fetching bounds the blob fetches pointers start at once: a pointer
	// that arrives while they are busy is ignored (its sender re-gossips).
	fetching chan struct{}

	mu   sync.Mutex
	blob cid.Cid // the pinned blob of the current bundle, if it travels as one
}

// maxBlobFetches is how many catalog blobs one registry fetches at once.
const maxBlobFetches = 2

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
	fl := &follower{name: f.Name, p2p: n.p2p, log: n.log.With("registry", f.Name), store: st,
		rot: registry.RotationDir(filepath.Join(dir, "roots")), blobs: filepath.Join(dir, "blobs"),
		fetching: make(chan struct{}, maxBlobFetches)}
	for _, d := range []string{string(fl.rot), fl.blobs} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("follow registry %s: %w", f.Name, err)
		}
	}
	if b, err := os.ReadFile(fl.blobFile()); err == nil {
		if c, err := cas.Parse(string(b)); err == nil {
			fl.blob = c // still pinned from the last run
		}
	}
	fl.topic, err = n.p2p.JoinCatalog(f.Name, func(ctx context.Context, from peer.ID, data []byte) p2p.Verdict {
		if _, err := fl.apply(ctx, data); err != nil {
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

// errUnchecked is returned when a catalog message could not be checked
// now (its blob could not be fetched): the sender is not blamed.
var errUnchecked = errors.New("catalog not checked")

// verdict says whether a refused catalog counts against the peer that sent
// it: an older or expired catalog, one whose rotations this node lacks, or
// one it could not fetch is what an honest peer may forward, so it is only
// ignored; anything else (bad signatures, a forged chain link, malformed
// bytes) is rejected.
func verdict(err error) p2p.Verdict {
	switch {
	case errors.Is(err, registry.ErrRollback), errors.Is(err, registry.ErrExpired),
		errors.Is(err, registry.ErrRotationMissing), errors.Is(err, errUnchecked):
		return p2p.Ignore
	}
	return p2p.Reject
}

// apply applies a catalog message: a bare signed catalog, a bundle (the
// catalog with its rotation chain), or a pointer to a bundle blob. A
// catalog the store already trusts is accepted again (a no-op), so peers
// keep passing the current one on.
func (fl *follower) apply(ctx context.Context, data []byte) (registry.UpdateResult, error) {
	switch registry.MessageType(data) {
	case registry.PointerType:
		return fl.applyPointer(ctx, data)
	case registry.BundleType:
		b, err := registry.ParseBundle(data)
		if err != nil {
			return registry.UpdateResult{}, err
		}
		return fl.applyBundle(ctx, b)
	}
	res, err := fl.store.Update(ctx, bytes.NewReader(data), fl.rot)
	if err == nil {
		fl.keepLinks(res.Links)
	}
	return res, err
}

// applyBundle applies a bundle's catalog, walking rotations from this
// node's own links first, then the bundle's chain; the trust store checks
// every link against the root before it.
func (fl *follower) applyBundle(ctx context.Context, b *registry.Bundle) (registry.UpdateResult, error) {
	res, err := fl.store.Update(ctx, bytes.NewReader(b.Catalog), registry.AnyRotations{fl.rot, b})
	if err == nil {
		fl.keepLinks(res.Links)
	}
	return res, err
}

// keepLinks saves the rotation links an update applied, to pass them on.
// The update stands if this fails: the links are only for other nodes.
func (fl *follower) keepLinks(links []registry.Link) {
	for _, l := range links {
		path := filepath.Join(string(fl.rot), strconv.FormatInt(l.Version, 10)+".json")
		if err := atomicfile.Write(path, l.Catalog, 0o644); err != nil {
			fl.log.Warn("keep root rotation", "version", l.Version, "err", err)
		}
	}
}

// applyPointer fetches the bundle a pointer names from the swarm, unless
// the pointer says it is no newer than the trusted catalog, and applies it.
// The pointer's versions must be the bundle's.
func (fl *follower) applyPointer(ctx context.Context, data []byte) (registry.UpdateResult, error) {
	p, err := registry.ParsePointer(data)
	if err != nil {
		return registry.UpdateResult{}, err
	}
	if p.Registry != fl.name {
		return registry.UpdateResult{}, fmt.Errorf("catalog pointer: %w: registry %q on the topic of %q", registry.ErrInvalidCatalog, p.Registry, fl.name)
	}
	c, err := cas.Parse(p.CID)
	if err != nil {
		return registry.UpdateResult{}, fmt.Errorf("catalog pointer: %w: %w", registry.ErrInvalidCatalog, err)
	}
	st := fl.store.Status()
	fl.mu.Lock()
	mine := fl.blob
	fl.mu.Unlock()
	switch {
	case p.RootVersion > st.Root.Version || p.Version > st.Version:
	case p.RootVersion == st.Root.Version && p.Version == st.Version && c == mine:
		return registry.UpdateResult{Catalog: fl.store.Current()}, nil
	default:
		return registry.UpdateResult{}, fmt.Errorf("catalog pointer: %w: version %d (root %d), trusted %d (root %d)",
			registry.ErrRollback, p.Version, p.RootVersion, st.Version, st.Root.Version)
	}
	select {
	case fl.fetching <- struct{}{}:
		defer func() { <-fl.fetching }()
	default:
		return registry.UpdateResult{}, fmt.Errorf("catalog pointer %s: %w: %d blob fetches already running", c, errUnchecked, maxBlobFetches)
	}
	// The peer that passed the pointer on checked the blob and holds it,
	// so a blob that cannot be fetched counts against it.
	raw, err := fl.fetchBlob(ctx, c, p.Size)
	if err != nil {
		return registry.UpdateResult{}, fmt.Errorf("catalog pointer %s: fetch: %w", c, err)
	}
	b, err := registry.ParseBundle(raw)
	if err != nil {
		_ = fl.p2p.Unpin(ctx, c)
		return registry.UpdateResult{}, err
	}
	res, err := fl.applyBundle(ctx, b)
	if err == nil && (res.Catalog.Catalog.Version != p.Version || res.Catalog.Catalog.Root.Version != p.RootVersion) {
		err = fmt.Errorf("catalog pointer: %w: it says version %d (root %d), the bundle is %d (root %d)", registry.ErrInvalidCatalog,
			p.Version, p.RootVersion, res.Catalog.Catalog.Version, res.Catalog.Catalog.Root.Version)
	}
	if err != nil {
		_ = fl.p2p.Unpin(ctx, c)
		return res, err
	}
	fl.setBlob(ctx, c)
	return res, nil
}

// fetchBlob fetches a bundle blob of size bytes from the swarm (the peer
// that gossiped the pointer holds it, having checked it) and pins it, so
// this node serves it on.
func (fl *follower) fetchBlob(ctx context.Context, c cid.Cid, size int64) ([]byte, error) {
	tmp, err := os.MkdirTemp(fl.blobs, "fetch-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, "bundle.json")
	if err := fl.getFile(ctx, c, size, out); err != nil {
		return nil, err
	}
	if err := fl.p2p.Pin(ctx, c); err != nil {
		return nil, err
	}
	f, err := os.Open(out)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var buf bytes.Buffer
	if n, err := buf.ReadFrom(io.LimitReader(f, size+1)); err != nil || n != size {
		_ = fl.p2p.Unpin(ctx, c)
		return nil, fmt.Errorf("read blob: %d bytes, the pointer says %d (%v)", n, size, err)
	}
	return buf.Bytes(), nil
}

// getFile fetches a catalog blob, its download bounded by the pointer's size.
func (fl *follower) getFile(ctx context.Context, c cid.Cid, size int64, out string) error {
	return fl.p2p.GetFileSized(ctx, c, size, out)
}

// blobFile names the pinned blob across restarts, so it is unpinned when
// the next one replaces it.
func (fl *follower) blobFile() string { return filepath.Join(filepath.Dir(fl.blobs), "blob.cid") }

// setBlob makes c the pinned blob of the current catalog.
func (fl *follower) setBlob(ctx context.Context, c cid.Cid) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	old := fl.blob
	fl.blob = c
	if err := atomicfile.Write(fl.blobFile(), []byte(c.String()), 0o644); err != nil {
		fl.log.Warn("record catalog blob", "cid", c, "err", err)
	}
	if old.Defined() && old != c {
		_ = fl.p2p.Unpin(ctx, old)
	}
}

// bundle builds the message that carries the trusted catalog: the catalog
// and the newest rotation links this node holds, consecutive up to its
// root, within DefaultMaxRootRotations and MaxBundleSize.
func (fl *follower) bundle() ([]byte, *registry.VerifiedCatalog, error) {
	cur := fl.store.Current()
	if cur == nil {
		return nil, nil, errors.New("no trusted catalog")
	}
	catalog, err := cur.Envelope.Marshal()
	if err != nil {
		return nil, nil, err
	}
	budget := registry.MaxBundleSize - 4*len(catalog)/3 - 4<<10
	var chain []registry.Link
	for v := cur.Catalog.Root.Version; v >= 2 && len(chain) < registry.DefaultMaxRootRotations; v-- {
		rc, err := fl.rot.Rotation(context.Background(), v)
		if err != nil {
			break
		}
		raw, err := io.ReadAll(io.LimitReader(rc, registry.MaxCatalogSize+1))
		rc.Close()
		if err != nil || len(raw) > registry.MaxCatalogSize {
			break
		}
		if env, err := did.ParseEnvelope(raw); err == nil && cas.Sum(env.Payload) == cur.CID {
			continue // the catalog introduces its root itself
		}
		if budget -= 4*len(raw)/3 + 64; budget < 0 {
			break
		}
		chain = append(chain, registry.Link{Version: v, Catalog: raw})
	}
	slices.Reverse(chain)
	data, err := (&registry.Bundle{Chain: chain, Catalog: catalog}).Marshal()
	return data, cur, err
}

// publish gossips the trusted catalog with its chain: inline when it fits
// a gossip message, else as a blob in the swarm and a pointer to it.
func (fl *follower) publish(ctx context.Context) error {
	data, cur, err := fl.bundle()
	if err != nil {
		return fmt.Errorf("registry %s: bundle catalog: %w", fl.name, err)
	}
	if len(data) <= p2p.MaxCatalogSize {
		return fl.topic.Publish(ctx, data)
	}
	c, err := fl.p2p.Add(ctx, bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("registry %s: store catalog blob: %w", fl.name, err)
	}
	if err := fl.p2p.Pin(ctx, c); err != nil {
		return fmt.Errorf("registry %s: pin catalog blob: %w", fl.name, err)
	}
	fl.setBlob(ctx, c)
	ptr, err := (&registry.Pointer{Registry: fl.name, Version: cur.Catalog.Version, RootVersion: cur.Catalog.Root.Version,
		CID: c.String(), Size: int64(len(data))}).Marshal()
	if err != nil {
		return err
	}
	return fl.topic.Publish(ctx, ptr)
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

// ErrNotFollowed is the answer (404) to a catalog for a registry the node
// was not configured to follow (Config.Follow).
var ErrNotFollowed = errors.New("this node does not follow that registry")

// handlePublishCatalog takes a signed catalog (or a bundle with its
// rotation chain) from the owner or a curator on this machine, applies it,
// and gossips it with this node's chain to the registry's followers.
func (n *Node) handlePublishCatalog(w http.ResponseWriter, r *http.Request) {
	fl := n.followers[r.PathValue("name")]
	if fl == nil {
		http.Error(w, fmt.Sprintf("registry %q: %v", r.PathValue("name"), ErrNotFollowed), http.StatusNotFound)
		return
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, registry.MaxBundleSize))
	if err != nil {
		http.Error(w, "read catalog: "+err.Error(), http.StatusRequestEntityTooLarge)
		return
	}
	if _, err := fl.apply(r.Context(), data); err != nil {
		code := http.StatusBadRequest
		if errors.Is(err, registry.ErrRollback) {
			code = http.StatusConflict
		}
		http.Error(w, "catalog refused: "+err.Error(), code)
		return
	}
	if err := fl.publish(r.Context()); err != nil {
		n.log.Warn("gossip catalog", "registry", fl.name, "err", err)
	}
	writeJSON(w, CatalogStatus{Name: fl.name, Status: fl.store.Status()})
}
