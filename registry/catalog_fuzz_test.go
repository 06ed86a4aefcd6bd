package registry_test

import (
	"bytes"
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
