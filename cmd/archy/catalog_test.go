package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/archy-node/archy/cas"
	"github.com/archy-node/archy/did"
	"github.com/archy-node/archy/registry"
)

// archy runs the CLI in-process and returns stdout, stderr and the error.
func archy(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), err
}

// mustArchy runs the CLI and fails the test on error.
func mustArchy(t *testing.T, args ...string) string {
	t.Helper()
	out, stderr, err := archy(t, args...)
	if err != nil {
		t.Fatalf("archy %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return out
}

// newKey makes a key file with archy did new and returns its path and DID.
func newKey(t *testing.T, dir, name string) (string, string) {
	t.Helper()
	path := filepath.Join(dir, name+".key")
	return path, strings.TrimSpace(mustArchy(t, "did", "new", "--out", path))
}

// signedManifestFile writes what archy app sign writes: a developer's
// signed manifest envelope. The manifest is valid by PRODUCT.md's rules.
func signedManifestFile(t *testing.T, dir, keyFile, id, version string) string {
	t.Helper()
	k, err := did.LoadKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	archive := []byte("oci archive of " + id + " " + version)
	digest := sha256.Sum256(append([]byte("oci manifest of "), archive...))
	m := &registry.Manifest{
		Schema: registry.Schema, ID: id, Name: strings.ToUpper(id[:1]) + id[1:], Version: version, Publisher: k.DID(),
		Containers: []registry.Container{{
			Name:    "web",
			Image:   registry.Image{Ref: "localhost/archy-" + id + ":" + version, CID: cas.Sum(archive).String(), Digest: "sha256:" + hex.EncodeToString(digest[:])},
			Command: []string{"httpd", "-f", "-p", "8080"},
			Ports:   []registry.Port{{Container: 8080, Host: 18080}},
			Volumes: []registry.Volume{{Path: "data", Mount: "/data"}},
			Health:  &registry.Health{HTTP: &registry.HTTPProbe{Port: 8080, Path: "/"}},
		}},
	}
	env, _, err := registry.Sign(m, k)
	if err != nil {
		t.Fatal(err)
	}
	b, err := env.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, id+"-"+version+".signed.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// storeStatus reads a trust store's status through the CLI.
func storeStatus(t *testing.T, store string) registry.Status {
	t.Helper()
	var st struct {
		Status registry.Status    `json:"status"`
		Apps   []registry.Listing `json:"apps"`
	}
	if err := json.Unmarshal([]byte(mustArchy(t, "catalog", "status", "--store", store, "--json")), &st); err != nil {
		t.Fatal(err)
	}
	return st.Status
}

func TestCuratorWorkflow(t *testing.T) {
	// init → add two apps from two developers → sign 2-of-3 → verify on a
	// node's trust store → publish v2 → replaying v1 is refused → rotate a
	// key → v3 signed by the new set is accepted (and more around it).
	tmp := t.TempDir()
	keys := filepath.Join(tmp, "keys")
	if err := os.Mkdir(keys, 0o700); err != nil {
		t.Fatal(err)
	}
	keyA, didA := newKey(t, keys, "root-a")
	keyB, didB := newKey(t, keys, "root-b")
	keyC, didC := newKey(t, keys, "root-c")
	keyD, didD := newKey(t, keys, "root-d")
	dev1, dev1DID := newKey(t, keys, "dev-1")
	dev2, dev2DID := newKey(t, keys, "dev-2")
	cur := filepath.Join(tmp, "registry")
	node := filepath.Join(tmp, "node", "catalog")
	published := filepath.Join(cur, "catalog.json")

	// init: root keys as a key file and as DIDs, 2-of-3.
	out := mustArchy(t, "catalog", "init", "--dir", cur, "--name", "Test registry",
		"--root-key", keyA, "--root-key", didB, "--root-key", didC, "--threshold", "2")
	if !strings.Contains(out, "2-of-3") {
		t.Fatalf("init: %s", out)
	}
	if _, _, err := archy(t, "catalog", "init", "--dir", cur, "--root-key", didA); err == nil {
		t.Fatal("init over an existing curator folder succeeded")
	}

	// add two apps from two developers.
	photos := signedManifestFile(t, tmp, dev1, "photos", "1.2.0")
	vault := signedManifestFile(t, tmp, dev2, "vault", "0.9.1")
	out = mustArchy(t, "catalog", "add", "--dir", cur, photos, vault)
	if !strings.Contains(out, "delegated photos to "+dev1DID) || !strings.Contains(out, "delegated vault to "+dev2DID) {
		t.Fatalf("add: %s", out)
	}
	// dev2 may not publish dev1's app without the curator saying so.
	if _, stderr, err := archy(t, "catalog", "add", "--dir", cur, signedManifestFile(t, tmp, dev2, "photos", "6.6.6")); err == nil {
		t.Fatalf("add of another developer's app succeeded: %s", stderr)
	}

	// sign 2-of-3: one signature publishes nothing, the second does.
	out = mustArchy(t, "catalog", "sign", "--dir", cur, "--key", keyA)
	if strings.Contains(out, "published") {
		t.Fatalf("published below the threshold: %s", out)
	}
	if _, err := os.Stat(published); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("catalog.json exists below the threshold")
	}
	mustArchy(t, "catalog", "sign", "--dir", cur, "--key", keyA) // the same key again: still 1
	if _, err := os.Stat(published); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a repeated signature reached the threshold")
	}
	out = mustArchy(t, "catalog", "sign", "--dir", cur, "--key", keyB)
	if !strings.Contains(out, "threshold reached") {
		t.Fatalf("sign B: %s", out)
	}
	v1 := filepath.Join(tmp, "v1.json")
	copyFile(t, published, v1)

	// verify on a node's trust store, pinning the root on first use.
	if _, _, err := archy(t, "catalog", "verify", published, "--store", node); err == nil {
		t.Fatal("verify without a pinned root succeeded")
	}
	out = mustArchy(t, "catalog", "verify", published, "--store", node, "--root", filepath.Join(cur, "root.json"))
	if !strings.Contains(out, "accepted catalog version 1") || !strings.Contains(out, "2 apps") {
		t.Fatalf("verify v1: %s", out)
	}
	if st := storeStatus(t, node); st.Version != 1 || st.Stale {
		t.Fatalf("status after v1: %+v", st)
	}

	// publish v2: a new app from dev1, signed by A and C.
	out = mustArchy(t, "catalog", "add", "--dir", cur, signedManifestFile(t, tmp, dev1, "notes", "0.1.0"))
	if !strings.Contains(out, "started catalog version 2") {
		t.Fatalf("add after signing did not start version 2: %s", out)
	}
	mustArchy(t, "catalog", "sign", "--dir", cur, "--key", keyA)
	mustArchy(t, "catalog", "sign", "--dir", cur, "--key", keyC)
	out = mustArchy(t, "catalog", "verify", published, "--store", node)
	if !strings.Contains(out, "accepted catalog version 2") || !strings.Contains(out, "3 apps") {
		t.Fatalf("verify v2: %s", out)
	}
	// The same catalog again is a no-op.
	if out = mustArchy(t, "catalog", "verify", published, "--store", node); !strings.Contains(out, "nothing changed") {
		t.Fatalf("verify v2 again: %s", out)
	}

	// replaying v1 is refused, and the node still trusts v2.
	_, _, err := archy(t, "catalog", "verify", v1, "--store", node)
	if !errors.Is(err, registry.ErrRollback) {
		t.Fatalf("replay of v1: %v, want ErrRollback", err)
	}
	if st := storeStatus(t, node); st.Version != 2 {
		t.Fatalf("status after the replay: %+v", st)
	}

	// rotate a key: C leaves, D joins; still 2-of-3.
	out = mustArchy(t, "catalog", "rotate", "--dir", cur, "--remove-key", didC, "--add-key", keyD)
	if !strings.Contains(out, "rotates root 1 → 2") {
		t.Fatalf("rotate: %s", out)
	}
	if _, _, err := archy(t, "catalog", "sign", "--dir", cur, "--key", dev1); err == nil {
		t.Fatal("a developer key signed the catalog")
	}
	mustArchy(t, "catalog", "sign", "--dir", cur, "--key", keyD)
	out = mustArchy(t, "catalog", "sign", "--dir", cur, "--key", keyB)
	if strings.Contains(out, "threshold reached") {
		t.Fatalf("rotation published with one old key: %s", out)
	}
	out = mustArchy(t, "catalog", "sign", "--dir", cur, "--key", keyA)
	if !strings.Contains(out, "threshold reached") {
		t.Fatalf("rotation not published: %s", out)
	}
	root2, _, err := registry.ReadRootFile(filepath.Join(cur, "root.json"))
	if err != nil || root2.Version != 2 || !root2.Equal(registry.Root{Version: 2, Threshold: 2, Keys: []string{didA, didB, didD}}) {
		t.Fatalf("root.json after the rotation: %+v %v", root2, err)
	}

	// v3 signed by the new set is accepted by the node, which walks roots/.
	out = mustArchy(t, "catalog", "verify", published, "--store", node)
	if !strings.Contains(out, "followed 1 root rotation") || !strings.Contains(out, "accepted catalog version 3") {
		t.Fatalf("verify v3: %s", out)
	}

	// v4 with only keys of the new set that were not both (B and D).
	mustArchy(t, "catalog", "add", "--dir", cur, signedManifestFile(t, tmp, dev1, "photos", "1.3.0"))
	if _, _, err := archy(t, "catalog", "sign", "--dir", cur, "--key", keyC); err == nil {
		t.Fatal("the removed key signed v4")
	}
	mustArchy(t, "catalog", "sign", "--dir", cur, "--key", keyD)
	mustArchy(t, "catalog", "sign", "--dir", cur, "--key", keyB)
	if out = mustArchy(t, "catalog", "verify", published, "--store", node); !strings.Contains(out, "accepted catalog version 4") {
		t.Fatalf("verify v4: %s", out)
	}

	// The removed key C forging v5 over the published payload: refused.
	env, err := did.ParseEnvelope(mustRead(t, published))
	if err != nil {
		t.Fatal(err)
	}
	c, err := registry.ParseCatalog(env.Payload)
	if err != nil {
		t.Fatal(err)
	}
	c.Version = 5
	p, err := c.Payload()
	if err != nil {
		t.Fatal(err)
	}
	kc, _ := did.LoadKey(keyC)
	ka, _ := did.LoadKey(keyA)
	forged, _ := registry.SignCatalog(p, kc, ka)
	fb, _ := forged.Marshal()
	forgedPath := filepath.Join(tmp, "forged.json")
	if err := os.WriteFile(forgedPath, fb, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := archy(t, "catalog", "verify", forgedPath, "--store", node); !errors.Is(err, registry.ErrThreshold) {
		t.Fatalf("catalog signed with a removed key: %v, want ErrThreshold", err)
	}

	// A new node that pinned the original root follows the rotation too.
	fresh := filepath.Join(tmp, "node2")
	copyFile(t, filepath.Join(node, "root.json"), filepath.Join(fresh, "root.json"))
	if out = mustArchy(t, "catalog", "verify", published, "--store", fresh); !strings.Contains(out, "accepted catalog version 4") {
		t.Fatalf("fresh node: %s", out)
	}

	// bump: v5 with the same apps and a fresh expiry.
	if out = mustArchy(t, "catalog", "bump", "--dir", cur, "--expires", "48h"); !strings.Contains(out, "version 5") {
		t.Fatalf("bump: %s", out)
	}
	mustArchy(t, "catalog", "sign", "--dir", cur, "--key", keyA)
	mustArchy(t, "catalog", "sign", "--dir", cur, "--key", keyD)
	if out = mustArchy(t, "catalog", "verify", published, "--store", node); !strings.Contains(out, "accepted catalog version 5") {
		t.Fatalf("verify v5: %s", out)
	}

	// show and status report it.
	var shown struct {
		Version    int64    `json:"version"`
		Signatures []string `json:"signatures"`
		Entries    []struct {
			ID, Version string
		} `json:"entries"`
	}
	if err := json.Unmarshal([]byte(mustArchy(t, "catalog", "show", "--dir", cur, "--json")), &shown); err != nil {
		t.Fatal(err)
	}
	if shown.Version != 5 || len(shown.Signatures) != 2 || len(shown.Entries) != 3 {
		t.Fatalf("show: %+v", shown)
	}
	if out = mustArchy(t, "catalog", "show", filepath.Join(cur, "draft.json")); !strings.Contains(out, "draft (unsigned)") {
		t.Fatalf("show draft: %s", out)
	}
	if st := storeStatus(t, node); st.Version != 5 || st.Root.Version != 2 || st.Stale {
		t.Fatalf("final status: %+v", st)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCatalogHelp(t *testing.T) {
	for _, sub := range []string{"init", "add", "sign", "verify", "show", "rotate", "status", "bump"} {
		t.Run(sub, func(t *testing.T) {
			out := mustArchy(t, "catalog", sub, "--help")
			if !strings.Contains(out, "Usage:") {
				t.Fatalf("help for %s: %s", sub, out)
			}
		})
	}
	if out := mustArchy(t, "catalog", "--help"); !strings.Contains(out, "signed/V.json") {
		t.Fatalf("catalog help does not document the folder layout: %s", out)
	}
}
