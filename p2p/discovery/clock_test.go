package discovery

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/archy-node/archy/relay"
	"github.com/archy-node/archy/relay/relaytest"
)

// TestNodeClockDecidesFuture: what is "too far in the future" is decided
// by the node's clock (Config.Now), not the relay's. A node whose clock
// is an hour behind drops a release stamped now, and keeps its cursor
// where it was; once its clock has caught up, the next release is taken.
func TestNodeClockDecidesFuture(t *testing.T) {
	url := relaytest.Start(t, relay.Config{})
	now := time.Now()
	var clock atomic.Pointer[time.Time]
	behind := now.Add(-time.Hour)
	clock.Store(&behind)
	n := startNodeWith(t, []string{url}, func(c *Config) { c.Now = func() time.Time { return *clock.Load() } })

	f := newFixture(t, "1.0.0")
	publishEvents(t, url, f.events(t, now)...) // the release and its latest pointer
	waitHandled(t, n, 2)
	if s := n.disc.Stats(); s.Dropped[ErrFuture.Error()] != 2 || s.Accepted != 0 {
		t.Fatalf("a node an hour behind: %+v, want both events dropped as %q", s, ErrFuture)
	}
	n.disc.mu.Lock()
	cursor := n.disc.cursors[url]
	n.disc.mu.Unlock()
	if cursor != 0 {
		t.Fatalf("cursor moved to %d on dropped events", cursor)
	}

	caughtUp := now.Add(time.Minute)
	clock.Store(&caughtUp)
	f2 := newFixtureWithKey(t, f.key, f.sk, "1.1.0")
	publishEvents(t, url, f2.events(t, now.Add(time.Second))...)
	waitRelease(t, n, "hello-web", "1.1.0", true)
}
