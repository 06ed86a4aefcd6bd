package registry_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/archy-node/archy/cas"
	"github.com/archy-node/archy/did"
	"github.com/archy-node/archy/registry"
)

// This file is the test suite's repository simulator, in the manner of
// go-tuf's and python-tuf's RepositorySimulator: fixed keys, a registry
// that builds and signs catalogs, and a node trust store with a movable
// clock whose every refusal is checked to leave the state untouched.

// t0 is the simulator's "now"; catalogs expire relative to it.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// keyN returns the n-th fixed root key (seeded, so runs are reproducible).
func keyN(t testing.TB, n int) *did.Key {
	return seededKey(t, "root", n)
}

// devN returns the n-th fixed developer key.
func devN(t testing.TB, n int) *did.Key {
	return seededKey(t, "dev", n)
}

func seededKey(t testing.TB, kind string, n int) *did.Key {
	t.Helper()
	seed := sha256.Sum256([]byte("archy catalog test " + kind + " key " + string(rune('A'+n))))
	k, err := did.FromSeed(seed[:])
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// rootOf builds a root of the given version over fixed keys.
func rootOf(t testing.TB, version int64, threshold int, keys ...int) registry.Root {
	r := registry.Root{Version: version, Threshold: threshold}
	for _, i := range keys {
		r.Keys = append(r.Keys, keyN(t, i).DID())
	}
	return r
}

// testManifest is a manifest that is valid by PRODUCT.md's rules: images
// pinned by CID and sha256 digest, app-relative volume, loopback port.
func testManifest(id, version string, publisher *did.Key) *registry.Manifest {
	archive := []byte("oci archive of " + id + " " + version)
	digest := sha256.Sum256(append([]byte("oci manifest of "), archive...))
	return &registry.Manifest{
		Schema:    registry.Schema,
		ID:        id,
		Name:      "Test app " + id,
		Version:   version,
		Publisher: publisher.DID(),
		Containers: []registry.Container{{
			Name: "web",
			Image: registry.Image{
				Ref:    "localhost/archy-" + id + ":" + version,
				CID:    cas.Sum(archive).String(),
				Digest: "sha256:" + hex.EncodeToString(digest[:]),
			},
			Command: []string{"httpd", "-f", "-p", "8080"},
			Ports:   []registry.Port{{Container: 8080, Host: 18080}},
			Volumes: []registry.Volume{{Path: "data", Mount: "/data"}},
			Health:  &registry.Health{HTTP: &registry.HTTPProbe{Port: 8080, Path: "/"}},
		}},
	}
}

// signedManifest signs a test manifest and verifies it back.
func signedManifest(t testing.TB, id, version string, publisher *did.Key) *registry.Verified {
	t.Helper()
	env, _, err := registry.Sign(testManifest(id, version, publisher), publisher)
	if err != nil {
		t.Fatal(err)
	}
	v, err := registry.VerifyParsed(env)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// app is one app a test registry lists: id, version, developer index.
type app struct {
	id, version string
	dev         int
}

var twoApps = []app{{"photos", "1.2.0", 0}, {"vault", "0.9.1", 1}}

// newCatalog builds a catalog listing apps, each delegated to its developer.
func newCatalog(t testing.TB, version int64, expires time.Time, root registry.Root, apps ...app) *registry.Catalog {
	t.Helper()
	c := registry.NewCatalog("test registry", version, expires, root)
	for _, a := range apps {
		c.Delegate(devN(t, a.dev).DID(), a.id)
		if err := c.Put(signedManifest(t, a.id, a.version, devN(t, a.dev))); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// signCatalog returns the envelope JSON of c signed by the given root keys.
func signCatalog(t testing.TB, c *registry.Catalog, signers ...int) []byte {
	t.Helper()
	p, err := c.Payload()
	if err != nil {
		t.Fatal(err)
	}
	return signPayload(t, registry.CatalogPayloadType, p, signers...)
}

// signPayload signs arbitrary payload bytes (for malformed catalogs).
func signPayload(t testing.TB, payloadType string, p []byte, signers ...int) []byte {
	t.Helper()
	env := &did.Envelope{PayloadType: payloadType, Payload: p}
	for _, i := range signers {
		env.AddSignature(keyN(t, i))
	}
	if len(env.Signatures) == 0 {
		env.Signatures = []did.Signature{}
	}
	b, err := env.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// node is a node's trust store under test, with its clock.
type node struct {
	t     *testing.T
	dir   string
	root  registry.Root
	now   time.Time
	max   int
	store *registry.TrustStore
}

func newNode(t *testing.T, root registry.Root) *node {
	t.Helper()
	n := &node{t: t, dir: t.TempDir(), root: root, now: t0}
	n.reopen()
	return n
}

// reopen opens the store again from disk, as after a node restart.
func (n *node) reopen() {
	n.t.Helper()
	s, err := registry.OpenTrustStore(registry.TrustConfig{
		Dir: n.dir, Root: n.root, Now: func() time.Time { return n.now }, MaxRootRotations: n.max,
	})
	if err != nil {
		n.t.Fatal(err)
	}
	n.store = s
}

func (n *node) update(data []byte, rot registry.Rotations) (registry.UpdateResult, error) {
	return n.store.Update(context.Background(), bytes.NewReader(data), rot)
}

// accept applies a catalog that must be accepted.
func (n *node) accept(data []byte, rot registry.Rotations) registry.UpdateResult {
	n.t.Helper()
	res, err := n.update(data, rot)
	if err != nil {
		n.t.Fatalf("update refused: %v", err)
	}
	return res
}

// snapshot is everything a refused update must leave as it was: the status
// in memory, the current catalog, and every file of the store.
type snapshot struct {
	status  string
	current *registry.VerifiedCatalog
	files   map[string]string
}

func (n *node) snapshot() snapshot {
	n.t.Helper()
	st, err := json.Marshal(n.store.Status())
	if err != nil {
		n.t.Fatal(err)
	}
	s := snapshot{status: string(st), current: n.store.Current(), files: map[string]string{}}
	ents, err := os.ReadDir(n.dir)
	if err != nil {
		n.t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(n.dir, e.Name()))
		if err != nil {
			n.t.Fatal(err)
		}
		s.files[e.Name()] = string(b)
	}
	return s
}

func (n *node) assertUnchanged(before snapshot) {
	n.t.Helper()
	after := n.snapshot()
	if after.status != before.status {
		n.t.Errorf("status changed:\nbefore %s\nafter  %s", before.status, after.status)
	}
	if after.current != before.current {
		n.t.Errorf("current catalog changed")
	}
	var bn, an []string
	for k := range before.files {
		bn = append(bn, k)
	}
	for k := range after.files {
		an = append(an, k)
	}
	sort.Strings(bn)
	sort.Strings(an)
	if !slices.Equal(bn, an) {
		n.t.Errorf("store files changed: %v → %v", bn, an)
	}
	for k, v := range before.files {
		if after.files[k] != v {
			n.t.Errorf("store file %s changed", k)
		}
	}
}

// refuse applies a catalog that must be refused with every wanted error,
// and checks that nothing changed, in memory or on disk.
func (n *node) refuse(data []byte, rot registry.Rotations, want ...error) error {
	n.t.Helper()
	before := n.snapshot()
	_, err := n.update(data, rot)
	if err == nil {
		n.t.Fatalf("update accepted, want %v", want)
	}
	for _, w := range want {
		if !errors.Is(err, w) {
			n.t.Errorf("error %q does not match %q", err, w)
		}
	}
	n.assertUnchanged(before)
	return err
}

// version returns the trusted catalog version and root version.
func (n *node) version() (catalog, root int64) {
	st := n.store.Status()
	return st.Version, st.Root.Version
}

func (n *node) wantVersion(catalog, root int64) {
	n.t.Helper()
	c, r := n.version()
	if c != catalog || r != root {
		n.t.Fatalf("trusted catalog %d under root %d, want catalog %d under root %d", c, r, catalog, root)
	}
}
