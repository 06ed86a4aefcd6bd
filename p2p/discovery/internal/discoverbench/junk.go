package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/archy-node/archy/p2p/discovery"
	"github.com/archy-node/archy/relay"
)

type junkConfig struct {
	events int
	dir    string // as config.dir
}

// behindJunk measures how long a valid release waits behind junk: a node
// subscribed to the embedded relay (its log on disk) is sent cfg.events
// junk events (valid Nostr signatures, not archy releases, which the node
// drops) and then one release; the figure is the time from sending the
// release to the node's store taking it:
//
//	figure discover-behind-junk-ms 120.0
func behindJunk(ctx context.Context, out, log io.Writer, cfg junkConfig) error {
	quiet := slog.New(slog.DiscardHandler)
	dir, err := dataDir(cfg.dir)
	if err != nil {
		return err
	}
	if cfg.dir == "" {
		defer os.RemoveAll(dir)
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var stores []*discovery.Store // closed once the discoverers writing them have stopped
	defer func() {
		cancel()
		wg.Wait()
		for _, st := range stores {
			st.Close()
		}
	}()

	rl, err := newRelay(filepath.Join(dir, "relay"), relay.Config{EventRate: 1e6, EventBurst: 1 << 20})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	url := "ws://" + ln.Addr().String()
	wg.Add(1)
	go func() { defer wg.Done(); _ = rl.Serve(ctx, ln) }()

	nodeDir := filepath.Join(dir, "node")
	st, err := discovery.NewStore(discovery.StoreConfig{Path: discovery.StorePath(nodeDir)})
	if err != nil {
		return err
	}
	stores = append(stores, st)
	taken := make(chan time.Time, 1)
	d, err := discovery.New(discovery.Config{Relays: []string{url}, CursorPath: discovery.CursorPath(nodeDir),
		OnRelease: func(r *discovery.Release) {
			if !r.Latest {
				select {
				case taken <- time.Now():
				default:
				}
			}
		}}, st, quiet)
	if err != nil {
		return err
	}
	wg.Add(1)
	go func() { defer wg.Done(); _ = d.Run(ctx) }()
	if err := waitSubscribed(ctx, url, []*discovery.Discoverer{d}); err != nil {
		return err
	}

	// Signed before the clock starts: the junk, and the release.
	sk := nostr.GeneratePrivateKey()
	junk := make([]nostr.Event, cfg.events)
	for i := range junk {
		junk[i] = nostr.Event{Kind: discovery.KindAppData, CreatedAt: nostr.Now(), Content: "junk",
			Tags: nostr.Tags{{"d", fmt.Sprint("junk-", i)}, {"t", discovery.Topic}, {"i", "x"}}}
		if err := junk[i].Sign(sk); err != nil {
			return err
		}
	}
	p, err := newPublisher()
	if err != nil {
		return err
	}
	release, err := p.announce("behind-junk", "1.0.0", time.Now())
	if err != nil {
		return err
	}

	if _, err := discovery.Publish(ctx, []string{url}, 5*time.Minute, junk...); err != nil {
		return fmt.Errorf("publish the junk: %w", err)
	}
	c, err := discovery.Dial(ctx, url, 10*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	start := time.Now()
	for _, ev := range release {
		if err := c.Publish(ctx, ev); err != nil {
			return fmt.Errorf("publish the release: %w", err)
		}
	}
	var at time.Time
	select {
	case at = <-taken:
	case <-ctx.Done():
		return fmt.Errorf("the release behind %d junk events was not discovered: %w", cfg.events, ctx.Err())
	}
	took := at.Sub(start)
	s := d.Stats()
	fmt.Fprintf(log, "discoverbench: a release sent after %d junk events taken in %v; the node dropped %d junk events by then\n",
		cfg.events, took.Round(time.Millisecond), s.Dropped[discovery.ErrTags.Error()])
	fmt.Fprintf(out, "figure discover-behind-junk-ms %.1f\n", float64(took.Microseconds())/1000)
	return nil
}
