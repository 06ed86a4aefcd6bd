package p2p

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/archy-node/archy/cas"
	blocks "github.com/ipfs/go-block-format"
	cid "github.com/ipfs/go-cid"
)

// dhtSwarm starts n nodes that bootstrap from the first and refresh their
// routing tables, so each knows more than the bootstrap node.
func dhtSwarm(t *testing.T, n int) []*Node {
	t.Helper()
	nodes := make([]*Node, n)
	nodes[0] = newNode(t, nil)
	boot := []string{nodes[0].Addrs()[0].String()}
	for i := 1; i < n; i++ {
		nodes[i] = newNode(t, func(c *Config) { c.BootstrapPeers = boot })
	}
	for _, nd := range nodes {
		if err := nd.dht.Bootstrap(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	return nodes
}

func addNamed(t *testing.T, n *Node, data []byte) (root, sum cid.Cid) {
	t.Helper()
	root, sum, err := n.AddNamed(t.Context(), bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if want := cas.Sum(data); !sum.Equals(want) {
		t.Fatalf("AddNamed sum %s, want %s", sum, want)
	}
	if err := n.Pin(t.Context(), root); err != nil {
		t.Fatal(err)
	}
	return root, sum
}

func TestGetNamedThroughDHT(t *testing.T) {
	nodes := dhtSwarm(t, 5)
	src, dst := nodes[2], nodes[4]
	_, data := randomFile(t, 3<<20+17)
	root, sum := addNamed(t, src, data)
	if got, ok := src.Root(sum); !ok || !got.Equals(root) {
		t.Fatalf("src names %s as %s, want %s", sum, got, root)
	}
	if n, err := src.Reprovide(t.Context()); err != nil || n != 2 {
		t.Fatalf("reprovide: %d announced, %v; want 2 (root and sum)", n, err)
	}
	// dst knows only the sum, as a manifest gives it.
	out := filepath.Join(t.TempDir(), "image.tar")
	var last int64
	got, err := dst.GetNamed(t.Context(), sum, int64(len(data)), out, func(done, total int64) {
		if total != int64(len(data)) || done < last || done > total {
			t.Errorf("progress %d/%d after %d, file is %d bytes", done, total, last, len(data))
		}
		last = done
	})
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equals(root) {
		t.Fatalf("GetNamed root %s, want %s", got, root)
	}
	checkFile(t, out, data)
	// dst now answers for the name too.
	if r, ok := dst.Root(sum); !ok || !r.Equals(root) {
		t.Fatalf("dst did not record the name: %s %v", r, ok)
	}
	third := nodes[1]
	connect(t, third, dst)
	answers, err := third.Resolve(t.Context(), sum)
	if err != nil {
		t.Fatal(err)
	}
	if len(answers) != 1 || !answers[0].root.Equals(root) || answers[0].size != uint64(len(data)) || len(answers[0].peers) < 2 {
		t.Fatalf("answers %+v, want %s of %d bytes named by src and dst", answers, root, len(data))
	}
}

func TestGetNamedBansLiars(t *testing.T) {
	dst := newNode(t, nil)
	honest := newNode(t, nil)
	liars := []*Node{newNode(t, nil), newNode(t, nil)}
	_, data := randomFile(t, 2<<20)
	_, sum := addNamed(t, honest, data)
	_, other := randomFile(t, 2<<20)
	for _, l := range liars {
		wrong, _ := addNamed(t, l, other)
		// Two liars name the wrong root, so it is tried first.
		if err := l.names.set(sum, wrong); err != nil {
			t.Fatal(err)
		}
		connect(t, dst, l)
	}
	connect(t, dst, honest)

	out := filepath.Join(t.TempDir(), "image.tar")
	if _, err := dst.GetNamed(t.Context(), sum, int64(len(data)), out, nil); err != nil {
		t.Fatal(err)
	}
	checkFile(t, out, data)
	for _, l := range liars {
		if !dst.bans.has(l.ID()) {
			t.Errorf("liar %s not banned", l.ID())
		}
	}
	if dst.bans.has(honest.ID()) {
		t.Error("honest peer banned")
	}
	ents, _ := os.ReadDir(filepath.Dir(out))
	if len(ents) != 1 {
		t.Fatalf("files beside the output: %v", ents)
	}
}

func TestGetNamedOnlyLiarFails(t *testing.T) {
	dst, liar := newNode(t, nil), newNode(t, nil)
	_, data := randomFile(t, 1<<20)
	wrong, _ := addNamed(t, liar, data)
	sum := cas.Sum([]byte("the file nobody has"))
	if err := liar.names.set(sum, wrong); err != nil {
		t.Fatal(err)
	}
	connect(t, dst, liar)
	out := filepath.Join(t.TempDir(), "image.tar")
	_, err := dst.GetNamed(t.Context(), sum, int64(len(data)), out, nil)
	if !errors.Is(err, ErrSumMismatch) {
		t.Fatalf("err %v, want ErrSumMismatch", err)
	}
	if ents, _ := os.ReadDir(filepath.Dir(out)); len(ents) != 0 {
		t.Fatalf("left behind: %v", ents)
	}
	if !dst.bans.has(liar.ID()) {
		t.Fatal("liar not banned")
	}
}

// A file of one block (a manifest payload) is held as its sum.
func TestGetNamedSingleBlock(t *testing.T) {
	src, dst := newNode(t, nil), newNode(t, nil)
	payload := []byte(`{"schema":"archy.app/v1"}`)
	b, err := blocks.NewBlockWithCid(payload, cas.Sum(payload))
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Store().Put(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	connect(t, dst, src)
	out := filepath.Join(t.TempDir(), "manifest.json")
	if _, err := dst.GetNamed(t.Context(), b.Cid(), int64(len(payload)), out, nil); err != nil {
		t.Fatal(err)
	}
	checkFile(t, out, payload)
}

func TestNameChecksTheFile(t *testing.T) {
	n := newNode(t, nil)
	_, data := randomFile(t, 300<<10)
	root, sum := addNamed(t, n, data)
	if err := n.Name(t.Context(), cas.Sum([]byte("x")), root); !errors.Is(err, ErrSumMismatch) {
		t.Fatalf("naming with a wrong sum: %v", err)
	}
	if err := n.Name(t.Context(), sum, root); err != nil {
		t.Fatal(err)
	}
	// The name book survives a restart.
	dir := n.cfg.DataDir
	b, err := openNameBook(filepath.Join(dir, "names"))
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := b.get(sum); !ok || !r.Equals(root) {
		t.Fatalf("reopened name book: %s %v", r, ok)
	}
}

func TestReprovideLoop(t *testing.T) {
	nodes := dhtSwarm(t, 3)
	_, data := randomFile(t, 64<<10)
	src := newNode(t, func(c *Config) {
		c.BootstrapPeers = []string{nodes[0].Addrs()[0].String()}
		c.ReprovideInterval = time.Hour
		c.reprovideDelay = 100 * time.Millisecond
	})
	// Imported without a provide: only the loop announces it.
	root, sum := addNamed(t, src, data)
	for _, c := range []cid.Cid{root, sum} {
		deadline := time.Now().Add(20 * time.Second)
		for {
			pis, _ := nodes[2].FindProviders(t.Context(), c, 1)
			if len(pis) == 1 && pis[0].ID == src.ID() {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never provided by the reprovide loop", c)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

func TestGCLoopCollectsUnpinned(t *testing.T) {
	n := newNode(t, func(c *Config) { c.GCInterval = 100 * time.Millisecond })
	// As the node's API does: a session keeps the import until it is pinned.
	end := n.store.Session()
	_, keepData := randomFile(t, 256<<10)
	keep, _ := addNamed(t, n, keepData) // pinned
	end()
	_, dropData := randomFile(t, 256<<10)
	drop, _, err := n.AddNamed(t.Context(), bytes.NewReader(dropData))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if ok, _ := n.store.Has(t.Context(), drop); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the GC loop never collected an unpinned file")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if ok, _ := n.store.Has(t.Context(), keep); !ok {
		t.Fatal("the GC loop collected a pinned file")
	}
}
