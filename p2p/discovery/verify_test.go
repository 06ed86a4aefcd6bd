package discovery

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/archy-node/archy/did"
	"github.com/archy-node/archy/registry"
)

// fixture is a publisher with a DID, a Nostr key and one signed release.
type fixture struct {
	key      *did.Key
	sk, pk   string
	verified *registry.Verified
	envJSON  []byte
	binding  []byte
}

func testManifest(publisher, version string) *registry.Manifest {
	return &registry.Manifest{
		Schema: registry.Schema, ID: "hello-web", Name: "Hello Web", Version: version, Publisher: publisher,
		Containers: []registry.Container{{
			Name: "web",
			Image: registry.Image{
				Ref:    "localhost/hello:1",
				CID:    "bafkr4ihkr4ld3m4gqkjf4reryxsy2s5tkbxprqkow6fin2iiyvreuzzab4",
				Digest: "sha256:0000000000000000000000000000000000000000000000000000000000000001",
			},
			Command: []string{"httpd", "-f", "-p", "8080"},
			Ports:   []registry.Port{{Container: 8080, Host: 18080}},
		}},
	}
}

func newFixture(t testing.TB, version string) *fixture {
	t.Helper()
	k, err := did.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return newFixtureWithKey(t, k, nostr.GeneratePrivateKey(), version)
}

func newFixtureWithKey(t testing.TB, k *did.Key, sk, version string) *fixture {
	t.Helper()
	pk, _ := nostr.GetPublicKey(sk)
	env, _, err := registry.Sign(testManifest(k.DID(), version), k)
	if err != nil {
		t.Fatal(err)
	}
	envJSON, err := env.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	v, err := registry.VerifyEnvelope(envJSON)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Binding(k, pk)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{key: k, sk: sk, pk: pk, verified: v, envJSON: envJSON, binding: b}
}

func (f *fixture) events(t testing.TB, at time.Time) []nostr.Event {
	t.Helper()
	a := &Announcement{Manifest: f.verified, Envelope: f.envJSON, Binding: f.binding, CreatedAt: at}
	evs, err := a.Events(f.sk)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func resign(t *testing.T, ev nostr.Event, sk string) *nostr.Event {
	t.Helper()
	if err := ev.Sign(sk); err != nil {
		t.Fatal(err)
	}
	return &ev
}

func setTag(ev nostr.Event, name, value string) nostr.Event {
	tags := make(nostr.Tags, 0, len(ev.Tags))
	for _, tg := range ev.Tags {
		if tg[0] == name {
			tg = nostr.Tag{name, value}
		}
		tags = append(tags, tg)
	}
	ev.Tags = tags
	return ev
}

func TestVerifyAcceptsPublishedRelease(t *testing.T) {
	f := newFixture(t, "1.0.0")
	now := time.Now()
	evs := f.events(t, now)
	for i, ev := range evs {
		r, err := Verify(&ev, now)
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if r.AppID != "hello-web" || r.Version != "1.0.0" || r.Publisher != f.key.DID() || r.CID != f.verified.CID || r.Manifest == nil {
			t.Fatalf("event %d: unexpected release %+v", i, r)
		}
		if r.Latest != (i == 1) {
			t.Fatalf("event %d: latest = %v", i, r.Latest)
		}
	}
	if d := tag(&evs[0], "d"); d != "archy/v1/release/hello-web@1.0.0" {
		t.Fatalf("release d = %q", d)
	}
	if d := tag(&evs[1], "d"); d != "archy/v1/app/hello-web" {
		t.Fatalf("latest d = %q", d)
	}
}

func TestVerifyRejects(t *testing.T) {
	f := newFixture(t, "1.0.0")
	other := newFixture(t, "1.0.0") // another publisher, other keys
	now := time.Now()
	good := f.events(t, now)[0]

	cases := []struct {
		name string
		ev   func() *nostr.Event
		want error
	}{
		{"one byte of content changed, id kept", func() *nostr.Event {
			ev := good
			ev.Content = ev.Content[:len(ev.Content)-2] + " }"
			return &ev
		}, ErrSignature},
		{"bad signature", func() *nostr.Event {
			ev := good
			b := []byte(ev.Sig)
			if b[10] == 'a' {
				b[10] = 'b'
			} else {
				b[10] = 'a'
			}
			ev.Sig = string(b)
			return &ev
		}, ErrSignature},
		{"created_at 16 minutes ahead", func() *nostr.Event {
			ev := good
			ev.CreatedAt = nostr.Timestamp(now.Add(16 * time.Minute).Unix())
			return resign(t, ev, f.sk)
		}, ErrFuture},
		{"other kind", func() *nostr.Event {
			ev := good
			ev.Kind = 1
			return resign(t, ev, f.sk)
		}, ErrNotArchy},
		{"d tag names another version", func() *nostr.Event {
			return resign(t, setTag(good, "d", ReleaseD("hello-web", "9.9.9")), f.sk)
		}, ErrTags},
		{"version tag disagrees with d", func() *nostr.Event {
			return resign(t, setTag(good, "version", "2.0.0"), f.sk)
		}, ErrTags},
		{"event signed by a Nostr key the DID did not bind", func() *nostr.Event {
			return resign(t, good, other.sk)
		}, ErrBinding},
		{"binding by another DID", func() *nostr.Event {
			return resign(t, setTag(good, BindingTag, string(other.binding)), f.sk)
		}, ErrBinding},
		{"did tag claims another publisher", func() *nostr.Event {
			ev := setTag(good, "did", other.key.DID())
			ev = setTag(ev, BindingTag, string(mustBinding(t, other.key, f.pk)))
			return resign(t, ev, f.sk)
		}, ErrEnvelope},
		{"cid of another manifest", func() *nostr.Event {
			return resign(t, setTag(good, "cid", other.verified.CID.String()), f.sk)
		}, ErrCID},
		{"content is another publisher's manifest", func() *nostr.Event {
			ev := good
			ev.Content = string(other.envJSON)
			return resign(t, ev, f.sk)
		}, ErrEnvelope},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Verify(tc.ev(), now)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func mustBinding(t *testing.T, k *did.Key, pk string) []byte {
	t.Helper()
	b, err := Binding(k, pk)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVerifyCIDOnlyAnnouncement(t *testing.T) {
	f := newFixture(t, "1.0.0")
	now := time.Now()
	a := &Announcement{Manifest: f.verified, Envelope: f.envJSON, Binding: f.binding, CreatedAt: now, MaxContent: 10}
	evs, err := a.Events(f.sk)
	if err != nil {
		t.Fatal(err)
	}
	if evs[0].Content != "" {
		t.Fatalf("content kept despite MaxContent")
	}
	r, err := Verify(&evs[0], now)
	if err != nil {
		t.Fatal(err)
	}
	if r.Manifest != nil || r.CID != f.verified.CID {
		t.Fatalf("CID-only release: %+v", r)
	}

	// The envelope, fetched from anyone, completes it only if it is the
	// publisher's signed manifest with that CID and those tags.
	other := newFixture(t, "1.0.0")                       // another publisher's release
	sameKey := newFixtureWithKey(t, f.key, f.sk, "1.0.1") // the publisher's other version
	for name, tc := range map[string]struct {
		env  []byte
		want error
	}{
		"junk":              {[]byte("{}"), ErrEnvelope},
		"other publisher":   {other.envJSON, ErrEnvelope},
		"other manifest":    {sameKey.envJSON, ErrCID},
		"tampered envelope": {bytes.Replace(f.envJSON, []byte(`"sig":"`), []byte(`"sig":"A`), 1), ErrEnvelope},
	} {
		if _, err := r.Complete(tc.env); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
	c, err := r.Complete(f.envJSON)
	if err != nil {
		t.Fatal(err)
	}
	if c.Manifest == nil || !c.Manifest.CID.Equals(f.verified.CID) || r.Manifest != nil {
		t.Fatalf("completed %+v from %+v", c, r)
	}
	s, err := OpenStore(t.TempDir() + "/discovered.json")
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Complete(c); ok || err != nil {
		t.Fatalf("completed a release the store does not hold: %v %v", ok, err)
	}
	if _, err := s.Put(r); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Complete(c); !ok || err != nil {
		t.Fatalf("complete: %v %v", ok, err)
	}
	if got := s.List(); len(got) != 1 || got[0].Manifest == nil {
		t.Fatalf("store holds %+v", got)
	}
}

func TestStoreReplacementAndDeletion(t *testing.T) {
	f := newFixture(t, "1.0.0")
	now := time.Now().Truncate(time.Second)
	s, err := OpenStore(t.TempDir() + "/discovered.json")
	if err != nil {
		t.Fatal(err)
	}
	put := func(ev nostr.Event) bool {
		t.Helper()
		r, err := Verify(&ev, now.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		ok, err := s.Put(r)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	latest := func(at time.Time) nostr.Event { return f.events(t, at)[1] }

	older, newerEv := latest(now), latest(now.Add(time.Second))
	if !put(newerEv) || put(older) {
		t.Fatal("an older event replaced a newer one")
	}
	// Same created_at: the lowest id wins, whatever the arrival order.
	a := latest(now.Add(2 * time.Second))
	b := a
	b.Tags = append(append(nostr.Tags{}, a.Tags...), nostr.Tag{"x", "tie"})
	bp := resign(t, b, f.sk)
	lo, hi := a, *bp
	if hi.ID < lo.ID {
		lo, hi = hi, lo
	}
	if !put(hi) || !put(lo) || put(hi) {
		t.Fatal("tie-break on equal created_at did not keep the lowest id")
	}
	if got := s.List()[0].EventID; got != lo.ID {
		t.Fatalf("stored %s, want lowest id %s", got, lo.ID)
	}

	// A NIP-09 deletion of the release address removes it and blocks older copies.
	rel := f.events(t, now)[0]
	if !put(rel) {
		t.Fatal("release not stored")
	}
	del, err := Withdrawal(f.sk, "hello-web", "1.0.0", "withdrawn", now.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Delete(&del); err != nil || !ok {
		t.Fatalf("delete: %v %v", ok, err)
	}
	if put(rel) {
		t.Fatal("a withdrawn release came back")
	}
	// A deletion by another author changes nothing.
	other := newFixture(t, "1.0.0")
	forged := nostr.Event{Kind: nostr.KindDeletion, CreatedAt: nostr.Timestamp(now.Add(time.Hour).Unix()),
		Tags: nostr.Tags{{"a", address(f.pk, LatestD("hello-web"))}}}
	before := len(s.List())
	if ok, _ := s.Delete(resign(t, forged, other.sk)); ok || len(s.List()) != before || before == 0 {
		t.Fatal("a deletion by another key removed a release")
	}

	// The store survives a reopen, verifying what it loads.
	s2, err := OpenStore(s.cfg.Path)
	if err != nil {
		t.Fatal(err)
	}
	if len(s2.List()) != len(s.List()) || s2.List()[0].Manifest == nil {
		t.Fatalf("reopened store has %d releases, want %d", len(s2.List()), len(s.List()))
	}
}

// BenchmarkVerifyAnnouncement is a node's CPU for one announcement: each
// of its events' ID, Nostr signature, key binding and signed manifest
// checked (Verify). The simulator's model charges a node this much CPU
// per announcement when its nodes share cores (sim/model: announceCPU).
func BenchmarkVerifyAnnouncement(b *testing.B) {
	f := newFixture(b, "1.0.0")
	now := time.Now()
	evs := f.events(b, now)
	b.ResetTimer()
	for b.Loop() {
		for i := range evs {
			if _, err := Verify(&evs[i], now); err != nil {
				b.Fatal(err)
			}
		}
	}
}
