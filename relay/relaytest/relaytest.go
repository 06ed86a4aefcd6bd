// Package relaytest serves archy's embedded Nostr relay on a loopback port
// for other packages' tests: the real relay over real websockets.
package relaytest

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/archy-node/archy/relay"
)

// Serve runs a relay with cfg on addr ("127.0.0.1:0" picks a port; the
// address of a relay stopped a moment ago is retried until free) until the
// test ends or stop is called. It returns the relay's ws:// URL.
func Serve(t testing.TB, cfg relay.Config, addr string) (url string, stop func()) {
	t.Helper()
	r, err := relay.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	var ln net.Listener
	for deadline := time.Now().Add(5 * time.Second); ; {
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		if time.Now().After(deadline) {
			r.Close()
			t.Fatalf("relay: listen on %s: %v", addr, err)
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

// Start is Serve on a fresh loopback port, for tests that never stop it early.
func Start(t testing.TB, cfg relay.Config) string {
	t.Helper()
	url, _ := Serve(t, cfg, "127.0.0.1:0")
	return url
}
