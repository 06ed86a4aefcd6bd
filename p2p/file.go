package p2p

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/archy-node/archy/cas"
	"github.com/archy-node/archy/p2p/blockstore"
	"github.com/archy-node/archy/p2p/dag"
	cid "github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

// AddFile imports the file at path into the block store and returns its
// root CID (a bafyb4i… DAG-PB node over raw bafkr4i… leaves). The blocks
// are on disk when it returns; the caller pins and provides as it needs.
func (n *Node) AddFile(ctx context.Context, path string) (cid.Cid, error) {
	f, err := os.Open(path)
	if err != nil {
		return cid.Undef, fmt.Errorf("add file: %w", err)
	}
	defer f.Close()
	return n.Add(ctx, f)
}

// Add imports a stream like AddFile. The file's blocks go into one pack,
// laid out as the file, written once in large spans (bypassing the page
// cache where the file system allows) and synced once.
func (n *Node) Add(ctx context.Context, r io.Reader) (cid.Cid, error) {
	end := n.store.Session()
	defer end()
	w, err := n.store.NewPack()
	if err != nil {
		return cid.Undef, fmt.Errorf("add file: %w", err)
	}
	root, size, err := dag.BuildTo(ctx, r, importSink{s: n.store, w: w})
	if err == nil {
		err = w.SetRoot(root, int64(size))
	}
	if err != nil {
		w.Discard()
		return cid.Undef, fmt.Errorf("add file: %w", err)
	}
	built := time.Now()
	if err := errors.Join(w.Sync(), w.Close()); err != nil {
		return cid.Undef, fmt.Errorf("add file: %w", err)
	}
	n.log.Debug("file added", "cid", root, "bytes", size, "sync", time.Since(built))
	return root, nil
}

// importSink writes an import into its pack: the file's bytes in large
// spans, its leaves indexed where they lie, its DAG nodes after its end.
type importSink struct {
	s *blockstore.Store
	w *blockstore.PackWriter
}

func (k importSink) PutSpan(off uint64, data []byte) error { return k.w.PutSpan(int64(off), data) }

func (k importSink) PutLeaf(c cid.Cid, off uint64, data []byte) error {
	return k.w.IndexLeaf(c, int64(off), len(data))
}

func (k importSink) PutNode(c cid.Cid, data []byte) error { return k.w.Put(c, -1, data) }

// MaxUnpinnedSize caps the size of a file fetched by root alone, with no
// size pinned by a signed manifest: a root declaring more is refused
// before any of it is fetched.
const MaxUnpinnedSize = 16 << 30

// GetFile fetches the file root from peers (or the local store), verifies
// every block against its CID, and writes it to outPath through a temp
// file, fsync and rename: outPath never holds a partial file. Blocks
// already held are not fetched again, so a cancelled fetch resumes where
// it stopped; the blocks stay in the store (unpinned) and are served to
// other peers. Nothing pins its size, so the root may declare at most
// MaxUnpinnedSize; GetFileSized takes a pinned size.
//
// Each piece is written once, at its offset, into the pack of root in the
// block store, and outPath becomes a hard link to that pack when both are
// on one file system (a copy otherwise): the file's bytes are written to
// disk once. The store re-verifies what it reads, so editing outPath in
// place never makes the node serve bad bytes: the blocks edited are
// dropped and fetched again when needed.
func (n *Node) GetFile(ctx context.Context, root cid.Cid, outPath string) error {
	sent, err := n.getFile(ctx, root, dag.Limit{Size: -1, Max: MaxUnpinnedSize}, outPath)
	if err == nil {
		n.ex.Credit(sent)
	}
	return err
}

// GetFileSized is GetFile for a file that must be size bytes (a size a
// signed manifest pins): a DAG declaring anything else is refused after
// its root block, and no more than size bytes of leaves are fetched.
func (n *Node) GetFileSized(ctx context.Context, root cid.Cid, size int64, outPath string) error {
	if size < 0 {
		return fmt.Errorf("get %s: negative size %d", root, size)
	}
	sent, err := n.getFile(ctx, root, dag.Limit{Size: size}, outPath)
	if err == nil {
		n.ex.Credit(sent)
	}
	return err
}

// getFile is GetFile within lim; it returns the verified bytes each peer
// sent, for the caller to credit once the file proves to be what it wanted.
func (n *Node) getFile(ctx context.Context, root cid.Cid, lim dag.Limit, outPath string) (map[peer.ID]int64, error) {
	if err := cas.Check(root); err != nil {
		return nil, fmt.Errorf("get %s: %w", root, err)
	}
	release := n.store.Hold(root)
	defer release()
	w, leaves, sent, err := n.fetch(ctx, root, lim)
	if err != nil {
		return nil, err
	}
	defer w.Close()
	if err := n.fill(ctx, w, leaves); err != nil {
		return nil, fmt.Errorf("get %s: %w", root, err)
	}
	if err := w.Sync(); err != nil {
		return nil, fmt.Errorf("get %s: %w", root, err)
	}
	if err := linkOut(w, outPath); err != nil {
		return nil, fmt.Errorf("get %s: %w", root, err)
	}
	return sent, nil
}

// Fetch makes every block of root's DAG held locally and returns its
// leaves in file order. Like GetFile, the root may declare at most
// MaxUnpinnedSize.
func (n *Node) Fetch(ctx context.Context, root cid.Cid) ([]dag.Link, uint64, error) {
	release := n.store.Hold(root)
	defer release()
	w, leaves, sent, err := n.fetch(ctx, root, dag.Limit{Size: -1, Max: MaxUnpinnedSize})
	if err != nil {
		return nil, 0, err
	}
	n.ex.Credit(sent)
	var size uint64
	for _, l := range leaves {
		size += l.Size
	}
	if err := w.Close(); err != nil {
		return nil, 0, fmt.Errorf("get %s: %w", root, err)
	}
	return leaves, size, nil
}

// fetch is the exchange's Fetch, its result spread out for the callers.
func (n *Node) fetch(ctx context.Context, root cid.Cid, lim dag.Limit) (*blockstore.PackWriter, []dag.Link, map[peer.ID]int64, error) {
	f, err := n.ex.Fetch(ctx, root, lim)
	if err != nil {
		return nil, nil, nil, err
	}
	return f.Pack, f.Leaves, f.Sent, nil
}

// fill copies into the pack, at their offsets, the leaves it lacks (held
// elsewhere in the store, or repeated in the file), so the pack is the
// whole file.
func (n *Node) fill(ctx context.Context, w *blockstore.PackWriter, leaves []dag.Link) error {
	var off int64
	for _, l := range leaves {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !w.Holds(l.Cid, off) {
			data, err := n.store.GetRaw(ctx, l.Cid)
			if err != nil {
				return fmt.Errorf("read block %s: %w", l.Cid, err)
			}
			if uint64(len(data)) != l.Size {
				return fmt.Errorf("block %s: %w: size %d, dag says %d", l.Cid, dag.ErrBadNode, len(data), l.Size)
			}
			if err := w.Put(l.Cid, off, data); err != nil {
				return err
			}
		}
		off += int64(l.Size)
	}
	return nil
}

// linkOut gives the finished pack the name outPath atomically (a temp
// name in outPath's folder, then rename, then the folder synced).
func linkOut(w *blockstore.PackWriter, outPath string) error {
	dir := filepath.Dir(outPath)
	var b [8]byte
	_, _ = rand.Read(b[:])
	tmp := filepath.Join(dir, "."+filepath.Base(outPath)+".part-"+hex.EncodeToString(b[:]))
	if err := w.LinkFile(tmp, 0o644); err != nil {
		return fmt.Errorf("write file: %w", err)
	}
	if err := os.Rename(tmp, outPath); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write file: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("write file: %w", err)
	}
	return nil
}
