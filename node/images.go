package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/archy-node/archy/cas"
	"github.com/archy-node/archy/did"
	"github.com/archy-node/archy/internal/atomicfile"
	"github.com/archy-node/archy/p2p/discovery"
)

// ErrImageUnsized is returned when a manifest asks for an image from the
// swarm without pinning its archive's size (image.size).
var ErrImageUnsized = errors.New("the manifest pins no size for the image archive (image.size): it is not fetched from the swarm")

// ErrUnknownRelease is returned when an install names a manifest CID that
// no discovered release or followed catalog carries.
var ErrUnknownRelease = errors.New("not among the discovered releases or followed catalogs")

// swarmImages fetches image archives from the swarm for the orchestrator:
// the manifest pins each by its sum (the BLAKE3 of the archive), which
// p2p resolves to the root the swarm moves it as and checks on arrival.
// Installed images are pinned, and provided under both names, so every
// node that runs an app serves it to the next. The manifest pins each
// archive's size too, and the fetch never goes past it: an image without
// one is not fetched from the swarm.
type swarmImages struct{ n *Node }

func (s swarmImages) FetchArchive(ctx context.Context, c string, size int64, progress func(done, total int64)) (string, error) {
	sum, err := cas.Parse(c)
	if err != nil {
		return "", fmt.Errorf("image cid: %w", err)
	}
	if size <= 0 {
		return "", fmt.Errorf("image %s: %w", c, ErrImageUnsized)
	}
	dir := filepath.Join(s.n.cfg.DataDir, "images")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("create image folder: %w", err)
	}
	out := filepath.Join(dir, sum.String()+".tar")
	// Nothing fetched from here is collected before the pin holds it.
	end := s.n.p2p.Store().Session()
	defer end()
	root, err := s.n.p2p.GetNamed(ctx, sum, size, out, progress)
	if err != nil {
		return "", err
	}
	if err := s.n.p2p.Pin(ctx, root); err != nil {
		return "", err
	}
	s.n.provide(root)
	s.n.provide(sum)
	return out, nil
}

// releaseByCID finds the signed manifest with that CID among the releases
// this node discovered and the entries of the catalogs it follows.
func (n *Node) releaseByCID(ctx context.Context, c string) (json.RawMessage, error) {
	want, err := cas.Parse(c)
	if err != nil {
		return nil, fmt.Errorf("manifest cid: %w", err)
	}
	var cidOnly *discovery.Release
	for _, r := range n.store.List() {
		if r.CID.Equals(want) {
			if len(r.Envelope) > 0 {
				return r.Envelope, nil
			}
			cidOnly = r
		}
	}
	for _, fl := range n.followers {
		cur := fl.store.Current()
		if cur == nil {
			continue
		}
		for _, e := range cur.Catalog.Entries {
			if e.Manifest == want.String() && e.Envelope != nil {
				return marshalEnvelope(e.Envelope)
			}
		}
	}
	if cidOnly != nil {
		// Announced by CID alone: fetch the envelope from the swarm now.
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		r, err := n.completeRelease(ctx, cidOnly)
		if err != nil {
			return nil, err
		}
		return r.Envelope, nil
	}
	return nil, fmt.Errorf("manifest %s: %w", c, ErrUnknownRelease)
}

func marshalEnvelope(e *did.Envelope) (json.RawMessage, error) {
	b, err := e.Marshal()
	if err != nil {
		return nil, fmt.Errorf("encode envelope: %w", err)
	}
	return b, nil
}

// markPublished records that this node's owner published the file sum
// (handed it over through the API): it stays pinned whatever apps do.
func (n *Node) markPublished(sum string) error {
	dir := filepath.Join(n.cfg.DataDir, "published")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("record published file: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(dir, sum), nil, 0o600); err != nil {
		return fmt.Errorf("record published file: %w", err)
	}
	return nil
}

func (n *Node) published(sum string) bool {
	_, err := os.Stat(filepath.Join(n.cfg.DataDir, "published", sum))
	return err == nil
}

// pruneImages lets go of the images fetched for apps that no kept release
// pins any more (after an uninstall or an update): the archive file goes,
// its root is unpinned unless the owner published it, and a GC frees the
// blocks. Installs and updates wait while it runs (imgMu), so an image
// being fetched is never taken.
func (n *Node) pruneImages(ctx context.Context) error {
	n.imgMu.Lock()
	defer n.imgMu.Unlock()
	dir := filepath.Join(n.cfg.DataDir, "images")
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("prune images: %w", err)
	}
	inUse := n.orch.ImageCIDs()
	freed := 0
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".tar")
		if !ok || inUse[name] {
			continue
		}
		sum, err := cas.Parse(name)
		if err != nil {
			continue
		}
		if root, ok := n.p2p.Root(sum); ok && !n.published(name) {
			if err := n.p2p.Unpin(ctx, root); err != nil {
				return fmt.Errorf("prune images: %w", err)
			}
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("prune images: %w", err)
		}
		freed++
	}
	if freed == 0 {
		return nil
	}
	res, err := n.p2p.GC(ctx)
	if err != nil {
		return fmt.Errorf("prune images: %w", err)
	}
	n.log.Info("images pruned", "images", freed, "gc", res)
	return nil
}
