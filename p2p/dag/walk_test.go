package dag

import (
	"bytes"
	"context"
	"errors"
	"testing"

	cid "github.com/ipfs/go-cid"
)

// countingGet counts the blocks a walk asks for.
type countingGet struct {
	s     *memStore
	calls int
}

func (g *countingGet) get(ctx context.Context, c cid.Cid) ([]byte, error) {
	g.calls++
	return g.s.get(ctx, c)
}

// tree stores a root over fan nodes that each hold kids leaves of leafSize
// bytes (all the same leaf), and returns it.
func tree(t *testing.T, s *memStore, fan, kids int, leafSize uint64, declare func(uint64) uint64) cid.Cid {
	t.Helper()
	leaf := sumRaw(bytes.Repeat([]byte{1}, int(min(leafSize, 16))))
	ls := make([]Link, kids)
	for i := range ls {
		ls[i] = Link{Cid: leaf, Size: leafSize}
	}
	mid, midSize, midData, err := EncodeNode(ls)
	if err != nil {
		t.Fatal(err)
	}
	_ = s.put(mid, midData)
	ms := make([]Link, fan)
	for i := range ms {
		ms[i] = Link{Cid: mid, Size: declare(midSize)}
	}
	root, _, rootData, err := EncodeNode(ms)
	if err != nil {
		t.Fatal(err)
	}
	_ = s.put(root, rootData)
	return root
}

func same(n uint64) uint64 { return n }

func TestWalkRefusesBombs(t *testing.T) {
	const pinned = 2 << 20
	for _, tc := range []struct {
		name      string
		fan, kids int
		leafSize  uint64
		declare   func(uint64) uint64
		lim       Limit
		want      error
		maxCalls  int
	}{
		// 4 TiB in 4,194,304 leaves: refused at the root.
		{"declares 4 TiB, pinned 2 MiB", MaxLinks, MaxLinks, MaxChunk, same, Limit{Size: pinned}, ErrSize, 1},
		{"declares 4 TiB, unpinned", MaxLinks, MaxLinks, MaxChunk, same, Limit{Size: -1, Max: 16 << 30}, ErrSize, 1},
		// The root declares the pinned size; its nodes hold 2 GiB each.
		{"nodes larger than their links", 2, MaxLinks, MaxChunk, func(uint64) uint64 { return pinned / 2 }, Limit{Size: pinned}, ErrBadNode, 2},
		// 4 MiB as four million one-byte leaves: far more than a build
		// makes, refused long before the end.
		{"one-byte leaves", MaxLinks, MaxLinks, 1, same, Limit{Size: MaxLinks * MaxLinks}, ErrSize, 2},
		{"empty links", MaxLinks, MaxLinks, 0, same, Limit{Size: 0}, ErrBadNode, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &memStore{m: map[cid.Cid][]byte{}}
			root := tree(t, s, tc.fan, tc.kids, tc.leafSize, tc.declare)
			g := &countingGet{s: s}
			leaves := 0
			_, err := Walk(context.Background(), root, tc.lim, g.get, func(Link) error { leaves++; return nil })
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if g.calls > tc.maxCalls {
				t.Errorf("asked for %d blocks, want at most %d", g.calls, tc.maxCalls)
			}
			if tc.lim.Size > 0 && uint64(leaves) > MaxLeaves(uint64(tc.lim.Size)) {
				t.Errorf("visited %d leaves, more than %d", leaves, MaxLeaves(uint64(tc.lim.Size)))
			}
		})
	}
}

// A DAG deeper than MaxDepth (a chain of one-link nodes) is refused.
func TestWalkRefusesDeepChain(t *testing.T) {
	s := &memStore{m: map[cid.Cid][]byte{}}
	c, size := sumRaw([]byte("x")), uint64(1)
	for range MaxDepth + 2 {
		var data []byte
		var err error
		c, size, data, err = EncodeNode([]Link{{Cid: c, Size: size}})
		if err != nil {
			t.Fatal(err)
		}
		_ = s.put(c, data)
	}
	if _, err := Walk(context.Background(), c, Limit{Size: 1}, s.get, func(Link) error { return nil }); !errors.Is(err, ErrBadNode) {
		t.Fatalf("err %v, want a depth refusal", err)
	}
}

// What Build makes passes a walk pinned at its size, with no more leaves
// than MaxLeaves: random bytes, and a tar archive cut at its members.
func TestBuildWithinLimits(t *testing.T) {
	small := make([][]byte, 0, 40)
	for i := range 40 {
		small = append(small, randBytes(MinChunk+i*997)) // each cut on both sides
	}
	for name, data := range map[string][]byte{
		"random": randBytes(9<<20 + 3),
		"tar":    tarOf(t, small...),
		"empty":  nil,
	} {
		t.Run(name, func(t *testing.T) {
			s := &memStore{m: map[cid.Cid][]byte{}}
			root, size, err := Build(context.Background(), bytes.NewReader(data), s.put)
			if err != nil {
				t.Fatal(err)
			}
			leaves, total, err := LeavesWithin(context.Background(), root, Limit{Size: int64(len(data))}, s.get)
			if err != nil {
				t.Fatal(err)
			}
			if total != size || uint64(len(leaves)) > MaxLeaves(size) {
				t.Fatalf("%d leaves of %d bytes, at most %d allowed", len(leaves), total, MaxLeaves(size))
			}
			if _, _, err := LeavesWithin(context.Background(), root, Limit{Size: int64(len(data)) + 1}, s.get); !errors.Is(err, ErrSize) {
				t.Fatalf("walk pinned one byte off: %v", err)
			}
		})
	}
}

// FuzzWalk walks a root node whose every other DAG-PB child is answered
// with one node (a peer making up blocks): any shape it takes, a walk
// under a pinned size ends, asks for a bounded number of blocks, and
// succeeds only with the pinned size in at most MaxLeaves leaves.
func FuzzWalk(f *testing.F) {
	leaf := sumRaw([]byte("leaf"))
	ls := make([]Link, 8)
	for i := range ls {
		ls[i] = Link{Cid: leaf, Size: MinChunk}
	}
	mid, midSize, midData, _ := EncodeNode(ls)
	_, _, rootData, _ := EncodeNode([]Link{{Cid: mid, Size: midSize}, {Cid: mid, Size: midSize}})
	f.Add(rootData, midData, int64(2*midSize))
	f.Add(rootData, midData, int64(-1))
	f.Add(midData, midData, int64(midSize))
	f.Fuzz(func(t *testing.T, rootData, midData []byte, size int64) {
		size = min(size, 1<<30)
		root := sumPB(rootData)
		calls := 0
		get := func(_ context.Context, c cid.Cid) ([]byte, error) {
			calls++
			if c == root {
				return rootData, nil
			}
			return midData, nil
		}
		lim := Limit{Size: size}
		if size < 0 {
			lim = Limit{Size: -1, Max: 1 << 30}
		}
		var leaves, sum uint64
		total, err := Walk(context.Background(), root, lim, get, func(l Link) error {
			leaves++
			sum += l.Size
			return nil
		})
		// Each node fetched after the root is at least a link's bytes
		// and all of them fit maxInterior of at most the allowed size.
		if max := maxInterior(1<<30)/16 + 2; uint64(calls) > max {
			t.Fatalf("%d blocks asked for", calls)
		}
		if err != nil {
			return
		}
		if lim.Size >= 0 && total != uint64(lim.Size) || total > 1<<30 {
			t.Fatalf("walked %d bytes under %+v", total, lim)
		}
		if sum != total || leaves > MaxLeaves(total) {
			t.Fatalf("%d leaves of %d bytes for %d", leaves, sum, total)
		}
	})
}
