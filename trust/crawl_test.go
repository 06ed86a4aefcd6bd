package trust

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"go.uber.org/goleak"

	"github.com/archy-node/archy/p2p/discovery"

	"github.com/archy-node/archy/relay"
	"github.com/archy-node/archy/relay/relaytest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type signer struct{ sk, pk string }

func newSigner(t *testing.T) signer {
	t.Helper()
	sk := nostr.GeneratePrivateKey()
	pk, err := nostr.GetPublicKey(sk)
	if err != nil {
		t.Fatal(err)
	}
	return signer{sk, pk}
}

func (s signer) sign(t *testing.T, ev nostr.Event) *nostr.Event {
	t.Helper()
	if err := ev.Sign(s.sk); err != nil {
		t.Fatal(err)
	}
	return &ev
}

func follow(at int64, keys ...signer) nostr.Event {
	ev := nostr.Event{Kind: KindFollows, CreatedAt: nostr.Timestamp(at)}
	for _, k := range keys {
		ev.Tags = append(ev.Tags, nostr.Tag{"p", k.pk})
	}
	return ev
}

func TestIngest(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	a, b := newSigner(t), newSigner(t)
	g := NewGraph()
	end, err := Endorsement("did:key:zPub", "good apps", false, now)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := Ingest(g, a.sign(t, end), now); !ok || err != nil {
		t.Fatalf("endorsement: %v %v", ok, err)
	}
	if out := g.Out(a.pk); len(out) != 1 || out[0] != "did:key:zPub" {
		t.Fatalf("out(a) = %v", out)
	}
	rev, _ := Endorsement("did:key:zPub", "", true, now.Add(time.Second))
	if ok, err := Ingest(g, a.sign(t, rev), now); !ok || err != nil || len(g.Out(a.pk)) != 0 {
		t.Fatalf("revocation: %v %v, out %v", ok, err, g.Out(a.pk))
	}
	rep := nostr.Event{Kind: KindReport, CreatedAt: nostr.Timestamp(now.Unix()), Tags: nostr.Tags{{"p", b.pk, "impersonation"}}}
	if ok, err := Ingest(g, a.sign(t, rep), now); !ok || err != nil {
		t.Fatalf("report: %v %v", ok, err)
	}
	// Forged: a's follow list with b's signature swapped in.
	f := a.sign(t, follow(now.Unix(), b))
	f.Tags = append(f.Tags, nostr.Tag{"p", a.pk})
	if _, err := Ingest(g, f, now); err == nil {
		t.Error("a tampered event was ingested")
	}
	other := nostr.Event{Kind: KindLabel, CreatedAt: nostr.Timestamp(now.Unix()), Tags: nostr.Tags{{"L", "ugc"}, {"l", "endorse", "ugc"}, {"p", b.pk}}}
	if _, err := Ingest(g, a.sign(t, other), now); err == nil {
		t.Error("a label outside the archy namespace was ingested")
	}
	if _, err := Endorsement("not-a-key", "", false, now); err == nil {
		t.Error("endorsing a non-key, non-DID worked")
	}
}

// TestCrawlRealRelay publishes a small graph to the embedded relay over
// websockets and crawls it: two hops deep, the newest follow list only,
// per-author caps, and an incremental refresh.
func TestCrawlRealRelay(t *testing.T) {
	url := relaytest.Start(t, relay.Config{DataDir: t.TempDir(), EventRate: 10000, EventBurst: 20000})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
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
	now := time.Now()
	at := now.Add(-time.Hour).Unix()
	owner, f1, f2, ff, fff, stale := newSigner(t), newSigner(t), newSigner(t), newSigner(t), newSigner(t), newSigner(t)
	pub(owner.sign(t, follow(at-10, stale))) // replaced by the next list
	pub(owner.sign(t, follow(at, f1, f2)))
	pub(f1.sign(t, follow(at, ff)))
	pub(ff.sign(t, follow(at, fff))) // ff is hop 2; fff is hop 3: not read
	pub(fff.sign(t, follow(at, owner)))
	end, _ := Endorsement("did:key:zHonest", "", false, time.Unix(at, 0))
	pub(f2.sign(t, end))
	for i := range 8 { // more labels than the per-author cap
		e, _ := Endorsement(fmt.Sprintf("did:key:zSpam%d", i), "", false, time.Unix(at+int64(i), 0))
		pub(ff.sign(t, e))
	}
	rep := nostr.Event{Kind: KindReport, CreatedAt: nostr.Timestamp(at), Tags: nostr.Tags{{"r", "did:key:zBad", "malware"}}}
	pub(f1.sign(t, rep))

	st, err := Open(filepath.Join(t.TempDir(), "trust.json"))
	if err != nil {
		t.Fatal(err)
	}
	c := &Crawler{Relays: []string{url}, Hops: 2, PerAuthor: 5, Batch: 2, Limit: 6}
	stats, err := c.Crawl(ctx, st, []string{owner.pk})
	if err != nil {
		t.Fatal(err)
	}
	g := st.Graph
	if out := g.Out(owner.pk); len(out) != 2 {
		t.Errorf("owner follows %d, want 2 (the newer list)", len(out))
	}
	if out := g.Out(ff.pk); len(out) != 5 {
		// ff has 9 events: alone in its batch, the newest 5 are kept.
		t.Errorf("ff has %d edges, want 5 (per-author cap): %v", len(out), out)
	}
	if out := g.Out(fff.pk); len(out) != 0 {
		t.Errorf("fff (hop 3) was read: %v", out)
	}
	if stats.Authors != 4 || stats.Capped == 0 {
		t.Errorf("stats %+v: want 4 authors and some capped", stats)
	}
	if m := g.reports[g.index["did:key:zBad"]]; len(m) != 1 {
		t.Errorf("reports of zBad: %d, want 1", len(m))
	}
	s := NewScorer(g, owner.pk, Params{})
	if s.Score("did:key:zHonest") <= 0 {
		t.Error("the endorsed DID has no score")
	}
	if err := st.Save(); err != nil {
		t.Fatal(err)
	}

	// Refresh: f2 follows someone new; only events since the last crawl
	// (less the skew) are asked for, and the new follow shows.
	newbie := newSigner(t)
	pub(f2.sign(t, follow(at+60, newbie)))
	st2, err := Open(st.Path)
	if err != nil {
		t.Fatal(err)
	}
	if len(st2.Crawled) != 4 || st2.Graph.Edges() != g.Edges() {
		t.Fatalf("reloaded store: %d crawled, %d edges; want 4 and %d", len(st2.Crawled), st2.Graph.Edges(), g.Edges())
	}
	s2 := NewScorer(st2.Graph, owner.pk, Params{})
	if s2.Score("did:key:zHonest") != s.Score("did:key:zHonest") {
		t.Error("scores changed across save and load")
	}
	stats, err = c.Crawl(ctx, st2, []string{owner.pk})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, x := range st2.Graph.Out(f2.pk) {
		found = found || x == newbie.pk
	}
	if !found {
		t.Errorf("refresh missed f2's new follow: %v (stats %+v)", st2.Graph.Out(f2.pk), stats)
	}

	// Per-relay cap: a fresh crawl allowed 4 events from the relay stops there.
	st3, err := Open(filepath.Join(t.TempDir(), "capped.json"))
	if err != nil {
		t.Fatal(err)
	}
	capped := &Crawler{Relays: []string{url}, Hops: 2, PerRelay: 4}
	stats, err = capped.Crawl(ctx, st3, []string{owner.pk})
	if err != nil {
		t.Fatal(err)
	}
	if stats.Events != 4 || stats.Capped == 0 {
		t.Errorf("per-relay cap 4: stats %+v", stats)
	}
}
