package p2p

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/archy-node/archy/p2p/blockstore"
	cid "github.com/ipfs/go-cid"
)

// The node's upkeep: reproviding and garbage collection, on periods.

// Provider records in the DHT expire (48 h in go-libp2p-kad-dht), so the
// node announces again, on a period, everything it keeps: each pinned root
// and the sum of each pinned file it has a name for.

// reprovideLoop reprovides after the first minute (bootstrap peers
// connected by then) and then every ReprovideInterval (a minute after a
// pass that failed), until the node closes.
func (n *Node) reprovideLoop() {
	defer n.wg.Done()
	t := time.NewTimer(n.cfg.reprovideDelay)
	defer t.Stop()
	for {
		select {
		case <-n.life.Done():
			return
		case <-t.C:
		}
		start := time.Now()
		count, err := n.Reprovide(n.life)
		next := n.cfg.ReprovideInterval
		if err != nil && n.life.Err() == nil {
			// Often the routing table was still empty: try again soon.
			n.log.Warn("reprovide incomplete", "provided", count, "err", err)
			next = min(next, n.cfg.reprovideDelay)
		} else if err == nil {
			n.log.Info("reprovided", "provided", count, "took", time.Since(start))
		}
		t.Reset(next)
	}
}

// Reprovide announces every pinned root, and the sum of each, in the DHT,
// each announcement bounded by the request timeout. It returns how many
// were announced; failures are joined, and do not stop the rest.
func (n *Node) Reprovide(ctx context.Context) (int, error) {
	pins, err := n.store.Pins(ctx)
	if err != nil {
		return 0, fmt.Errorf("reprovide: %w", err)
	}
	pinned := map[cid.Cid]bool{}
	keys := pins
	for _, p := range pins {
		pinned[p] = true
	}
	for _, s := range n.names.sums() {
		if r, ok := n.names.get(s); ok && pinned[r] {
			keys = append(keys, s)
		}
	}
	var errs []error
	count := 0
	for _, c := range keys {
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		if err := n.Provide(ctx, c); err != nil {
			errs = append(errs, err)
			continue
		}
		count++
	}
	if err := errors.Join(errs...); err != nil {
		return count, fmt.Errorf("reprovide: %w", err)
	}
	return count, nil
}

// gcLoop collects what no pin, fetch or import needs every GCInterval:
// blobs fetched without a pin, and files unpinned since.
func (n *Node) gcLoop() {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.GCInterval)
	defer t.Stop()
	for {
		select {
		case <-n.life.Done():
			return
		case <-t.C:
		}
		res, err := n.GC(n.life)
		switch {
		case errors.Is(err, blockstore.ErrGCRunning):
		case err != nil:
			if n.life.Err() == nil {
				n.log.Warn("garbage collection failed", "err", err)
			}
		case res.Removed > 0:
			n.log.Info("garbage collected", "blocks", res.Removed, "bytes", res.Freed, "punched", res.Punched)
		}
	}
}
