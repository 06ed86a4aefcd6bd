package discovery

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/archy-node/archy/internal/nostrtools"
	"github.com/archy-node/archy/relay"
	"github.com/archy-node/archy/relay/relaytest"
)

// node is one subscriber: a store and a discoverer, as a node embeds them.
type node struct {
	store *Store
	disc  *Discoverer
	got   chan *Release
}

func startNode(t testing.TB, relays []string) *node {
	t.Helper()
	return startNodeWith(t, relays, nil)
}

// startNodeWith is startNode with the discoverer's Config changed by mod.
func startNodeWith(t testing.TB, relays []string, mod func(*Config)) *node {
	t.Helper()
	dir := t.TempDir()
	st, err := OpenStore(filepath.Join(dir, "discovered.json"))
	if err != nil {
		t.Fatal(err)
	}
	n := &node{store: st, got: make(chan *Release, 64)}
	cfg := Config{Relays: relays, CursorPath: filepath.Join(dir, "cursors.json"), MinBackoff: 50 * time.Millisecond,
		OnRelease: func(r *Release) {
			select {
			case n.got <- r:
			default:
			}
		}}
	if mod != nil {
		mod(&cfg)
	}
	n.disc, err = New(cfg, st, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); n.disc.Run(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return n
}

// waitHandled waits until the node has dealt with at least n events.
func waitHandled(t testing.TB, node *node, n int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Minute) // a hang guard, not a figure
	for node.disc.Stats().Handled < n {
		if time.Now().After(deadline) {
			t.Fatalf("the node handled %d of %d events", node.disc.Stats().Handled, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func publishEvents(t testing.TB, url string, evs ...nostr.Event) {
	t.Helper()
	timeout := 10*time.Second + time.Duration(len(evs))*5*time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if _, err := Publish(ctx, []string{url}, timeout, evs...); err != nil {
		t.Fatal(err)
	}
}

func waitRelease(t testing.TB, n *node, appID, version string, latest bool) *Release {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		for _, r := range n.store.List() {
			if r.AppID == appID && r.Version == version && r.Latest == latest {
				return r
			}
		}
		select {
		case <-n.got: // something changed: look again
		case <-timeout:
			t.Fatalf("release %s@%s (latest=%v) not discovered in 10s", appID, version, latest)
		}
	}
}

// TestThreeNodesDiscover publishes on one relay and checks that three
// nodes discover and verify the release, while forged events (bad
// signature, wrong DID binding, mismatching CID) are rejected on all.
func TestThreeNodesDiscover(t *testing.T) {
	url := relaytest.Start(t, relay.Config{DataDir: t.TempDir(), EventRate: 10000, EventBurst: 20000})
	nodes := []*node{startNode(t, []string{url}), startNode(t, []string{url}), startNode(t, []string{url})}

	f := newFixture(t, "1.0.0")
	attacker := newFixture(t, "1.0.0")
	now := time.Now()
	good := f.events(t, now)
	// Forgeries are stamped earlier, so the relay's own NIP-01 replacement
	// keeps the genuine events that follow them at the same addresses.
	early := f.events(t, now.Add(-10*time.Second))

	// Forgeries the relay accepts (their Nostr signatures hold) but nodes must not.
	wrongBinding := *resign(t, good[0], attacker.sk) // the attacker's Nostr key, f's DID binding
	wrongCID := *resign(t, setTag(early[1], "cid", attacker.verified.CID.String()), f.sk)
	stolenManifest := early[0]
	stolenManifest.Content = string(attacker.envJSON)
	stolenManifest = *resign(t, stolenManifest, f.sk)
	publishEvents(t, url, wrongBinding, wrongCID, stolenManifest)
	publishEvents(t, url, good...)

	for i, n := range nodes {
		r := waitRelease(t, n, "hello-web", "1.0.0", true)
		if r.Manifest == nil || r.CID != f.verified.CID || r.Publisher != f.key.DID() {
			t.Fatalf("node %d: bad release %+v", i, r)
		}
	}
	// The forgeries were seen and dropped with their reasons, on every node.
	for i, n := range nodes {
		deadline := time.Now().Add(5 * time.Second)
		for {
			s := n.disc.Stats()
			if s.Dropped[ErrBinding.Error()] >= 1 && s.Dropped[ErrCID.Error()] >= 1 && s.Dropped[ErrEnvelope.Error()] >= 1 &&
				n.store.Stats().Events == 2 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %d: forgeries not all rejected: %+v", i, s)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if got := n.store.List(); len(got) != 1 || got[0].D != ReleaseD("hello-web", "1.0.0") || !got[0].Latest {
			t.Fatalf("node %d lists %+v, want one row: the release, marked latest", i, got)
		}
	}
	// A raw event with a broken signature is refused by the relay itself;
	// nodes never see it, so nothing to assert beyond the relay's OK.
	bad := good[0]
	bad.Sig = bad.Sig[:len(bad.Sig)-2] + "00"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := Publish(ctx, []string{url}, 5*time.Second, bad); err == nil {
		t.Fatal("relay accepted a bad signature")
	}

	// A newer version replaces the latest pointer; a withdrawal removes a release.
	f2 := newFixtureWithKey(t, f.key, f.sk, "1.1.0")
	publishEvents(t, url, f2.events(t, now.Add(time.Second))...)
	for _, n := range nodes {
		waitRelease(t, n, "hello-web", "1.1.0", true)
	}
	del, err := Withdrawal(f.sk, "hello-web", "1.0.0", "broken", now.Add(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	publishEvents(t, url, del)
	for i, n := range nodes {
		deadline := time.Now().Add(5 * time.Second)
		for n.disc.Stats().Deleted == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("node %d: withdrawal not applied", i)
			}
			time.Sleep(20 * time.Millisecond)
		}
		var versions []string
		for _, r := range n.store.List() {
			versions = append(versions, fmt.Sprintf("%s/%v", r.Version, r.Latest))
		}
		sort.Strings(versions)
		if fmt.Sprint(versions) != "[1.1.0/true]" {
			t.Fatalf("node %d holds %v after withdrawal", i, versions)
		}
	}
}

// TestNostrToolsReadsAnnouncements has an independent implementation
// (nostr-tools on Node.js) read archy's events from the embedded relay and
// verify them, and check that a one-byte change fails there too. (The
// command-line twin, on events `archy app publish` wrote, is in cmd/archy.)
func TestNostrToolsReadsAnnouncements(t *testing.T) {
	npm := nostrtools.NPMDir(t)
	url := relaytest.Start(t, relay.Config{DataDir: t.TempDir(), EventRate: 10000, EventBurst: 20000})
	f := newFixture(t, "1.0.0")
	evs := f.events(t, time.Now())
	publishEvents(t, url, evs...)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := nostrtools.Read(ctx, npm, url)
	if err != nil {
		t.Fatal(err)
	}
	if !res.EOSE || len(res.Events) != len(evs) {
		t.Fatalf("nostr-tools read %d events (eose %v), want %d", len(res.Events), res.EOSE, len(evs))
	}
	want := map[string]string{evs[0].ID: ReleaseD("hello-web", "1.0.0"), evs[1].ID: LatestD("hello-web")}
	for _, e := range res.Events {
		if !e.Valid || e.TamperedValid || e.Kind != KindAppData || want[e.ID] != e.D || e.PubKey != f.pk {
			t.Fatalf("nostr-tools verdict on %s: %+v", e.ID, e)
		}
	}
}
