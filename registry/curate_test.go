package registry

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/archy-node/archy/did"
)

// curateNow is the clock of the curator tests; the trust stores they feed
// judge expiry by the real one.
var curateNow = time.Now()

// manifestFile writes a developer's signed manifest for app id and
// returns its path.
func manifestFile(t *testing.T, dir string, dev *did.Key, id, version string) string {
	t.Helper()
	m := goodManifest(t)
	m.ID, m.Version, m.Publisher = id, version, dev.DID()
	env, _, err := Sign(m, dev)
	if err != nil {
		t.Fatal(err)
	}
	data, err := env.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, id+"-"+version+".json")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// newCurator makes a 2-of-3 curator folder over testKey(11..13).
func newCurator(t *testing.T) (Curator, []*did.Key) {
	t.Helper()
	keys := []*did.Key{testKey(t, 11), testKey(t, 12), testKey(t, 13)}
	c := Curator{Dir: filepath.Join(t.TempDir(), "registry")}
	if _, err := c.Init("Test", []string{keys[0].DID(), keys[1].DID(), keys[2].DID()}, 2, DefaultValidity, curateNow); err != nil {
		t.Fatal(err)
	}
	return c, keys
}

func mustSign(t *testing.T, c Curator, k *did.Key) Signing {
	t.Helper()
	s, err := c.Sign(k, curateNow)
	if err != nil {
		t.Fatalf("sign with %s: %v", k.DID(), err)
	}
	return s
}

func TestCuratorInit(t *testing.T) {
	c, keys := newCurator(t)
	if _, err := c.Init("Again", []string{keys[0].DID()}, 1, DefaultValidity, curateNow); !errors.Is(err, ErrCuratorExists) {
		t.Fatalf("init over a curator folder: %v, want ErrCuratorExists", err)
	}
	other := Curator{Dir: t.TempDir()}
	var opt *OptionError
	if _, err := other.Init("", []string{keys[0].DID()}, 2, DefaultValidity, curateNow); !errors.As(err, &opt) || opt.Option != "root" {
		t.Fatalf("threshold above the key count: %v, want an OptionError on root", err)
	}
	if _, err := other.Init("", []string{keys[0].DID()}, 1, 0, curateNow); !errors.As(err, &opt) || opt.Option != "validity" {
		t.Fatalf("zero validity: %v, want an OptionError on validity", err)
	}
	if _, err := (Curator{Dir: t.TempDir()}).Draft(); !errors.Is(err, ErrNoDraft) {
		t.Fatalf("draft of an empty folder: %v, want ErrNoDraft", err)
	}
	root, name, err := c.Published()
	if err != nil || name != "Test" || root.Version != 1 || root.Threshold != 2 || len(root.Keys) != 3 {
		t.Fatalf("root.json: %+v %q %v", root, name, err)
	}
}

func TestCuratorThreshold(t *testing.T) {
	c, keys := newCurator(t)
	dev := testKey(t, 21)
	if _, _, err := c.Add([]string{manifestFile(t, t.TempDir(), dev, "org.example.notes", "1.0.0")}, false, DefaultValidity, curateNow); err != nil {
		t.Fatal(err)
	}
	// A signature by C over other bytes, planted in signed/1.json, must
	// not count: signatures are counted by the rule nodes use.
	payload, err := mustDraft(t, c).Payload()
	if err != nil {
		t.Fatal(err)
	}
	env, err := SignCatalog(payload, keys[0])
	if err != nil {
		t.Fatal(err)
	}
	forged := did.Signature{KeyID: keys[2].DID(), Sig: keys[2].Sign([]byte("other bytes"))}
	env.Signatures = append(env.Signatures, forged)
	if err := writeEnvelope(c.SignedPath(1), env); err != nil {
		t.Fatal(err)
	}
	s := mustSign(t, c, keys[0]) // A again: still one
	if s.Signatures != 1 || s.Done() || s.Published != nil {
		t.Fatalf("A twice and a forged C: %+v", s)
	}
	if _, err := os.Stat(c.Path(PublishedFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("catalog.json written below the threshold")
	}
	s = mustSign(t, c, keys[1])
	if s.Signatures != 2 || !s.Done() || len(s.Published) != 1 {
		t.Fatalf("A and B: %+v", s)
	}
	f, err := os.Open(c.Path(PublishedFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	root, _, _ := c.Published()
	vc, err := VerifyCatalog(f, root, curateNow)
	if err != nil {
		t.Fatalf("published catalog: %v", err)
	}
	if len(vc.Signers) != 2 || len(vc.Entries) != 1 {
		t.Fatalf("published catalog: %d signers, %d entries", len(vc.Signers), len(vc.Entries))
	}
	if _, err := c.Sign(testKey(t, 21), curateNow); !errors.Is(err, ErrNotRootKey) {
		t.Fatalf("a developer key signing: %v, want ErrNotRootKey", err)
	}
}

func mustDraft(t *testing.T, c Curator) *Catalog {
	t.Helper()
	cat, err := c.Draft()
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

func TestCuratorEditsStartNextVersion(t *testing.T) {
	c, keys := newCurator(t)
	dir := t.TempDir()
	dev := testKey(t, 21)
	later := curateNow.Add(time.Hour)
	ed, err := c.Bump(48*time.Hour, later)
	if err != nil || ed.Started || ed.Draft.Version != 1 || ed.Draft.Expires != FormatExpires(later.Add(48*time.Hour)) {
		t.Fatalf("bump of an unsigned draft: %+v %v", ed, err)
	}
	mustSign(t, c, keys[0])
	// The draft is being signed: editing it would change signed bytes.
	ed, added, err := c.Add([]string{manifestFile(t, dir, dev, "org.example.notes", "1.0.0")}, false, DefaultValidity, later)
	if err != nil || !ed.Started || ed.Draft.Version != 2 || len(added) != 1 || !added[0].Delegated {
		t.Fatalf("add while version 1 is signed: %+v %+v %v", ed, added, err)
	}
	if ed.Draft.Expires != FormatExpires(later.Add(DefaultValidity)) {
		t.Fatalf("new version expires %s", ed.Draft.Expires)
	}
	if v := mustDraft(t, c).Version; v != 2 {
		t.Fatalf("saved draft is version %d", v)
	}
	// Signing version 1 again, after the draft moved on, starts version 2.
	s := mustSign(t, c, keys[1])
	if s.Draft.Version != 2 || s.Signatures != 1 {
		t.Fatalf("sign after the edit: %+v", s)
	}
	if ed, err = c.Bump(time.Hour, later); err != nil || !ed.Started || ed.Draft.Version != 3 {
		t.Fatalf("bump of a signed draft: %+v %v", ed, err)
	}
}

func TestCuratorDraftEditedAfterSigning(t *testing.T) {
	c, keys := newCurator(t)
	mustSign(t, c, keys[0])
	cat := mustDraft(t, c)
	cat.Name = "Edited by hand"
	if err := c.saveDraft(cat); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Sign(keys[1], curateNow); !errors.Is(err, ErrDraftEdited) {
		t.Fatalf("sign of an edited draft: %v, want ErrDraftEdited", err)
	}
}

func TestCuratorDelegation(t *testing.T) {
	c, _ := newCurator(t)
	dir := t.TempDir()
	dev1, dev2 := testKey(t, 21), testKey(t, 22)
	if _, _, err := c.Add([]string{manifestFile(t, dir, dev1, "org.example.notes", "1.0.0")}, false, DefaultValidity, curateNow); err != nil {
		t.Fatal(err)
	}
	other := manifestFile(t, dir, dev2, "org.example.notes", "6.6.6")
	_, _, err := c.Add([]string{other}, false, DefaultValidity, curateNow)
	var de *DelegationError
	if !errors.As(err, &de) || de.Signer != dev2.DID() || len(de.Holders) != 1 || de.Holders[0] != dev1.DID() {
		t.Fatalf("another developer's app: %v, want a DelegationError", err)
	}
	if mustDraft(t, c).Entries[0].Version != "1.0.0" {
		t.Fatal("a refused add changed the draft")
	}
	ed, added, err := c.Add([]string{other}, true, DefaultValidity, curateNow)
	if err != nil || !added[0].Delegated {
		t.Fatalf("add with delegate: %+v %v", added, err)
	}
	if got := ed.Draft.Delegates("org.example.notes"); len(got) != 2 {
		t.Fatalf("delegates after --delegate: %v", got)
	}
}

func TestCuratorRotation(t *testing.T) {
	c, keys := newCurator(t)
	a, b, cKey, d := keys[0], keys[1], keys[2], testKey(t, 14)
	mustSign(t, c, a)
	mustSign(t, c, b)
	node := t.TempDir()
	if _, err := PinnedTrustStore(node, ""); !errors.Is(err, ErrNoPinnedRoot) {
		t.Fatalf("store without a root: %v, want ErrNoPinnedRoot", err)
	}
	ts, err := PinnedTrustStore(node, c.Path(RootFileName))
	if err != nil {
		t.Fatal(err)
	}
	update := func(ts *TrustStore) UpdateResult {
		t.Helper()
		f, err := os.Open(c.Path(PublishedFile))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		res, err := ts.Update(t.Context(), f, RotationDir(c.Path(RootsDir)))
		if err != nil {
			t.Fatalf("node update: %v", err)
		}
		return res
	}
	update(ts)

	var opt *OptionError
	if _, _, err := c.Rotate(RootChange{Remove: []string{d.DID()}}, DefaultValidity, curateNow); !errors.As(err, &opt) || opt.Option != "remove" || !errors.Is(err, ErrNotRootKey) {
		t.Fatalf("removing a key that is not a root key: %v", err)
	}
	if _, _, err := c.Rotate(RootChange{Add: []string{a.DID()}}, DefaultValidity, curateNow); !errors.As(err, &opt) || opt.Option != "add" {
		t.Fatalf("adding a root key again: %v", err)
	}
	ed, pub, err := c.Rotate(RootChange{Remove: []string{cKey.DID()}, Add: []string{d.DID()}}, DefaultValidity, curateNow)
	if err != nil || !ed.Started || ed.Draft.Version != 2 || ed.Draft.Root.Version != 2 || pub.Version != 1 {
		t.Fatalf("rotate: %+v %+v %v", ed, pub, err)
	}
	mustSign(t, c, d)
	s := mustSign(t, c, b) // the new root has two; the old root one
	if !s.Rotation || s.Signatures != 2 || s.PreviousSignatures != 1 || s.Done() {
		t.Fatalf("rotation with one old key: %+v", s)
	}
	if s = mustSign(t, c, a); !s.Done() || len(s.Published) != 3 {
		t.Fatalf("rotation with two old keys: %+v", s)
	}
	root, _, err := c.Published()
	if err != nil || !root.Equal(Root{Version: 2, Threshold: 2, Keys: []string{a.DID(), b.DID(), d.DID()}}) {
		t.Fatalf("root.json after the rotation: %+v %v", root, err)
	}
	if res := update(ts); res.Rotations != 1 || res.Catalog.Catalog.Version != 2 {
		t.Fatalf("node following the rotation: %+v", res)
	}
	// The removed key signs nothing more, and the pinned root stays pinned.
	if _, err := c.Bump(time.Hour, curateNow); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Sign(cKey, curateNow); !errors.Is(err, ErrNotRootKey) {
		t.Fatalf("the removed key signing: %v, want ErrNotRootKey", err)
	}
	if _, err := PinnedTrustStore(node, c.Path(RootFileName)); !errors.Is(err, ErrPinnedRoot) {
		t.Fatalf("another root over the pinned one: %v, want ErrPinnedRoot", err)
	}
}

func TestReadCatalogFile(t *testing.T) {
	c, keys := newCurator(t)
	if c.Latest() != c.Path(DraftFile) {
		t.Fatalf("latest before publishing: %s", c.Latest())
	}
	f, err := ReadCatalogFile(c.Latest())
	if err != nil || f.Signed || f.Catalog.Version != 1 {
		t.Fatalf("draft: %+v %v", f, err)
	}
	mustSign(t, c, keys[0])
	mustSign(t, c, keys[1])
	if c.Latest() != c.Path(PublishedFile) {
		t.Fatalf("latest after publishing: %s", c.Latest())
	}
	f, err = ReadCatalogFile(c.Latest())
	if err != nil || !f.Signed || len(f.KeyIDs) != 2 {
		t.Fatalf("published: %+v %v", f, err)
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, bytes.Repeat([]byte("x"), 10), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadCatalogFile(bad); err == nil {
		t.Fatal("read a file that is no catalog")
	}
}
