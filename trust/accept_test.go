package trust

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/archy-node/archy/did"
	"github.com/archy-node/archy/p2p/discovery"
	"github.com/archy-node/archy/registry"
	"github.com/archy-node/archy/relay"
	"github.com/archy-node/archy/relay/relaytest"
)

// release signs a manifest of app id by a new DID and announces it under
// the Nostr key s, bound to the DID.
func release(t *testing.T, s signer, id, version string) (*did.Key, []nostr.Event) {
	t.Helper()
	key, err := did.Generate()
	if err != nil {
		t.Fatal(err)
	}
	m := &registry.Manifest{Schema: registry.Schema, ID: id, Name: id, Version: version, Publisher: key.DID(),
		Containers: []registry.Container{{Name: "web", Image: registry.Image{
			CID:    "bafkr4ihkr4ld3m4gqkjf4reryxsy2s5tkbxprqkow6fin2iiyvreuzzab4",
			Digest: "sha256:" + strings.Repeat("ab", 32)}}}}
	env, _, err := registry.Sign(m, key)
	if err != nil {
		t.Fatal(err)
	}
	envJSON, _ := env.Marshal()
	v, err := registry.VerifyEnvelope(envJSON)
	if err != nil {
		t.Fatal(err)
	}
	bind, err := discovery.Binding(key, s.pk)
	if err != nil {
		t.Fatal(err)
	}
	evs, err := (&discovery.Announcement{Manifest: v, Envelope: envJSON, Binding: bind, CreatedAt: time.Now().Add(-time.Minute)}).Events(s.sk)
	if err != nil {
		t.Fatal(err)
	}
	return key, evs
}

// TestSybilCloneRealRelay is issue 10's scenario on a real relay: the
// owner follows an honest publisher's key; a sybil publisher with 50 fake
// accounts that follow each other and endorse it clones the app id, and
// one of the fakes is followed by a friend of the owner (an attack edge).
// The crawl gathers it all; the decision picks the honest publisher and
// the explanation shows the path from the owner. A DID whose binding is
// forged (the statement names another key) is not bound.
func TestSybilCloneRealRelay(t *testing.T) {
	url := relaytest.Start(t, relay.Config{DataDir: t.TempDir(), EventRate: 10000, EventBurst: 20000})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r, err := discovery.Dial(ctx, url, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	pub := func(ev *nostr.Event) {
		t.Helper()
		if err := r.Publish(ctx, *ev); err != nil {
			t.Fatalf("publish kind %d: %v", ev.Kind, err)
		}
	}
	at := time.Now().Add(-time.Hour).Unix()
	owner, friend, honestKey, sybilKey := newSigner(t), newSigner(t), newSigner(t), newSigner(t)
	honest, evs := release(t, honestKey, "vault", "2.0.0")
	for i := range evs {
		pub(&evs[i])
	}
	sybil, evs := release(t, sybilKey, "vault", "9.0.0")
	for i := range evs {
		pub(&evs[i])
	}
	fakes := make([]signer, 50)
	for i := range fakes {
		fakes[i] = newSigner(t)
	}
	for i, f := range fakes {
		pub(f.sign(t, follow(at, fakes[(i+1)%50], fakes[(i+7)%50], fakes[(i+13)%50], sybilKey)))
		e, _ := Endorsement(sybil.DID(), "", false, time.Unix(at, 0))
		pub(f.sign(t, e))
		rep := nostr.Event{Kind: KindReport, CreatedAt: nostr.Timestamp(at), Tags: nostr.Tags{{"r", honest.DID(), "impersonation"}}}
		pub(f.sign(t, rep))
	}
	pub(owner.sign(t, follow(at, honestKey, friend)))
	pub(friend.sign(t, follow(at, fakes[0], honestKey)))
	pub(honestKey.sign(t, follow(at, friend)))

	st, err := Open(filepath.Join(t.TempDir(), "graph.json"))
	if err != nil {
		t.Fatal(err)
	}
	c := &Crawler{Relays: []string{url}, Hops: 3}
	if _, err := c.Crawl(ctx, st, []string{owner.pk}); err != nil {
		t.Fatal(err)
	}
	g := st.Graph
	if pubs := g.Publishers("vault"); len(pubs) != 2 {
		t.Fatalf("vault publishers %v, want the honest and the sybil DID", pubs)
	}
	if ks := g.Keys(honest.DID()); len(ks) != 1 || ks[0] != honestKey.pk {
		t.Fatalf("honest DID bound to %v", ks)
	}
	s := NewScorer(g, owner.pk, Params{})
	var cands []Candidate
	for _, d := range g.Publishers("vault") {
		cands = append(cands, Candidate{DID: d})
	}
	d := s.Decide(Policy{}, "vault", cands)
	if d.Selected != honest.DID() {
		t.Fatalf("selected %q: %v\n%+v", d.Selected, d.Reasons, d.Candidates)
	}
	for _, ch := range d.Candidates {
		// The crawl reached the four fakes within three hops; their reports
		// count at most once in the friend's branch, under the quorum.
		if ch.DID == honest.DID() && (len(ch.Reported) != 4 || ch.Reports >= 2) {
			t.Errorf("honest: %d reports seen, weight %g; want 4 seen, weight under 2", len(ch.Reported), ch.Reports)
		}
	}
	e := s.Explain(honest.DID())
	if len(e.Paths) == 0 || strings.Join(e.Paths[0].Nodes, " ") != owner.pk+" "+honestKey.pk {
		t.Errorf("honest paths %+v, want owner → honest key first", e.Paths)
	}

	// A forged binding: the sybil's DID names the honest key in a statement
	// carried by an event the sybil key signs. Verify refuses it, and the
	// honest key stays bound to the honest DID only.
	forged, err := discovery.Binding(sybil, honestKey.pk)
	if err != nil {
		t.Fatal(err)
	}
	_, evs = release(t, sybilKey, "vault", "9.0.1")
	for i := range evs {
		for j, tg := range evs[i].Tags {
			if tg[0] == discovery.BindingTag {
				evs[i].Tags[j] = nostr.Tag{discovery.BindingTag, string(forged)}
			}
		}
		_ = evs[i].Sign(sybilKey.sk)
		if _, err := Ingest(g, &evs[i], time.Now()); err == nil {
			t.Error("an announcement with a forged binding was ingested")
		}
	}
	if ds := g.keyDIDs[g.index[honestKey.pk]]; len(ds) != 1 {
		t.Errorf("honest key bound to %d DIDs", len(ds))
	}
}
