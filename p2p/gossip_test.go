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
	valid := okOnly
	anything := func(context.Context, peer.ID, []byte) Verdict { return Accept }
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
			if i == 0 { // more would graylist a at b (TestGossipGraylistsInvalidPublisher)
				_ = cats[a].Publish(ctx, []byte(fmt.Sprintf("bad catalog %d", i)))
			}
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

// okOnly accepts messages that start with "ok" and rejects the rest.
func okOnly(_ context.Context, _ peer.ID, data []byte) Verdict {
	if bytes.HasPrefix(data, []byte("ok")) {
		return Accept
	}
	return Reject
}

// TestGossipGraylistsInvalidPublisher: a peer that floods a catalog topic
// with messages the validator rejects ends up below the graylist
// threshold, and then even its valid messages are no longer delivered.
func TestGossipGraylistsInvalidPublisher(t *testing.T) {
	a, m := newNode(t, nil), newNode(t, nil)
	connect(t, m, a)
	catA, err := a.JoinCatalog("main", okOnly)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = catA.Close() })
	// m, the attacker, lets anything out.
	catM, err := m.JoinCatalog("main", func(context.Context, peer.ID, []byte) Verdict { return Accept })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = catM.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	// Before: m's valid messages reach a (once the mesh has formed).
	got := make(chan []byte, 64)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		for {
			data, _, err := catA.Next(ctx)
			if err != nil {
				return
			}
			got <- data
		}
	}()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		_ = catM.Publish(ctx, []byte(fmt.Sprintf("ok before %d", i)))
		select {
		case <-got:
		case <-tick.C:
			continue
		case <-ctx.Done():
			t.Fatal("a never received m's valid message")
		}
		break
	}
	// The flood of invalid catalogs.
	for i := range 20 {
		if err := catM.Publish(ctx, []byte(fmt.Sprintf("forged catalog %d", i))); err != nil {
			t.Fatal(err)
		}
	}
	for {
		s, ok := a.GossipScore(m.ID())
		if ok && s < GraylistThreshold {
			t.Logf("m's score at a: %.0f", s)
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("m's score at a is %.1f (known %v), want below %v", s, ok, GraylistThreshold)
		case <-tick.C:
		}
	}
	// Drain what was in flight, then: nothing m sends is delivered.
	for len(got) > 0 {
		<-got
	}
	for i := range 10 {
		_ = catM.Publish(ctx, []byte(fmt.Sprintf("ok after %d", i)))
		select {
		case data := <-got:
			t.Fatalf("a delivered %q from a graylisted peer", data)
		case <-tick.C:
		}
	}
	cancel()
	<-readDone
}
