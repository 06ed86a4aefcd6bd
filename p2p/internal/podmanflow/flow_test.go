package podmanflow

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/archy-node/archy/internal/podmantest"
	"github.com/archy-node/archy/orchestrator"
	"github.com/archy-node/archy/orchestrator/podman"
	"github.com/archy-node/archy/p2p"
	"go.uber.org/goleak"
)

// The Podman socket is reached as root too (root may open the rootless
// owner's socket, and images go to the service as a stream), so the test
// binary is not re-run as the socket's owner: podmantest.Main's leak check
// would trip over go-libp2p's package-level goroutines.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/ipfs/go-log/v2/writer.(*MirrorWriter).logRoutine"),
		goleak.IgnoreTopFunction("go.opencensus.io/stats/view.(*worker).start"),
		goleak.IgnoreAnyFunction("github.com/libp2p/go-libp2p/p2p/transport/quicreuse.(*reuse).gc"),
		goleak.IgnoreAnyFunction("github.com/libp2p/go-libp2p/p2p/host/resource-manager.(*resourceManager).background"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
	)
}

func node(t *testing.T) *p2p.Node {
	t.Helper()
	n, err := p2p.New(t.Context(), p2p.Config{
		DataDir:     t.TempDir(),
		ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"},
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return n
}

// An image pushed on one node, pulled on another, loads into a real Podman
// and runs.
func TestImageThroughSwarmRunsInPodman(t *testing.T) {
	socket := podmantest.Socket(t)
	var b [4]byte
	_, _ = rand.Read(b[:])
	run := hex.EncodeToString(b[:])
	ref := "localhost/archy-podmanflow:" + run
	body := "served by an image that crossed the swarm " + run
	archive := podmantest.BusyboxImage(t, ref, body)

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	rt, err := podman.New(ctx, podman.Config{Socket: socket})
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := rt.ImageExists(ctx, ref); ok {
		t.Fatalf("image %s exists before the test", ref)
	}

	publisher, installer := node(t), node(t)
	root, _, err := publisher.PushImage(ctx, archive)
	if err != nil {
		t.Fatal(err)
	}
	if err := installer.Connect(ctx, publisher.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	names, img, err := installer.InstallImage(ctx, root, -1, t.TempDir(), rt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rt.RemoveImage(context.Background(), ref) })
	if !slices.Contains(img.Names, ref) {
		t.Fatalf("pulled archive names %v, want %s", img.Names, ref)
	}
	if !slices.ContainsFunc(names, func(n string) bool { return strings.Contains(n, "archy-podmanflow:"+run) }) {
		t.Fatalf("podman loaded %v, want %s", names, ref)
	}

	name := "archy-podmanflow-" + run
	if _, err := rt.CreateContainer(ctx, orchestrator.ContainerSpec{
		Name: name, Image: ref, Command: []string{"sleep", "300"},
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rt.Remove(context.Background(), name) })
	if err := rt.Start(ctx, name); err != nil {
		t.Fatal(err)
	}
	res, err := rt.Exec(ctx, name, []string{"cat", "/www/index.html"})
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 0 || strings.TrimSpace(string(res.Output)) != body {
		t.Fatalf("exec in the pulled image: exit %d, output %q, want %q", res.ExitCode, res.Output, body)
	}
}
