package apptest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/archy-node/archy/cas"
	"github.com/archy-node/archy/did"
	"github.com/archy-node/archy/internal/podmantest"
	"github.com/archy-node/archy/node"
	"github.com/archy-node/archy/node/nodetest"
	"github.com/archy-node/archy/p2p"
	"github.com/archy-node/archy/p2p/discovery"
	"github.com/archy-node/archy/registry"
	"github.com/nbd-wtf/go-nostr"
)

// swarmPort is apart from TestNodeRunsAnApp's, so a slow teardown there
// cannot fail this test.
const swarmPort = port + 1

func startNode(t *testing.T, cfg node.Config) *node.Node {
	t.Helper()
	return nodetest.Run(t, cfg)
}

// TestNodeInstallsDiscoveredReleaseFromTheSwarm is the publish → discover
// → install flow across two nodes: a developer hands a release to their
// node (image and manifest) and announces it on that node's relay; a
// second node, with real rootless Podman, discovers the release, is asked
// to install it by manifest CID alone, fetches the image from the first
// node by the CID the manifest pins, and runs the app.
func TestNodeInstallsDiscoveredReleaseFromTheSwarm(t *testing.T) {
	sock := podmantest.Socket(t)
	var tag [4]byte
	_, _ = rand.Read(tag[:])
	// A tag of its own, so the image cannot already be in Podman and the
	// install must fetch it.
	ref := "localhost/archy-test/swarmapp:" + hex.EncodeToString(tag[:])
	l, envJSON, v, key := signedApp(t, "swarmapp", ref, "hello from the swarm", swarmPort)
	imageCID := l.Manifest.Containers[0].Image.CID

	// The developer's node: no Podman, it only keeps and serves.
	pub := startNode(t, node.Config{DataDir: t.TempDir(), APIListen: "127.0.0.1:0", RelayListen: "127.0.0.1:0",
		Podman: node.PodmanConfig{Off: true},
		P2P:    p2p.Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}}})
	data, err := os.ReadFile(l.Archives["web"])
	if err != nil {
		t.Fatal(err)
	}
	added := publishRelease(t, pub, data, envJSON, v, key)
	if added.Sum != imageCID || !strings.HasPrefix(added.CID, "bafyb") {
		t.Fatalf("add blob answered %+v; want sum %s and a DAG root", added, imageCID)
	}

	// The owner's node follows the developer's relay and knows the
	// developer's node only as a bootstrap peer.
	boot := pub.P2P().AddrInfo().Addrs[0].String() + "/p2p/" + pub.P2P().ID().String()
	inst := startNode(t, node.Config{DataDir: t.TempDir(), APIListen: "127.0.0.1:0", RelayListen: "127.0.0.1:0",
		Relays: pub.RelayURLs()[:1],
		Podman: node.PodmanConfig{Socket: sock},
		P2P:    p2p.Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, BootstrapPeers: []string{boot}}})
	deadline := time.Now().Add(15 * time.Second)
	for {
		var got []discovery.Release
		_, out := call(t, inst, http.MethodGet, "/api/v1/apps/discovered", nil)
		_ = json.Unmarshal([]byte(out), &got)
		if len(got) > 0 && got[0].CID.Equals(v.CID) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the release was not discovered: %s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// An unknown CID is a clear 404, and nothing is installed.
	if code, out := call(t, inst, http.MethodPost, "/api/v1/apps", node.InstallRequest{CID: cas.Sum([]byte("no such release")).String()}); code != http.StatusNotFound {
		t.Fatalf("install of an unknown release: %d %s", code, out)
	}
	if code, out := call(t, inst, http.MethodPost, "/api/v1/apps", node.InstallRequest{CID: v.CID.String()}); code != http.StatusOK {
		t.Fatalf("install by cid: %d %s", code, out)
	}
	t.Cleanup(func() { call(t, inst, http.MethodDelete, "/api/v1/apps/swarmapp?purge=1", nil) })
	resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(swarmPort) + "/")
	if err != nil {
		t.Fatalf("the app does not answer: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "hello from the swarm") {
		t.Fatalf("the app answered %q", body)
	}
	// The image came from the swarm, and the owner's node now keeps and
	// serves it under both names.
	sum, _ := cas.Parse(imageCID)
	root, ok := inst.P2P().Root(sum)
	if !ok || root.String() != added.CID {
		t.Fatalf("installer names %s as %s (%v), want %s", sum, root, ok, added.CID)
	}
	pins, err := inst.P2P().Store().Pins(context.Background())
	if err != nil || len(pins) != 1 || !pins[0].Equals(root) {
		t.Fatalf("installer pins %v (%v), want the image root %s", pins, err, root)
	}
	if code, out := call(t, inst, http.MethodDelete, "/api/v1/apps/swarmapp?purge=1", nil); code != http.StatusOK {
		t.Fatalf("uninstall: %d %s", code, out)
	}
	// Uninstalled, the image is let go: unpinned, its archive and blocks
	// gone at the next collection.
	deadline = time.Now().Add(30 * time.Second)
	for {
		pins, _ := inst.P2P().Store().Pins(context.Background())
		held, _ := inst.P2P().Store().Has(context.Background(), root)
		left, _ := os.ReadDir(filepath.Join(inst.DataDir(), "images"))
		if len(pins) == 0 && !held && len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after uninstall: pins %v, root held %v, image files %v", pins, held, left)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The developer's node keeps what it published.
	if pins, _ := pub.P2P().Store().Pins(context.Background()); len(pins) != 2 {
		t.Fatalf("publisher pins %v, want the image and the manifest", pins)
	}
}

// addedBlob is the node's answer to POST /api/v1/blobs.
type addedBlob struct{ CID, Sum string }

// publishRelease does what a developer's node does for a release: it keeps
// the image archive and the signed manifest, and announces the release on
// the node's relay under a new Nostr key bound to the publisher's DID.
func publishRelease(t *testing.T, pub *node.Node, image, envJSON []byte, v *registry.Verified, key *did.Key) addedBlob {
	t.Helper()
	code, out := call(t, pub, http.MethodPost, "/api/v1/blobs", image)
	if code != http.StatusOK {
		t.Fatalf("add blob: %d %s", code, out)
	}
	var added addedBlob
	if err := json.Unmarshal([]byte(out), &added); err != nil {
		t.Fatalf("add blob answered %s: %v", out, err)
	}
	if code, out := call(t, pub, http.MethodPost, "/api/v1/manifests", envJSON); code != http.StatusOK {
		t.Fatalf("add manifest: %d %s", code, out)
	}
	sk := nostr.GeneratePrivateKey()
	pk, _ := nostr.GetPublicKey(sk)
	bind, err := discovery.Binding(key, pk)
	if err != nil {
		t.Fatal(err)
	}
	evs, err := (&discovery.Announcement{Manifest: v, Envelope: envJSON, Binding: bind, CreatedAt: time.Now()}).Events(sk)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := discovery.Publish(ctx, pub.RelayURLs()[:1], 5*time.Second, evs...); err != nil {
		t.Fatal(err)
	}
	return added
}
