package node

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
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
	return runNode(t, Config{
		DataDir:     t.TempDir(),
		APIListen:   "127.0.0.1:0",
		RelayListen: "127.0.0.1:0",
		Relays:      relays,
		Podman:      PodmanConfig{Off: true},
		P2P:         p2p.Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, BootstrapPeers: bootstrap},
	})
}

// runNode runs a node with cfg until the test ends.
func runNode(t *testing.T, cfg Config) *Node {
	t.Helper()
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
	// The library's refusals are typed and name no flag of the CLI's: the
	// CLI words them.
	if !errors.Is(n.AppsOff(), ErrNoPodmanSocket) || st.AppsOff != ErrNoPodmanSocket.Error() || strings.Contains(st.AppsOff, "--") {
		t.Fatalf("apps off: %v, status says %q", n.AppsOff(), st.AppsOff)
	}
	req, _ = http.NewRequest(http.MethodPost, n.APIURL()+"/api/v1/catalogs/nope", strings.NewReader("{}"))
	req.Header.Set("Authorization", "Bearer "+n.Token())
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(msg), ErrNotFollowed.Error()) || strings.Contains(string(msg), "--") {
		t.Fatalf("catalog of a registry not followed: %s %s", resp.Status, msg)
	}
}

// release signs a hello manifest by a fresh DID and returns its verified
// form, its envelope JSON, and the announcement events signed by a fresh
// Nostr key bound to that DID.
func release(t *testing.T, at time.Time) (*registry.Verified, []nostr.Event, string) {
	t.Helper()
	key, v, envJSON := signedRelease(t, "hello")
	evs, sk := announce(t, key, v, envJSON, at, 0)
	return v, evs, sk
}

// signedRelease signs a one-container manifest of app id by a new key.
func signedRelease(t *testing.T, id string) (*did.Key, *registry.Verified, []byte) {
	t.Helper()
	key, err := did.Generate()
	if err != nil {
		t.Fatal(err)
	}
	m := &registry.Manifest{Schema: registry.Schema, ID: id, Name: id, Version: "1.0.0", Publisher: key.DID(),
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
	return key, v, envJSON
}

// announce makes the NIP-78 events of a release under a new Nostr key
// bound to key's DID (maxContent 0: the default inline limit).
func announce(t *testing.T, key *did.Key, v *registry.Verified, envJSON []byte, at time.Time, maxContent int) ([]nostr.Event, string) {
	t.Helper()
	sk := nostr.GeneratePrivateKey()
	pk, _ := nostr.GetPublicKey(sk)
	bind, err := discovery.Binding(key, pk)
	if err != nil {
		t.Fatal(err)
	}
	evs, err := (&discovery.Announcement{Manifest: v, Envelope: envJSON, Binding: bind, CreatedAt: at, MaxContent: maxContent}).Events(sk)
	if err != nil {
		t.Fatal(err)
	}
	return evs, sk
}

// TestThreeNodesDiscover publishes a release on node A's embedded relay;
// A and nodes B and C, which follow A's relay, discover and verify it,
// and forged events (wrong DID binding, mismatching CID, a manifest by
// another publisher) are rejected on all three.
func TestThreeNodesDiscover(t *testing.T) {
	a := startNode(t, nil, nil)
	boot := []string{a.P2P().AddrInfo().Addrs[0].String() + "/p2p/" + a.P2P().ID().String()}
	b := startNode(t, a.RelayURLs()[:1], boot)
	c := startNode(t, a.RelayURLs()[:1], boot)

	now := time.Now()
	v, evs, sk := release(t, now)
	_, other, otherSK := release(t, now.Add(-time.Minute))
	resign := func(ev nostr.Event, key string) nostr.Event {
		if err := ev.Sign(key); err != nil {
			t.Fatal(err)
		}
		return ev
	}
	// Forgeries a relay accepts (their Nostr signatures hold):
	wrongBinding := resign(evs[0], otherSK) // another Nostr key under this DID's binding
	wrongBinding.CreatedAt -= 60
	wrongBinding = resign(wrongBinding, otherSK)
	stolen := evs[0] // this publisher's event carrying another publisher's manifest
	stolen.Content = other[0].Content
	stolen.CreatedAt -= 60
	stolen = resign(stolen, sk)
	wrongCID := evs[1]
	for i, tg := range wrongCID.Tags {
		if tg[0] == "cid" {
			wrongCID.Tags = append(append(nostr.Tags{}, wrongCID.Tags[:i]...), append(nostr.Tags{{"cid", "bafkr4ihkr4ld3m4gqkjf4reryxsy2s5tkbxprqkow6fin2iiyvreuzzab4"}}, wrongCID.Tags[i+1:]...)...)
		}
	}
	wrongCID.CreatedAt -= 60
	wrongCID = resign(wrongCID, sk)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := discovery.Publish(ctx, a.RelayURLs()[:1], 5*time.Second, wrongBinding, stolen, wrongCID); err != nil {
		t.Fatal(err)
	}
	if _, err := discovery.Publish(ctx, a.RelayURLs()[:1], 5*time.Second, evs...); err != nil {
		t.Fatal(err)
	}
	for name, n := range map[string]*Node{"a": a, "b": b, "c": c} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			var got []discovery.Release
			get(t, n.APIURL()+"/api/v1/apps/discovered", &got)
			// One row per release: the release, marked latest (its pointer is no row of its own).
			ok := len(got) == 1 && got[0].Latest && got[0].D == discovery.ReleaseD("hello", got[0].Version)
			for _, r := range got {
				ok = ok && r.AppID == "hello" && r.CID.Equals(v.CID) && r.Publisher == v.Signer && len(r.Envelope) > 0
			}
			if ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %s: discovered %+v, want exactly one row: the genuine release, marked latest", name, got)
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
}
