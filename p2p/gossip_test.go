package p2p

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

func TestCatalogGossipValidates(t *testing.T) {
	// a - b - c in a line: c hears a only through b's re-gossip.
	a, b, c := newNode(t, nil), newNode(t, nil), newNode(t, nil)
	connect(t, a, b)
	connect(t, b, c)
	valid := func(_ context.Context, _ peer.ID, data []byte) bool { return bytes.HasPrefix(data, []byte("ok")) }
	cats := map[*Node]*Catalog{}
	for _, n := range []*Node{a, b, c} {
		cat, err := n.JoinCatalog("main", valid)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cat.Close() })
		cats[n] = cat
	}
	// Wait until the mesh has formed (a signal, not a sleep: poll peers).
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for len(cats[a].Peers()) == 0 || len(cats[c].Peers()) == 0 {
		select {
		case <-ctx.Done():
			t.Fatal("topic mesh did not form")
		case <-time.After(50 * time.Millisecond):
		}
	}
	if err := cats[a].Publish(ctx, []byte("bad catalog")); err == nil {
		t.Fatal("publishing an invalid message succeeded")
	}
	if err := cats[a].Publish(ctx, []byte("ok v1")); err != nil {
		t.Fatal(err)
	}
	data, from, err := cats[c].Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != "ok v1" || from != a.ID() {
		t.Fatalf("c got %q from %s", data, from)
	}
	if _, err := a.JoinCatalog("", valid); err == nil {
		t.Fatal("joined a catalog without a name")
	}
}
