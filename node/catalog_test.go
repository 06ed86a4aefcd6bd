package node

import (
	"bytes"
	"context"
	"net/http"
	"path/filepath"
	"testing"
	"time"

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
		Follow: []Follow{{Name: "demo", RootFile: rootFile}}, Podman: PodmanConfig{Socket: "off"},
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
