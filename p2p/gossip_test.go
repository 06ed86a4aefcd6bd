package p2p

import (
	"bytes"
	"context"
	"fmt"
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
	anything := func(context.Context, peer.ID, []byte) bool { return true }
	cats := map[*Node]*Catalog{}
	for _, n := range []*Node{a, b, c} {
		v := valid
		if n == a { // a is a bad publisher: it lets anything out
			v = anything
		}
		cat, err := n.JoinCatalog("main", v)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cat.Close() })
		cats[n] = cat
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	// a keeps publishing a bad and a good message until c hears; the mesh
	// forms on gossipsub's heartbeat, which this does not have to guess.
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			_ = cats[a].Publish(ctx, []byte(fmt.Sprintf("bad catalog %d", i)))
			_ = cats[a].Publish(ctx, []byte(fmt.Sprintf("ok v%d", i)))
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	for range 3 {
		data, from, err := cats[c].Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(data, []byte("ok v")) || from != a.ID() {
			t.Fatalf("c got %q from %s", data, from)
		}
	}
	cancel()
	<-pubDone
	if _, err := a.JoinCatalog("", valid); err == nil {
		t.Fatal("joined a catalog without a name")
	}
}
