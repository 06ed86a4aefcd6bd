package blockstore

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/archy-node/archy/cas"
	cid "github.com/ipfs/go-cid"
)

// packFile writes leaves (at their file offsets) and returns the root the
// caller named and the file.
func packFile(t *testing.T, s *Store, leaves [][]byte) (cid.Cid, []byte) {
	t.Helper()
	w, err := s.NewPack()
	if err != nil {
		t.Fatal(err)
	}
	var file []byte
	for _, l := range leaves {
		if err := w.Put(cas.Sum(l), int64(len(file)), l); err != nil {
			t.Fatal(err)
		}
		file = append(file, l...)
	}
	root := cas.SumCodec(cas.DagPB, file) // any archy CID names the file here
	if err := w.SetRoot(root, int64(len(file))); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return root, file
}

func TestPackPutGetReopen(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	leaves := [][]byte{randBlock(1000).RawData(), randBlock(5000).RawData(), randBlock(1).RawData()}
	root, _ := packFile(t, s, leaves)
	check := func(s *Store) {
		t.Helper()
		for i, l := range leaves {
			got, err := s.GetRaw(ctx, cas.Sum(l))
			if err != nil || !bytes.Equal(got, l) {
				t.Fatalf("leaf %d: %v", i, err)
			}
		}
	}
	check(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// A torn last record (a crash while appending) is ignored.
	idx, _ := filepath.Glob(filepath.Join(s.Dir(), "packs", "*.idx"))
	if len(idx) != 1 {
		t.Fatalf("%d pack indexes, want 1", len(idx))
	}
	f, _ := os.OpenFile(idx[0], os.O_WRONLY|os.O_APPEND, 0)
	_, _ = f.Write([]byte{recBlock, 0, 0})
	f.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(s.Dir())
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	check(s2)
	if s2.byRoot[root] == nil {
		t.Fatal("pack root lost across reopen")
	}
}

func TestPackDamagedBlockIsDropped(t *testing.T) {
	s := open(t)
	defer s.Close()
	ctx := context.Background()
	a, b := randBlock(4000).RawData(), randBlock(4000).RawData()
	packFile(t, s, [][]byte{a, b})
	packs, _ := filepath.Glob(filepath.Join(s.Dir(), "packs", "*.pack"))
	f, _ := os.OpenFile(packs[0], os.O_WRONLY, 0)
	_, _ = f.WriteAt([]byte{a[10] ^ 0xff}, 10)
	f.Close()
	if _, err := s.GetRaw(ctx, cas.Sum(a)); err == nil {
		t.Fatal("read a damaged block")
	}
	if ok, _ := s.Has(ctx, cas.Sum(a)); ok {
		t.Fatal("damaged block still listed")
	}
	if got, err := s.GetRaw(ctx, cas.Sum(b)); err != nil || !bytes.Equal(got, b) {
		t.Fatalf("intact neighbour lost: %v", err)
	}
}

func TestPackGCAndLink(t *testing.T) {
	s := open(t)
	defer s.Close()
	ctx := context.Background()
	keepLeaf, dropLeaf := randBlock(3000).RawData(), randBlock(3000).RawData()
	// The kept file's root pins a raw leaf: a raw root is its own DAG.
	w, err := s.PackFor(cas.Sum(keepLeaf), int64(len(keepLeaf)))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Put(cas.Sum(keepLeaf), 0, keepLeaf); err != nil {
		t.Fatal(err)
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	if err := w.LinkFile(out, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, keepLeaf) {
		t.Fatal("linked file differs from the pack's file")
	}
	packFile(t, s, [][]byte{dropLeaf})
	if err := s.Pin(ctx, cas.Sum(keepLeaf)); err != nil {
		t.Fatal(err)
	}
	res, err := s.GC(ctx, func(cid.Cid, []byte) ([]cid.Cid, error) { return nil, nil })
	if err != nil {
		t.Fatal(err)
	}
	if res.Removed != 1 {
		t.Fatalf("gc removed %d blocks, want 1: %+v", res.Removed, res)
	}
	if ok, _ := s.Has(ctx, cas.Sum(dropLeaf)); ok {
		t.Fatal("unpinned pack survived gc")
	}
	if ok, _ := s.Has(ctx, cas.Sum(keepLeaf)); !ok {
		t.Fatal("pinned pack removed by gc")
	}
	if n, _ := filepath.Glob(filepath.Join(s.Dir(), "packs", "*.pack")); len(n) != 1 {
		t.Fatalf("%d pack files after gc, want 1", len(n))
	}
}

// Blocks of a pack closed without Sync may not have reached the disk: the
// store verifies them even where it otherwise trusts its disk (sending to
// peers), before and after a reopen, until a Sync.
func TestUnsyncedPackIsVerified(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	a := randBlock(4000).RawData()
	w, err := s.PackFor(cas.Sum(a), int64(len(a)))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Put(cas.Sum(a), 0, a); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	packs, _ := filepath.Glob(filepath.Join(s.Dir(), "packs", "*.pack"))
	f, _ := os.OpenFile(packs[0], os.O_WRONLY, 0)
	_, _ = f.WriteAt(make([]byte, 100), 0) // lost in a crash
	f.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(s.Dir())
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if got, err := s2.ReadToSend(ctx, cas.Sum(a), make([]byte, 8000)); err == nil {
		t.Fatalf("sent %d bytes of an unsynced, damaged block (pooled read)", len(got))
	}
	if got, err := s2.GetToSend(ctx, cas.Sum(a)); err == nil {
		t.Fatalf("sent %d bytes of an unsynced, damaged block", len(got))
	}
}
