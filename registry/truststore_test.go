package registry_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/archy-node/archy/did"
	"github.com/archy-node/archy/registry"
)

// TUF's attack classes (theupdateframework.io/docs/security, spec §1.5.2)
// and the tests that cover them:
//
//	arbitrary software      TestNewCatalogUnsigned, TestConfiguredRootNotLearnt, TestThresholdCombos, TestMixAndMatch (byte flipped)
//	rollback                TestNewCatalogVersionRollback, TestSameVersionOtherBytes, TestExpiredLocalCatalogVersionRollback, TestRootVersionRollback, TestLostCatalogKeepsFloor, TestCuratorWorkflow
//	indefinite freeze       TestNewCatalogExpired, TestFreezeReportsStale, TestFinalRootExpired
//	endless data            TestSizeCap (catalog and rotation), TestMaxRootRotations
//	extraneous dependencies TestMixAndMatch (images), TestUntrustedSigner
//	fast-forward            TestFastForwardRecovery
//	mix-and-match           TestMixAndMatch
//	malicious mirrors       TestMixAndMatch, TestUntrustedSigner, TestCrossTypeReplay
//	wrong software          TestMixAndMatch, TestCrossTypeReplay
//	key compromise          TestRootRotation, TestThresholdCountsDistinctKeys, TestFastForwardRecovery, TestCorruptStateFailsClosed
//	slow retrieval          the transport's deadline (ctx); the store reads what it is handed
//
// The adversarial suite. Case names follow go-tuf's
// updater_top_level_update_test.go, python-tuf's
// test_updater_top_level_update.py / test_updater_key_rotations.py and
// tuf-conformance where a case has a counterpart there. Every refusal goes
// through node.refuse, which asserts the typed error and that the trusted
// state (status, current catalog, every file of the store) did not change.

var (
	day  = 24 * time.Hour
	week = 7 * day
)

// root123 is the usual registry root: keys 0, 1, 2, threshold 2.
func root123(t testing.TB) registry.Root { return rootOf(t, 1, 2, 0, 1, 2) }

func TestFirstTimeUpdate(t *testing.T) {
	n := newNode(t, root123(t))
	if !n.store.Stale() {
		t.Fatal("a store with no catalog must report stale")
	}
	res := n.accept(signCatalog(t, newCatalog(t, 1, t0.Add(week), root123(t), twoApps...), 0, 1), nil)
	if !res.Changed || len(res.Catalog.Entries) != 2 {
		t.Fatalf("result %+v", res)
	}
	n.wantVersion(1, 1)
	if n.store.Stale() {
		t.Fatal("fresh catalog reported stale")
	}
	// The state survives a restart, catalog and all.
	n.reopen()
	n.wantVersion(1, 1)
	cur := n.store.Current()
	if cur == nil || len(cur.Entries) != 2 || cur.Entries[0].Manifest.Manifest.ID != "photos" {
		t.Fatalf("after restart current = %+v", cur)
	}
}

func TestConfiguredRootNotLearnt(t *testing.T) {
	// No trust on first use: a catalog signed by its own, unknown root is
	// refused by a fresh node.
	n := newNode(t, root123(t))
	other := rootOf(t, 1, 1, 7)
	n.refuse(signCatalog(t, newCatalog(t, 1, t0.Add(week), other, twoApps...), 7), nil, registry.ErrThreshold)
	n.wantVersion(0, 1)
}

func TestNewCatalogUnsigned(t *testing.T) {
	n := newNode(t, root123(t))
	c := newCatalog(t, 1, t0.Add(week), root123(t), twoApps...)
	t.Run("no signatures", func(t *testing.T) {
		n.t = t
		n.refuse(signCatalog(t, c), nil, did.ErrEnvelope)
	})
	t.Run("signed by keys outside the root", func(t *testing.T) {
		n.t = t
		n.refuse(signCatalog(t, c, 5, 6, 7), nil, registry.ErrThreshold)
	})
	t.Run("signature bytes flipped", func(t *testing.T) {
		n.t = t
		env, err := did.ParseEnvelope(signCatalog(t, c, 0, 1))
		if err != nil {
			t.Fatal(err)
		}
		env.Signatures[1].Sig[7] ^= 1
		b, _ := env.Marshal()
		n.refuse(b, nil, registry.ErrThreshold)
	})
	t.Run("payload byte flipped", func(t *testing.T) {
		n.t = t
		env, err := did.ParseEnvelope(signCatalog(t, c, 0, 1, 2))
		if err != nil {
			t.Fatal(err)
		}
		env.Payload = bytes.Replace(env.Payload, []byte(`"version":1`), []byte(`"version":9`), 1)
		b, _ := env.Marshal()
		n.refuse(b, nil, registry.ErrThreshold)
	})
	t.Run("signatures lifted from another catalog", func(t *testing.T) {
		n.t = t
		good, _ := did.ParseEnvelope(signCatalog(t, c, 0, 1))
		evil, _ := did.ParseEnvelope(signCatalog(t, newCatalog(t, 2, t0.Add(week), root123(t), app{"photos", "0.0.1", 3}), 5))
		evil.Signatures = good.Signatures
		b, _ := evil.Marshal()
		n.refuse(b, nil, registry.ErrThreshold)
	})
}

// MdVersion mirrors python-tuf's key rotation dataset: the root's keys,
// threshold, and which keys sign.
type mdVersion struct {
	keys      []int
	threshold int
	sigs      []int
	err       error
}

func TestThresholdCombos(t *testing.T) {
	// python-tuf test_non_root_rotations, applied to the catalog's own
	// signatures: the node trusts root (keys, threshold); the catalog is
	// signed with sigs.
	cases := map[string]mdVersion{
		"1-of-1 key rotation":                                              {keys: []int{2}, threshold: 1, sigs: []int{2}},
		"1-of-1 key rotation, unused signatures":                           {keys: []int{1}, threshold: 1, sigs: []int{3, 1, 4}},
		"1-of-1 key rotation fail: not signed with new key":                {keys: []int{2}, threshold: 1, sigs: []int{1, 3, 4}, err: registry.ErrThreshold},
		"3-of-5, one key signature wrong: not signed with 3 expected keys": {keys: []int{0, 1, 3, 4, 5}, threshold: 3, sigs: []int{0, 2, 4}, err: registry.ErrThreshold},
		"2-of-5, one key signature missing: threshold not reached":         {keys: []int{0, 1, 3, 4, 5}, threshold: 3, sigs: []int{0, 4}, err: registry.ErrThreshold},
		"3-of-5, sign first combo":                                         {keys: []int{0, 1, 2, 3, 4}, threshold: 3, sigs: []int{0, 2, 4}},
		"3-of-5, sign second combo":                                        {keys: []int{0, 1, 2, 3, 4}, threshold: 3, sigs: []int{0, 4, 1}},
		"3-of-5, sign third combo":                                         {keys: []int{0, 1, 2, 3, 4}, threshold: 3, sigs: []int{0, 1, 3}},
		"3-of-5, sign fourth combo":                                        {keys: []int{0, 1, 2, 3, 4}, threshold: 3, sigs: []int{1, 2, 3}},
		"3-of-5, sign fifth combo":                                         {keys: []int{0, 1, 2, 3, 4}, threshold: 3, sigs: []int{2, 3, 4}},
		// tuf-conformance test_snapshot_threshold: more than there are keys.
		"5-of-5 signed by all": {keys: []int{0, 1, 2, 3, 4}, threshold: 5, sigs: []int{0, 1, 2, 3, 4}},
		"5-of-5 signed by 4":   {keys: []int{0, 1, 2, 3, 4}, threshold: 5, sigs: []int{0, 1, 2, 3}, err: registry.ErrThreshold},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			root := rootOf(t, 1, tc.threshold, tc.keys...)
			n := newNode(t, root)
			data := signCatalog(t, newCatalog(t, 1, t0.Add(week), root, twoApps...), tc.sigs...)
			if tc.err == nil {
				n.accept(data, nil)
				n.wantVersion(1, 1)
				return
			}
			n.refuse(data, nil, tc.err)
			n.wantVersion(0, 1)
		})
	}
}

func TestThresholdCountsDistinctKeys(t *testing.T) {
	// tuf-conformance test_duplicate_keys_root: one key signing many times,
	// or under several keyids, counts once.
	root := root123(t)
	c := newCatalog(t, 1, t0.Add(week), root, twoApps...)
	p, err := c.Payload()
	if err != nil {
		t.Fatal(err)
	}
	k0 := keyN(t, 0)
	sig := k0.Sign(did.PAE(registry.CatalogPayloadType, p))
	frag := k0.DID() + "#" + strings.TrimPrefix(k0.DID(), did.Prefix)
	cases := map[string][]did.Signature{
		"same signature twice":          {{KeyID: k0.DID(), Sig: sig}, {KeyID: k0.DID(), Sig: sig}},
		"same key under two keyids":     {{KeyID: k0.DID(), Sig: sig}, {KeyID: frag, Sig: sig}},
		"same key three times, 3 forms": {{KeyID: k0.DID(), Sig: sig}, {KeyID: frag, Sig: sig}, {KeyID: k0.DID(), Sig: sig}},
	}
	for name, sigs := range cases {
		t.Run(name, func(t *testing.T) {
			n := newNode(t, root)
			b, _ := (&did.Envelope{PayloadType: registry.CatalogPayloadType, Payload: p, Signatures: sigs}).Marshal()
			n.refuse(b, nil, registry.ErrThreshold)
			n.wantVersion(0, 1)
		})
	}
	t.Run("a root listing one key twice", func(t *testing.T) {
		n := newNode(t, root)
		bad := registry.Root{Version: 2, Threshold: 2, Keys: []string{keyN(t, 0).DID(), keyN(t, 0).DID(), keyN(t, 1).DID()}}
		// Built by hand: Payload refuses such a root.
		p := []byte(strings.Replace(string(mustPayload(t, newCatalog(t, 2, t0.Add(week), rootOf(t, 2, 2, 0, 1, 3)))),
			`"keys":["`+keyN(t, 0).DID()+`","`+keyN(t, 1).DID()+`","`+keyN(t, 3).DID()+`"]`,
			`"keys":["`+strings.Join(bad.Keys, `","`)+`"]`, 1))
		rot := signPayload(t, registry.CatalogPayloadType, p, 0, 1)
		n.refuse(rot, registry.RotationMap{2: rot}, registry.ErrInvalidCatalog)
	})
}

func mustPayload(t testing.TB, c *registry.Catalog) []byte {
	t.Helper()
	p, err := c.Payload()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// publishRoots turns a python-tuf root version list into signed catalogs:
// version i+1 has root version i+1 with the listed keys and threshold,
// signed by the listed keys. The first is the node's configured root.
func publishRoots(t *testing.T, versions []mdVersion) (registry.Root, [][]byte, registry.RotationMap) {
	var out [][]byte
	rot := registry.RotationMap{}
	for i, v := range versions {
		r := rootOf(t, int64(i+1), v.threshold, v.keys...)
		b := signCatalog(t, newCatalog(t, int64(i+1), t0.Add(week), r, twoApps...), v.sigs...)
		out = append(out, b)
		if i > 0 {
			rot[int64(i+1)] = b
		}
	}
	return rootOf(t, 1, versions[0].threshold, versions[0].keys...), out, rot
}

func TestRootRotation(t *testing.T) {
	// python-tuf test_updater_key_rotations.py root_rotation_cases, the
	// same table. The node pins version 1, accepts catalog 1, then is
	// offered the rest as a rotation chain ending in the last catalog.
	// Unlike python-tuf, a failed chain persists nothing (the issue's "no
	// change of state"), so on failure the node keeps root version 1.
	cases := map[string][]mdVersion{
		"1-of-1 key rotation": {
			{keys: []int{1}, threshold: 1, sigs: []int{1}},
			{keys: []int{2}, threshold: 1, sigs: []int{2, 1}},
			{keys: []int{2}, threshold: 1, sigs: []int{2}},
		},
		"1-of-1 key rotation, unused signatures": {
			{keys: []int{1}, threshold: 1, sigs: []int{3, 1, 4}},
			{keys: []int{2}, threshold: 1, sigs: []int{3, 2, 1, 4}},
			{keys: []int{2}, threshold: 1, sigs: []int{3, 2, 4}},
		},
		"1-of-1 key rotation fail: not signed with old key": {
			{keys: []int{1}, threshold: 1, sigs: []int{1}},
			{keys: []int{2}, threshold: 1, sigs: []int{2, 3, 4}, err: registry.ErrRootRotation},
		},
		"1-of-1 key rotation fail: not signed with new key": {
			{keys: []int{1}, threshold: 1, sigs: []int{1}},
			{keys: []int{2}, threshold: 1, sigs: []int{1, 3, 4}, err: registry.ErrRootRotation},
		},
		"3-of-5, sign with different keycombos": {
			{keys: []int{0, 1, 2, 3, 4}, threshold: 3, sigs: []int{0, 2, 4}},
			{keys: []int{0, 1, 2, 3, 4}, threshold: 3, sigs: []int{0, 4, 1}},
			{keys: []int{0, 1, 2, 3, 4}, threshold: 3, sigs: []int{0, 1, 3}},
			{keys: []int{0, 1, 2, 3, 4}, threshold: 3, sigs: []int{0, 1, 3}},
		},
		"3-of-5, one key rotated": {
			{keys: []int{0, 1, 2, 3, 4}, threshold: 3, sigs: []int{0, 2, 4}},
			{keys: []int{0, 1, 3, 4, 5}, threshold: 3, sigs: []int{0, 4, 1}},
		},
		"3-of-5, one key rotate fails: not signed with 3 new keys": {
			{keys: []int{0, 1, 2, 3, 4}, threshold: 3, sigs: []int{0, 2, 4}},
			{keys: []int{0, 1, 3, 4, 5}, threshold: 3, sigs: []int{0, 2, 4}, err: registry.ErrRootRotation},
		},
		"3-of-5, one key rotate fails: not signed with 3 old keys": {
			{keys: []int{0, 1, 2, 3, 4}, threshold: 3, sigs: []int{0, 2, 4}},
			{keys: []int{0, 1, 3, 4, 5}, threshold: 3, sigs: []int{0, 4, 5}, err: registry.ErrRootRotation},
		},
		"3-of-5, one key rotated, with intermediate step": {
			{keys: []int{0, 1, 2, 3, 4}, threshold: 3, sigs: []int{0, 2, 4}},
			{keys: []int{0, 1, 3, 4, 5}, threshold: 3, sigs: []int{0, 2, 4, 5}},
			{keys: []int{0, 1, 3, 4, 5}, threshold: 3, sigs: []int{0, 4, 5}},
		},
		"3-of-5, all keys rotated, with intermediate step": {
			{keys: []int{0, 1, 2, 3, 4}, threshold: 3, sigs: []int{0, 2, 4}},
			{keys: []int{5, 6, 7, 8, 9}, threshold: 3, sigs: []int{0, 2, 4, 5, 6, 7}},
			{keys: []int{5, 6, 7, 8, 9}, threshold: 3, sigs: []int{5, 6, 7}},
		},
		"1-of-3 threshold increase to 2-of-3": {
			{keys: []int{1, 2, 3}, threshold: 1, sigs: []int{1}},
			{keys: []int{1, 2, 3}, threshold: 2, sigs: []int{1, 2}},
		},
		"1-of-3 threshold bump to 2-of-3 fails: new threshold not reached": {
			{keys: []int{1, 2, 3}, threshold: 1, sigs: []int{1}},
			{keys: []int{1, 2, 3}, threshold: 2, sigs: []int{2}, err: registry.ErrRootRotation},
		},
		"2-of-3 threshold decrease to 1-of-3": {
			{keys: []int{1, 2, 3}, threshold: 2, sigs: []int{1, 2}},
			{keys: []int{1, 2, 3}, threshold: 1, sigs: []int{1, 2}},
			{keys: []int{1, 2, 3}, threshold: 1, sigs: []int{1}},
		},
		"2-of-3 threshold decr. to 1-of-3 fails: old threshold not reached": {
			{keys: []int{1, 2, 3}, threshold: 2, sigs: []int{1, 2}},
			{keys: []int{1, 2, 3}, threshold: 1, sigs: []int{1}, err: registry.ErrRootRotation},
		},
		"1-of-2 threshold increase to 2-of-2": {
			{keys: []int{1}, threshold: 1, sigs: []int{1}},
			{keys: []int{1, 2}, threshold: 2, sigs: []int{1, 2}},
		},
	}
	for name, versions := range cases {
		t.Run(name, func(t *testing.T) {
			pinned, cats, rot := publishRoots(t, versions)
			n := newNode(t, pinned)
			n.accept(cats[0], nil)
			last := versions[len(versions)-1]
			if last.err != nil {
				n.refuse(cats[len(cats)-1], rot, last.err, registry.ErrThreshold)
				n.wantVersion(1, 1)
				return
			}
			res := n.accept(cats[len(cats)-1], rot)
			v := int64(len(versions))
			n.wantVersion(v, v)
			if res.Rotations != len(versions)-1 {
				t.Errorf("rotations = %d, want %d", res.Rotations, len(versions)-1)
			}
			if !n.store.Root().Equal(rootOf(t, v, last.threshold, last.keys...)) {
				t.Errorf("trusted root %+v", n.store.Root())
			}
			// Restart: the rotated root is what the node trusts now.
			n.reopen()
			n.wantVersion(v, v)
		})
	}
}

// rotationChain publishes root versions 2..last with the same keys, each
// catalog's version equal to its root version.
func rotationChain(t *testing.T, last int64, mutate func(v int64, c *registry.Catalog)) registry.RotationMap {
	rot := registry.RotationMap{}
	for v := int64(2); v <= last; v++ {
		c := newCatalog(t, v, t0.Add(week), rootOf(t, v, 2, 0, 1, 2), twoApps...)
		if mutate != nil {
			mutate(v, c)
		}
		rot[v] = signCatalog(t, c, 0, 1)
	}
	return rot
}

func TestMaxRootRotations(t *testing.T) {
	// go-tuf TestMaxRootRotations. A chain longer than the cap is refused
	// whole (ErrRootChain) instead of being followed without end.
	t.Run("over the cap", func(t *testing.T) {
		n := newNode(t, root123(t))
		n.max = 3
		n.reopen()
		rot := rotationChain(t, 6, nil)
		n.refuse(rot[6], rot, registry.ErrRootChain)
		n.wantVersion(0, 1)
	})
	t.Run("at the cap", func(t *testing.T) {
		n := newNode(t, root123(t))
		n.max = 3
		n.reopen()
		rot := rotationChain(t, 4, nil)
		n.accept(rot[4], rot)
		n.wantVersion(4, 4)
	})
	t.Run("endless chain from a hostile source", func(t *testing.T) {
		n := newNode(t, root123(t))
		rot := rotationChain(t, 2, nil)
		n.refuse(rot[2], endlessChain{rot[2]}, registry.ErrRootRotation)
		n.wantVersion(0, 1)
	})
}

// endlessChain answers every root version with the same catalog.
type endlessChain struct{ b []byte }

func (e endlessChain) Rotation(_ context.Context, _ int64) (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(e.b)), nil
}

func TestIntermediateRootIncorrectlySigned(t *testing.T) {
	n := newNode(t, root123(t))
	rot := rotationChain(t, 3, nil)
	c2 := newCatalog(t, 2, t0.Add(week), rootOf(t, 2, 2, 0, 1, 2), twoApps...)
	rot[2] = signCatalog(t, c2, 0) // below the threshold of root 1 and root 2
	n.refuse(rot[3], rot, registry.ErrRootRotation, registry.ErrThreshold)
	n.wantVersion(0, 1)
}

func TestIntermediateRootExpired(t *testing.T) {
	// The expiry of intermediate roots does not matter; the last one's does.
	n := newNode(t, root123(t))
	rot := rotationChain(t, 3, func(v int64, c *registry.Catalog) {
		if v == 2 {
			c.Expires = registry.FormatExpires(t0.Add(-5 * day))
		}
	})
	n.accept(rot[3], rot)
	n.wantVersion(3, 3)
}

func TestNewRootSameVersion(t *testing.T) {
	// The catalog offered as root version 2 still names root version 1.
	n := newNode(t, root123(t))
	n.accept(signCatalog(t, newCatalog(t, 1, t0.Add(week), root123(t), twoApps...), 0, 1), nil)
	same := signCatalog(t, newCatalog(t, 2, t0.Add(week), rootOf(t, 1, 2, 0, 1, 2), twoApps...), 0, 1)
	n.refuse(same, registry.RotationMap{2: same}, registry.ErrRootRotation)
	n.wantVersion(1, 1)
}

func TestNewRootNonconsecutiveVersion(t *testing.T) {
	// A chain that skips a root version is refused whether it is offered
	// as the next rotation or as a catalog on its own.
	n := newNode(t, root123(t))
	skip := signCatalog(t, newCatalog(t, 3, t0.Add(week), rootOf(t, 3, 2, 0, 1, 2), twoApps...), 0, 1)
	n.refuse(skip, registry.RotationMap{2: skip}, registry.ErrRootRotation)
	n.refuse(skip, registry.RotationMap{3: skip}, registry.ErrRootRotation)
	n.refuse(skip, nil, registry.ErrRootRotation)
	n.wantVersion(0, 1)
}

func TestFinalRootExpired(t *testing.T) {
	// A freeze attack through the root: the last rotation is expired.
	n := newNode(t, root123(t))
	rot := rotationChain(t, 2, func(v int64, c *registry.Catalog) {
		c.Expires = registry.FormatExpires(t0.Add(-5 * day))
	})
	n.refuse(rot[2], rot, registry.ErrExpired)
	n.wantVersion(0, 1)
}

func TestRootChangedWithoutRotation(t *testing.T) {
	n := newNode(t, root123(t))
	// Same root version, another key set, signed by the trusted keys.
	c := newCatalog(t, 1, t0.Add(week), rootOf(t, 1, 2, 0, 1, 9), twoApps...)
	n.refuse(signCatalog(t, c, 0, 1), nil, registry.ErrRootRotation)
	// Same keys, another threshold.
	c = newCatalog(t, 1, t0.Add(week), rootOf(t, 1, 1, 0, 1, 2), twoApps...)
	n.refuse(signCatalog(t, c, 0, 1), nil, registry.ErrRootRotation)
	n.wantVersion(0, 1)
}

func TestRootVersionRollback(t *testing.T) {
	// After rotating to root 2, a catalog still under root 1 (signed by a
	// key that is in both) is refused even with a higher catalog version.
	n := newNode(t, root123(t))
	rot := rotationChain(t, 2, nil)
	n.accept(rot[2], rot)
	old := signCatalog(t, newCatalog(t, 9, t0.Add(week), root123(t), twoApps...), 0, 1)
	n.refuse(old, rot, registry.ErrRollback)
	n.wantVersion(2, 2)
}

func TestNewCatalogVersionRollback(t *testing.T) {
	// go-tuf TestNewTimestampVersionRollback / tuf-conformance
	// test_new_timestamp_version_rollback.
	n := newNode(t, root123(t))
	v1 := signCatalog(t, newCatalog(t, 1, t0.Add(week), root123(t), twoApps...), 0, 1)
	v2 := signCatalog(t, newCatalog(t, 2, t0.Add(week), root123(t), twoApps...), 1, 2)
	n.accept(v1, nil)
	n.accept(v2, nil)
	n.refuse(v1, nil, registry.ErrRollback)
	n.wantVersion(2, 1)
}

func TestSameVersionOtherBytes(t *testing.T) {
	n := newNode(t, root123(t))
	n.accept(signCatalog(t, newCatalog(t, 3, t0.Add(week), root123(t), twoApps...), 0, 1), nil)
	other := signCatalog(t, newCatalog(t, 3, t0.Add(week), root123(t), twoApps[0]), 0, 1)
	n.refuse(other, nil, registry.ErrRollback)
	n.wantVersion(3, 1)
}

func TestIdenticalCatalogIsNoop(t *testing.T) {
	n := newNode(t, root123(t))
	c := newCatalog(t, 1, t0.Add(week), root123(t), twoApps...)
	data := signCatalog(t, c, 0, 1)
	n.accept(data, nil)
	for name, b := range map[string][]byte{
		"same envelope":                      data,
		"same payload, other signature set":  signCatalog(t, c, 1, 2),
		"same payload, one extra signature ": signCatalog(t, c, 0, 1, 2),
	} {
		t.Run(name, func(t *testing.T) {
			before := n.snapshot()
			res, err := n.update(b, nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.Changed {
				t.Error("identical catalog reported as a change")
			}
			n.assertUnchanged(before)
		})
	}
}

func TestExpiredLocalCatalogVersionRollback(t *testing.T) {
	// go-tuf TestExpiredTimestampVersionRollback: the local catalog's
	// version is the floor even after it expired.
	n := newNode(t, root123(t))
	n.accept(signCatalog(t, newCatalog(t, 2, t0.Add(week), root123(t), twoApps...), 0, 1), nil)
	n.now = t0.Add(18 * day)
	if !n.store.Stale() {
		t.Fatal("expired local catalog not reported stale")
	}
	n.refuse(signCatalog(t, newCatalog(t, 1, t0.Add(21*day), root123(t), twoApps...), 0, 1), nil, registry.ErrRollback)
	n.wantVersion(2, 1)
}

func TestExpiredLocalCatalogCanUpdate(t *testing.T) {
	// tuf-conformance test_expired_metadata: an expired local catalog does
	// not stop a newer, fresh one.
	n := newNode(t, root123(t))
	n.accept(signCatalog(t, newCatalog(t, 1, t0.Add(week), root123(t), twoApps...), 0, 1), nil)
	n.now = t0.Add(18 * day)
	n.accept(signCatalog(t, newCatalog(t, 2, t0.Add(21*day), root123(t), twoApps...), 0, 1), nil)
	n.wantVersion(2, 1)
	if n.store.Stale() {
		t.Fatal("fresh catalog reported stale")
	}
}

func TestNewCatalogExpired(t *testing.T) {
	// go-tuf TestNewTimestampExpired / TestNewTargetsExpired.
	for name, exp := range map[string]time.Time{
		"expired days ago":     t0.Add(-5 * day),
		"expires this instant": t0,
	} {
		t.Run(name, func(t *testing.T) {
			n := newNode(t, root123(t))
			n.refuse(signCatalog(t, newCatalog(t, 1, exp, root123(t), twoApps...), 0, 1), nil, registry.ErrExpired)
			n.wantVersion(0, 1)
		})
	}
}

func TestFreezeReportsStale(t *testing.T) {
	// Indefinite freeze: a mirror keeps serving the last catalog. Once it
	// expires the node says the catalog is stale, keeps it (running apps
	// are untouched), refuses it again, and recovers with a fresh one.
	n := newNode(t, root123(t))
	v1 := signCatalog(t, newCatalog(t, 1, t0.Add(day), root123(t), twoApps...), 0, 1)
	n.accept(v1, nil)
	n.now = t0.Add(2 * day)
	st := n.store.Status()
	if !st.Stale || !strings.Contains(st.Reason, "expired") {
		t.Fatalf("status %+v, want stale", st)
	}
	if cur := n.store.Current(); cur == nil || len(cur.Entries) != 2 {
		t.Fatal("the expired catalog must stay available for the running apps")
	}
	n.refuse(v1, nil, registry.ErrExpired)
	n.accept(signCatalog(t, newCatalog(t, 2, t0.Add(week), root123(t), twoApps...), 0, 1), nil)
	if n.store.Stale() {
		t.Fatal("stale after a fresh catalog")
	}
}

func TestFastForwardRecovery(t *testing.T) {
	// go-tuf TestNewTimestampFastForwardRecovery: key 0 of a 1-of-2 root
	// leaks; the attacker publishes catalog 99999, which nodes accept. The
	// registry rotates key 0 out; its rotation catalog, at version 5, is
	// accepted, and the attacker's catalogs are refused from then on.
	root := rootOf(t, 1, 1, 0, 1)
	n := newNode(t, root)
	n.accept(signCatalog(t, newCatalog(t, 4, t0.Add(week), root, twoApps...), 1), nil)
	attack := newCatalog(t, 99999, t0.Add(week), root, twoApps...)
	n.accept(signCatalog(t, attack, 0), nil)
	n.wantVersion(99999, 1)

	// Without a rotation the registry cannot recover.
	n.refuse(signCatalog(t, newCatalog(t, 5, t0.Add(week), root, twoApps...), 1), nil, registry.ErrRollback)

	rotated := rootOf(t, 2, 1, 1, 3)
	fix := signCatalog(t, newCatalog(t, 5, t0.Add(week), rotated, twoApps...), 1, 3)
	rot := registry.RotationMap{2: fix}
	n.accept(fix, rot)
	n.wantVersion(5, 2)
	n.accept(signCatalog(t, newCatalog(t, 6, t0.Add(week), rotated, twoApps...), 3), rot)
	n.wantVersion(6, 2)

	// The leaked key can no longer sign anything the node takes.
	n.refuse(signCatalog(t, attack, 0), rot, registry.ErrThreshold)
	n.refuse(signCatalog(t, newCatalog(t, 100000, t0.Add(week), rotated, twoApps...), 0), rot, registry.ErrThreshold)
	n.wantVersion(6, 2)
}

// failingSource fails every fetch, as a dead or hung peer does once the
// caller's deadline passes.
type failingSource struct{ err error }

func (f failingSource) Rotation(ctx context.Context, _ int64) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return nil, f.err
}

func TestSlowRetrievalIsBounded(t *testing.T) {
	// Slow retrieval is the transport's to bound: the rotation source gets
	// the caller's context, and a fetch that fails or runs out of time
	// fails the update without changing anything.
	n := newNode(t, root123(t))
	good := signCatalog(t, newCatalog(t, 1, t0.Add(week), root123(t), twoApps...), 0, 1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	before := n.snapshot()
	if _, err := n.store.Update(ctx, bytes.NewReader(good), registry.RotationMap{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("update with a cancelled context: %v", err)
	}
	n.assertUnchanged(before)
	n.refuse(good, failingSource{context.DeadlineExceeded}, context.DeadlineExceeded)
	n.accept(good, registry.RotationMap{})
}
