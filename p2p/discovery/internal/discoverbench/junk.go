package main

import (
	"context"
	"fmt"
	"io"
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
	r, err := newRig(ctx, cfg.dir, relay.Config{EventRate: 1e6, EventBurst: 1 << 20})
	if err != nil {
		return err
	}
	defer r.close()
	ctx = r.ctx
	taken := make(chan time.Time, 1)
	d, _, err := r.node("node", discovery.StoreConfig{}, discovery.Config{
		OnRelease: func(rel *discovery.Release) {
			if !rel.Latest {
				select {
				case taken <- time.Now():
				default:
				}
			}
		}})
	if err != nil {
		return err
	}
	r.run(func(ctx context.Context) { _ = d.Run(ctx) })
	if err := waitSubscribed(ctx, r.url, []*discovery.Discoverer{d}); err != nil {
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

	if _, err := discovery.Publish(ctx, []string{r.url}, 5*time.Minute, junk...); err != nil {
		return fmt.Errorf("publish the junk: %w", err)
	}
	c, err := discovery.Dial(ctx, r.url, 10*time.Second)
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
