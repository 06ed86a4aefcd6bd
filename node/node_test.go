package node

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"go.uber.org/goleak"

	"github.com/archy-node/archy/did"
	"github.com/archy-node/archy/p2p"
	"github.com/archy-node/archy/p2p/discovery"
	"github.com/archy-node/archy/registry"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/ipfs/go-log/writer.(*MirrorWriter).logRoutine"),
		goleak.IgnoreAnyFunction("github.com/libp2p/go-libp2p/p2p/transport/quicreuse.(*reuse).gc"),
	)
}

// startNode runs a node on loopback ports of the OS's choosing.
func startNode(t *testing.T, relays []string, bootstrap []string) *Node {
	t.Helper()
	cfg := Config{
		DataDir:     t.TempDir(),
		APIListen:   "127.0.0.1:0",
		RelayListen: "127.0.0.1:0",
		Relays:      relays,
		P2P:         p2p.Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, BootstrapPeers: bootstrap},
	}
	ctx, cancel := context.WithCancel(context.Background())
	n, err := New(ctx, cfg, nil)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && err != context.Canceled {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("node did not stop in 20s")
		}
	})
	return n
}

func get(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %s: %s", url, resp.Status, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

func TestNodeAPIAndToken(t *testing.T) {
	n := startNode(t, nil, nil)
	var st Status
	get(t, n.APIURL()+"/api/v1/status", &st)
	if st.PeerID != n.P2P().ID().String() || len(st.Relays) != 1 || !strings.HasPrefix(st.Relays[0], "ws://127.0.0.1:") {
		t.Fatalf("status: %+v", st)
	}
	// A change without the token is refused; the token file is private.
	resp, err := http.Post(n.APIURL()+"/api/v1/status", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("POST without token: %s", resp.Status)
	}
	// A browser page rebinding its own name to 127.0.0.1 is refused.
	req, _ := http.NewRequest(http.MethodGet, n.APIURL()+"/api/v1/status", nil)
	req.Host = "evil.example:7780"
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign Host header: %s", resp.Status)
	}
}

// TestNodesDiscoverAcrossRelays publishes a release on node A's embedded
// relay; node B, which follows A's relay, and A itself discover and verify it.
func TestNodesDiscoverAcrossRelays(t *testing.T) {
	a := startNode(t, nil, nil)
	b := startNode(t, a.RelayURLs()[:1], []string{a.P2P().AddrInfo().Addrs[0].String() + "/p2p/" + a.P2P().ID().String()})

	key, err := did.Generate()
	if err != nil {
		t.Fatal(err)
	}
	m := &registry.Manifest{Schema: registry.Schema, ID: "hello", Name: "Hello", Version: "1.0.0", Publisher: key.DID(),
		Containers: []registry.Container{{Name: "web", Image: registry.Image{
			CID:    "bafkr4ihkr4ld3m4gqkjf4reryxsy2s5tkbxprqkow6fin2iiyvreuzzab4",
			Digest: "sha256:" + strings.Repeat("ab", 32)}}}}
	env, _, err := registry.Sign(m, key)
	if err != nil {
		t.Fatal(err)
	}
	envJSON, _ := env.Marshal()
	v, err := registry.VerifyEnvelope(envJSON)
	if err != nil {
		t.Fatal(err)
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
	if _, err := discovery.Publish(ctx, a.RelayURLs()[:1], 5*time.Second, evs...); err != nil {
		t.Fatal(err)
	}
	for name, n := range map[string]*Node{"a": a, "b": b} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			var got []discovery.Release
			get(t, n.APIURL()+"/api/v1/apps/discovered", &got)
			if len(got) == 2 && got[0].AppID == "hello" && got[0].CID.Equals(v.CID) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %s: discovered %+v", name, got)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// B reached A over the swarm too.
	var peers []Peer
	get(t, b.APIURL()+"/api/v1/peers", &peers)
	found := false
	for _, p := range peers {
		found = found || p.ID == a.P2P().ID().String()
	}
	if !found {
		t.Fatalf("b's peers %+v lack a", peers)
	}
	_ = filepath.Join
}
