package p2p

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/archy-node/archy/cas"
	"github.com/archy-node/archy/p2p/dag"
	"github.com/ipfs/boxo/bitswap/client"
	"github.com/ipfs/boxo/bitswap/network/bsnet"
	"github.com/ipfs/boxo/blockstore"
	blocks "github.com/ipfs/go-block-format"
	cid "github.com/ipfs/go-cid"
	datastore "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p"
)

// A node run with Bitswap (archy node run --bitswap) lets IPFS clients
// fetch archy's blocks.
// A stock client (boxo's bitswap client on a libp2p host of its own, with
// an in-memory blockstore and no archy code) fetches a file's root and a
// leaf by CID from a node that imported the file.
func TestBitswapServesIPFSClients(t *testing.T) {
	n := newNode(t, func(c *Config) { c.Bitswap = true })
	_, data := randomFile(t, 3<<20)
	root, err := n.Add(t.Context(), bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	leaves, _, err := dag.Leaves(t.Context(), root, n.store.GetRaw)
	if err != nil || len(leaves) < 2 {
		t.Fatalf("%d leaves (%v), want several", len(leaves), err)
	}

	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	net := bsnet.NewFromIpfsHost(h)
	bs := client.New(t.Context(), net, nil, blockstore.NewBlockstore(dssync.MutexWrap(datastore.NewMapDatastore())))
	net.Start(bs)
	defer net.Stop()
	defer bs.Close()
	if err := h.Connect(t.Context(), n.AddrInfo()); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	leaf, off := leaves[1], leaves[0].Size
	var got []byte
	for _, c := range []cid.Cid{root, leaf.Cid} {
		// Asked again every 5 s: twice in three -race runs of the package
		// on a loaded machine the first want went unanswered for the
		// whole 30 s (sent, it seems, before the client knew the node
		// speaks bitswap), and the test then read a nil block.
		var blk blocks.Block
		for err = context.DeadlineExceeded; err != nil && ctx.Err() == nil; {
			actx, acancel := context.WithTimeout(ctx, 5*time.Second)
			blk, err = bs.GetBlock(actx, c)
			acancel()
		}
		if err != nil {
			t.Fatalf("bitswap get %s: %v", c, err)
		}
		if err := cas.Verify(c, blk.RawData()); err != nil {
			t.Fatalf("block %s: %v", c, err)
		}
		got = blk.RawData()
	}
	if !bytes.Equal(got, data[off:off+leaf.Size]) {
		t.Fatal("the leaf fetched over bitswap is not the file's bytes")
	}
}
