package registry_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/archy-node/archy/registry"
)

func TestMerge(t *testing.T) {
	root := root123(t)
	vc, err := registry.VerifyCatalog(bytes.NewReader(signCatalog(t, newCatalog(t, 1, t0.Add(week), root, twoApps...), 0, 1)), root, t0)
	if err != nil {
		t.Fatal(err)
	}
	local := []registry.LocalManifest{
		{Manifest: testManifest("photos", "9.9.9", devN(t, 5)), Path: "apps/photos"}, // shadowed by the catalog
		{Manifest: testManifest("notes", "0.1.0", devN(t, 5)), Path: "apps/notes"},
	}
	cases := []struct {
		name  string
		cat   *registry.VerifiedCatalog
		stale bool
		want  []string
	}{
		{"catalog wins, local fills in", vc, false, []string{
			"notes 0.1.0 local local (offline fallback)",
			"photos 1.2.0 catalog catalog",
			"vault 0.9.1 catalog catalog",
		}},
		{"stale catalog still wins, labelled stale", vc, true, []string{
			"notes 0.1.0 local local (offline fallback)",
			"photos 1.2.0 catalog catalog (stale)",
			"vault 0.9.1 catalog catalog (stale)",
		}},
		{"no catalog: every local manifest, as fallback", nil, false, []string{
			"notes 0.1.0 local local (offline fallback)",
			"photos 9.9.9 local local (offline fallback)",
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := registry.Merge(tc.cat, tc.stale, local)
			if len(got) != len(tc.want) {
				t.Fatalf("got %d listings, want %d: %+v", len(got), len(tc.want), got)
			}
			for i, l := range got {
				s := fmt.Sprintf("%s %s %s %s", l.ID, l.Version, l.Source, l.Label)
				if s != tc.want[i] {
					t.Errorf("listing %d = %q, want %q", i, s, tc.want[i])
				}
				if l.Manifest == nil || l.Manifest.ID != l.ID {
					t.Errorf("listing %d carries manifest %+v", i, l.Manifest)
				}
				if l.Source == registry.SourceCatalog && (l.CID == "" || l.Stale != tc.stale) {
					t.Errorf("catalog listing %d: cid %q stale %v", i, l.CID, l.Stale)
				}
			}
		})
	}
}
