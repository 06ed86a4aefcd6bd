package registry

import (
	"slices"
)

// Source says where a listed app comes from.
type Source string

const (
	// SourceCatalog is an entry of the trusted registry catalog.
	SourceCatalog Source = "catalog"
	// SourceLocal is a manifest from the node's local folder, used as an
	// offline fallback for apps the catalog does not list.
	SourceLocal Source = "local"
)

// Listing is one app as a node lists it, labelled with its source.
type Listing struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Version string `json:"version"`
	Channel string `json:"channel"`
	// CID is the manifest's CID when known (always for catalog entries).
	CID    string `json:"cid,omitempty"`
	Source Source `json:"source"`
	// Label is the human label shown in every listing: "catalog",
	// "catalog (stale)" or "local (offline fallback)".
	Label string `json:"label"`
	// Stale marks an entry of an expired catalog: still listed, not
	// installed from until a fresh catalog arrives.
	Stale    bool      `json:"stale,omitempty"`
	Manifest *Manifest `json:"-"`
}

// LocalManifest is a manifest loaded from the node's local folder.
type LocalManifest struct {
	Manifest *Manifest
	// CID is the manifest's CID if it was signed and verified ("" if not).
	CID string
	// Path is where it was loaded from.
	Path string
}

// Merge lists the catalog's entries and the local manifests together. The
// catalog wins: a local manifest whose app id the catalog lists (on any
// channel) is left out; the others stay, labelled as the offline fallback.
// cat may be nil (no trusted catalog); stale marks its entries as such.
// The result is sorted by app id, then channel, catalog first.
func Merge(cat *VerifiedCatalog, stale bool, local []LocalManifest) []Listing {
	var out []Listing
	inCatalog := make(map[string]bool)
	if cat != nil {
		for _, e := range cat.Entries {
			inCatalog[e.Entry.ID] = true
			l := Listing{
				ID: e.Entry.ID, Version: e.Entry.Version, Channel: e.Entry.Channel, CID: e.Entry.Manifest,
				Source: SourceCatalog, Label: "catalog", Stale: stale,
			}
			if e.Manifest != nil {
				l.Name, l.Manifest = e.Manifest.Manifest.Name, e.Manifest.Manifest
			}
			if stale {
				l.Label = "catalog (stale)"
			}
			out = append(out, l)
		}
	}
	for _, lm := range local {
		m := lm.Manifest
		if m == nil || inCatalog[m.ID] {
			continue
		}
		out = append(out, Listing{
			ID: m.ID, Name: m.Name, Version: m.Version, Channel: channelOf(m), CID: lm.CID,
			Source: SourceLocal, Label: "local (offline fallback)", Manifest: m,
		})
	}
	slices.SortStableFunc(out, func(a, b Listing) int {
		if a.ID != b.ID {
			return cmpString(a.ID, b.ID)
		}
		if a.Source != b.Source {
			if a.Source == SourceCatalog {
				return -1
			}
			return 1
		}
		return cmpString(a.Channel, b.Channel)
	})
	return out
}
