package blockstore

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/archy-node/archy/cas"
	blocks "github.com/ipfs/go-block-format"
	cid "github.com/ipfs/go-cid"
)

// testDAG is a LinkFunc over root nodes the test made.
type testDAG map[cid.Cid][]cid.Cid

func (g testDAG) links(c cid.Cid, _ []byte) ([]cid.Cid, error) { return g[c], nil }

// addFile writes leaves into a pack at their offsets, synced, stores a
// root node (loose) that links to them, and returns the root and the pack.
func (g testDAG) addFile(t *testing.T, s *Store, leaves ...[]byte) (cid.Cid, *pack) {
	t.Helper()
	node := randBlock(100).RawData()
	root := cas.SumCodec(cas.DagPB, node)
	b, _ := blocks.NewBlockWithCid(node, root)
	if err := s.Put(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	w, err := s.NewPack()
	if err != nil {
		t.Fatal(err)
	}
	var off int64
	for _, l := range leaves {
		if err := w.Put(cas.Sum(l), off, l); err != nil {
			t.Fatal(err)
		}
		g[root] = append(g[root], cas.Sum(l))
		off += int64(len(l))
	}
	if err := w.SetRoot(root, off); err != nil {
		t.Fatal(err)
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return root, w.p
}

func packDiskUse(t *testing.T, p *pack) int64 {
	t.Helper()
	n, _, err := diskUse(p.f)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// An update: the new version's pack holds only what the old one lacks, so
// the old pack, unpinned, still holds the shared leaves. GC frees the
// leaves only the old version had (and a repeated copy of a shared one),
// keeps the shared ones readable, and a restart does not bring the freed
// ones back. A pack with a second name (a user's file) or on a file
// system without holes is left whole.
func TestGCPunchesDeadBlocks(t *testing.T) {
	const leaf = 256 << 10
	for _, tc := range []struct {
		name   string
		linked bool // the old pack is also a user's file
		noHole bool // the file system does not punch holes
	}{
		{name: "punch"},
		{name: "linked", linked: true},
		{name: "no holes", noHole: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			ctx := t.Context()
			g := testDAG{}
			s1, s2, s3 := randBlock(leaf).RawData(), randBlock(leaf).RawData(), randBlock(leaf).RawData()
			oldOnly, newOnly := randBlock(leaf).RawData(), randBlock(leaf).RawData()
			// s2 twice in the old file: one copy is spare.
			oldRoot, oldPack := g.addFile(t, s, s1, oldOnly, s2, s2, s3)
			newRoot, _ := g.addFile(t, s, newOnly)
			g[newRoot] = append(g[newRoot], cas.Sum(s1), cas.Sum(s2), cas.Sum(s3))
			if err := s.Pin(ctx, newRoot); err != nil {
				t.Fatal(err)
			}
			if tc.linked {
				if err := os.Link(oldPack.f.Name(), filepath.Join(t.TempDir(), "user-file")); err != nil {
					t.Fatal(err)
				}
			}
			if tc.noHole {
				s.holes.Store(2)
			}
			before := packDiskUse(t, oldPack)
			res, err := s.GC(ctx, g.links)
			if err != nil {
				t.Fatal(err)
			}
			freed := before - packDiskUse(t, oldPack)
			t.Logf("%+v; old pack: %d of %d bytes freed", res, freed, before)

			punched := !tc.linked && !tc.noHole
			if want := int64(2 * leaf); punched && (freed < want-2*holeAlign || freed > want+holeAlign || res.Punched != freed) {
				t.Fatalf("freed %d bytes (reported %d), want about %d", freed, res.Punched, want)
			}
			if !punched && (freed != 0 || res.Punched != 0) {
				t.Fatalf("freed %d bytes (reported %d) of a pack that must stay whole", freed, res.Punched)
			}
			if ok, _ := s.Has(ctx, oldRoot); ok {
				t.Fatal("unpinned root node kept")
			}
			check := func(s *Store) {
				t.Helper()
				for i, l := range [][]byte{s1, s2, s3, newOnly} {
					if got, err := s.GetRaw(ctx, cas.Sum(l)); err != nil || !bytes.Equal(got, l) {
						t.Fatalf("needed leaf %d: %v", i, err)
					}
				}
				if ok, _ := s.Has(ctx, cas.Sum(oldOnly)); ok == punched {
					t.Fatalf("dead leaf held: %v, want %v", ok, !punched)
				}
			}
			check(s)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s, err = Open(s.Dir())
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			check(s)
			// Only one copy of s2 is indexed now, and a second GC finds
			// nothing more to punch.
			if punched {
				d, _ := digestOf(cas.Sum(s2))
				if n := len(s.lookup(d)); n != 1 {
					t.Fatalf("s2 at %d places after gc and reopen, want 1", n)
				}
				if res, err := s.GC(ctx, g.links); err != nil || res.Punched != 0 || res.Removed != 0 {
					t.Fatalf("second gc: %+v, %v", res, err)
				}
			}
		})
	}
}

// Copies of needed blocks in an unpinned pack are spare when the pinned
// version's pack holds them (GetFile copies shared leaves into it): the
// old pack goes whole.
func TestGCDropsSpareCopies(t *testing.T) {
	s := open(t)
	defer s.Close()
	ctx := t.Context()
	g := testDAG{}
	shared, oldOnly, newOnly := randBlock(8192).RawData(), randBlock(8192).RawData(), randBlock(8192).RawData()
	oldRoot, oldPack := g.addFile(t, s, shared, oldOnly)
	newRoot, _ := g.addFile(t, s, shared, newOnly)
	if err := s.Pin(ctx, newRoot); err != nil {
		t.Fatal(err)
	}
	res, err := s.GC(ctx, g.links)
	if err != nil {
		t.Fatal(err)
	}
	if !oldPack.deleted {
		t.Fatalf("old pack kept: %+v", res)
	}
	if ok, _ := s.Has(ctx, oldRoot); ok {
		t.Fatal("old root kept")
	}
	for _, l := range [][]byte{shared, newOnly} {
		if got, err := s.GetRaw(ctx, cas.Sum(l)); err != nil || !bytes.Equal(got, l) {
			t.Fatalf("needed leaf: %v", err)
		}
	}
}

// Reads racing a punch return the block's bytes or a miss, never the
// hole's zeros, even on the paths that do not verify (sending to peers).
func TestGCPunchRacesReads(t *testing.T) {
	s := open(t)
	defer s.Close()
	ctx := context.Background()
	g := testDAG{}
	var dead [][]byte
	for range 64 {
		dead = append(dead, randBlock(64<<10).RawData())
	}
	kept := randBlock(64 << 10).RawData()
	all := append(dead[:len(dead):len(dead)], kept)
	_, _ = g.addFile(t, s, all...)
	keepRoot, _ := g.addFile(t, s)
	g[keepRoot] = []cid.Cid{cas.Sum(kept)}
	if err := s.Pin(ctx, keepRoot); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			buf := make([]byte, 64<<10)
			for {
				select {
				case <-stop:
					return
				default:
				}
				for _, l := range all {
					var got []byte
					var err error
					if i%2 == 0 {
						got, err = s.GetToSend(ctx, cas.Sum(l))
					} else {
						got, err = s.ReadToSend(ctx, cas.Sum(l), buf)
					}
					if err == nil && !bytes.Equal(got, l) {
						t.Error("read returned wrong bytes")
						return
					}
				}
			}
		})
	}
	res, err := s.GC(ctx, g.links)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if res.Punched < int64(len(dead))*(64<<10)-holeAlign {
		t.Fatalf("punched %d bytes: %+v", res.Punched, res)
	}
	if got, err := s.GetRaw(ctx, cas.Sum(kept)); err != nil || !bytes.Equal(got, kept) {
		t.Fatalf("kept leaf: %v", err)
	}
}

func TestHoles(t *testing.T) {
	const a = holeAlign
	for _, tc := range []struct {
		name       string
		dead, live [][2]int64
		want       [][2]int64
	}{
		{"aligned", [][2]int64{{0, 2 * a}}, nil, [][2]int64{{0, 2 * a}}},
		{"inner blocks only", [][2]int64{{10, 3*a + 10}}, nil, [][2]int64{{a, 3 * a}}},
		{"small neighbours add up", [][2]int64{{a / 2, a}, {0, a / 2}}, nil, [][2]int64{{0, a}}},
		{"live block splits", [][2]int64{{0, 4 * a}}, [][2]int64{{a + 1, 2*a + 1}}, [][2]int64{{0, a}, {3 * a, 4 * a}}},
		{"live neighbour shares a block", [][2]int64{{0, a + 100}}, [][2]int64{{a + 100, 2 * a}}, [][2]int64{{0, a}}},
		{"too small", [][2]int64{{1, a}}, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := holes(tc.dead, tc.live)
			if len(got) != len(tc.want) {
				t.Fatalf("holes = %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("holes = %v, want %v", got, tc.want)
				}
			}
		})
	}
}

// A read that looked a block up before GC punched it, and reads the hole,
// is told to verify (the race TestGCPunchRacesReads rarely hits).
func TestGCStaleLookupVerifies(t *testing.T) {
	s := open(t)
	defer s.Close()
	g := testDAG{}
	dead, keep := randBlock(64<<10).RawData(), randBlock(8192).RawData()
	g.addFile(t, s, dead, keep)
	keepRoot, _ := g.addFile(t, s)
	g[keepRoot] = []cid.Cid{cas.Sum(keep)}
	if err := s.Pin(t.Context(), keepRoot); err != nil {
		t.Fatal(err)
	}
	d, _ := digestOf(cas.Sum(dead))
	gen := s.punches.Load()
	ls := s.lookup(d)
	if len(ls) != 1 || s.untrusted(ls[0].p, gen) {
		t.Fatalf("before gc: %d locations, untrusted %v", len(ls), s.untrusted(ls[0].p, gen))
	}
	if res, err := s.GC(t.Context(), g.links); err != nil || res.Punched == 0 {
		t.Fatalf("gc: %+v, %v", res, err)
	}
	data := make([]byte, ls[0].size)
	if _, err := ls[0].p.f.ReadAt(data, ls[0].off); err != nil {
		t.Fatal(err)
	}
	if cas.Digest(data) == d {
		t.Fatal("block not punched")
	}
	if !s.untrusted(ls[0].p, gen) {
		t.Fatal("a read of a punched block would not verify")
	}
}

// A writer refilling a pack (a GetFile of an unpinned version) while GC
// punches and deletes it: whatever the writer put reads back right while
// the writer is open.
func TestGCRacesRefill(t *testing.T) {
	s := open(t)
	defer s.Close()
	ctx := t.Context()
	g := testDAG{}
	var leaves [][]byte
	for range 16 {
		leaves = append(leaves, randBlock(16<<10).RawData())
	}
	root, _ := g.addFile(t, s, leaves...)
	keepRoot, _ := g.addFile(t, s)
	g[keepRoot] = []cid.Cid{cas.Sum(leaves[0])}
	if err := s.Pin(ctx, keepRoot); err != nil {
		t.Fatal(err)
	}
	var punches atomic.Int32
	for range 100 {
		// A collection starts as the writer opens the pack again.
		var wg sync.WaitGroup
		wg.Go(func() {
			res, err := s.GC(ctx, g.links)
			if err != nil {
				t.Error(err)
			}
			if res.Punched > 0 {
				punches.Add(1)
			}
		})
		w, err := s.PackFor(root, int64(16*(16<<10)))
		if err != nil {
			t.Fatal(err)
		}
		for i, l := range leaves {
			if off := int64(i * (16 << 10)); !w.Holds(cas.Sum(l), off) {
				if err := w.Put(cas.Sum(l), off, l); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := w.Sync(); err != nil {
			t.Fatal(err)
		}
		for i, l := range leaves {
			if got, err := s.GetToSend(ctx, cas.Sum(l)); err != nil || !bytes.Equal(got, l) {
				t.Fatalf("leaf %d with the writer open: %v", i, err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
	}
	t.Logf("%d collections punched holes", punches.Load())
}

// A section handed out for sending is checked again when GC punched since:
// a block punched under the sender reads as a hole, and Intact says so,
// while a block of the same pack that was not punched still passes.
func TestSectionIntactAfterPunch(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	g := testDAG{}
	keep, drop := randBlock(64<<10).RawData(), randBlock(64<<10).RawData()
	_, p := g.addFile(t, s, keep, drop)
	sec, gen, ok := s.SectionToSend(cas.Sum(drop))
	keepSec, keepGen, ok2 := s.SectionToSend(cas.Sum(keep))
	if !ok || !ok2 {
		t.Fatal("no section for a synced pack's block")
	}
	if !s.Intact(cas.Sum(drop), sec, gen) {
		t.Fatal("untouched block reported damaged")
	}
	// GC punches drop (as punch does: the generation first, then the hole).
	s.punches.Add(1)
	f, err := os.OpenFile(p.f.Name(), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(make([]byte, len(drop)), int64(len(keep))); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()
	if s.Intact(cas.Sum(drop), sec, gen) {
		t.Fatal("a punched block reported intact")
	}
	if !s.Intact(cas.Sum(keep), keepSec, keepGen) {
		t.Fatal("a block left alone reported damaged after a punch elsewhere")
	}
}
