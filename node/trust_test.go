package node

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/archy-node/archy/did"
	"github.com/archy-node/archy/internal/ociimage"
	"github.com/archy-node/archy/orchestrator/memruntime"
	"github.com/archy-node/archy/p2p"
	"github.com/archy-node/archy/p2p/discovery"
	"github.com/archy-node/archy/registry"
	"github.com/archy-node/archy/trust"
)

// trustImage builds one image archive and loads it into every twin, so
// any publisher's manifest pinning it installs from the engine.
func trustImage(t *testing.T, rts ...*memruntime.Runtime) registry.Image {
	t.Helper()
	ref := "localhost/archy-test/notes:1"
	archive := filepath.Join(t.TempDir(), "image.tar")
	if _, err := ociimage.Build(t.Context(), t.TempDir(), archive, ref); err != nil {
		t.Fatal(err)
	}
	sum, err := registry.ReadOCIArchive(archive)
	if err != nil {
		t.Fatal(err)
	}
	for _, rt := range rts {
		rt.LoadImageNames(ref, strings.TrimSuffix(ref, ":1")+"@"+sum.Digest)
	}
	return registry.Image{Ref: ref, CID: sum.CID.String(), Digest: sum.Digest}
}

// signNotes signs app id "notes" at version by key.
func signNotes(t *testing.T, key *did.Key, version string, img registry.Image) ([]byte, *registry.Verified) {
	t.Helper()
	m := &registry.Manifest{Schema: registry.Schema, ID: "notes", Name: "notes", Version: version, Publisher: key.DID(),
		Containers: []registry.Container{{Name: "web", Image: img}}}
	env, _, err := registry.Sign(m, key)
	if err != nil {
		t.Fatal(err)
	}
	envJSON, _ := env.Marshal()
	v, err := registry.VerifyEnvelope(envJSON)
	if err != nil {
		t.Fatal(err)
	}
	return envJSON, v
}

// signed signs ev with sk.
func signed(t *testing.T, ev nostr.Event, sk string) nostr.Event {
	t.Helper()
	if err := ev.Sign(sk); err != nil {
		t.Fatal(err)
	}
	return ev
}

func followList(t *testing.T, sk string, at time.Time, keys ...string) nostr.Event {
	t.Helper()
	var tags nostr.Tags
	for _, k := range keys {
		tags = append(tags, nostr.Tag{"p", k})
	}
	return signed(t, nostr.Event{Kind: trust.KindFollows, CreatedAt: nostr.Timestamp(at.Unix()), Tags: tags}, sk)
}

// opEnd runs a change as an operation and returns its final event.
func opEnd(t *testing.T, n *Node, method, path string, body any) OpEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	loc := startOp(t, n, method, path, body)
	resp := openEvents(t, ctx, n, loc, "")
	defer resp.Body.Close()
	var last sseEvent
	if err := readSSE(t, resp.Body, func(e sseEvent) bool { last = e; return e.typ != EventEnd }); err != nil || last.typ != EventEnd {
		t.Fatalf("%s %s: no end event (%v)", method, path, err)
	}
	return last.ev
}

// rowsTrust waits until the node's discovered rows of app id "notes"
// carry the wanted decision per publisher DID, and returns them.
func rowsTrust(t *testing.T, n *Node, want map[string]string) map[string]TrustView {
	t.Helper()
	var got map[string]TrustView
	deadline := time.Now().Add(60 * time.Second)
	for {
		var rows []struct {
			AppID     string     `json:"app_id"`
			Publisher string     `json:"publisher"`
			Trust     *TrustView `json:"trust"`
		}
		get(t, n.APIURL()+"/api/v1/apps/discovered", &rows)
		got = map[string]TrustView{}
		for _, r := range rows {
			if r.AppID == "notes" && r.Trust != nil {
				got[r.Publisher] = *r.Trust
			}
		}
		ok := len(got) == len(want)
		for d, dec := range want {
			ok = ok && got[d].Decision == dec
		}
		if ok {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("discovered rows' trust: got %+v, want decisions %v", got, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestTrustPicksHonestPublisher is issue 10's acceptance test on real
// nodes and their real embedded relays (the orchestrator's twin runs the
// apps): the owner follows an honest publisher's Nostr key, and a friend
// of the owner follows it too and one account of a sybil region (the
// attack edge):
// 50 accounts following each other and endorsing a sybil DID that clones
// the app id with a higher version. The owner's node crawls the graph
// from the owner's key, binds the publishers' keys from the verified
// announcements, shows the honest publisher selected and the sybil
// refused, explains the path; installs over the pin from the sybil are
// takeovers (409), a lower version a downgrade, and a rotation statement
// by the honest DID moves the pin. A second node with auto-install on
// installs the honest publisher's app on its own, never the sybil's,
// updates it from the pinned publisher, and does not bring it back once
// the owner uninstalled it; a third node with no owner key trusts only
// its allow list and says so.
func TestTrustPicksHonestPublisher(t *testing.T) {
	rtA := memruntime.New(memruntime.Config{CallTimeout: time.Minute})
	rtB := memruntime.New(memruntime.Config{CallTimeout: time.Minute})
	img := trustImage(t, rtA, rtB)

	ownerSK := nostr.GeneratePrivateKey()
	ownerPK, _ := nostr.GetPublicKey(ownerSK)
	friendSK := nostr.GeneratePrivateKey()
	friendPK, _ := nostr.GetPublicKey(friendSK)

	honest, _ := did.Generate()
	sybil, _ := did.Generate()
	now := time.Now().Add(-time.Minute)
	honestEnv, honestV := signNotes(t, honest, "1.0.0", img)
	sybilEnv, sybilV := signNotes(t, sybil, "2.0.0", img)
	honestEvs, honestSK := announce(t, honest, honestV, honestEnv, now, 0)
	honestPK, _ := nostr.GetPublicKey(honestSK)
	sybilEvs, sybilSK := announce(t, sybil, sybilV, sybilEnv, now, 0)
	sybilPK, _ := nostr.GetPublicKey(sybilSK)

	// The sybil region: the announcing key and 49 more, each following
	// all the others and endorsing the sybil DID. The owner's friend
	// follows the honest publisher and one sybil account (the attack
	// edge).
	sks := []string{sybilSK}
	pks := []string{sybilPK}
	for range 49 {
		sk := nostr.GeneratePrivateKey()
		pk, _ := nostr.GetPublicKey(sk)
		sks, pks = append(sks, sk), append(pks, pk)
	}
	evs := append(append([]nostr.Event{}, honestEvs...), sybilEvs...)
	evs = append(evs, followList(t, ownerSK, now, honestPK, friendPK), followList(t, friendSK, now, honestPK, pks[1]))
	for i, sk := range sks {
		others := slices.Delete(slices.Clone(pks), i, i+1)
		evs = append(evs, followList(t, sk, now, others...))
		e, err := trust.Endorsement(sybil.DID(), "", false, now)
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, signed(t, e, sk))
	}

	fast := TrustConfig{Owner: ownerPK, Refresh: 500 * time.Millisecond, Check: 200 * time.Millisecond}
	a := runNode(t, Config{DataDir: t.TempDir(), APIListen: "127.0.0.1:0", RelayListen: "127.0.0.1:0", NoPeering: true,
		Podman: PodmanConfig{Runtime: rtA}, Trust: fast,
		P2P: p2p.Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// One connection per 40 events: the relay's burst per connection is 50.
	for chunk := range slices.Chunk(evs, 40) {
		if _, err := discovery.Publish(ctx, a.RelayURLs()[:1], 10*time.Second, chunk...); err != nil {
			t.Fatal(err)
		}
	}

	// The owner's node: honest selected with reasons, the sybil refused.
	views := rowsTrust(t, a, map[string]string{honest.DID(): TrustSelected, sybil.DID(): TrustRefused})
	if h, s := views[honest.DID()], views[sybil.DID()]; len(h.Reasons) == 0 || len(s.Reasons) == 0 || h.Score <= s.Score {
		t.Fatalf("honest %+v, sybil %+v: want reasons for both and the honest score above", h, s)
	}
	var st Status
	get(t, a.APIURL()+"/api/v1/status", &st)
	if st.Trust.Owner != ownerPK || st.Trust.Note != "" || st.Trust.Nodes == 0 || st.Trust.LastCrawl.IsZero() {
		t.Fatalf("status trust: %+v", st.Trust)
	}

	// Explain: the paths from the owner to the publisher's bound key, the
	// owner's follow and the friend's.
	var ex TrustExplanation
	get(t, a.APIURL()+"/api/v1/trust/explain/"+honest.DID(), &ex)
	if len(ex.Explanations) != 1 || len(ex.Explanations[0].Paths) != 2 ||
		!slices.Equal(ex.Explanations[0].Paths[0].Nodes, []string{ownerPK, honestPK}) ||
		!slices.Equal(ex.Explanations[0].Paths[1].Nodes, []string{ownerPK, friendPK, honestPK}) ||
		!slices.Equal(ex.Explanations[0].Keys, []string{honestPK}) {
		t.Fatalf("explain %s: %+v", honest.DID(), ex)
	}
	get(t, a.APIURL()+"/api/v1/trust/explain/notes", &ex)
	if ex.Decision == nil || ex.Decision.Selected != honest.DID() || len(ex.Explanations) != 2 {
		t.Fatalf("explain notes: %+v", ex)
	}
	var sc TrustScore
	get(t, a.APIURL()+"/api/v1/trust/score", &sc)
	if sc.Owner != ownerPK || len(sc.Apps) != 1 || sc.Apps[0].Selected != honest.DID() || len(sc.Publishers) != 2 || sc.Publishers[0].DID != honest.DID() {
		t.Fatalf("score: %+v", sc)
	}

	// Installing the honest release pins it; the sybil's higher version is
	// a takeover, the honest publisher's lower one a downgrade.
	if end := opEnd(t, a, http.MethodPost, "/api/v1/apps", InstallRequest{CID: honestV.CID.String()}); !end.OK {
		t.Fatalf("install the honest release: %+v", end)
	}
	rowsTrust(t, a, map[string]string{honest.DID(): TrustPinned, sybil.DID(): TrustRefused})
	if end := opEnd(t, a, http.MethodPost, "/api/v1/apps", InstallRequest{CID: sybilV.CID.String()}); end.OK || end.Code != http.StatusConflict || !strings.Contains(end.Error, "another publisher") {
		t.Fatalf("the sybil's release over the pin: %+v, want 409 as another publisher's", end)
	}
	lowEnv, _ := signNotes(t, honest, "0.9.0", img)
	if end := opEnd(t, a, http.MethodPost, "/api/v1/apps", InstallRequest{Envelope: lowEnv}); end.OK || end.Code != http.StatusConflict || !strings.Contains(end.Error, "downgrade") {
		t.Fatalf("a lower version: %+v, want 409 as a downgrade", end)
	}
	// A rotation statement by the honest DID moves the pin to its successor.
	next, _ := did.Generate()
	nextEnv, _ := signNotes(t, next, "1.1.0", img)
	rot, err := registry.SignRotation("notes", honest, next.DID(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	rotJSON, _ := rot.Marshal()
	if end := opEnd(t, a, http.MethodPost, "/api/v1/apps", InstallRequest{Envelope: nextEnv, Rotations: []json.RawMessage{rotJSON}}); !end.OK || end.Message != "update done" {
		t.Fatalf("update under a rotation statement: %+v", end)
	}
	if s, err := a.orch.Status("notes"); err != nil || s.Publisher != next.DID() || s.Version != "1.1.0" {
		t.Fatalf("after the rotation: %+v %v", s, err)
	}

	// A node with auto-install on installs the honest release by itself.
	b := runNode(t, Config{DataDir: t.TempDir(), APIListen: "127.0.0.1:0", RelayListen: "127.0.0.1:0", NoPeering: true,
		Relays: a.RelayURLs()[:1], Podman: PodmanConfig{Runtime: rtB},
		Trust: TrustConfig{Owner: ownerPK, AutoInstall: true, AutoUpdate: true, Refresh: 500 * time.Millisecond, Check: 200 * time.Millisecond},
		P2P:   p2p.Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}}})
	deadline := time.Now().Add(60 * time.Second)
	for {
		s, err := b.orch.Status("notes")
		if err == nil && s.Phase == "running" {
			if s.Publisher != honest.DID() || s.Version != "1.0.0" {
				t.Fatalf("auto-install picked %s %s, want the honest publisher's 1.0.0", s.Publisher, s.Version)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no auto-install in 60s: %+v %v", s, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Rounds later (auto-update on), the sybil's 2.0.0 has not replaced it.
	time.Sleep(time.Second)
	if s, err := b.orch.Status("notes"); err != nil || s.Publisher != honest.DID() || s.Version != "1.0.0" {
		t.Fatalf("after more rounds: %+v %v", s, err)
	}
	// The pinned publisher's higher version is an update (auto-update on).
	upEnv, upV := signNotes(t, honest, "1.2.0", img)
	upEvs, _ := announce(t, honest, upV, upEnv, time.Now(), 0)
	if _, err := discovery.Publish(ctx, a.RelayURLs()[:1], 10*time.Second, upEvs...); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(60 * time.Second)
	for {
		s, err := b.orch.Status("notes")
		if err == nil && s.Version == "1.2.0" && s.Phase == "running" && s.Publisher == honest.DID() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no auto-update to the pinned publisher's 1.2.0 in 60s: %+v %v", s, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// A stopped app is not started again by an update.
	waitIdle(t, b)
	if end := opEnd(t, b, http.MethodPost, "/api/v1/apps/notes/stop", nil); !end.OK {
		t.Fatalf("stop on node B: %+v", end)
	}
	stopEnv, stopV := signNotes(t, honest, "1.3.0", img)
	stopEvs, _ := announce(t, honest, stopV, stopEnv, time.Now(), 0)
	if _, err := discovery.Publish(ctx, a.RelayURLs()[:1], 10*time.Second, stopEvs...); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if s, err := b.orch.Status("notes"); err != nil || s.Version != "1.2.0" || s.Intent != "stopped" {
		t.Fatalf("a stopped app after its publisher's 1.3.0: %+v %v", s, err)
	}
	b.ops.mu.Lock()
	var all []*op
	for _, o := range b.ops.ops {
		all = append(all, o)
	}
	b.ops.mu.Unlock()
	kinds := map[string]int{}
	for _, o := range all {
		st := b.ops.status(o)
		if st.App != "notes" || st.State != OpSucceeded {
			t.Fatalf("node B ran %+v", st)
		}
		kinds[st.Kind]++
	}
	if len(all) != 3 || kinds["install"] != 1 || kinds["update"] != 1 || kinds["stop"] != 1 {
		t.Fatalf("node B ran %v: want one install, one update and the owner's stop", kinds)
	}
	// The owner uninstalls it: auto-install does not bring it back.
	if end := opEnd(t, b, http.MethodDelete, "/api/v1/apps/notes", nil); !end.OK {
		t.Fatalf("uninstall on node B: %+v", end)
	}
	// Even after a restart (what the node remembers in memory is lost,
	// the declined file is read again).
	b.trust.vmu.Lock()
	clear(b.trust.tried)
	b.trust.declined, err = loadDeclined(b.trust.declinedPath)
	b.trust.vmu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	b.kickTrust()
	time.Sleep(time.Second)
	if s, err := b.orch.Status("notes"); err == nil {
		t.Fatalf("auto-install brought back what the owner uninstalled: %+v", s)
	}

	// No owner key: only the allow list counts, and the node says so.
	c := runNode(t, Config{DataDir: t.TempDir(), APIListen: "127.0.0.1:0", RelayListen: "127.0.0.1:0", NoPeering: true,
		Relays: a.RelayURLs()[:1], Podman: PodmanConfig{Off: true},
		Trust: TrustConfig{Allow: []string{honest.DID()}, Check: 200 * time.Millisecond},
		P2P:   p2p.Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}}})
	views = rowsTrust(t, c, map[string]string{honest.DID(): TrustSelected, sybil.DID(): TrustRefused})
	if !slices.Contains(views[honest.DID()].Reasons, "allowed by the owner") {
		t.Fatalf("no-owner node's honest row: %+v", views[honest.DID()])
	}
	var cst Status
	var csc TrustScore
	get(t, c.APIURL()+"/api/v1/status", &cst)
	get(t, c.APIURL()+"/api/v1/trust/score", &csc)
	if cst.Trust.Note == "" || csc.Note == "" || cst.Trust.Owner != "" || csc.Apps[0].Selected != honest.DID() {
		t.Fatalf("no-owner node: status %+v, score %+v", cst.Trust, csc)
	}
}

// TestTrustCatalogListedPublisher: a catalog the node follows lists a
// publisher of an app id (its curators endorse the DID); with no owner
// key, that publisher is selected over a stranger announcing the same id.
func TestTrustCatalogListedPublisher(t *testing.T) {
	c := newCurator(t)
	rootFile := filepath.Join(t.TempDir(), "root.json")
	if err := registry.WriteRootFile(rootFile, "demo", c.root); err != nil {
		t.Fatal(err)
	}
	n := startFollower(t, rootFile, nil)
	listedKey, listedV, listedEnv := signedRelease(t, "notes")
	strangerKey, strangerV, strangerEnv := signedRelease(t, "notes")
	cat := registry.NewCatalog("demo", 2, time.Now().Add(24*time.Hour), c.root)
	cat.Delegate(listedKey.DID(), "notes")
	if err := cat.Put(listedV); err != nil {
		t.Fatal(err)
	}
	if code := postCatalog(t, n, sign(t, cat, c.keys[0], c.keys[1])); code != http.StatusOK {
		t.Fatalf("post catalog: %d", code)
	}
	now := time.Now().Add(-time.Minute)
	evs, _ := announce(t, listedKey, listedV, listedEnv, now, 0)
	more, _ := announce(t, strangerKey, strangerV, strangerEnv, now, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := discovery.Publish(ctx, n.RelayURLs()[:1], 10*time.Second, append(evs, more...)...); err != nil {
		t.Fatal(err)
	}
	views := rowsTrust(t, n, map[string]string{listedKey.DID(): TrustSelected, strangerKey.DID(): TrustRefused})
	if !slices.Contains(views[listedKey.DID()].Reasons, "listed by a catalog the owner follows") {
		t.Fatalf("listed publisher's row: %+v", views[listedKey.DID()])
	}
}

// TestTrustConfigValidate names the bad trust setting.
func TestTrustConfigValidate(t *testing.T) {
	for name, tc := range map[string]struct {
		cfg  TrustConfig
		want string
	}{
		"owner not a key": {TrustConfig{Owner: "alice"}, "Trust.Owner"},
		"bad npub":        {TrustConfig{Owner: "npub1qqqq"}, "Trust.Owner"},
		"allow not a DID": {TrustConfig{Allow: []string{"alice"}}, "Trust.Allow"},
		"deny not a DID":  {TrustConfig{Deny: []string{"z6Mk"}}, "Trust.Deny"},
		"negative margin": {TrustConfig{Margin: -1}, "margin"},
	} {
		cfg := Config{DataDir: t.TempDir(), Trust: tc.cfg}
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error naming %s", name, err, tc.want)
		}
	}
	key, _ := discovery.GenerateKey()
	for _, owner := range []string{key.Npub(), key.PublicKey(), strings.ToUpper(key.PublicKey())} {
		got, err := ownerKey(owner)
		if err != nil || got != key.PublicKey() {
			t.Errorf("owner %q: %q %v", owner, got, err)
		}
	}
}

// TestTrustCallsGiveUpWhileCrawling: while a crawl holds the graph, the
// discovered rows still answer (from the cached decisions) and the trust
// calls give up at their deadline, saying why.
func TestTrustCallsGiveUpWhileCrawling(t *testing.T) {
	n := startNode(t, nil, nil)
	if err := n.trust.lock(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer n.trust.unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := n.trustScore(ctx); err == nil || !strings.Contains(err.Error(), "crawl is under way") {
		t.Fatalf("score during a crawl: %v", err)
	}
	if _, err := n.trustExplain(ctx, "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"); err == nil {
		t.Fatal("explain during a crawl answered")
	}
	done := make(chan struct{})
	go func() { n.discoveredRows(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the discovered rows waited for the crawl")
	}
}

// TestAutoInstallDoesNotHoldShutdown: an automatic install stuck on the
// engine ends when the node stops, as the owner's would.
func TestAutoInstallDoesNotHoldShutdown(t *testing.T) {
	rt := memruntime.New(memruntime.Config{CallTimeout: time.Minute})
	img := trustImage(t, rt)
	ownerSK := nostr.GeneratePrivateKey()
	ownerPK, _ := nostr.GetPublicKey(ownerSK)
	pub, _ := did.Generate()
	env, v := signNotes(t, pub, "1.0.0", img)
	evs, sk := announce(t, pub, v, env, time.Now().Add(-time.Minute), 0)
	pk, _ := nostr.GetPublicKey(sk)
	evs = append(evs, followList(t, ownerSK, time.Now().Add(-time.Minute), pk))
	rt.Hang()
	defer rt.Resume()
	n, stop := runStoppable(t, Config{DataDir: t.TempDir(), APIListen: "127.0.0.1:0", RelayListen: "127.0.0.1:0", NoPeering: true,
		Podman: PodmanConfig{Runtime: rt},
		Trust:  TrustConfig{Owner: ownerPK, AutoInstall: true, Refresh: 500 * time.Millisecond, Check: 200 * time.Millisecond},
		P2P:    p2p.Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := discovery.Publish(ctx, n.RelayURLs()[:1], 10*time.Second, evs...); err != nil {
		t.Fatal(err)
	}
	for {
		n.ops.mu.Lock()
		started := len(n.ops.ops) > 0
		n.ops.mu.Unlock()
		if started {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("no auto-install started in 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // into the hung engine call
	began := time.Now()
	stop()
	if took := time.Since(began); took > 10*time.Second {
		t.Fatalf("the node took %s to stop with an auto-install under way", took)
	}
}

// waitIdle waits until no operation runs on n (an update ends after the
// app runs again: it still removes the older images).
func waitIdle(t *testing.T, n *Node) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		n.ops.mu.Lock()
		var all []*op
		for _, o := range n.ops.ops {
			all = append(all, o)
		}
		n.ops.mu.Unlock()
		busy := false
		for _, o := range all {
			busy = busy || n.ops.status(o).State == OpRunning
		}
		if !busy {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("operations still running after 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
