//go:build !race

// The flood runs without the race detector (it would take minutes under
// it); `make test` runs it in a separate pass without -race.

package discovery

import (
	"fmt"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/archy-node/archy/relay"
	"github.com/archy-node/archy/relay/relaytest"
)

// TestJunkFloodDoesNotDelayValid sends 10,000 junk events (valid Nostr
// signatures, not archy releases or forged ones) and a real release after
// them, and checks the release still arrives and memory stays bounded.
func TestJunkFloodDoesNotDelayValid(t *testing.T) {
	if testing.Short() {
		t.Skip("flood test in -short mode")
	}
	url := relaytest.Start(t, relay.Config{EventRate: 10000, EventBurst: 20000})
	n := startNode(t, []string{url})
	junkKey := nostr.GeneratePrivateKey()
	now := time.Now()
	var junk []nostr.Event
	for i := range 10000 {
		ev := nostr.Event{Kind: KindAppData, CreatedAt: nostr.Timestamp(now.Unix()), Content: "junk",
			Tags: nostr.Tags{{"d", fmt.Sprintf("junk-%d", i)}, {"t", Topic}, {"i", "x"}}}
		if err := ev.Sign(junkKey); err != nil {
			t.Fatal(err)
		}
		junk = append(junk, ev)
	}
	t0 := time.Now()
	publishEvents(t, url, junk...)
	t.Logf("relay took 10,000 junk events in %v", time.Since(t0))
	f := newFixture(t, "1.0.0")
	start := time.Now()
	publishEvents(t, url, f.events(t, now)...)
	waitRelease(t, n, "hello-web", "1.0.0", true)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("valid release took %v behind the flood", d)
	}
	s := n.disc.Stats()
	if s.Dropped[ErrTags.Error()] < 10000 {
		t.Fatalf("junk not all dropped: %+v", s)
	}
	if len(n.store.List()) != 1 {
		t.Fatalf("store lists %d releases", len(n.store.List()))
	}
}
