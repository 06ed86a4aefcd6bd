package registry_test

import (
	"testing"

	"github.com/archy-node/archy/registry"
)

// TestBundleChain: a follower on root 1 follows a catalog of root 4 with
// the chain 2..3 in a bundle (the catalog of root 4 introduces it itself),
// and reports the links it applied; a chain with one forged link changes
// nothing; a catalog of a newer root without its chain is
// ErrRotationMissing (a peer that is behind, not a forgery).
func TestBundleChain(t *testing.T) {
	rot := rotationChain(t, 4, nil)
	bundle := func(links ...int64) *registry.Bundle {
		b := &registry.Bundle{Catalog: rot[4]}
		for _, v := range links {
			b.Chain = append(b.Chain, registry.Link{Version: v, Catalog: rot[v]})
		}
		data, err := b.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		parsed, err := registry.ParseBundle(data)
		if err != nil {
			t.Fatal(err)
		}
		return parsed
	}

	t.Run("missing", func(t *testing.T) {
		n := newNode(t, root123(t))
		n.refuse(rot[4], bundle(3), registry.ErrRotationMissing)
		n.refuse(rot[3], bundle(), registry.ErrRotationMissing, registry.ErrRootRotation)
		n.wantVersion(0, 1)
	})
	t.Run("forged link", func(t *testing.T) {
		n := newNode(t, root123(t))
		b := bundle(2, 3)
		forged := newCatalog(t, 3, t0.Add(week), rootOf(t, 3, 1, 7), twoApps...)
		b.Chain[1].Catalog = signCatalog(t, forged, 7)
		n.refuse(b.Catalog, b, registry.ErrRootRotation)
		n.wantVersion(0, 1)
	})
	t.Run("followed", func(t *testing.T) {
		n := newNode(t, root123(t))
		res := n.accept(rot[4], bundle(2, 3))
		n.wantVersion(4, 4)
		if res.Rotations != 3 || len(res.Links) != 3 || res.Links[2].Version != 4 || string(res.Links[2].Catalog) != string(rot[4]) {
			t.Fatalf("rotations %d, links %d", res.Rotations, len(res.Links))
		}
	})
}
