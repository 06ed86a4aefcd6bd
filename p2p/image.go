package p2p

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	"github.com/archy-node/archy/cas"
	"github.com/archy-node/archy/internal/ociimage"
	cid "github.com/ipfs/go-cid"
)

// PushImage checks the OCI image archive at path (every blob against its
// sha256 digest, the index and manifests complete: see package oci) and
// imports it into the block store. The archive is chunked at its layers'
// edges, so a later version that shares layers shares their blocks and
// peers holding the old version fetch only what changed. The caller pins
// and provides the root as it needs.
func (n *Node) PushImage(ctx context.Context, path string) (cid.Cid, ociimage.Image, error) {
	img, err := ociimage.VerifyFile(path)
	if err != nil {
		return cid.Undef, ociimage.Image{}, fmt.Errorf("push image: %w", err)
	}
	f, err := os.Open(path)
	if err != nil {
		return cid.Undef, ociimage.Image{}, fmt.Errorf("push image: %w", err)
	}
	defer f.Close()
	// Named too: manifests pin an image by the sum of its archive.
	root, _, err := n.AddNamed(ctx, f)
	if err != nil {
		return cid.Undef, ociimage.Image{}, fmt.Errorf("push image: %w", err)
	}
	return root, img, nil
}

// PullImage fetches the image archive root from peers (every block checked
// against its BLAKE3 address), checks it as an OCI archive, and only then
// gives it the name outPath: a file at outPath is always a whole, verified
// archive, ready for `podman load` (see ImageLoader). root may also be the
// archive's sum (a raw CID, as manifests pin images: see GetNamed). size
// is the archive's size as a manifest pins it, or -1 when nothing pins it;
// the fetch never goes past it.
func (n *Node) PullImage(ctx context.Context, root cid.Cid, size int64, outPath string) (ociimage.Image, error) {
	if err := cas.Check(root); err != nil {
		return ociimage.Image{}, fmt.Errorf("pull image %s: %w", root, err)
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	tmp := filepath.Join(filepath.Dir(outPath), "."+filepath.Base(outPath)+".unverified-"+hex.EncodeToString(b[:]))
	var err error
	switch {
	case root.Type() == cas.Raw:
		_, err = n.GetNamed(ctx, root, size, tmp, nil)
	case size >= 0:
		err = n.GetFileSized(ctx, root, size, tmp)
	default:
		err = n.GetFile(ctx, root, tmp)
	}
	if err != nil {
		return ociimage.Image{}, fmt.Errorf("pull image: %w", err)
	}
	img, err := ociimage.VerifyFile(tmp)
	if err != nil {
		_ = os.Remove(tmp)
		return ociimage.Image{}, fmt.Errorf("pull image %s: %w", root, err)
	}
	if err := os.Rename(tmp, outPath); err != nil {
		_ = os.Remove(tmp)
		return ociimage.Image{}, fmt.Errorf("pull image %s: %w", root, err)
	}
	if err := syncDir(filepath.Dir(outPath)); err != nil {
		return ociimage.Image{}, fmt.Errorf("pull image %s: %w", root, err)
	}
	return img, nil
}

// ImageLoader loads a verified OCI archive into a container engine and
// returns the image names it carried. orchestrator.Runtime is one.
type ImageLoader interface {
	LoadImage(ctx context.Context, archivePath string) ([]string, error)
}

// InstallImage pulls root (PullImage, within size) into a temp file in
// dir, loads it with l, and removes the file; the blocks stay in the store
// (pin them to keep them).
func (n *Node) InstallImage(ctx context.Context, root cid.Cid, size int64, dir string, l ImageLoader) ([]string, ociimage.Image, error) {
	f, err := os.CreateTemp(dir, "image-*.tar")
	if err != nil {
		return nil, ociimage.Image{}, fmt.Errorf("install image %s: %w", root, err)
	}
	path := f.Name()
	_ = f.Close()
	defer os.Remove(path)
	img, err := n.PullImage(ctx, root, size, path)
	if err != nil {
		return nil, ociimage.Image{}, err
	}
	names, err := l.LoadImage(ctx, path)
	if err != nil {
		return nil, ociimage.Image{}, fmt.Errorf("install image %s: %w", root, err)
	}
	return names, img, nil
}
