package p2p

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"io/fs"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/archy-node/archy/cas"
	"github.com/archy-node/archy/p2p/dag"
	"github.com/archy-node/archy/p2p/wire"
	blocks "github.com/ipfs/go-block-format"
	cid "github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
)

// answerName makes n answer every name request with root and size,
// whatever the sum: a liar's name service.
func answerName(n *Node, root cid.Cid, size uint64) {
	n.host.SetStreamHandler(NameProtocol, func(s network.Stream) {
		defer s.Close()
		if _, err := wire.ReadCID(bufio.NewReader(s)); err != nil {
			_ = s.Reset()
			return
		}
		w := bufio.NewWriter(s)
		_ = w.WriteByte(nameOK)
		wire.WriteBytes(w, root.Bytes())
		wire.WriteUvarint(w, size)
		_ = w.Flush()
	})
}

// diskUsage is the bytes allocated on disk under dirs (sparse files
// count what they hold, not their length).
func diskUsage(dirs ...string) int64 {
	var total int64
	for _, d := range dirs {
		_ = filepath.WalkDir(d, func(_ string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() {
				return nil
			}
			if fi, err := e.Info(); err == nil {
				if st, ok := fi.Sys().(*syscall.Stat_t); ok {
					total += st.Blocks * 512
				}
			}
			return nil
		})
	}
	return total
}

// watchdog samples the heap and the disk under dirs until stopped, and
// cancels cancel once either grows past its cap (so a node that does not
// bound a fetch fails the test instead of filling the machine).
type watchdog struct {
	peakHeap, peakDisk atomic.Int64
	// allocated is the bytes allocated in all (runtime.MemStats.
	// TotalAlloc) from start to stop: what sampling cannot miss.
	allocated int64
	stop      func()
}

func startWatchdog(cancel context.CancelFunc, heapCap, diskCap int64, dirs ...string) *watchdog {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	heap0, total0, disk0 := int64(ms.HeapAlloc), ms.TotalAlloc, diskUsage(dirs...)
	w := &watchdog{}
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for i := 0; ; i++ {
			runtime.ReadMemStats(&ms)
			if h := int64(ms.HeapAlloc) - heap0; h > w.peakHeap.Load() {
				w.peakHeap.Store(h)
			}
			if i%10 == 0 {
				if d := diskUsage(dirs...) - disk0; d > w.peakDisk.Load() {
					w.peakDisk.Store(d)
				}
			}
			if w.peakHeap.Load() > heapCap || w.peakDisk.Load() > diskCap {
				cancel()
			}
			select {
			case <-quit:
				return
			case <-t.C:
			}
		}
	}()
	w.stop = func() {
		close(quit)
		wg.Wait()
		var end runtime.MemStats
		runtime.ReadMemStats(&end)
		w.allocated = int64(end.TotalAlloc - total0)
	}
	return w
}

// bomb stores in n a DAG of three blocks that declares a 4 TiB file of
// 4,194,304 leaves: a 1 MiB leaf, a node naming it 2048 times, and a root
// naming that node 2048 times.
func bomb(t *testing.T, n *Node) cid.Cid {
	t.Helper()
	leaf := make([]byte, dag.MaxChunk)
	_, _ = rand.Read(leaf)
	lc := cas.Sum(leaf)
	put := func(c cid.Cid, data []byte) {
		b, err := blocks.NewBlockWithCid(data, c)
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Store().Put(t.Context(), b); err != nil {
			t.Fatal(err)
		}
	}
	put(lc, leaf)
	kids := make([]dag.Link, dag.MaxLinks)
	for i := range kids {
		kids[i] = dag.Link{Cid: lc, Size: uint64(len(leaf))}
	}
	mid, midSize, midData, err := dag.EncodeNode(kids)
	if err != nil {
		t.Fatal(err)
	}
	put(mid, midData)
	for i := range kids {
		kids[i] = dag.Link{Cid: mid, Size: midSize}
	}
	root, rootSize, rootData, err := dag.EncodeNode(kids)
	if err != nil {
		t.Fatal(err)
	}
	put(root, rootData)
	if rootSize != 4<<40 {
		t.Fatalf("bomb declares %d bytes", rootSize)
	}
	return root
}

// A peer answering a name request with a three-block DAG bomb (4 TiB,
// four million leaves) costs the node one block: the root declares
// another size than the manifest pins, so nothing below it is walked,
// no leaf list is made, nothing is written, and the peer is banned.
func TestDAGBombRefused(t *testing.T) {
	victim, attacker := newNode(t, nil), newNode(t, nil)
	root := bomb(t, attacker)
	_, image := randomFile(t, 2<<20) // the archive a manifest pins
	sum, size := cas.Sum(image), int64(len(image))
	// The attacker even names the pinned size.
	answerName(attacker, root, uint64(size))
	connect(t, victim, attacker)

	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	outDir := t.TempDir()
	const heapCap, diskCap = 512 << 20, 256 << 20
	wd := startWatchdog(cancel, heapCap, diskCap, victim.cfg.DataDir, outDir)
	start := time.Now()
	_, err := getPinned(ctx, victim, sum, size, filepath.Join(outDir, "image.tar"))
	took := time.Since(start)
	wd.stop()
	heap, disk := wd.peakHeap.Load(), wd.peakDisk.Load()
	t.Logf("bomb: %v after %s, heap grew at most %d KiB, %d KiB allocated, disk grew %d KiB", err, took, heap>>10, wd.allocated>>10, disk>>10)
	if err == nil {
		t.Fatal("fetched a DAG bomb")
	}
	if !isSizeErr(err) {
		t.Errorf("err %v, want the size refused", err)
	}
	if took > 10*time.Second {
		t.Errorf("refusing the bomb took %s", took)
	}
	if heap > 64<<20 || wd.allocated > 64<<20 {
		t.Errorf("the heap grew by %d MiB (%d MiB allocated) walking a 3-block DAG", heap>>20, wd.allocated>>20)
	}
	if disk > 8<<20 {
		t.Errorf("the disk grew by %d MiB for a 3-block DAG", disk>>20)
	}
	if !victim.bans.has(attacker.ID()) {
		t.Error("the bomb's peer is not banned")
	}

	// Asked for by its root, with no size pinned, the bomb is refused too.
	other := newNode(t, nil)
	connect(t, other, attacker)
	ctx, cancel = context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	wd = startWatchdog(cancel, heapCap, diskCap, other.cfg.DataDir, outDir)
	err = other.GetFile(ctx, root, filepath.Join(outDir, "bomb.bin"))
	wd.stop()
	heap, disk = wd.peakHeap.Load(), wd.peakDisk.Load()
	t.Logf("bomb by root: %v, heap grew at most %d KiB, %d KiB allocated, disk grew %d KiB", err, heap>>10, wd.allocated>>10, disk>>10)
	if err == nil || heap > 64<<20 || wd.allocated > 64<<20 || disk > 8<<20 {
		t.Fatalf("unpinned fetch of the bomb: %v, heap +%d MiB, %d MiB allocated, disk +%d MiB", err, heap>>20, wd.allocated>>20, disk>>20)
	}
}

// sybil starts a node on another loopback address (one host of many
// throwaway peer IDs), holding a file of size random bytes and naming it
// for any sum as named bytes.
func sybil(t *testing.T, ip string, file []byte, named uint64) (*Node, cid.Cid) {
	t.Helper()
	n := newNode(t, func(c *Config) { c.ListenAddrs = []string{"/ip4/" + ip + "/tcp/0"} })
	root, err := n.Add(t.Context(), bytesReader(file))
	if err != nil {
		t.Fatal(err)
	}
	answerName(n, root, named)
	return n, root
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// Sybil peers (fresh peer IDs on one address, more of them than honest
// ones) name wrong roots for a pinned image: one that declares 24 MiB,
// others of the pinned size with wrong bytes. The node downloads about
// the pinned size, not what they offer: answers and DAGs off the pinned
// size cost a block, bans add up per address, and once a peer has sent a
// good file its roots come first.
func TestSybilNamesBoundedByPinnedSize(t *testing.T) {
	const size = 2 << 20
	victim := newNode(t, func(c *Config) { c.RequestTimeout = 5 * time.Second })
	honest := newNode(t, nil)

	run := func(ip string) (got int64) {
		t.Helper()
		image := randomBytes(size)
		_, sum := addNamed(t, honest, image)
		big := randomBytes(24 << 20)
		var peers []*Node
		// Two sybils per root, so that each root is named by more peers
		// than the honest one's.
		for g := range 3 {
			file, named := randomBytes(size), uint64(size)
			if g == 0 {
				file = big // declares 24 MiB, named as the pinned size
			}
			for range 2 {
				s, _ := sybil(t, ip, file, named)
				peers = append(peers, s)
			}
		}
		for _, s := range peers {
			connect(t, victim, s)
		}
		connect(t, victim, honest)
		before := victim.ex.Stats().RecvBytes
		out := filepath.Join(t.TempDir(), "image.tar")
		if _, err := getPinned(t.Context(), victim, sum, size, out); err != nil {
			t.Fatal(err)
		}
		checkFile(t, out, image)
		got = victim.ex.Stats().RecvBytes - before
		t.Logf("sybils at %s: %d KiB downloaded for a %d KiB file", ip, got>>10, size>>10)
		if victim.bans.has(honest.ID()) {
			t.Fatal("the honest peer was banned")
		}
		return got
	}

	// No peer has a record yet: one sybil root is tried; then roots named
	// only from its address wait until the honest peer's is tried.
	if got := run("127.0.0.2"); got > 2*size+size/4 {
		t.Errorf("downloaded %d KiB for a %d KiB file", got>>10, size>>10)
	}
	// The honest peer has sent a good file: its root comes first, however
	// many fresh sybils (at a fresh address) outnumber it.
	if got := run("127.0.0.3"); got > size+size/4 {
		t.Errorf("downloaded %d KiB for a %d KiB file from a peer with a good record", got>>10, size>>10)
	}
}

// Fresh peer IDs at one address, each naming its own wrong root of the
// pinned size, with nobody holding the file: bans add up per address, so
// after maxAddrBans the rest are not fetched, and a new ID from there
// cannot even connect.
func TestSybilBansCountPerAddress(t *testing.T) {
	const size, sybils = 1 << 20, 8
	const ip = "127.0.0.4"
	victim := newNode(t, func(c *Config) { c.RequestTimeout = 5 * time.Second })
	sum := cas.Sum([]byte("an image nobody here holds"))
	for range sybils {
		s, _ := sybil(t, ip, randomBytes(size), size)
		connect(t, victim, s)
	}
	before := victim.ex.Stats().RecvBytes
	if _, err := getPinned(t.Context(), victim, sum, size, filepath.Join(t.TempDir(), "image.tar")); err == nil {
		t.Fatal("fetched a file nobody holds")
	}
	got := victim.ex.Stats().RecvBytes - before
	t.Logf("%d sybils at %s: %d KiB downloaded", sybils, ip, got>>10)
	if got > 3*size+size/4 {
		t.Errorf("downloaded %d KiB from %d sybils at one address, want at most about 3 roots of %d KiB", got>>10, sybils, size>>10)
	}
	if !addrBanned(victim, ip) {
		t.Fatalf("%s is not banned", ip)
	}
	fresh, _ := sybil(t, ip, randomBytes(1), 1)
	if err := victim.Connect(t.Context(), fresh.AddrInfo()); err == nil {
		t.Fatal("a fresh peer ID at a banned address connected")
	}
}

// Sybils at many addresses, each naming a wrong root of the pinned size:
// one call downloads at most maxWrongRoots of them, then gives up (their
// peers banned; a later call tries the rest).
func TestSybilsAtManyAddressesBounded(t *testing.T) {
	const size, sybils = 1 << 20, 7
	victim := newNode(t, func(c *Config) { c.RequestTimeout = 5 * time.Second })
	sum := cas.Sum([]byte("an image nobody here holds"))
	for i := range sybils {
		s, _ := sybil(t, fmt.Sprintf("127.0.1.%d", i+1), randomBytes(size), size)
		connect(t, victim, s)
	}
	before := victim.ex.Stats().RecvBytes
	if _, err := getPinned(t.Context(), victim, sum, size, filepath.Join(t.TempDir(), "image.tar")); err == nil {
		t.Fatal("fetched a file nobody holds")
	}
	got := victim.ex.Stats().RecvBytes - before
	t.Logf("%d sybils at %d addresses: %d KiB downloaded", sybils, sybils, got>>10)
	if got > 4*size+size/4 {
		t.Errorf("downloaded %d KiB from sybils at %d addresses, want at most 4 roots of %d KiB", got>>10, sybils, size>>10)
	}
}
