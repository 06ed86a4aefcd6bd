package p2p

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
)

func TestCorruptPeerIsDroppedAndFetchCompletes(t *testing.T) {
	fetcher := newNode(t, func(c *Config) { c.MaxStrikes = 1 })
	bad := newNode(t, nil)
	good := newNode(t, nil)
	in, data := randomFile(t, 6<<20)
	root, err := good.AddFile(t.Context(), in)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.AddFile(t.Context(), in); err != nil {
		t.Fatal(err)
	}
	serveThrough(bad, corruptPieces)
	connect(t, fetcher, bad)
	connect(t, fetcher, good)
	out := filepath.Join(t.TempDir(), "out.bin")
	if err := fetcher.GetFile(t.Context(), root, out); err != nil {
		t.Fatal(err)
	}
	checkFile(t, out, data)
	if !fetcher.isBanned(bad.ID()) {
		t.Fatal("the corrupting peer was not banned")
	}
	if fetcher.isBanned(good.ID()) {
		t.Fatal("the honest peer was banned")
	}
	if fetcher.host.Network().Connectedness(bad.ID()) == network.Connected {
		t.Fatal("the corrupting peer is still connected")
	}
	// Every stored block verifies (no corrupt byte stored).
	leaves, _, err := fetcher.Fetch(t.Context(), root)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range leaves {
		if _, err := fetcher.store.GetRaw(t.Context(), l.Cid); err != nil {
			t.Fatalf("stored block %s: %v", l.Cid, err)
		}
	}
}

func TestOnlyCorruptPeerFails(t *testing.T) {
	fetcher := newNode(t, func(c *Config) { c.RequestTimeout = 3 * time.Second })
	bad := newNode(t, nil)
	in, _ := randomFile(t, 2<<20)
	root, err := bad.AddFile(t.Context(), in)
	if err != nil {
		t.Fatal(err)
	}
	serveThrough(bad, corruptPieces)
	connect(t, fetcher, bad)
	out := filepath.Join(t.TempDir(), "out.bin")
	if err := fetcher.GetFile(t.Context(), root, out); err == nil {
		t.Fatal("fetch from a corrupting peer succeeded")
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatal("a failed fetch left a visible file")
	}
}

func TestTricklingPeerIsAbandoned(t *testing.T) {
	// MinRate 1 MiB/s: a peer sending 16 KiB per 100 ms is far below it.
	fetcher := newNode(t, func(c *Config) { c.MinRate = 1 << 20 })
	slow := newNode(t, nil)
	// The fast peer is capped so that the fetch lasts past the slow-peer
	// grace: uncapped, it can deliver the whole file before the trickler
	// is due to be judged, and nothing needs abandoning.
	fast := newNode(t, func(c *Config) { c.UploadRate = 3 << 20 })
	// 12 MiB: more than one peer window, so both peers are asked at once.
	in, data := randomFile(t, 12<<20)
	root, err := fast.AddFile(t.Context(), in)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := slow.AddFile(t.Context(), in); err != nil {
		t.Fatal(err)
	}
	serveThrough(slow, trickle(slow.life, 100*time.Millisecond))
	connect(t, fetcher, slow)
	connect(t, fetcher, fast)
	out := filepath.Join(t.TempDir(), "out.bin")
	if err := fetcher.GetFile(t.Context(), root, out); err != nil {
		t.Fatal(err)
	}
	checkFile(t, out, data)
	if fetcher.ex.Stats().Abandoned == 0 {
		t.Fatal("no peer was abandoned")
	}
	// Bytes, not time: had the fetch waited for the trickler's window
	// (4 MiB, ~26 s at its rate), it would have sent that window whole.
	if sent := slow.ex.Stats().Sent; sent >= 4<<20 {
		t.Fatalf("the trickling peer sent %d bytes: its window was waited for, not moved to the fast peer", sent)
	}
}

func TestServesPartialContent(t *testing.T) {
	// a has the file; b fetches part of it; c, connected only to b, gets
	// the pieces b holds from b while b is still fetching.
	a, b, c := newNode(t, nil), newNode(t, nil), newNode(t, nil)
	in, data := randomFile(t, 4<<20)
	root, err := a.AddFile(t.Context(), in)
	if err != nil {
		t.Fatal(err)
	}
	leaves, _, err := a.Fetch(t.Context(), root)
	if err != nil {
		t.Fatal(err)
	}
	connect(t, b, a)
	// b stops after half the leaves, keeping what it got.
	ctx, cancel := contextWithCancel(t)
	serveThrough(a, afterPieces(len(leaves)/2+1, cancel))
	_ = b.GetFile(ctx, root, filepath.Join(t.TempDir(), "b.bin"))
	held := 0
	for _, l := range leaves {
		if ok, _ := b.store.Has(t.Context(), l.Cid); ok {
			held++
		}
	}
	if held == 0 || held == len(leaves) {
		t.Fatalf("b holds %d of %d leaves", held, len(leaves))
	}
	// c fetches from b while b is also fetching the rest from a.
	connect(t, c, b)
	errc := make(chan error, 1)
	go func() { errc <- b.GetFile(t.Context(), root, filepath.Join(t.TempDir(), "b.bin")) }()
	out := filepath.Join(t.TempDir(), "c.bin")
	if err := c.GetFile(t.Context(), root, out); err != nil {
		t.Fatal(err)
	}
	checkFile(t, out, data)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if c.host.Network().Connectedness(a.ID()) == network.Connected && a.ex.Stats().Sent > int64(len(data))*2 {
		t.Fatalf("a sent %d bytes", a.ex.Stats().Sent)
	}
}
