package p2p

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/archy-node/archy/cas"
	"github.com/archy-node/archy/p2p/dag"
	"github.com/archy-node/archy/p2p/exchange"
	"github.com/archy-node/archy/p2p/wire"
	cid "github.com/ipfs/go-cid"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// Package-level workers started by libp2p and go-log at init time.
		goleak.IgnoreTopFunction("github.com/ipfs/go-log/v2/writer.(*MirrorWriter).logRoutine"),
		goleak.IgnoreTopFunction("go.opencensus.io/stats/view.(*worker).start"),
		goleak.IgnoreAnyFunction("github.com/libp2p/go-libp2p/p2p/transport/quicreuse.(*reuse).gc"),
		goleak.IgnoreAnyFunction("github.com/libp2p/go-libp2p/p2p/host/resource-manager.(*resourceManager).background"),
	)
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("P2P_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

var localAddrs = []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}

// newNode starts a node on loopback with a fresh data folder.
func newNode(t testing.TB, mod func(*Config)) *Node {
	t.Helper()
	cfg := Config{DataDir: t.TempDir(), ListenAddrs: localAddrs, RequestTimeout: 10 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	n, err := New(t.Context(), cfg, testLogger(t))
	if err != nil {
		t.Fatalf("new node: %v", err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return n
}

func connect(t testing.TB, a, b *Node) {
	t.Helper()
	if err := a.Connect(t.Context(), b.AddrInfo()); err != nil {
		t.Fatal(err)
	}
}

func randomFile(t testing.TB, size int) (string, []byte) {
	t.Helper()
	data := make([]byte, size)
	_, _ = rand.Read(data)
	p := filepath.Join(t.TempDir(), "in.bin")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p, data
}

func checkFile(t testing.TB, p string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: %d bytes, want %d identical bytes", p, len(got), len(want))
	}
	ents, _ := os.ReadDir(filepath.Dir(p))
	for _, e := range ents {
		if strings.Contains(e.Name(), ".part") {
			t.Fatalf("temp file left behind: %s", e.Name())
		}
	}
}

func TestIdentityPersists(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{DataDir: dir, ListenAddrs: localAddrs}
	a, err := New(t.Context(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	id := a.ID()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, keyFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v, want 0600", fi.Mode().Perm())
	}
	b, err := New(t.Context(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.ID() != id {
		t.Fatalf("peer id changed across restarts: %s then %s", id, b.ID())
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no data dir", Config{}, "DataDir"},
		{"bad listen", Config{DataDir: "x", ListenAddrs: []string{"tcp/1"}}, "ListenAddrs"},
		{"bad peer", Config{DataDir: "x", BootstrapPeers: []string{"/ip4/1.2.3.4/tcp/1"}}, "BootstrapPeers"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want an error naming %s", err, tc.want)
			}
		})
	}
}

func TestBlobRoundTrip(t *testing.T) {
	for _, size := range []int{0, 1000, 3<<20 + 17} {
		t.Run(strings.ReplaceAll(time.Duration(size).String(), "ns", "B"), func(t *testing.T) {
			a, b := newNode(t, nil), newNode(t, nil)
			in, data := randomFile(t, size)
			root, err := a.AddFile(t.Context(), in)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(root.String(), "bafyb4i") {
				t.Fatalf("root %s is not a BLAKE3 DAG-PB CID", root)
			}
			connect(t, b, a)
			out := filepath.Join(t.TempDir(), "out.bin")
			if err := b.GetFile(t.Context(), root, out); err != nil {
				t.Fatal(err)
			}
			checkFile(t, out, data)
		})
	}
}

func TestGetRejectsNonBLAKE3(t *testing.T) {
	a := newNode(t, nil)
	c, _ := cid.Decode("bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy") // sha2-256
	if err := a.GetFile(t.Context(), c, filepath.Join(t.TempDir(), "x")); err == nil {
		t.Fatal("fetched a sha2-256 CID")
	}
}

func TestDHTProvideFind(t *testing.T) {
	const N = 8
	nodes := dhtSwarm(t, N)
	src, dst := nodes[3], nodes[N-1]
	in, data := randomFile(t, 1<<20)
	root, err := src.AddFile(t.Context(), in)
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Provide(t.Context(), root); err != nil {
		t.Fatal(err)
	}
	pis, err := dst.FindProviders(t.Context(), root, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(pis) != 1 || pis[0].ID != src.ID() {
		t.Fatalf("providers %v, want %s", pis, src.ID())
	}
	out := filepath.Join(t.TempDir(), "out.bin")
	if err := dst.GetFile(t.Context(), root, out); err != nil {
		t.Fatal(err)
	}
	checkFile(t, out, data)
}

func TestGCKeepsPinned(t *testing.T) {
	a := newNode(t, nil)
	ctx := t.Context()
	inKeep, dataKeep := randomFile(t, 2<<20)
	inDrop, _ := randomFile(t, 2<<20)
	keep, err := a.AddFile(ctx, inKeep)
	if err != nil {
		t.Fatal(err)
	}
	drop, err := a.AddFile(ctx, inDrop)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Pin(ctx, keep); err != nil {
		t.Fatal(err)
	}
	res, err := a.GC(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Removed == 0 {
		t.Fatalf("gc removed nothing: %+v", res)
	}
	if ok, _ := a.store.Has(ctx, drop); ok {
		t.Fatal("unpinned root survived gc")
	}
	leaves, _, err := dag.Leaves(ctx, keep, a.store.GetRaw)
	if err != nil {
		t.Fatalf("pinned dag damaged by gc: %v", err)
	}
	for _, l := range leaves {
		if ok, _ := a.store.Has(ctx, l.Cid); !ok {
			t.Fatalf("pinned leaf %s removed", l.Cid)
		}
	}
	out := filepath.Join(t.TempDir(), "out.bin")
	if err := a.GetFile(ctx, keep, out); err != nil {
		t.Fatal(err)
	}
	checkFile(t, out, dataKeep)
	// Unpinned, it goes too.
	if err := a.Unpin(ctx, keep); err != nil {
		t.Fatal(err)
	}
	if _, err := a.GC(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, _ := a.store.Has(ctx, keep); ok {
		t.Fatal("unpinned root survived gc")
	}
}

func TestResumeAfterCancel(t *testing.T) {
	a, b := newNode(t, nil), newNode(t, nil)
	in, data := randomFile(t, 8<<20)
	root, err := a.AddFile(t.Context(), in)
	if err != nil {
		t.Fatal(err)
	}
	leaves, _, err := dag.Leaves(t.Context(), root, a.store.GetRaw)
	if err != nil {
		t.Fatal(err)
	}
	connect(t, b, a)

	// First attempt: cancelled once a has sent a third of the leaves.
	ctx, cancel := context.WithCancel(t.Context())
	serveThrough(a, afterPieces(len(leaves)/3, cancel))
	out := filepath.Join(t.TempDir(), "out.bin")
	if err := b.GetFile(ctx, root, out); err == nil {
		t.Fatal("cancelled fetch succeeded")
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatal("a cancelled fetch left a visible file")
	}
	held := 0
	for _, l := range leaves {
		if ok, _ := b.store.Has(t.Context(), l.Cid); ok {
			held++
		}
	}
	if held == 0 || held == len(leaves) {
		t.Fatalf("after cancel %d of %d leaves held, want some and not all", held, len(leaves))
	}
	before := b.ex.Stats().Received
	if err := b.GetFile(t.Context(), root, out); err != nil {
		t.Fatal(err)
	}
	checkFile(t, out, data)
	// The second fetch asked only for what was missing (+1: the root).
	if again := b.ex.Stats().Received - before; again > int64(len(leaves)-held) {
		t.Fatalf("resume fetched %d blocks, only %d were missing", again, len(leaves)-held)
	}
	_ = cas.Check(root)
}

func contextWithCancel(t testing.TB) (context.Context, context.CancelFunc) {
	return context.WithCancel(t.Context())
}

// A peer that connects while a fetch runs joins it: the fetch started
// with only a seed capped at 512 KiB/s (16 s for the file) gets most of
// the file from a fast seed that connects once the first piece is out.
// Byte counts, not times, so it holds on a loaded machine.
func TestPeerJoinsRunningFetch(t *testing.T) {
	const size = 8 << 20
	slow := newNode(t, func(c *Config) { c.UploadRate = 512 << 10; c.MinRate = 1 })
	fast := newNode(t, nil)
	dst := newNode(t, func(c *Config) { c.MinRate = 1 })
	_, data := randomFile(t, size)
	root, err := slow.Add(t.Context(), bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if r, err := fast.Add(t.Context(), bytes.NewReader(data)); err != nil || !r.Equals(root) {
		t.Fatalf("fast seed root %s (%v), want %s", r, err, root)
	}
	started := make(chan struct{})
	serveThrough(slow, afterPieces(1, func() { close(started) }))
	connect(t, dst, slow)
	out := filepath.Join(t.TempDir(), "out.bin")
	done := make(chan error, 1)
	go func() { done <- dst.GetFile(t.Context(), root, out) }()
	select {
	case <-started:
	case err := <-done:
		t.Fatalf("fetch ended before the slow seed sent a piece: %v", err)
	}
	connect(t, dst, fast)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Minute): // a hang guard: the slow seed alone takes 16 s
		t.Fatal("fetch did not finish")
	}
	checkFile(t, out, data)
	if sent := fast.ex.Stats().Sent; sent < size/2 {
		t.Fatalf("the fast seed sent %d of %d bytes: it did not join the running fetch", sent, size)
	}
}

// flashCrowd has crowd nodes (configured by nodeCfg), connected to each
// other and to an origin (originCfg) that added a random file of size
// bytes, fetch it at once; each must end with the whole file.
func flashCrowd(t *testing.T, size, crowd int, originCfg, nodeCfg func(*Config)) (origin *Node, nodes []*Node) {
	t.Helper()
	origin = newNode(t, originCfg)
	_, data := randomFile(t, size)
	root, err := origin.Add(t.Context(), bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	nodes = make([]*Node, crowd)
	for i := range nodes {
		nodes[i] = newNode(t, nodeCfg)
		connect(t, nodes[i], origin)
	}
	for i := range nodes {
		for j := range i {
			connect(t, nodes[i], nodes[j])
		}
	}
	errs := make(chan error, crowd)
	outs := make([]string, crowd)
	for i, n := range nodes {
		outs[i] = filepath.Join(t.TempDir(), "out.bin")
		go func() { errs <- n.GetFile(t.Context(), root, outs[i]) }()
	}
	for range nodes {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for _, o := range outs {
		checkFile(t, o, data)
	}
	return origin, nodes
}

// A flash crowd over real TCP hosts: eight nodes fetch a file at once from
// an origin with a thin uplink (4 MiB/s) on the default configuration,
// which super-seeds; every node ends with the whole verified file, and the
// origin sends about one copy (the swarm feeds itself). Byte counts, so it holds on a loaded machine too.
func TestFlashCrowdOriginSendsAboutOneCopy(t *testing.T) {
	const size, crowd = 8 << 20, 8
	origin, _ := flashCrowd(t, size, crowd, func(c *Config) { c.UploadRate = 4 << 20 }, nil)
	copies := float64(origin.ex.Stats().Sent) / size
	t.Logf("origin sent %.2f copies to %d nodes", copies, crowd)
	if copies > 1.3 {
		t.Fatalf("origin sent %.2f copies of the file to %d nodes, want at most 1.3", copies, crowd)
	}
}

// A crowd on a seed with a thin uplink: with every asker served at once,
// each would get a twelfth of 512 KiB/s, under MinRate, and all would
// give the seed up together at their deadline (and fall back on it as a
// last resort). Upload slots serve two at a time at 256 KiB/s each and
// answer the rest busy, so they fetch from each other and nobody is
// abandoned.
func TestCrowdedThinSeedIsNotAbandoned(t *testing.T) {
	const size, crowd, rate = 4 << 20, 12, 512 << 10
	slots := 0 // the default
	if os.Getenv("ARCHY_TEST_SLOTS") != "" {
		slots, _ = strconv.Atoi(os.Getenv("ARCHY_TEST_SLOTS")) // to see the test fail without slots
	}
	capped := func(c *Config) { c.UploadRate, c.UploadSlots = rate, slots }
	origin, nodes := flashCrowd(t, size, crowd, capped, capped)
	var abandoned, busy int64
	for _, n := range nodes {
		abandoned += n.ex.Stats().Abandoned
		busy += n.ex.Stats().Busy
	}
	st := origin.ex.Stats()
	copies := float64(st.Sent) / size
	t.Logf("origin: %.2f copies, %d pieces answered busy, %d last resorts; the crowd: %d busy answers, %d peers abandoned",
		copies, st.Busy, st.LastResorts, busy, abandoned)
	if abandoned > 0 {
		t.Errorf("the crowd abandoned %d peers as too slow, want none", abandoned)
	}
	if st.Busy == 0 {
		t.Errorf("the origin answered no piece busy with %d askers and %d slots", crowd, exchange.Slots(rate, DefaultMinRate))
	}
	if copies > 1.3 {
		t.Errorf("origin sent %.2f copies, want at most 1.3", copies)
	}
}

// A peer that holds an upload slot by asking for much more than a batch
// (the same piece 64 times, 16 MiB) and reading it slowly (256 KiB/s)
// loses it at the request timeout, so an honest asker waiting on the busy origin is
// served within seconds, not after the greedy request drains. The
// request fails, so the greedy peer is not named to others either.
func TestGreedyPeerLosesItsSlot(t *testing.T) {
	const size, rate = 1 << 20, 1 << 20
	origin := newNode(t, func(c *Config) { c.UploadRate, c.UploadSlots, c.RequestTimeout = rate, 1, 2*time.Second })
	_, data := randomFile(t, size)
	root, err := origin.Add(t.Context(), bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	greedy := newNode(t, nil)
	connect(t, greedy, origin)
	s, err := greedy.Host().NewStream(t.Context(), origin.ID(), exchange.Protocol)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Reset()
	w := bufio.NewWriter(s)
	_ = w.WriteByte(2) // GET
	wire.WriteBytes(w, root.Bytes())
	_ = w.WriteByte(0) // flags
	wire.WriteUvarint(w, 64)
	for range 64 {
		wire.WriteUvarint(w, 0)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	// It reads 256 KiB/s: enough that no piece's write waits long (a
	// deadline per piece would never fire), slow enough that the 16 MiB
	// would hold the slot for a minute.
	go func() {
		buf := make([]byte, 32<<10)
		for {
			if _, err := io.ReadFull(s, buf); err != nil {
				return
			}
			time.Sleep(125 * time.Millisecond)
		}
	}()
	time.Sleep(300 * time.Millisecond)
	honest := newNode(t, nil)
	connect(t, honest, origin)
	start := time.Now()
	out := filepath.Join(t.TempDir(), "out.bin")
	if err := honest.GetFile(t.Context(), root, out); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	checkFile(t, out, data)
	t.Logf("the honest fetch took %s; the origin answered %d pieces busy", took.Round(time.Millisecond), origin.ex.Stats().Busy)
	if took > 8*time.Second {
		t.Errorf("the honest fetch took %s behind a greedy request of 16 MiB at 1 MiB/s, want it served once the request timeout (2s) ends the greedy one", took)
	}
}
