package blockstore

import (
	"context"
	"crypto/rand"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/archy-node/archy/cas"
	blocks "github.com/ipfs/go-block-format"
	cid "github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	mh "github.com/multiformats/go-multihash"
)

func open(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// A second open of a store in use fails and names the folder: two
// processes on one store would wipe each other's writes.
func TestOpenLocks(t *testing.T) {
	s := open(t)
	if _, err := Open(s.Dir()); err == nil || !strings.Contains(err.Error(), s.Dir()) || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second open: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(s.Dir())
	if err != nil {
		t.Fatalf("open after close: %v", err)
	}
	s2.Close()
}

func randBlock(n int) blocks.Block {
	data := make([]byte, n)
	_, _ = rand.Read(data)
	b, _ := blocks.NewBlockWithCid(data, cas.Sum(data))
	return b
}

func TestPutGet(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	b := randBlock(1000)
	if err := s.Put(ctx, b); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, b.Cid())
	if err != nil || string(got.RawData()) != string(b.RawData()) {
		t.Fatalf("get: %v", err)
	}
	if n, _ := s.GetSize(ctx, b.Cid()); n != 1000 {
		t.Fatalf("size %d", n)
	}
	// Reopen: still there.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(s.Dir())
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := s2.Has(ctx, b.Cid()); !ok {
		t.Fatal("block lost across reopen")
	}
}

func TestPutRejects(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	data := []byte("hello")
	sha, _ := mh.Sum(data, mh.SHA2_256, -1)
	short, _ := mh.Encode(make([]byte, 20), mh.BLAKE3)
	other := cas.Sum([]byte("other"))
	for _, tc := range []struct {
		name string
		c    cid.Cid
		want error
	}{
		{"sha2", cid.NewCidV1(cid.Raw, sha), cas.ErrNotBLAKE3},
		{"short blake3", cid.NewCidV1(cid.Raw, short), cas.ErrNotBLAKE3},
		{"mismatch", other, cas.ErrMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, _ := blocks.NewBlockWithCid(data, tc.c)
			if err := s.Put(ctx, b); !errors.Is(err, tc.want) {
				t.Fatalf("Put = %v, want %v", err, tc.want)
			}
			if ok, _ := s.Has(ctx, tc.c); ok {
				t.Fatal("rejected block stored")
			}
		})
	}
	if err := s.Put(ctx, randBlock(MaxBlockSize+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized block: %v", err)
	}
}

func TestCorruptOnDiskIsDropped(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	b := randBlock(4096)
	if err := s.Put(ctx, b); err != nil {
		t.Fatal(err)
	}
	d, _ := digestOf(b.Cid())
	if err := os.WriteFile(s.path(d), []byte("rot"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, b.Cid()); !ipld.IsNotFound(err) {
		t.Fatalf("Get of a damaged block = %v, want not found", err)
	}
	if ok, _ := s.Has(ctx, b.Cid()); ok {
		t.Fatal("damaged block kept")
	}
}

func TestGCKeepsPinsHoldsAndSessions(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	noLinks := func(cid.Cid, []byte) ([]cid.Cid, error) { return nil, nil }
	pinned, held, inSession, loose := randBlock(10), randBlock(11), randBlock(12), randBlock(13)
	for _, b := range []blocks.Block{pinned, held, loose} {
		if err := s.Put(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Pin(ctx, pinned.Cid()); err != nil {
		t.Fatal(err)
	}
	release := s.Hold(held.Cid())
	end := s.Session()
	if err := s.Put(ctx, inSession); err != nil {
		t.Fatal(err)
	}
	res, err := s.GC(ctx, noLinks)
	if err != nil {
		t.Fatal(err)
	}
	// loose was written before the session began but within its time
	// margin, so it may survive this round; the others must.
	for _, b := range []blocks.Block{pinned, held, inSession} {
		if ok, _ := s.Has(ctx, b.Cid()); !ok {
			t.Fatalf("gc removed a protected block (%+v)", res)
		}
	}
	end()
	release()
	if _, err := s.GC(ctx, noLinks); err != nil {
		t.Fatal(err)
	}
	for _, b := range []blocks.Block{held, inSession, loose} {
		if ok, _ := s.Has(ctx, b.Cid()); ok {
			t.Fatal("gc kept an unprotected block")
		}
	}
	if ok, _ := s.Has(ctx, pinned.Cid()); !ok {
		t.Fatal("gc removed a pinned block")
	}
	pins, _ := s.Pins(ctx)
	if len(pins) != 1 || pins[0] != pinned.Cid() {
		t.Fatalf("pins %v", pins)
	}
}
