package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/archy-node/archy/cas"
	"github.com/archy-node/archy/did"
	"github.com/archy-node/archy/p2p"
	"github.com/archy-node/archy/registry"
)

// curator is a registry's root: three keys, two needed.
type curator struct {
	keys []*did.Key
	root registry.Root
}

func newCurator(t *testing.T) *curator {
	t.Helper()
	c := &curator{}
	for range 3 {
		k, err := did.Generate()
		if err != nil {
			t.Fatal(err)
		}
		c.keys = append(c.keys, k)
		c.root.Keys = append(c.root.Keys, k.DID())
	}
	c.root.Version, c.root.Threshold = 1, 2
	return c
}

func (c *curator) catalog(t *testing.T, version int64, signers ...*did.Key) []byte {
	t.Helper()
	cat := registry.NewCatalog("demo", version, time.Now().Add(24*time.Hour), c.root)
	payload, err := cat.Payload()
	if err != nil {
		t.Fatal(err)
	}
	env, err := did.SignEnvelope(registry.CatalogPayloadType, payload, signers...)
	if err != nil {
		t.Fatal(err)
	}
	b, err := env.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func startFollower(t *testing.T, rootFile string, bootstrap []string) *Node {
	t.Helper()
	cfg := Config{DataDir: t.TempDir(), APIListen: "127.0.0.1:0", RelayListen: "127.0.0.1:0",
		Follow: []Follow{{Name: "demo", RootFile: rootFile}}, Podman: PodmanConfig{Off: true},
		P2P: p2p.Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, BootstrapPeers: bootstrap}}
	return runNode(t, cfg)
}

func postCatalog(t *testing.T, n *Node, data []byte) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, n.APIURL()+"/api/v1/catalogs/demo", bytes.NewReader(data))
	req.Header.Set("Authorization", "Bearer "+n.Token())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func catalogVersion(t *testing.T, n *Node) int64 {
	t.Helper()
	var cs []CatalogStatus
	get(t, n.APIURL()+"/api/v1/catalogs", &cs)
	if len(cs) != 1 || cs[0].Name != "demo" {
		t.Fatalf("catalogs: %+v", cs)
	}
	return cs[0].Status.Version
}

// TestCatalogGossip has a curator hand signed catalogs to node A; A
// gossips them to B. Only catalogs that pass the registry's rules (the
// threshold of the pinned root, no rollback) are kept and passed on.
func TestCatalogGossip(t *testing.T) {
	c := newCurator(t)
	rootFile := filepath.Join(t.TempDir(), "root.json")
	if err := registry.WriteRootFile(rootFile, "demo", c.root); err != nil {
		t.Fatal(err)
	}
	a := startFollower(t, rootFile, nil)
	b := startFollower(t, rootFile, []string{a.P2P().AddrInfo().Addrs[0].String() + "/p2p/" + a.P2P().ID().String()})

	// Under the threshold: refused by A, never gossiped.
	if code := postCatalog(t, a, c.catalog(t, 1, c.keys[0])); code != http.StatusBadRequest {
		t.Fatalf("catalog signed by 1 of 3 (threshold 2): %d", code)
	}
	v2 := c.catalog(t, 2, c.keys[0], c.keys[2])
	deadline := time.Now().Add(15 * time.Second)
	for catalogVersion(t, b) != 2 {
		// Re-send until gossip's mesh between A and B has formed; A takes
		// the identical catalog again as a no-op.
		if code := postCatalog(t, a, v2); code != http.StatusOK {
			t.Fatalf("catalog v2: %d", code)
		}
		if time.Now().After(deadline) {
			t.Fatal("B did not receive catalog v2 by gossip in 15s")
		}
		time.Sleep(300 * time.Millisecond)
	}
	// A rollback to v1 (validly signed) is refused, and B stays on v2.
	if code := postCatalog(t, a, c.catalog(t, 1, c.keys[1], c.keys[2])); code != http.StatusConflict {
		t.Fatalf("rollback to v1: %d", code)
	}
	if v := catalogVersion(t, a); v != 2 {
		t.Fatalf("A moved to v%d", v)
	}
	// A's own gossip validator refuses to send it too.
	if err := a.followers["demo"].topic.Publish(context.Background(), c.catalog(t, 1, c.keys[1], c.keys[2])); err == nil {
		t.Fatal("gossip published a rollback")
	}
	if v := catalogVersion(t, b); v != 2 {
		t.Fatalf("B moved to v%d after a rollback was gossiped", v)
	}
}

// sign signs cat's payload with signers and returns the envelope's JSON.
func sign(t *testing.T, cat *registry.Catalog, signers ...*did.Key) []byte {
	t.Helper()
	payload, err := cat.Payload()
	if err != nil {
		t.Fatal(err)
	}
	env, err := did.SignEnvelope(registry.CatalogPayloadType, payload, signers...)
	if err != nil {
		t.Fatal(err)
	}
	b, err := env.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newKeys(t *testing.T, n int) ([]*did.Key, []string) {
	t.Helper()
	var keys []*did.Key
	var dids []string
	for range n {
		k, err := did.Generate()
		if err != nil {
			t.Fatal(err)
		}
		keys, dids = append(keys, k), append(dids, k.DID())
	}
	return keys, dids
}

func catalogStatus(t *testing.T, n *Node) registry.Status {
	t.Helper()
	var cs []CatalogStatus
	get(t, n.APIURL()+"/api/v1/catalogs", &cs)
	if len(cs) != 1 {
		t.Fatalf("catalogs: %+v", cs)
	}
	return cs[0].Status
}

// resendUntil posts data to n again and again until cond holds (gossip's
// mesh forms on a heartbeat this does not guess), failing after 30 s.
func resendUntil(t *testing.T, n *Node, data []byte, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if code := postCatalog(t, n, data); code != http.StatusOK {
			t.Fatalf("%s: posting to the publishing node: %d", what, code)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not arrive by gossip in 30s", what)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// TestCatalogRotationTravelsByGossip: the registry rotates its root
// (version 1 → 2, all keys replaced) while follower B is away. The next
// catalog, signed by the new keys only, reaches B by gossip with the
// rotation chain, and B follows: it does not freeze on root 1.
func TestCatalogRotationTravelsByGossip(t *testing.T) {
	c := newCurator(t)
	rootFile := filepath.Join(t.TempDir(), "root.json")
	if err := registry.WriteRootFile(rootFile, "demo", c.root); err != nil {
		t.Fatal(err)
	}
	// A takes the rotation, then restarts from its folder: gossip's
	// message cache, which would replay the rotation to a peer that joins
	// within seconds, is gone, as it is for a follower away for longer.
	dirA := t.TempDir()
	cfgA := Config{DataDir: dirA, APIListen: "127.0.0.1:0", RelayListen: "127.0.0.1:0",
		Follow: []Follow{{Name: "demo", RootFile: rootFile}}, Podman: PodmanConfig{Off: true},
		P2P: p2p.Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}}}
	a, stopA := runStoppable(t, cfgA)
	if code := postCatalog(t, a, c.catalog(t, 1, c.keys[0], c.keys[1])); code != http.StatusOK {
		t.Fatalf("catalog v1: %d", code)
	}
	newKeys, newDIDs := newKeys(t, 3)
	root2 := registry.Root{Version: 2, Keys: newDIDs, Threshold: 2}
	exp := time.Now().Add(24 * time.Hour)
	rotation := sign(t, registry.NewCatalog("demo", 2, exp, root2), c.keys[0], c.keys[1], newKeys[0], newKeys[1])
	if code := postCatalog(t, a, rotation); code != http.StatusOK {
		t.Fatalf("rotating catalog v2: %d", code)
	}
	if st := catalogStatus(t, a); st.Root.Version != 2 {
		t.Fatalf("A is on root %d after the rotation", st.Root.Version)
	}
	stopA()
	a = runNode(t, cfgA)

	// B was away: it still trusts root 1 only.
	b := startFollower(t, rootFile, []string{a.P2P().AddrInfo().Addrs[0].String() + "/p2p/" + a.P2P().ID().String()})
	v3 := sign(t, registry.NewCatalog("demo", 3, exp, root2), newKeys[1], newKeys[2])
	resendUntil(t, a, v3, "catalog v3 under the new root", func() bool { return catalogStatus(t, b).Version == 3 })
	if st := catalogStatus(t, b); st.Root.Version != 2 || !st.Root.Equal(root2) {
		t.Fatalf("B is on root %+v", st.Root)
	}
	// B keeps the link, to pass it on.
	if _, err := os.Stat(filepath.Join(b.cfg.DataDir, "registries", "demo", "roots", "2.json")); err != nil {
		t.Fatalf("B did not keep the rotation: %v", err)
	}
}

// runStoppable runs a node with cfg until stop is called.
func runStoppable(t *testing.T, cfg Config) (*Node, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	n, err := New(ctx, cfg, nil)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
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
	}
	t.Cleanup(stop)
	return n, stop
}

// TestForgedChainLinkRefused: a peer gossips a bundle whose chain link
// claims root version 2 with the attacker's keys, signed by them alone,
// and a catalog under that root. The follower refuses it, stays on root
// 1, and scores the peer down.
func TestForgedChainLinkRefused(t *testing.T) {
	c := newCurator(t)
	rootFile := filepath.Join(t.TempDir(), "root.json")
	if err := registry.WriteRootFile(rootFile, "demo", c.root); err != nil {
		t.Fatal(err)
	}
	b := startFollower(t, rootFile, nil)
	if code := postCatalog(t, b, c.catalog(t, 1, c.keys[0], c.keys[1])); code != http.StatusOK {
		t.Fatalf("catalog v1: %d", code)
	}
	m, topic := attacker(t, b)
	evilKeys, evilDIDs := newKeys(t, 2)
	evilRoot := registry.Root{Version: 2, Keys: evilDIDs, Threshold: 2}
	exp := time.Now().Add(24 * time.Hour)
	forged := sign(t, registry.NewCatalog("demo", 2, exp, evilRoot), evilKeys...)
	data, err := (&registry.Bundle{Chain: []registry.Link{{Version: 2, Catalog: forged}},
		Catalog: sign(t, registry.NewCatalog("demo", 99, exp, evilRoot), evilKeys...)}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	// The same bundle fed straight to the store is refused for the link.
	if _, err := b.followers["demo"].apply(t.Context(), data); !errors.Is(err, registry.ErrRootRotation) {
		t.Fatalf("forged link: %v, want %v", err, registry.ErrRootRotation)
	}
	publishUntilPenalised(t, b, m, topic, data, "the forged bundle")
	if st := catalogStatus(t, b); st.Version != 1 || !st.Root.Equal(c.root) {
		t.Fatalf("B moved to version %d, root %+v", st.Version, st.Root)
	}
}

// attacker starts a bare swarm node that lets any catalog message out,
// connected to n.
func attacker(t *testing.T, n *Node) (*p2p.Node, *p2p.Catalog) {
	t.Helper()
	m, err := p2p.New(t.Context(), p2p.Config{DataDir: t.TempDir(), ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	topic, err := m.JoinCatalog("demo", func(context.Context, peer.ID, []byte) p2p.Verdict { return p2p.Accept })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = topic.Close() })
	if err := m.Connect(t.Context(), n.P2P().AddrInfo()); err != nil {
		t.Fatal(err)
	}
	return m, topic
}

// publishUntilPenalised gossips data from m until n scores m below zero.
func publishUntilPenalised(t *testing.T, n *Node, m *p2p.Node, topic *p2p.Catalog, data []byte, what string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		_ = topic.Publish(t.Context(), data)
		if s, ok := n.P2P().GossipScore(m.ID()); ok && s < 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never cost its sender score", what)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// TestBogusPointerCostsSender: a pointer to a blob its sender cannot
// serve (it names a newer catalog to make the node fetch) is rejected and
// costs the sender score, so pointers cannot make a node fetch for free.
func TestBogusPointerCostsSender(t *testing.T) {
	c := newCurator(t)
	rootFile := filepath.Join(t.TempDir(), "root.json")
	if err := registry.WriteRootFile(rootFile, "demo", c.root); err != nil {
		t.Fatal(err)
	}
	b := startFollower(t, rootFile, nil)
	m, topic := attacker(t, b)
	ptr, err := (&registry.Pointer{Registry: "demo", Version: 9, RootVersion: 1,
		CID: cas.Sum([]byte("a blob nobody has")).String(), Size: 1000}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	publishUntilPenalised(t, b, m, topic, ptr, "a pointer to nothing")
	if st := catalogStatus(t, b); st.Version != 0 {
		t.Fatalf("B moved to version %d", st.Version)
	}
}

// TestLargeCatalogTravelsAsBlob: a 2 MiB catalog (over the 1 MiB gossip
// message) is published on A and reaches B: A stores the bundle as a blob
// in the swarm and gossips a pointer; B fetches it from A and checks it.
func TestLargeCatalogTravelsAsBlob(t *testing.T) {
	c := newCurator(t)
	rootFile := filepath.Join(t.TempDir(), "root.json")
	if err := registry.WriteRootFile(rootFile, "demo", c.root); err != nil {
		t.Fatal(err)
	}
	a := startFollower(t, rootFile, nil)
	b := startFollower(t, rootFile, []string{a.P2P().AddrInfo().Addrs[0].String() + "/p2p/" + a.P2P().ID().String()})
	cat := registry.NewCatalog("demo", 5, time.Now().Add(24*time.Hour), c.root)
	var big []byte
	for i := 0; len(big) < 2<<20; i++ {
		id := fmt.Sprintf("app%04d", i)
		key, v, _ := signedRelease(t, id)
		cat.Delegate(key.DID(), id)
		if err := cat.Put(v); err != nil {
			t.Fatal(err)
		}
		if i%100 == 99 {
			big = sign(t, cat, c.keys[0], c.keys[1])
		}
	}
	t.Logf("catalog: %d entries, %d bytes", len(cat.Entries), len(big))
	resendUntil(t, a, big, "a 2 MiB catalog", func() bool { return catalogStatus(t, b).Version == 5 })
	if got := b.followers["demo"].store.Current(); got == nil || len(got.Entries) != len(cat.Entries) {
		t.Fatal("B's catalog is not the one published")
	}
	// It came as a blob: B pinned the one A stored, to serve it on.
	fa, fb := a.followers["demo"], b.followers["demo"]
	fa.mu.Lock()
	want := fa.blob
	fa.mu.Unlock()
	fb.mu.Lock()
	got := fb.blob
	fb.mu.Unlock()
	if !want.Defined() || got != want {
		t.Fatalf("B's catalog blob %v, A stored %v", got, want)
	}
}
