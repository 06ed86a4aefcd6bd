package apptest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/archy-node/archy/did"
	"github.com/archy-node/archy/internal/podmantest"
	"github.com/archy-node/archy/node"
	"github.com/archy-node/archy/orchestrator"
	"github.com/archy-node/archy/p2p"
	"github.com/archy-node/archy/p2p/discovery"
	"github.com/archy-node/archy/registry"
)

// pinPort is apart from the other acceptance tests' ports.
const pinPort = port + 3

// resign signs l's manifest at version with key.
func resign(t *testing.T, l *registry.Loaded, key *did.Key, version string) ([]byte, *registry.Verified) {
	t.Helper()
	m := *l.Manifest
	m.Version, m.Publisher = version, key.DID()
	env, _, err := registry.Sign(&m, key)
	if err != nil {
		t.Fatal(err)
	}
	envJSON, _ := env.Marshal()
	v, err := registry.VerifyEnvelope(envJSON)
	if err != nil {
		t.Fatal(err)
	}
	return envJSON, v
}

// TestNodeRefusesTakeoverAndDowngrade: the node's install paths (an
// envelope, and a CID discovered on its relay) enforce the app's pin and
// monotonic versions, on real Podman: a stranger's higher version of an
// installed id is refused as a different app, the owner's lower version
// as a downgrade until the owner forces it, and a rotation statement by
// the owner makes the new DID's release an update.
func TestNodeRefusesTakeoverAndDowngrade(t *testing.T) {
	sock := podmantest.Socket(t)
	var tag [4]byte
	_, _ = rand.Read(tag[:])
	ref := "localhost/archy-test/pinapp:" + hex.EncodeToString(tag[:])
	l, envJSON, _, ownerKey := signedApp(t, "pinapp", ref, "the owner's app", pinPort)
	archives := map[string]string{"web": l.Archives["web"]}
	n := startNode(t, node.Config{DataDir: t.TempDir(), APIListen: "127.0.0.1:0", RelayListen: "127.0.0.1:0",
		Podman: node.PodmanConfig{Socket: sock},
		P2P:    p2p.Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}}})
	if code, out := call(t, n, http.MethodPost, "/api/v1/apps", node.InstallRequest{Envelope: envJSON, Archives: archives}); code != http.StatusOK {
		t.Fatalf("install: %d %s", code, out)
	}
	t.Cleanup(func() { call(t, n, http.MethodDelete, "/api/v1/apps/pinapp?purge=1", nil) })

	// A stranger announces a higher version of the same id on the node's
	// relay, with a valid DID binding.
	stranger, err := did.Generate()
	if err != nil {
		t.Fatal(err)
	}
	theirEnv, theirs := resign(t, l, stranger, "9.0.0")
	sk := nostr.GeneratePrivateKey()
	pk, _ := nostr.GetPublicKey(sk)
	bind, err := discovery.Binding(stranger, pk)
	if err != nil {
		t.Fatal(err)
	}
	evs, err := (&discovery.Announcement{Manifest: theirs, Envelope: theirEnv, Binding: bind, CreatedAt: time.Now()}).Events(sk)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := discovery.Publish(ctx, n.RelayURLs()[:1], 5*time.Second, evs...); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		var got []discovery.Release
		_, out := call(t, n, http.MethodGet, "/api/v1/apps/discovered", nil)
		_ = json.Unmarshal([]byte(out), &got)
		if len(got) > 0 && got[0].CID.Equals(theirs.CID) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the stranger's release was not discovered: %s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for name, req := range map[string]node.InstallRequest{
		"by cid":                 {CID: theirs.CID.String()},
		"by envelope":            {Envelope: theirEnv, Archives: archives},
		"forced by cid":          {CID: theirs.CID.String(), AllowDowngrade: true},
		"with a forged rotation": {CID: theirs.CID.String(), Rotations: []json.RawMessage{forgedRotation(t, stranger, ownerKey.DID())}},
	} {
		code, out := call(t, n, http.MethodPost, "/api/v1/apps", req)
		if code != http.StatusConflict || !strings.Contains(out, "a different app, not an update") {
			t.Fatalf("the stranger's release %s: %d %s, want 409 naming a different app", name, code, out)
		}
	}
	status := func() orchestrator.AppStatus {
		var apps []orchestrator.AppStatus
		_, out := call(t, n, http.MethodGet, "/api/v1/apps", nil)
		if err := json.Unmarshal([]byte(out), &apps); err != nil || len(apps) != 1 {
			t.Fatalf("apps: %s (%v)", out, err)
		}
		return apps[0]
	}
	if s := status(); s.Version != "1.0.0" || !s.Healthy {
		t.Fatalf("the owner's app after the takeover attempts: %+v", s)
	}

	// The owner's own lower version: refused, then forced.
	downEnv, _ := resign(t, l, ownerKey, "0.9.0")
	code, out := call(t, n, http.MethodPost, "/api/v1/apps", node.InstallRequest{Envelope: downEnv, Archives: archives})
	if code != http.StatusConflict || !strings.Contains(out, "--allow-downgrade") {
		t.Fatalf("the owner's downgrade: %d %s, want 409 saying how to force it", code, out)
	}
	if code, out := call(t, n, http.MethodPost, "/api/v1/apps", node.InstallRequest{Envelope: downEnv, Archives: archives, AllowDowngrade: true}); code != http.StatusOK {
		t.Fatalf("the owner's forced downgrade: %d %s", code, out)
	}
	if s := status(); s.Version != "0.9.0" || !s.Healthy {
		t.Fatalf("after the forced downgrade: %+v", s)
	}

	// The owner hands the app over: with the owner's rotation statement,
	// the discovered release of the new DID is an update.
	rot, err := registry.SignRotation("pinapp", ownerKey, stranger.DID(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	rotJSON, _ := rot.Marshal()
	if code, out := call(t, n, http.MethodPost, "/api/v1/apps", node.InstallRequest{CID: theirs.CID.String(), Rotations: []json.RawMessage{rotJSON}}); code != http.StatusOK {
		t.Fatalf("update with the owner's rotation statement: %d %s", code, out)
	}
	if s := status(); s.Version != "9.0.0" || !s.Healthy || s.Publisher != stranger.DID() {
		t.Fatalf("after the rotation: %+v", s)
	}
}

// forgedRotation is a statement "the owner hands the app to me" that
// the stranger signed itself.
func forgedRotation(t *testing.T, stranger *did.Key, owner string) json.RawMessage {
	t.Helper()
	payload := `{"app":"pinapp","from":"` + owner + `","issued":"` + time.Now().UTC().Format(registry.ExpiresLayout) +
		`","schema":"` + registry.RotationSchema + `","to":"` + stranger.DID() + `"}`
	env, err := did.SignEnvelope(registry.RotationPayloadType, []byte(payload), stranger)
	if err != nil {
		t.Fatal(err)
	}
	b, err := env.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
