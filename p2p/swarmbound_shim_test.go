package p2p

import (
	"bytes"
	"context"
	"errors"
	"io"

	"github.com/archy-node/archy/p2p/dag"
	cid "github.com/ipfs/go-cid"
)

// getPinned fetches the file sum, size bytes as a manifest pins it.
func getPinned(ctx context.Context, n *Node, sum cid.Cid, size int64, out string) (cid.Cid, error) {
	return n.GetNamed(ctx, sum, size, out, nil)
}

func isSizeErr(err error) bool { return errors.Is(err, dag.ErrSize) }

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

func addrBanned(n *Node, key string) bool { return n.bans.hasKey(key) }
