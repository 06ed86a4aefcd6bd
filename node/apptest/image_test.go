package apptest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/archy-node/archy/cas"
	"github.com/archy-node/archy/internal/podmantest"
	"github.com/archy-node/archy/node"
	"github.com/archy-node/archy/node/client"
	"github.com/archy-node/archy/orchestrator/podman"
	"github.com/archy-node/archy/p2p"
)

// TestImagePullThroughNodeIntoPodman is what `archy image push` and
// `archy image pull` do, on real parts: an image archive handed to one
// node, pulled by its sum through a second node (a node operation with
// progress events) from the first over the swarm, checked, and loaded
// into the second node's real rootless Podman.
func TestImagePullThroughNodeIntoPodman(t *testing.T) {
	sock := podmantest.Socket(t)
	var tag [4]byte
	_, _ = rand.Read(tag[:])
	ref := "localhost/archy-test/pullimage:" + hex.EncodeToString(tag[:])
	archive := podmantest.BusyboxImage(t, ref, "pulled")

	pub := startNode(t, node.Config{DataDir: t.TempDir(), APIListen: "127.0.0.1:0", RelayListen: "127.0.0.1:0",
		Podman: node.PodmanConfig{Off: true}, NoPeering: true,
		P2P: p2p.Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}}})
	pc := client.New(pub.APIURL(), pub.Token())
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	pushed, err := pc.PushImage(t.Context(), f)
	f.Close()
	data, _ := os.ReadFile(archive)
	if err != nil || pushed.Sum != cas.Sum(data).String() || !slices.Contains(pushed.Names, ref) {
		t.Fatalf("push: %+v %v", pushed, err)
	}

	addr := pub.P2P().Addrs()[0].String() + "/p2p/" + pub.P2P().ID().String()
	puller := startNode(t, node.Config{DataDir: t.TempDir(), APIListen: "127.0.0.1:0", RelayListen: "127.0.0.1:0",
		Podman: node.PodmanConfig{Socket: sock}, NoPeering: true,
		P2P: p2p.Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, BootstrapPeers: []string{addr}}})
	rt, err := podman.New(t.Context(), podman.Config{Socket: sock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = rt.RemoveImage(ctx, ref)
	})
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	var stages []string
	got, err := client.New(puller.APIURL(), puller.Token()).PullImage(ctx, node.FetchRequest{CID: pushed.Sum, Load: true},
		func(ev node.OpEvent) {
			if ev.Stage != "" && !slices.Contains(stages, ev.Stage) {
				stages = append(stages, ev.Stage)
			}
		})
	if err != nil {
		t.Fatalf("pull: %v", err)
	}
	if got.CID != pushed.CID || !slices.Contains(got.Loaded, ref) || got.Image == nil || !slices.Contains(got.Image.Names, ref) {
		t.Fatalf("pull: %+v", got)
	}
	if !slices.Equal(stages, []string{"fetch", "verify", "load"}) {
		t.Fatalf("progress stages %v, want fetch, verify, load", stages)
	}
	if ok, err := rt.ImageExists(ctx, ref); err != nil || !ok {
		t.Fatalf("Podman does not have %s after the pull: %v", ref, err)
	}
}
