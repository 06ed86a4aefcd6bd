package p2p

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/archy-node/archy/cas"
	"github.com/archy-node/archy/p2p/dag"
	cid "github.com/ipfs/go-cid"
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

// Add imports a stream like AddFile.
func (n *Node) Add(ctx context.Context, r io.Reader) (cid.Cid, error) {
	end := n.store.Session()
	defer end()
	root, size, err := dag.Build(ctx, r, n.store.PutVerified)
	if err != nil {
		return cid.Undef, fmt.Errorf("add file: %w", err)
	}
	if err := n.store.Sync(); err != nil {
		return cid.Undef, fmt.Errorf("add file: %w", err)
	}
	n.log.Debug("file added", "cid", root, "bytes", size)
	return root, nil
}

// GetFile fetches the file root from peers (or the local store), verifies
// every block against its CID, and writes it to outPath through a temp file,
// fsync and rename: outPath never holds a partial file. Blocks already held
// are not fetched again, so a cancelled fetch resumes where it stopped; the
// blocks stay in the store (unpinned) and are served to other peers.
func (n *Node) GetFile(ctx context.Context, root cid.Cid, outPath string) error {
	if err := cas.Check(root); err != nil {
		return fmt.Errorf("get %s: %w", root, err)
	}
	release := n.store.Hold(root)
	defer release()
	leaves, _, err := n.Fetch(ctx, root)
	if err != nil {
		return err
	}
	if err := n.writeFile(ctx, leaves, outPath); err != nil {
		return fmt.Errorf("get %s: %w", root, err)
	}
	return nil
}

// Fetch makes every block of root's DAG held locally and returns its
// leaves in file order.
func (n *Node) Fetch(ctx context.Context, root cid.Cid) ([]dag.Link, uint64, error) {
	release := n.store.Hold(root)
	defer release()
	f := n.ex.newFetch(ctx, root)
	defer f.close()
	leaves, size, err := dag.Leaves(ctx, root, f.getNode)
	if err != nil {
		return nil, 0, fmt.Errorf("get %s: resolve dag: %w", root, err)
	}
	if err := f.fetchLeaves(ctx, leaves); err != nil {
		return nil, 0, fmt.Errorf("get %s: %w", root, err)
	}
	return leaves, size, nil
}

// writeFile assembles leaves (verified again as they are read) into
// outPath atomically.
func (n *Node) writeFile(ctx context.Context, leaves []dag.Link, outPath string) error {
	dir := filepath.Dir(outPath)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(outPath)+".part-*")
	if err != nil {
		return fmt.Errorf("write file: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	for _, l := range leaves {
		if err := ctx.Err(); err != nil {
			return err
		}
		data, err := n.store.GetRaw(ctx, l.Cid)
		if err != nil {
			return fmt.Errorf("read block %s: %w", l.Cid, err)
		}
		if uint64(len(data)) != l.Size {
			return fmt.Errorf("block %s: %w: size %d, dag says %d", l.Cid, dag.ErrBadNode, len(data), l.Size)
		}
		if _, err := tmp.Write(data); err != nil {
			return fmt.Errorf("write file: %w", err)
		}
	}
	if err := errors.Join(tmp.Chmod(0o644), tmp.Sync(), tmp.Close()); err != nil {
		return fmt.Errorf("write file: %w", err)
	}
	if err := os.Rename(tmp.Name(), outPath); err != nil {
		return fmt.Errorf("write file: %w", err)
	}
	ok = true
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("write file: %w", err)
	}
	return nil
}
