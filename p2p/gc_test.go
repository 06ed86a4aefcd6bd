package p2p

import (
	"crypto/rand"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/archy-node/archy/p2p/dag"
	cid "github.com/ipfs/go-cid"
)

// diskUse returns the bytes the files under dir take on disk, each file
// once however many names it has there.
func diskUse(t testing.TB, dir string) int64 {
	t.Helper()
	var total int64
	seen := map[uint64]bool{}
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		if !seen[st.Ino] {
			seen[st.Ino] = true
			total += st.Blocks * 512
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return total
}

// An app update: a node has v1 of a file pinned, gets v2, which shares
// most of its leaves, pins v2 and unpins v1. After GC, v2 reads back whole
// and the store takes about v2's size on disk, not v1's and v2's. With
// GetFile, v2's pack holds every leaf and v1's pack goes whole; with
// Fetch, the leaves v2 shares stay only in v1's pack, and GC punches out
// the rest of it. The user's copy of v1 from GetFile (a hard link to its
// pack) stays intact.
func TestGCAfterUpdate(t *testing.T) {
	const size = 8 << 20
	for _, tc := range []struct {
		name  string
		punch bool                                             // GC must punch holes
		get   func(t *testing.T, n *Node, root cid.Cid) string // the user's file, if any
	}{
		{"GetFile", false, func(t *testing.T, n *Node, root cid.Cid) string {
			out := filepath.Join(t.TempDir(), "app.bin")
			if err := n.GetFile(t.Context(), root, out); err != nil {
				t.Fatal(err)
			}
			return out
		}},
		{"Fetch", true, func(t *testing.T, n *Node, root cid.Cid) string {
			if _, _, err := n.Fetch(t.Context(), root); err != nil {
				t.Fatal(err)
			}
			return ""
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, a := newNode(t, nil), newNode(t, nil)
			ctx := t.Context()
			in1, data1 := randomFile(t, size)
			data2 := append([]byte(nil), data1...)
			for _, at := range []int{size / 4, 3 * size / 4} { // two changed regions
				_, _ = rand.Read(data2[at : at+512<<10])
			}
			in2 := filepath.Join(t.TempDir(), "v2.bin")
			if err := os.WriteFile(in2, data2, 0o600); err != nil {
				t.Fatal(err)
			}
			v1, err := src.AddFile(ctx, in1)
			if err != nil {
				t.Fatal(err)
			}
			v2, err := src.AddFile(ctx, in2)
			if err != nil {
				t.Fatal(err)
			}
			connect(t, a, src)

			user1 := tc.get(t, a, v1)
			if err := a.Pin(ctx, v1); err != nil {
				t.Fatal(err)
			}
			tc.get(t, a, v2)
			if err := a.Pin(ctx, v2); err != nil {
				t.Fatal(err)
			}
			if err := a.Unpin(ctx, v1); err != nil {
				t.Fatal(err)
			}
			l1, _, _ := dag.Leaves(ctx, v1, a.store.GetRaw)
			l2, _, _ := dag.Leaves(ctx, v2, a.store.GetRaw)
			shared := map[cid.Cid]bool{}
			for _, l := range l1 {
				shared[l.Cid] = true
			}
			n := 0
			for _, l := range l2 {
				if shared[l.Cid] {
					n++
				}
			}
			before := diskUse(t, a.store.Dir())
			res, err := a.GC(ctx)
			if err != nil {
				t.Fatal(err)
			}
			after := diskUse(t, a.store.Dir())
			t.Logf("v2 shares %d of %d leaves; store %d -> %d bytes on disk (v2: %d); %+v", n, len(l2), before, after, size, res)
			if n == 0 || n == len(l2) {
				t.Fatalf("v2 shares %d of %d leaves: not an update", n, len(l2))
			}
			if after > size+size/16 {
				t.Fatalf("store takes %d bytes after gc, want about v2's %d", after, size)
			}
			if tc.punch && res.Punched < 512<<10 {
				t.Fatalf("punched %d bytes, want at least the changed region's", res.Punched)
			}
			out := filepath.Join(t.TempDir(), "v2.bin")
			if err := a.GetFile(ctx, v2, out); err != nil {
				t.Fatal(err)
			}
			checkFile(t, out, data2)
			if user1 != "" {
				checkFile(t, user1, data1)
			}
		})
	}
}
