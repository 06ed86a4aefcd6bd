package registry_test

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"reflect"
	"strings"
	"testing"

	"github.com/archy-node/archy/registry"
)

// FuzzParseCatalog feeds the strict catalog parser arbitrary bytes. It must
// never panic, and whatever it accepts must survive a round trip: its
// canonical payload parses back to a catalog with the same payload, and canonical input
// comes back byte for byte.
func FuzzParseCatalog(f *testing.F) {
	p := mustPayload(f, newCatalog(f, 1, t0.Add(week), root123(f), twoApps...))
	f.Add(p)
	f.Add(mustPayload(f, registry.NewCatalog("", 1, t0, rootOf(f, 1, 1, 0))))
	f.Add([]byte(strings.Replace(string(p), `"threshold":2`, `"threshold":2,"threshold":1`, 1)))
	f.Add([]byte(`{"schema":"archy.catalog/v1","version":9007199254740993}`))
	f.Add([]byte("\xEF\xBB\xBF{}"))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := registry.ParseCatalog(data)
		if err != nil {
			if c != nil {
				t.Fatal("a catalog returned with an error")
			}
			return
		}
		q, err := c.Payload()
		if err != nil {
			t.Fatalf("accepted catalog has no payload: %v", err)
		}
		c2, err := registry.ParseCatalog(q)
		if err != nil {
			t.Fatalf("canonical payload does not parse: %v\n%s", err, q)
		}
		q2, err := c2.Payload()
		if err != nil || !bytes.Equal(q, q2) {
			t.Fatalf("round trip changed the catalog (%v):\n%s\n%s", err, q, q2)
		}
		if c2.Version != c.Version || c2.Expires != c.Expires || !c2.Root.Equal(c.Root) || len(c2.Entries) != len(c.Entries) {
			t.Fatalf("round trip changed the catalog:\n%+v\n%+v", c, c2)
		}
		if bytes.Equal(data, p) && !bytes.Equal(q, p) {
			t.Fatal("canonical input did not come back byte for byte")
		}
	})
}

// FuzzReadCatalog feeds the envelope reader arbitrary bytes: no panic, and
// nothing past the cap is ever accepted.
func FuzzReadCatalog(f *testing.F) {
	f.Add(signCatalog(f, newCatalog(f, 1, t0.Add(week), root123(f), twoApps...), 0, 1))
	f.Add([]byte(`{"payloadType":"x","payload":"","signatures":[{"keyid":"","sig":""}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		raw, env, err := registry.ReadCatalog(bytes.NewReader(data))
		if err != nil {
			return
		}
		if len(raw) > registry.MaxCatalogSize || env == nil || !bytes.Equal(raw, data) {
			t.Fatal("reader accepted more than the cap or changed the bytes")
		}
	})
}

// FuzzParseBundle feeds the catalog bundle parser (a catalog and its root
// rotation chain) and the pointer parser arbitrary bytes. Neither may
// panic; an accepted bundle's chain is consecutive, capped and answers
// Rotation for exactly its versions, and survives a round trip.
func FuzzParseBundle(f *testing.F) {
	cat := []byte(`{"payloadType":"x","payload":"","signatures":[]}`)
	good, err := (&registry.Bundle{Chain: []registry.Link{{Version: 2, Catalog: cat}, {Version: 3, Catalog: cat}}, Catalog: cat}).Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"type":"archy.catalog-bundle/v1","catalog":"e30=","chain":[{"version":3,"catalog":"e30="},{"version":2,"catalog":"e30="}]}`))
	f.Add([]byte(`{"type":"archy.catalog-bundle/v1","catalog":"e30=","chain":[{"version":1,"catalog":"e30="}]}`))
	f.Add([]byte(`{"type":"archy.catalog-bundle/v1","catalog":"e30=","chain":[{"version":9007199254740993,"catalog":"e30="}]}`))
	f.Add([]byte(`{"type":"archy.catalog-pointer/v1","registry":"demo","version":2,"root_version":1,"cid":"bafkr4i","size":10}`))
	f.Add([]byte(`{"type":"archy.catalog-bundle/v1","catalog":"!!"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		_ = registry.MessageType(data)
		if p, err := registry.ParsePointer(data); err == nil {
			if p.Size < 1 || p.Size > registry.MaxBundleSize || p.Version < 1 {
				t.Fatalf("accepted pointer %+v", p)
			}
		}
		b, err := registry.ParseBundle(data)
		if err != nil {
			if b != nil {
				t.Fatal("a bundle returned with an error")
			}
			return
		}
		if len(b.Chain) > registry.DefaultMaxRootRotations || len(b.Catalog) == 0 {
			t.Fatalf("accepted bundle with %d links, %d catalog bytes", len(b.Chain), len(b.Catalog))
		}
		for i, l := range b.Chain {
			if l.Version < 2 || (i > 0 && l.Version != b.Chain[i-1].Version+1) {
				t.Fatalf("accepted chain out of order at %d: %d", i, l.Version)
			}
			rc, err := b.Rotation(t.Context(), l.Version)
			if err != nil {
				t.Fatalf("rotation %d: %v", l.Version, err)
			}
			got, _ := io.ReadAll(rc)
			if !bytes.Equal(got, l.Catalog) {
				t.Fatalf("rotation %d answers another link", l.Version)
			}
		}
		if len(b.Chain) > 0 {
			if _, err := b.Rotation(t.Context(), b.Chain[len(b.Chain)-1].Version+1); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("rotation past the chain: %v", err)
			}
		}
		again, err := b.Marshal()
		if err != nil {
			t.Fatalf("accepted bundle does not marshal: %v", err)
		}
		b2, err := registry.ParseBundle(again)
		if err != nil || !reflect.DeepEqual(b, b2) {
			t.Fatalf("round trip: %v\n%+v\n%+v", err, b, b2)
		}
	})
}
