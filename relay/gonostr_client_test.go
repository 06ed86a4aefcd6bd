//go:build !race

package relay

import (
	"context"
	"testing"

	"github.com/nbd-wtf/go-nostr"
)

// Without -race the suite also runs with go-nostr's own client,
// nostr.RelayConnect / Subscribe / Publish. (Under -race it cannot: its
// Relay.Close races with the goroutine it starts; see client.)
func init() {
	clients["go-nostr"] = connectGoNostr
}

type goNostrClient struct{ rl *nostr.Relay }

func connectGoNostr(t testing.TB, s *served) client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	rl, err := nostr.RelayConnect(ctx, s.URL(), nostr.WithNoticeHandler(func(n string) { t.Logf("NOTICE %s", n) }))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { rl.Close() })
	return goNostrClient{rl}
}

func (c goNostrClient) Done() <-chan struct{} { return c.rl.Context().Done() }

func (c goNostrClient) Publish(ctx context.Context, ev nostr.Event) error {
	return c.rl.Publish(ctx, ev)
}

func (c goNostrClient) Subscribe(ctx context.Context, filters nostr.Filters) (*testSub, error) {
	sub, err := c.rl.Subscribe(ctx, filters)
	if err != nil {
		return nil, err
	}
	return &testSub{Events: sub.Events, EOSE: sub.EndOfStoredEvents, Closed: sub.ClosedReason, Unsub: sub.Unsub}, nil
}
