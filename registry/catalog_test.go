package registry_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/archy-node/archy/cas"
	"github.com/archy-node/archy/did"
	"github.com/archy-node/archy/registry"
)

func TestMixAndMatch(t *testing.T) {
	// An entry must carry its own manifest: mix-and-match and wrong
	// software are refused entry by entry.
	root := root123(t)
	photos := signedManifest(t, "photos", "1.2.0", devN(t, 0))
	photosOld := signedManifest(t, "photos", "1.1.0", devN(t, 0))
	vault := signedManifest(t, "vault", "0.9.1", devN(t, 1))
	entry := func(v *registry.Verified) registry.Entry {
		c := registry.NewCatalog("x", 1, t0.Add(week), root)
		c.Delegate(v.Signer, v.Manifest.ID)
		if err := c.Put(v); err != nil {
			t.Fatal(err)
		}
		return c.Entries[0]
	}
	cases := map[string]struct {
		edit func(e *registry.Entry)
		want error
	}{
		"manifest of another app under the pinned cid": {func(e *registry.Entry) { e.Envelope = vault.Envelope }, registry.ErrCIDMismatch},
		"older manifest of the same app":               {func(e *registry.Entry) { e.Envelope = photosOld.Envelope }, registry.ErrCIDMismatch},
		"entry names another app": {func(e *registry.Entry) {
			e.ID = "vault"
		}, registry.ErrMixAndMatch},
		"entry names another version": {func(e *registry.Entry) { e.Version = "9.9.9" }, registry.ErrMixAndMatch},
		"entry names another channel": {func(e *registry.Entry) { e.Channel = "beta" }, registry.ErrMixAndMatch},
		"entry lists other images": {func(e *registry.Entry) {
			e.Images = []string{cas.Sum([]byte("evil image")).String()}
		}, registry.ErrMixAndMatch},
		"entry lists no images": {func(e *registry.Entry) { e.Images = nil }, registry.ErrMixAndMatch},
		"manifest byte flipped": {func(e *registry.Entry) {
			env := *e.Envelope
			env.Payload = bytes.Replace(env.Payload, []byte(`"1.2.0"`), []byte(`"1.2.1"`), 1)
			e.Envelope = &env
		}, registry.ErrThreshold},
		"catalog envelope embedded as a manifest": {func(e *registry.Entry) {
			env := *e.Envelope
			env.PayloadType = registry.CatalogPayloadType
			e.Envelope = &env
		}, did.ErrPayloadType},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := registry.NewCatalog("x", 1, t0.Add(week), root)
			c.Delegate(devN(t, 0).DID(), "photos")
			c.Delegate(devN(t, 1).DID(), "vault")
			e := entry(photos)
			tc.edit(&e)
			c.Entries = []registry.Entry{e}
			n := newNode(t, root)
			n.refuse(signCatalog(t, c, 0, 1), nil, tc.want)
			n.wantVersion(0, 1)
			if _, err := registry.VerifyCatalog(bytes.NewReader(signCatalog(t, c, 0, 1)), root, t0); !errors.Is(err, tc.want) {
				t.Errorf("VerifyCatalog: %v, want %v", err, tc.want)
			}
		})
	}
}

func TestUntrustedSigner(t *testing.T) {
	root := root123(t)
	cases := map[string]func(c *registry.Catalog){
		"no delegation at all": func(c *registry.Catalog) { c.Delegations = nil },
		"app delegated to another developer": func(c *registry.Catalog) {
			c.Delegations = nil
			c.Delegate(devN(t, 1).DID(), "photos", "vault")
		},
		"developer delegated other apps only": func(c *registry.Catalog) {
			c.Delegations = nil
			c.Delegate(devN(t, 0).DID(), "vault")
			c.Delegate(devN(t, 1).DID(), "vault")
		},
	}
	for name, edit := range cases {
		t.Run(name, func(t *testing.T) {
			c := newCatalog(t, 1, t0.Add(week), root, twoApps...)
			edit(c)
			n := newNode(t, root)
			n.refuse(signCatalog(t, c, 0, 1), nil, registry.ErrUntrustedSigner)
			n.wantVersion(0, 1)
		})
	}
	t.Run("curator cannot add an undelegated manifest", func(t *testing.T) {
		c := registry.NewCatalog("x", 1, t0.Add(week), root)
		c.Delegate(devN(t, 1).DID(), "photos")
		if err := c.Put(signedManifest(t, "photos", "1.0.0", devN(t, 0))); !errors.Is(err, registry.ErrUntrustedSigner) {
			t.Fatalf("Put: %v", err)
		}
	})
}

func TestCrossTypeReplay(t *testing.T) {
	// A manifest envelope presented as a catalog is refused on its payload
	// type, before anything is parsed: the payloads below are not even
	// JSON, and the error is not a parse error.
	root := root123(t)
	manifestEnv, _, err := registry.Sign(testManifest("photos", "1.0.0", keyN(t, 0)), keyN(t, 0))
	if err != nil {
		t.Fatal(err)
	}
	realManifest, _ := manifestEnv.Marshal()
	catPayload := mustPayload(t, newCatalog(t, 1, t0.Add(week), root, twoApps...))
	cases := map[string][]byte{
		"a real signed manifest (by a root key)":        realManifest,
		"manifest type, garbage payload, root-signed":   signPayload(t, registry.ManifestPayloadType, []byte("\x00not json"), 0, 1, 2),
		"manifest type over a valid catalog payload":    signPayload(t, registry.ManifestPayloadType, catPayload, 0, 1, 2),
		"catalog type in other case":                    signPayload(t, strings.ToUpper(registry.CatalogPayloadType), catPayload, 0, 1),
		"unknown payload type":                          signPayload(t, "application/vnd.in-toto+json", []byte("{"), 0, 1),
		"catalog type with trailing space":              signPayload(t, registry.CatalogPayloadType+" ", catPayload, 0, 1),
		"catalog type, signatures over manifest's PAE":  retype(t, signPayload(t, registry.ManifestPayloadType, catPayload, 0, 1), registry.CatalogPayloadType),
		"manifest type, signatures over catalog's PAE.": retype(t, signPayload(t, registry.CatalogPayloadType, catPayload, 0, 1), registry.ManifestPayloadType),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			n := newNode(t, root)
			want := did.ErrPayloadType
			if strings.HasPrefix(name, "catalog type, signatures") {
				want = registry.ErrThreshold // the type is right, the PAE is not
			}
			err := n.refuse(data, nil, want)
			if errors.Is(err, registry.ErrInvalidCatalog) || errors.Is(err, registry.ErrStrictParse) {
				t.Errorf("payload was parsed: %v", err)
			}
			// A replayed manifest is no better as a rotation.
			if want == did.ErrPayloadType {
				good := signCatalog(t, newCatalog(t, 1, t0.Add(week), root, twoApps...), 0, 1)
				n.refuse(good, registry.RotationMap{2: data}, did.ErrPayloadType)
			}
		})
	}
}

// retype changes an envelope's payload type, keeping its signatures.
func retype(t *testing.T, data []byte, typ string) []byte {
	env, err := did.ParseEnvelope(data)
	if err != nil {
		t.Fatal(err)
	}
	env.PayloadType = typ
	b, _ := env.Marshal()
	return b
}

// countingReader is an endless stream of spaces that counts what is read.
type countingReader struct {
	prefix []byte
	n      int64
}

func (r *countingReader) Read(p []byte) (int, error) {
	for i := range p {
		if r.n < int64(len(r.prefix)) {
			p[i] = r.prefix[r.n]
		} else {
			p[i] = ' '
		}
		r.n++
	}
	return len(p), nil
}

func TestSizeCap(t *testing.T) {
	// Endless data: the store reads one byte past the cap, no more, and
	// refuses. A valid catalog padded to exactly the cap is accepted.
	root := root123(t)
	good := signCatalog(t, newCatalog(t, 1, t0.Add(week), root, twoApps...), 0, 1)
	t.Run("endless stream", func(t *testing.T) {
		n := newNode(t, root)
		r := &countingReader{prefix: good}
		before := n.snapshot()
		_, err := n.store.Update(context.Background(), r, nil)
		if !errors.Is(err, registry.ErrTooLarge) {
			t.Fatalf("err = %v", err)
		}
		n.assertUnchanged(before)
		// io.LimitReader(cap+1) never asks for more than cap+1 bytes.
		if r.n != registry.MaxCatalogSize+1 {
			t.Fatalf("read %d bytes for a cap of %d", r.n, registry.MaxCatalogSize)
		}
	})
	pad := func(size int) []byte {
		return append(bytes.Clone(good), bytes.Repeat([]byte(" "), size-len(good))...)
	}
	t.Run("exactly the cap", func(t *testing.T) {
		n := newNode(t, root)
		n.accept(pad(registry.MaxCatalogSize), nil)
	})
	t.Run("one byte past the cap", func(t *testing.T) {
		n := newNode(t, root)
		n.refuse(pad(registry.MaxCatalogSize+1), nil, registry.ErrTooLarge)
	})
	t.Run("endless rotation", func(t *testing.T) {
		n := newNode(t, root)
		n.refuse(good, endlessRotation{}, registry.ErrTooLarge)
	})
}

// endlessRotation answers with an endless stream.
type endlessRotation struct{}

func (endlessRotation) Rotation(context.Context, int64) (io.ReadCloser, error) {
	return io.NopCloser(&countingReader{}), nil
}

func TestStrictPayload(t *testing.T) {
	// Signed bytes that are not strict canonical catalogs are refused after
	// the signature holds, with ErrInvalidCatalog.
	root := root123(t)
	p := string(mustPayload(t, newCatalog(t, 1, t0.Add(week), root, twoApps...)))
	k0 := keyN(t, 0).DID()
	exp := `"expires":"` + registry.FormatExpires(t0.Add(week)) + `"`
	// The catalog's own version is its last key in canonical order.
	version := func(v string) string { return strings.TrimSuffix(p, `"version":1}`) + `"version":` + v + `}` }
	cases := map[string]string{
		"unknown field":           strings.Replace(p, `{"delegations"`, `{"admin":true,"delegations"`, 1),
		"duplicate key":           strings.Replace(p, `"version":1`, `"version":1,"version":2`, 1),
		"case-variant key":        strings.Replace(p, `"schema"`, `"Schema"`, 1),
		"trailing bytes":          p + ` {}`,
		"byte order mark":         "\xEF\xBB\xBF" + p,
		"version zero":            version("0"),
		"version beyond 2^53":     version("9007199254740993"),
		"negative version":        version("-1"),
		"fractional version":      version("1.5"),
		"version as a string":     version(`"1"`),
		"other schema":            strings.Replace(p, registry.CatalogSchema, "archy.catalog/v2", 1),
		"expiry not UTC":          strings.Replace(p, exp, strings.Replace(exp, `Z"`, `+01:00"`, 1), 1),
		"expiry with fraction":    strings.Replace(p, exp, strings.Replace(exp, `Z"`, `.5Z"`, 1), 1),
		"expiry garbage":          strings.Replace(p, `"expires":"`, `"expires":"soon`, 1),
		"threshold above keys":    strings.Replace(p, `"threshold":2`, `"threshold":4`, 1),
		"threshold zero":          strings.Replace(p, `"threshold":2`, `"threshold":0`, 1),
		"root key not a did:key":  strings.Replace(p, `"keys":["`, `"keys":["did:web:example.com","`, 1),
		"root key with fragment":  strings.Replace(p, `"`+k0+`"`, `"`+k0+`#`+strings.TrimPrefix(k0, did.Prefix)+`"`, 1),
		"manifest cid not blake3": strings.Replace(p, `"manifest":"bafkr4i`, `"manifest":"bafkreia`, 1),
		"missing envelope":        strings.Replace(p, `"envelope":{`, `"envelopx":{`, 1),
	}
	for name, payload := range cases {
		t.Run(name, func(t *testing.T) {
			if payload == p {
				t.Fatal("the edit did not apply")
			}
			n := newNode(t, root)
			n.refuse(signPayload(t, registry.CatalogPayloadType, []byte(payload), 0, 1, 2), nil, registry.ErrInvalidCatalog)
			n.wantVersion(0, 1)
		})
	}
}

func TestCorruptStateFailsClosed(t *testing.T) {
	// After rotating to root 2 (keys 3, 4, 5), the state is damaged: the
	// store falls back to the configured root 1. A catalog signed by the
	// new keys alone is refused until the rotation is shown again.
	corruptions := map[string]func(path string) error{
		"garbage":         func(p string) error { return os.WriteFile(p, []byte("\x00\x01garbage"), 0o644) },
		"empty":           func(p string) error { return os.WriteFile(p, nil, 0o644) },
		"truncated":       func(p string) error { b, _ := os.ReadFile(p); return os.WriteFile(p, b[:len(b)/2], 0o644) },
		"unknown field":   func(p string) error { return editFile(p, `"type"`, `"evil":1,"type"`) },
		"wrong type":      func(p string) error { return editFile(p, `catalog-state/v1`, `catalog-state/v9`) },
		"invalid root":    func(p string) error { return editFile(p, `"threshold": 2`, `"threshold": 9`) },
		"another root":    func(p string) error { return editFile(p, `"configured_root": "`, `"configured_root": "x`) },
		"negative floor":  func(p string) error { return editFile(p, `"version": 7`, `"version": -7`) },
		"cid not a cid":   func(p string) error { return editFile(p, `"cid": "`, `"cid": "zz`) },
		"root too recent": nil, // the configured root is newer than the state's
	}
	for name, corrupt := range corruptions {
		t.Run(name, func(t *testing.T) {
			n := newNode(t, root123(t))
			newRoot := rootOf(t, 2, 2, 3, 4, 5)
			rotation := signCatalog(t, newCatalog(t, 2, t0.Add(week), newRoot, twoApps...), 0, 1, 3, 4)
			rot := registry.RotationMap{2: rotation}
			n.accept(rotation, rot)
			later := signCatalog(t, newCatalog(t, 7, t0.Add(week), newRoot, twoApps...), 3, 4)
			n.accept(later, nil)
			n.wantVersion(7, 2)
			if corrupt == nil {
				n.root = rootOf(t, 3, 1, 6)
			} else if err := corrupt(filepath.Join(n.dir, registry.StateFile)); err != nil {
				t.Fatal(err)
			}
			n.reopen()
			st := n.store.Status()
			if st.Reset == "" || !st.Stale || st.Version != 0 || !st.Root.Equal(n.root) {
				t.Fatalf("status after corruption %+v, want a reset to the configured root", st)
			}
			if corrupt == nil {
				return
			}
			newer := signCatalog(t, newCatalog(t, 8, t0.Add(week), newRoot, twoApps...), 3, 4)
			n.refuse(newer, nil, registry.ErrThreshold)
			n.accept(newer, rot)
			n.wantVersion(8, 2)
		})
	}
}

func editFile(path, old, new string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if !bytes.Contains(b, []byte(old)) {
		return errors.New("edit " + old + " not found in " + string(b))
	}
	return os.WriteFile(path, bytes.Replace(b, []byte(old), []byte(new), 1), 0o644)
}

func TestLostCatalogKeepsFloor(t *testing.T) {
	// The trusted catalog file disappears: the version floor still holds,
	// the node reports stale, and the next catalog restores it.
	n := newNode(t, root123(t))
	n.accept(signCatalog(t, newCatalog(t, 1, t0.Add(week), root123(t), twoApps...), 0, 1), nil)
	n.accept(signCatalog(t, newCatalog(t, 3, t0.Add(week), root123(t), twoApps...), 0, 1), nil)
	files, _ := filepath.Glob(filepath.Join(n.dir, "catalog-*.json"))
	if len(files) != 1 {
		t.Fatalf("catalog files %v, want only the trusted one", files)
	}
	if err := os.WriteFile(files[0], []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	n.reopen()
	if st := n.store.Status(); !st.Stale || st.Version != 3 || st.Reset != "" || n.store.Current() != nil {
		t.Fatalf("status %+v", st)
	}
	n.refuse(signCatalog(t, newCatalog(t, 2, t0.Add(week), root123(t), twoApps...), 0, 1), nil, registry.ErrRollback)
	n.accept(signCatalog(t, newCatalog(t, 3, t0.Add(week), root123(t), twoApps...), 0, 1), nil)
	if n.store.Stale() || n.store.Current() == nil {
		t.Fatal("the identical catalog did not restore the lost file")
	}
}

func TestOpenTrustStoreValidate(t *testing.T) {
	bad := map[string]registry.TrustConfig{
		"no dir":          {Root: root123(t)},
		"no root":         {Dir: t.TempDir()},
		"root threshold":  {Dir: t.TempDir(), Root: rootOf(t, 1, 4, 0, 1, 2)},
		"negative cap":    {Dir: t.TempDir(), Root: root123(t), MaxRootRotations: -1},
		"duplicate key":   {Dir: t.TempDir(), Root: registry.Root{Version: 1, Threshold: 1, Keys: []string{keyN(t, 0).DID(), keyN(t, 0).DID()}}},
		"version too big": {Dir: t.TempDir(), Root: rootOf(t, registry.MaxCatalogVersion+1, 1, 0)},
	}
	for name, cfg := range bad {
		t.Run(name, func(t *testing.T) {
			if _, err := registry.OpenTrustStore(cfg); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestRootFileRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "root.json")
	if err := registry.WriteRootFile(path, "test registry", root123(t)); err != nil {
		t.Fatal(err)
	}
	r, name, err := registry.ReadRootFile(path)
	if err != nil || name != "test registry" || !r.Equal(root123(t)) {
		t.Fatalf("read back %+v %q %v", r, name, err)
	}
	if err := editFile(path, `"threshold": 2`, `"threshold": 0`); err != nil {
		t.Fatal(err)
	}
	if _, _, err := registry.ReadRootFile(path); !errors.Is(err, registry.ErrInvalidCatalog) {
		t.Fatalf("bad root read: %v", err)
	}
}

func TestPayloadIsCanonicalAndStable(t *testing.T) {
	// The payload is produced once as RFC 8785 bytes: building the same
	// catalog in another order gives the same bytes and CID.
	root := root123(t)
	a := newCatalog(t, 1, t0.Add(week), root, twoApps[0], twoApps[1])
	b := newCatalog(t, 1, t0.Add(week), root, twoApps[1], twoApps[0])
	pa, pb := mustPayload(t, a), mustPayload(t, b)
	if !bytes.Equal(pa, pb) {
		t.Fatalf("payloads differ:\n%s\n%s", pa, pb)
	}
	c, err := registry.ParseCatalog(pa)
	if err != nil {
		t.Fatal(err)
	}
	if again := mustPayload(t, c); !bytes.Equal(again, pa) {
		t.Fatal("parse → payload is not a fixed point")
	}
	vc, err := registry.VerifyCatalog(bytes.NewReader(signCatalog(t, a, 0, 1)), root, t0)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(vc.Payload, pa) || vc.CID != cas.Sum(pa) {
		t.Fatal("verified payload or CID is not over the signed bytes")
	}
	if len(vc.Signers) != 2 {
		t.Fatalf("signers %v", vc.Signers)
	}
}
