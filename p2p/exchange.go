package p2p

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/archy-node/archy/cas"
	"github.com/archy-node/archy/p2p/dag"
	"github.com/ipfs/boxo/exchange"
	blocks "github.com/ipfs/go-block-format"
	cid "github.com/ipfs/go-cid"
)

// blockExchange moves blocks between this node and its peers.
type blockExchange struct {
	n *Node

	received atomic.Int64    // verified blocks stored from peers
	onBlock  func(got int64) // test hook, called after each stored block
}

func newExchange(n *Node) *blockExchange { return &blockExchange{n: n} }

func (e *blockExchange) close() {}

// fetch is one file being fetched.
type fetch struct {
	e      *blockExchange
	root   cid.Cid
	sess   exchange.Fetcher
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (e *blockExchange) newFetch(ctx context.Context, root cid.Cid) *fetch {
	ctx, cancel := context.WithCancel(ctx)
	f := &fetch{e: e, root: root, sess: e.n.bs.NewSession(ctx), cancel: cancel}
	// Find holders of the root and connect to them, so the session has
	// peers to ask before bitswap's own provider search starts.
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		pis, err := e.n.FindProviders(ctx, root, 20)
		if err != nil {
			return
		}
		for _, pi := range pis {
			if err := e.n.Connect(ctx, pi); err != nil {
				e.n.log.Debug("provider unreachable", "peer", pi.ID, "err", err)
			}
		}
	}()
	return f
}

func (f *fetch) close() {
	f.cancel()
	f.wg.Wait()
}

// getNode returns a block from the store, or fetches and stores it.
func (f *fetch) getNode(ctx context.Context, c cid.Cid) ([]byte, error) {
	if data, err := f.e.n.store.GetRaw(ctx, c); err == nil {
		return data, nil
	}
	ctx, cancel := context.WithTimeout(ctx, f.e.n.cfg.RequestTimeout)
	defer cancel()
	b, err := f.sess.GetBlock(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("fetch block %s: %w", c, err)
	}
	if err := f.put(ctx, b); err != nil {
		return nil, err
	}
	return b.RawData(), nil
}

func (f *fetch) put(ctx context.Context, b blocks.Block) error {
	if err := cas.Verify(b.Cid(), b.RawData()); err != nil {
		f.e.n.met.badBlocks.Inc()
		return fmt.Errorf("block %s: %w", b.Cid(), err)
	}
	if err := f.e.n.store.Put(ctx, b); err != nil {
		return err
	}
	f.e.n.met.blocksIn.Inc()
	got := f.e.received.Add(1)
	if h := f.e.onBlock; h != nil {
		h(got)
	}
	f.e.n.met.bytesIn.Add(float64(len(b.RawData())))
	return nil
}

// fetchLeaves makes every leaf held.
func (f *fetch) fetchLeaves(ctx context.Context, leaves []dag.Link) error {
	var want []cid.Cid
	seen := map[cid.Cid]bool{}
	for _, l := range leaves {
		if seen[l.Cid] {
			continue
		}
		seen[l.Cid] = true
		if ok, _ := f.e.n.store.Has(ctx, l.Cid); !ok {
			want = append(want, l.Cid)
		}
	}
	if len(want) == 0 {
		return nil
	}
	ch, err := f.sess.GetBlocks(ctx, want)
	if err != nil {
		return fmt.Errorf("fetch blocks: %w", err)
	}
	got := 0
	for b := range ch {
		if err := f.put(ctx, b); err != nil {
			return err
		}
		got++
	}
	if got < len(want) {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("fetch blocks: %d of %d: %w", got, len(want), err)
		}
		return fmt.Errorf("fetch blocks: got %d of %d", got, len(want))
	}
	return nil
}
