//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/archy-node/archy/did"
	"github.com/archy-node/archy/examples"
	"github.com/archy-node/archy/node"
	"github.com/archy-node/archy/orchestrator"
	"github.com/archy-node/archy/p2p/discovery"
	"github.com/archy-node/archy/registry"
)

// The sample apps the test runs: hello is installed; slowstart is the
// one whose image is tampered with.
const (
	helloRef  = "localhost/archy-example/hello-web:1.0.0"
	helloURL  = "http://127.0.0.1:18080/"
	helloPort = 18080
	tamperApp = "slowstart"
	tamperRef = "localhost/archy-example/slowstart-web:1.0.0"
)

// sampleRefs are the images of the sample apps the test installs, by app.
var sampleRefs = map[string]string{
	"hello":   helloRef,
	tamperApp: tamperRef,
	// B also runs vault (generated secrets) and counter (a data folder),
	// so that its purge has secrets and data to remove.
	"vault":   "localhost/archy-example/vault-web:1.0.0",
	"counter": "localhost/archy-example/counter-web:1.0.0",
}

// Metrics of the piece exchange (p2p/metrics.go).
const (
	bytesSent  = "archy_p2p_block_bytes_sent_total"
	bytesRecvd = "archy_p2p_block_bytes_received_total"
	badBlocks  = "archy_p2p_bad_blocks_total"
)

// discoveredRow is a row of GET /api/v1/apps/discovered.
type discoveredRow struct {
	discovery.Release
	Trust *node.TrustView `json:"trust"`
}

// TestEndToEnd is the story of issue 12 item 6 on one machine, with the
// real binary: A (apps off) keeps and serves what its developer
// publishes; B and C know only relay URLs, find the other nodes there,
// and run rootless Podman as two different users.
func TestEndToEnd(t *testing.T) {
	u1, u2, sock1, sock2 := requireAccounts(t)
	lockPorts(t)
	w := newWorld(t)
	pm1, pm2 := newPodman(t, sock1), newPodman(t, sock2)

	helloDir := filepath.Join(examples.AppsDir(), "hello")
	tamperDir := filepath.Join(examples.AppsDir(), tamperApp)
	helloArchive := filepath.Join(helloDir, "images", "web.oci.tar")
	fi, err := os.Stat(helloArchive)
	if err != nil {
		t.Fatalf("the hello image archive (make images): %v", err)
	}
	imageSize := float64(fi.Size())

	// The sample apps' ports and names are free (the lock is held, so
	// nothing of ours runs; anything else would fight over them), and
	// neither Podman holds the images, so that they must come from the
	// swarm.
	for _, port := range []int{helloPort, 18083, 18084, 18085} {
		if !portFree(port) {
			t.Fatalf("port %d is in use: a sample app runs outside the lock %s", port, portsLock)
		}
	}
	for _, pm := range []*podman{pm1, pm2} {
		for app, ref := range sampleRefs {
			if c := pm.containersNamed(t, "archy-"+app+"-"); len(c) > 0 {
				t.Fatalf("podman %s holds containers %v of a sample app outside the lock", pm.sock, c)
			}
			pm.removeImage(t, ref)
		}
	}

	// The owner of B and C endorses the example publisher on A's relay
	// (a NIP-32 label from the owner's Nostr key); B and C score
	// publishers from that key.
	a := w.startNode("a", nil, "--podman-socket", "off")
	aRelay := a.status(t).Relays[0]
	ownerKey := filepath.Join(w.work, "owner.nostr")
	w.must(nil, "nostr", "new", "--out", ownerKey)
	owner, err := discovery.LoadKey(ownerKey)
	if err != nil {
		t.Fatal(err)
	}
	pubKey, err := did.LoadKey(examples.KeyFile())
	if err != nil {
		t.Fatal(err)
	}
	w.must(nil, "trust", "attest", pubKey.DID(), "--key", ownerKey, "--relay", aRelay)

	// B knows A's relay only; C knows A's and B's relays. No bootstrap list.
	b := w.startNode("b", u1, "--relay", aRelay, "--podman-socket", sock1, "--owner", owner.Npub())
	bRelay := b.status(t).Relays[0]
	c := w.startNode("c", u2, "--relay", aRelay+","+bRelay, "--podman-socket", sock2, "--owner", owner.Npub())
	nodes := []*proc{a, b, c}
	ids := map[*proc]string{}
	for _, p := range nodes {
		ids[p] = p.status(t).PeerID
	}
	within(t, 60*time.Second, "the three nodes find each other through the relays", func() (bool, string) {
		for _, p := range nodes {
			var peers []node.Peer
			if err := p.get("/api/v1/peers", &peers); err != nil {
				return false, err.Error()
			}
			for _, q := range nodes {
				if q != p && !slices.ContainsFunc(peers, func(x node.Peer) bool { return x.ID == ids[q] }) {
					return false, fmt.Sprintf("%s is not connected to %s (%d peers)", p.name, q.name, len(peers))
				}
			}
		}
		return true, ""
	})

	// An attacker replays the real hello release under their own Nostr
	// key with a binding their own DID signed: the event's signature
	// holds, the binding does not name the manifest's publisher.
	signed := signHello(t, helloDir, pubKey)
	forger := forge(t, aRelay, signed)

	// The developer publishes hello on A: image and manifest to A's
	// block store, the announcement to A's relay.
	devKey := filepath.Join(w.work, "dev.nostr")
	w.must(nil, "nostr", "new", "--out", devKey)
	start := time.Now()
	out := w.must(nil, "app", "publish", helloDir, "--key", examples.KeyFile(), "--nostr-key", devKey,
		"--relay", aRelay, "--node", "local", "--data", a.data, "--out", filepath.Join(w.work, "hello.signed.json"), "--json")
	helloCID := publishedCID(t, out)

	// B discovers it (verified: event, binding, envelope, CID), scores
	// the publisher from the owner's endorsement, installs it from the
	// swarm and its UI answers.
	published := time.Since(start)
	waitDiscovered(t, b, helloCID)
	discovered := time.Since(start)
	w.must(u1, "app", "install", helloCID, "--data", b.data)
	installed := time.Since(start)
	within(t, 10*time.Second, "B's hello answers", func() (bool, string) {
		body, err := answers(helloURL)
		if err != nil {
			return false, err.Error()
		}
		return strings.Contains(body, "Hello from archy"), "hello answered " + body
	})
	ms := time.Since(start).Milliseconds()
	fmt.Printf("figure publish-to-running-ms %d\n", ms)
	t.Logf("published after %v, discovered and scored by B after %v, installed after %v, answering after %v", published, discovered, installed, time.Since(start))
	if ms > 10_000 {
		t.Errorf("publish to running took %d ms, over the 10 s goal", ms)
	}
	if got := b.metric(bytesRecvd); got < imageSize {
		t.Errorf("B received %.0f verified block bytes, less than the image's %.0f: did it come from the swarm?", got, imageSize)
	}
	if !pm1.hasImage(t, helloRef) {
		t.Errorf("B's Podman (%s) does not hold %s", u1.name, helloRef)
	}

	// The forged announcement reached B and was refused for its binding.
	checkRefused(t, b, forger)

	// B stops its app (keeping the image, pinned, to seed) so C's can
	// take the same host port under the other user.
	if err := b.post("/api/v1/apps/hello/stop"); err != nil {
		t.Fatal(err)
	}
	within(t, 30*time.Second, "B's hello stops answering", func() (bool, string) {
		return portFree(helloPort), "port still open"
	})

	// C discovers, scores and installs it: the pieces come mostly from B,
	// whom A points C at (A super-seeds what it published).
	waitDiscovered(t, c, helloCID)
	aBefore := a.metric(bytesSent)
	w.must(u2, "app", "install", helloCID, "--data", c.data)
	if body, err := answers(helloURL); err != nil || !strings.Contains(body, "Hello from archy") {
		t.Fatalf("C's hello answers %q, %v", body, err)
	}
	if !pm2.hasImage(t, helloRef) {
		t.Errorf("C's Podman (%s) does not hold %s", u2.name, helloRef)
	}
	aSent, bSent, cRecvd := a.metric(bytesSent), b.metric(bytesSent), c.metric(bytesRecvd)
	copies := aSent / imageSize
	fmt.Printf("figure e2e-origin-copies %.2f\n", copies)
	t.Logf("image %.0f B; A sent %.0f (%.0f for C), B sent %.0f, C received %.0f", imageSize, aSent, aSent-aBefore, bSent, cRecvd)
	if copies > 1.1 {
		t.Errorf("the origin sent %.2f copies of the image across B's and C's installs, over 1.1", copies)
	}
	if bSent < imageSize/2 {
		t.Errorf("B sent C %.0f bytes, not most of the %.0f-byte image", bSent, imageSize)
	}

	// A tampered image: a node D serves the slowstart release with every
	// piece altered on its disk; B refuses the pieces and nothing reaches
	// Podman.
	d := w.startNode("d", nil, "--podman-socket", "off", "--relay", aRelay)
	out = w.must(nil, "app", "publish", tamperDir, "--key", examples.KeyFile(), "--nostr-key", devKey,
		"--relay", aRelay, "--node", "local", "--data", d.data, "--out", filepath.Join(w.work, "tamper.signed.json"), "--json")
	tamperCID := publishedCID(t, out)
	tamperPacks(t, d.data, filepath.Join(tamperDir, "images", "web.oci.tar"))
	waitDiscovered(t, b, tamperCID)
	if _, err := w.run(u1, "app", "install", tamperCID, "--data", b.data); err == nil {
		t.Fatalf("B installed %s from tampered pieces", tamperApp)
	} else {
		t.Logf("the install of the tampered image failed: %v", err)
	}
	if n := b.metric(badBlocks); n < 1 {
		t.Errorf("B counted %v bad blocks: the tampered pieces were not refused as bad", n)
	}
	if pm1.hasImage(t, tamperRef) {
		t.Errorf("the tampered image %s reached B's Podman", tamperRef)
	}
	if got := pm1.containersNamed(t, "archy-"+tamperApp+"-"); len(got) > 0 {
		t.Errorf("containers %v of the tampered app exist in B's Podman", got)
	}

	// B also installs vault and counter, published on A like hello.
	for _, app := range []string{"vault", "counter"} {
		out := w.must(nil, "app", "publish", filepath.Join(examples.AppsDir(), app), "--key", examples.KeyFile(), "--nostr-key", devKey,
			"--relay", aRelay, "--node", "local", "--data", a.data, "--out", filepath.Join(w.work, app+".signed.json"), "--json")
		cid := publishedCID(t, out)
		waitDiscovered(t, b, cid)
		w.must(u1, "app", "install", cid, "--data", b.data)
	}

	// B uninstalls its apps with purge: no container, network, volume or
	// image is left in its Podman, nor state, data or secrets in its
	// data folder. First, what the purge must remove is there.
	apps := node.AppsDir(b.data)
	if got := appFiles(apps, "hello"); len(got) == 0 {
		t.Fatalf("B keeps nothing named hello under %s while hello is installed: the purge check would prove nothing", apps)
	}
	for what, dir := range map[string]string{
		"vault's secrets":   filepath.Join(apps, "secrets", "vault"),
		"counter's data":    orchestrator.AppDataDir(apps, "counter"),
		"the images it got": filepath.Join(b.data, "images"),
	} {
		if ents, err := os.ReadDir(dir); err != nil || len(ents) == 0 {
			t.Fatalf("B has no %s in %s (%v) before the purge: the purge check would prove nothing", what, dir, err)
		}
	}
	for _, app := range []string{"hello", "vault", "counter"} {
		w.must(u1, "app", "uninstall", app, "--purge", "--data", b.data)
	}
	for _, app := range []string{"hello", "vault", "counter"} {
		checkGone(t, b, pm1, app, sampleRefs[app])
	}

	// C's app still runs (another user's Podman), until C purges it too.
	if _, err := answers(helloURL); err != nil {
		t.Errorf("C's hello stopped answering when B uninstalled its own: %v", err)
	}
	w.must(u2, "app", "uninstall", "hello", "--purge", "--data", c.data)
	checkGone(t, c, pm2, "hello", helloRef)
}

// signHello signs the hello app's manifest with the publisher's key.
func signHello(t *testing.T, dir string, key *did.Key) *registry.Verified {
	t.Helper()
	l, err := registry.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	env, _, err := registry.Sign(l.Manifest, key)
	if err != nil {
		t.Fatal(err)
	}
	b, err := env.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	v, err := registry.VerifyEnvelope(b)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// forge announces v on relay under a new Nostr key, with a binding of
// that key signed by a DID that is not v's publisher, and returns the key.
func forge(t *testing.T, relay string, v *registry.Verified) string {
	t.Helper()
	sk := nostr.GeneratePrivateKey()
	pk, _ := nostr.GetPublicKey(sk)
	attacker, err := did.Generate()
	if err != nil {
		t.Fatal(err)
	}
	bind, err := discovery.Binding(attacker, pk)
	if err != nil {
		t.Fatal(err)
	}
	env, err := v.Envelope.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	evs, err := (&discovery.Announcement{Manifest: v, Envelope: env, Binding: bind, CreatedAt: time.Now()}).Events(sk)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		if ok, _ := ev.CheckSignature(); !ok {
			t.Fatal("the forged event's own signature does not hold")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := discovery.Publish(ctx, []string{relay}, 5*time.Second, evs...); err != nil {
		t.Fatalf("the relay refused the forged events: %v", err)
	}
	return pk
}

// checkRefused: B received the forged events and dropped them for their
// binding; no discovered row carries the forger's key.
func checkRefused(t *testing.T, b *proc, forger string) {
	t.Helper()
	within(t, 10*time.Second, "B drops the forged announcement", func() (bool, string) {
		n := 0
		for _, l := range strings.Split(b.log(), "\n") {
			if strings.Contains(l, "dropped event") && strings.Contains(l, discovery.ErrBinding.Error()) {
				n++
			}
		}
		return n >= 2, fmt.Sprintf("B's log shows %d events dropped for their binding, want the 2 forged ones", n)
	})
	var rows []discoveredRow
	if err := b.get("/api/v1/apps/discovered", &rows); err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if r.NostrPubKey == forger {
			t.Errorf("B lists the forged announcement: %+v", r.Release)
		}
	}
}

// waitDiscovered waits until p lists release cid, verified, with its
// publisher selected by the trust decision.
func waitDiscovered(t *testing.T, p *proc, cid string) {
	t.Helper()
	within(t, 30*time.Second, p.name+" discovers and scores "+cid, func() (bool, string) {
		var rows []discoveredRow
		if err := p.get("/api/v1/apps/discovered", &rows); err != nil {
			return false, err.Error()
		}
		for _, r := range rows {
			if r.CID.String() != cid {
				continue
			}
			if r.Trust == nil || r.Trust.Decision != node.TrustSelected || r.Trust.Score <= 0 {
				return false, fmt.Sprintf("discovered, trust %+v", r.Trust)
			}
			return true, ""
		}
		return false, fmt.Sprintf("%d rows, none for %s", len(rows), cid)
	})
}

// tamperPacks alters one byte in every 64 KiB of the pack that holds
// archive's bytes in the block store under data: the node serves its
// synced packs without reading them back, as it serves what a disk or an
// attacker changed.
func tamperPacks(t *testing.T, data, archive string) {
	t.Helper()
	want, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	err = filepath.WalkDir(data, func(path string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() || !strings.HasSuffix(path, ".pack") {
			return err
		}
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		head := make([]byte, len(want))
		if n, _ := f.ReadAt(head, 0); n < len(want) || string(head) != string(want) {
			return nil
		}
		for off := int64(1000); off < int64(len(want)); off += 64 << 10 {
			if _, err := f.WriteAt([]byte{want[off] ^ 0xff}, off); err != nil {
				return err
			}
		}
		found++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if found == 0 {
		t.Fatalf("no pack under %s holds %s", data, archive)
	}
}

// checkGone waits (bounded: images are pruned in the background) until
// nothing of app is left in pm nor in p's data folder.
func checkGone(t *testing.T, p *proc, pm *podman, app, ref string) {
	t.Helper()
	within(t, 60*time.Second, p.name+" leaves nothing of "+app+" behind", func() (bool, string) {
		var apps []orchestrator.AppStatus
		if err := p.get("/api/v1/apps", &apps); err != nil {
			return false, err.Error()
		}
		if slices.ContainsFunc(apps, func(a orchestrator.AppStatus) bool { return a.ID == app }) {
			return false, "the node still lists " + app
		}
		for _, kind := range []string{"containers", "networks", "volumes"} {
			if got := pm.labelled(t, kind, app); len(got) > 0 {
				return false, fmt.Sprintf("Podman holds %s %v", kind, got)
			}
		}
		if got := pm.containersNamed(t, "archy-"+app+"-"); len(got) > 0 {
			return false, fmt.Sprintf("Podman holds containers %v", got)
		}
		if pm.hasImage(t, ref) {
			return false, "Podman holds the image " + ref
		}
		left := appFiles(node.AppsDir(p.data), app)
		ents, _ := os.ReadDir(filepath.Join(p.data, "images"))
		for _, e := range ents {
			left = append(left, filepath.Join(p.data, "images", e.Name()))
		}
		if len(left) > 0 {
			return false, fmt.Sprintf("left in the data folder: %v", left)
		}
		return true, ""
	})
}

// appFiles lists what under dir (the orchestrator's state, secrets and
// data folders) is named for app.
func appFiles(dir, app string) []string {
	var out []string
	filepath.WalkDir(dir, func(path string, de fs.DirEntry, err error) error {
		if err == nil && path != dir && (de.Name() == app || strings.HasPrefix(de.Name(), app+".")) {
			out = append(out, path)
		}
		return nil
	})
	return out
}

// publishedCID is the manifest CID `archy app publish --json` printed.
func publishedCID(t *testing.T, out string) string {
	t.Helper()
	var pub struct{ CID string }
	if err := json.Unmarshal([]byte(out), &pub); err != nil || pub.CID == "" {
		t.Fatalf("archy app publish --json printed %q: %v", out, err)
	}
	return pub.CID
}
