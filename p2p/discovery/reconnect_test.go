package discovery

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/archy-node/archy/relay"
)

// serveRelayAt serves a relay with the event log in dir on addr until the
// returned stop is called.
func serveRelayAt(t *testing.T, dir, addr string) (url string, stop func()) {
	t.Helper()
	r, err := relay.New(relay.Config{DataDir: dir}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	var ln net.Listener
	for deadline := time.Now().Add(5 * time.Second); ; {
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("listen %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Serve(ctx, ln) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("relay: %v", err)
		}
	}
	t.Cleanup(stop)
	return "ws://" + ln.Addr().String(), stop
}

// TestReconnectsAfterRelayRestart stops the relay under a subscribed node
// and starts it again: the node reconnects with backoff, resumes from its
// cursor, and discovers what was published while it was away.
func TestReconnectsAfterRelayRestart(t *testing.T) {
	dir := t.TempDir()
	url, stop := serveRelayAt(t, dir, "127.0.0.1:0")
	n := startNode(t, []string{url})
	f := newFixture(t, "1.0.0")
	publishEvents(t, url, f.events(t, time.Now())...)
	waitRelease(t, n, "hello-web", "1.0.0", true)

	stop()
	url2, _ := serveRelayAt(t, dir, url[len("ws://"):])
	f2 := newFixtureWithKey(t, f.key, f.sk, "1.1.0")
	publishEvents(t, url2, f2.events(t, time.Now().Add(time.Second))...)
	waitRelease(t, n, "hello-web", "1.1.0", true)
	if s := n.disc.Stats(); s.Accepted < 3 {
		t.Fatalf("stats after reconnect: %+v", s)
	}
}
