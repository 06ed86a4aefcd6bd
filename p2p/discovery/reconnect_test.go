package discovery

import (
	"testing"
	"time"

	"github.com/archy-node/archy/relay"
	"github.com/archy-node/archy/relay/relaytest"
)

// TestReconnectsAfterRelayRestart stops the relay under a subscribed node
// and starts it again: the node reconnects with backoff, resumes from its
// cursor, and discovers what was published while it was away.
func TestReconnectsAfterRelayRestart(t *testing.T) {
	dir := t.TempDir()
	url, stop := relaytest.Serve(t, relay.Config{DataDir: dir}, "127.0.0.1:0")
	n := startNode(t, []string{url})
	f := newFixture(t, "1.0.0")
	publishEvents(t, url, f.events(t, time.Now())...)
	waitRelease(t, n, "hello-web", "1.0.0", true)

	stop()
	url2, _ := relaytest.Serve(t, relay.Config{DataDir: dir}, url[len("ws://"):])
	f2 := newFixtureWithKey(t, f.key, f.sk, "1.1.0")
	publishEvents(t, url2, f2.events(t, time.Now().Add(time.Second))...)
	waitRelease(t, n, "hello-web", "1.1.0", true)
	if s := n.disc.Stats(); s.Accepted < 3 {
		t.Fatalf("stats after reconnect: %+v", s)
	}
}
