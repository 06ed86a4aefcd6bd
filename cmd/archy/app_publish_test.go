package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/archy-node/archy/examples"
	"github.com/archy-node/archy/internal/nostrtools"
	"github.com/archy-node/archy/internal/ociimage"
	"github.com/archy-node/archy/p2p/discovery"
	"github.com/archy-node/archy/registry"
	"github.com/archy-node/archy/relay"
	"github.com/archy-node/archy/relay/relaytest"
)

// deadRelay is a loopback URL where nothing listens.
func deadRelay(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "ws://" + addr
}

// publisher is a developer set up through the CLI: a DID key, a Nostr key,
// and a copy of the hello sample app published under that DID.
type publisher struct {
	didKey, nostrKey string
	did, nostrPub    string
	app              string
	// secrets are the texts that must never appear in any output.
	secrets []string
	out     *bytes.Buffer // everything the commands printed
}

// run runs archy and keeps everything it printed for the secret check.
func (p *publisher) run(t testing.TB, args ...string) (string, string, error) {
	t.Helper()
	stdout, stderr, err := execArchy(t, args...)
	p.out.WriteString(stdout + stderr)
	return stdout, stderr, err
}

func newPublisher(t testing.TB) *publisher {
	t.Helper()
	tmp := t.TempDir()
	p := &publisher{didKey: filepath.Join(tmp, "did.key"), nostrKey: filepath.Join(tmp, "nostr.key"), out: &bytes.Buffer{}}

	out, stderr, err := p.run(t, "nostr", "new", "--out", p.nostrKey, "--json")
	var nk nostrKeyInfo
	if err != nil || json.Unmarshal([]byte(out), &nk) != nil {
		t.Fatalf("nostr new: %v %s %s", err, out, stderr)
	}
	p.nostrPub = nk.PubKey
	out, stderr, err = p.run(t, "did", "new", "--out", p.didKey)
	if err != nil {
		t.Fatalf("did new: %v %s", err, stderr)
	}
	p.did = strings.TrimSpace(out)

	nsec, _ := os.ReadFile(p.nostrKey)
	k, err := discovery.LoadKey(p.nostrKey)
	if err != nil {
		t.Fatal(err)
	}
	var kf struct{ Seed []byte }
	data, _ := os.ReadFile(p.didKey)
	if err := json.Unmarshal(data, &kf); err != nil || len(kf.Seed) != 32 {
		t.Fatalf("did key file: %v", err)
	}
	seedB64, _ := json.Marshal(kf.Seed)
	p.secrets = []string{strings.TrimSpace(string(nsec)), k.SecretHex(), hex.EncodeToString(kf.Seed), strings.Trim(string(seedB64), `"`)}

	p.app = helloApp(t, filepath.Join(tmp, "hello"), p.did)
	return p
}

// helloApp copies the hello sample app's manifest into dir with publisher
// set to did, and gives it its image archive: the one `make images` built,
// or else a small image built here (the archive's content does not matter
// to publishing; its cid and digest go into the manifest either way).
func helloApp(t testing.TB, dir, did string) string {
	t.Helper()
	src := filepath.Join(examples.AppsDir(), "hello")
	data, err := os.ReadFile(filepath.Join(src, "manifest.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^publisher: .*$`)
	if !re.Match(data) {
		t.Fatal("hello manifest names no publisher")
	}
	data = re.ReplaceAll(data, []byte("publisher: "+did))
	if err := os.MkdirAll(filepath.Join(dir, "images"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "manifest.yaml"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(dir, "images", "web.oci.tar")
	if img, err := os.ReadFile(filepath.Join(src, "images", "web.oci.tar")); err == nil {
		if err := os.WriteFile(archive, img, 0o644); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	rootfs := t.TempDir()
	if err := os.MkdirAll(filepath.Join(rootfs, "app"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "app", "start.sh"), []byte("#!/bin/sh\nexec httpd -f -p 8080\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := ociimage.Build(context.Background(), rootfs, archive, "localhost/archy-example/hello-web:1.0.0"); err != nil {
		t.Fatal(err)
	}
	return dir
}

// checkNoSecrets fails if any secret appears in what was printed or logged.
func (p *publisher) checkNoSecrets(t testing.TB, logs string) {
	t.Helper()
	if len(p.secrets) != 4 {
		t.Fatalf("%d secrets to look for, want 4", len(p.secrets))
	}
	for _, s := range leaked(p.out.String()+logs, p.secrets) {
		t.Errorf("a secret (%d chars, starting %.4s) was printed or logged", len(s), s)
	}
}

// leaked returns the secrets found in text (an empty secret counts as
// found, so the check cannot pass vacuously).
func leaked(text string, secrets []string) []string {
	var out []string
	for _, s := range secrets {
		if s == "" || strings.Contains(text, s) {
			out = append(out, s)
		}
	}
	return out
}

// TestLeakedFindsSecrets checks the secret check itself.
func TestLeakedFindsSecrets(t *testing.T) {
	p := newPublisher(t)
	if got := leaked(p.out.String(), p.secrets); len(got) != 0 {
		t.Fatalf("nostr new and did new printed %d secrets", len(got))
	}
	for i, s := range p.secrets {
		if got := leaked("log line: key="+s+"\n", p.secrets); len(got) != 1 || got[0] != s {
			t.Errorf("secret %d printed but not found", i)
		}
	}
	if got := leaked("", []string{""}); len(got) != 1 {
		t.Error("an empty secret passes the check")
	}
}

// syncBuffer is a log sink the discoverer writes to from its goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startDiscoverer runs a node's discovery on relays with its store in
// dataDir, as `archy node run` does, logging into logs.
func startDiscoverer(t testing.TB, dataDir string, relays []string, logs io.Writer) (*discovery.Store, <-chan struct{}, *discovery.Discoverer) {
	t.Helper()
	st, err := discovery.OpenStore(discovery.StorePath(dataDir))
	if err != nil {
		t.Fatal(err)
	}
	changed := make(chan struct{}, 1)
	d, err := discovery.New(discovery.Config{Relays: relays, CursorPath: discovery.CursorPath(dataDir), MinBackoff: 50 * time.Millisecond,
		OnRelease: func(*discovery.Release) {
			select {
			case changed <- struct{}{}:
			default:
			}
		}}, st, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); d.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return st, changed, d
}

// waitStore waits until the store's rows, as "id version latest", are want.
func waitStore(t testing.TB, st *discovery.Store, changed <-chan struct{}, want string) {
	t.Helper()
	deadline := time.After(15 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond) // withdrawals call no hook
	defer tick.Stop()
	got := ""
	for {
		var rows []string
		for _, r := range st.List() {
			rows = append(rows, fmt.Sprintf("%s %s %v", r.AppID, r.Version, r.Latest))
		}
		if got = strings.Join(rows, "; "); got == want {
			return
		}
		select {
		case <-changed:
		case <-tick.C:
		case <-deadline:
			t.Fatalf("store holds %q, want %q", got, want)
		}
	}
}

// waitListed waits until `archy app list --discovered --json` on the
// node of data lists want ("id version latest; ...") and returns the rows.
func waitListed(t testing.TB, p *publisher, data, want string) []listedRelease {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	got := ""
	for {
		lout, _, err := p.run(t, "app", "list", "--discovered", "--data", data, "--json")
		var rows []listedRelease
		if err != nil || json.Unmarshal([]byte(lout), &rows) != nil {
			t.Fatalf("app list: %v\n%s", err, lout)
		}
		var ids []string
		for _, r := range rows {
			ids = append(ids, fmt.Sprintf("%s %s %v", r.ID, r.Version, r.Latest))
		}
		if got = strings.Join(ids, "; "); got == want {
			return rows
		}
		if time.Now().After(deadline) {
			t.Fatalf("the node lists %q, want %q", got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestPublishDiscoverWithdraw is the developer's path end to end through
// the command line: nostr new, did new, publish the hello sample app to the
// embedded relay (and to a relay that is down), a running node discovers
// and verifies it, app list asks the node and shows it, withdraw removes it everywhere. No
// secret is ever printed or logged.
func TestPublishDiscoverWithdraw(t *testing.T) {
	url := relaytest.Start(t, relay.Config{})
	dead := deadRelay(t)
	p := newPublisher(t)
	data := startCLINode(t, "--no-relay", "--relay", url, "--no-peering")
	logs := &syncBuffer{}

	out, stderr, err := p.run(t, "app", "publish", p.app, "--key", p.didKey, "--nostr-key", p.nostrKey,
		"--relay", url, "--relay", dead, "--timeout", "5s")
	if err != nil {
		t.Fatalf("publish: %v\n%s\n%s", err, out, stderr)
	}
	if !strings.Contains(out, "relay "+url+": ok\n") || !strings.Contains(stderr, "relay "+dead+": failed: ") {
		t.Fatalf("per-relay results:\nstdout: %s\nstderr: %s", out, stderr)
	}
	cid := regexp.MustCompile(`(?m)^cid: (\S+)$`).FindStringSubmatch(out)
	if cid == nil {
		t.Fatalf("publish printed no cid:\n%s", out)
	}
	// The envelope sits next to the manifest, and verifies, as after app sign.
	signed := filepath.Join(p.app, "manifest.signed.json")
	vout, _, err := p.run(t, "app", "verify", signed)
	if err != nil || !strings.Contains(vout, "cid: "+cid[1]) || !strings.Contains(vout, "signer: "+p.did) {
		t.Fatalf("verify the published envelope: %v\n%s", err, vout)
	}

	// The node discovers it; app list asks the node.
	rows := waitListed(t, p, data, "hello 1.0.0 true")
	if len(rows) != 1 || rows[0].ID != "hello" || !rows[0].Latest || rows[0].CID != cid[1] || rows[0].NostrPubKey != p.nostrPub ||
		rows[0].Publisher != p.did || !rows[0].Verified || rows[0].Channel != "stable" || time.Since(rows[0].CreatedAt) > time.Minute {
		t.Fatalf("app list --json: %+v", rows)
	}
	lout, _, err := p.run(t, "app", "list", "--discovered", "--data", data)
	if err != nil || !strings.Contains(lout, "APP") || !regexp.MustCompile(`(?m)^hello +1\.0\.0 +stable +latest +`+p.did+` +`+cid[1]).MatchString(lout) {
		t.Fatalf("app list:\n%s", lout)
	}

	out, stderr, err = p.run(t, "app", "withdraw", "hello@1.0.0", "--nostr-key", p.nostrKey, "--relay", url, "--reason", "test")
	if err != nil || !strings.Contains(out, "relay "+url+": ok") {
		t.Fatalf("withdraw: %v\n%s\n%s", err, out, stderr)
	}
	waitListed(t, p, data, "")
	// A node that starts now finds nothing: the relay dropped the release,
	// and the latest pointer it still holds is withdrawn with the release.
	// Once it has the stored events, a probe release published live comes
	// after them, so seeing the probe means the old events were handled.
	late, lateChanged, lateDisc := startDiscoverer(t, t.TempDir(), []string{url}, logs)
	deadline := time.Now().Add(10 * time.Second)
	for lateDisc.Stats().Received < 2 { // the deletion and the stale pointer
		if time.Now().After(deadline) {
			t.Fatalf("a new node received %+v", lateDisc.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	probe := helloApp(t, filepath.Join(t.TempDir(), "probe"), p.did)
	manifest := filepath.Join(probe, "manifest.yaml")
	authored, _ := os.ReadFile(manifest)
	if err := os.WriteFile(manifest, bytes.Replace(authored, []byte("\nid: hello\n"), []byte("\nid: hello-probe\n"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, stderr, err := p.run(t, "app", "publish", probe, "--key", p.didKey, "--nostr-key", p.nostrKey, "--relay", url); err != nil {
		t.Fatalf("publish the probe: %v %s", err, stderr)
	}
	waitStore(t, late, lateChanged, "hello-probe 1.0.0 true")

	p.checkNoSecrets(t, logs.String())
}

func TestPublishErrors(t *testing.T) {
	url := relaytest.Start(t, relay.Config{})
	p := newPublisher(t)
	loose := filepath.Join(t.TempDir(), "loose.key")
	nk, _ := os.ReadFile(p.nostrKey)
	if err := os.WriteFile(loose, nk, 0o644); err != nil {
		t.Fatal(err)
	}
	beta := filepath.Join(t.TempDir(), "beta")
	helloApp(t, beta, p.did)
	f, _ := os.OpenFile(filepath.Join(beta, "manifest.yaml"), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("channel: beta\n")
	f.Close()

	other := helloApp(t, filepath.Join(t.TempDir(), "other"), "did:key:z6Mko2znK3x97iJ9DxVZnmrAdEdk2jXddm5d6xMmBeYZGsBe")

	pub := []string{"app", "publish", p.app, "--key", p.didKey, "--nostr-key", p.nostrKey}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no relay took it", append(pub, "--relay", deadRelay(t), "--timeout", "2s"), "no relay took the announcement"},
		{"node unreachable", append(pub, "--relay", url, "--node", "http://127.0.0.1:1", "--node-token", p.nostrKey), "hand image"},
		{"no relay", pub, "--relay is required"},
		{"not a relay URL", append(pub, "--relay", "http://example.org"), `--relay "http://example.org": not a ws:// or wss:// URL`},
		{"no nostr key", []string{"app", "publish", p.app, "--key", p.didKey, "--relay", url}, "--nostr-key is required"},
		{"no DID key", []string{"app", "publish", p.app, "--nostr-key", p.nostrKey, "--relay", url}, "--key is required"},
		{"nostr key readable by others", []string{"app", "publish", p.app, "--key", p.didKey, "--nostr-key", loose, "--relay", url}, "chmod 600"},
		{"another publisher's DID", []string{"app", "publish", other, "--key", p.didKey, "--nostr-key", p.nostrKey, "--relay", url}, "sign with the publisher's key"},
		{"channel differs from the manifest's", []string{"app", "publish", beta, "--key", p.didKey, "--nostr-key", p.nostrKey, "--relay", url, "--channel", "edge"}, "names channel beta"},
		{"bad channel", append(pub, "--relay", url, "--channel", "Not A Channel"), "is not a channel name"},
		{"withdraw without version", []string{"app", "withdraw", "hello", "--nostr-key", p.nostrKey, "--relay", url}, "want ID@VERSION"},
		{"withdraw, no relay took it", []string{"app", "withdraw", "hello@1.0.0", "--nostr-key", p.nostrKey, "--relay", deadRelay(t), "--timeout", "2s"}, "no relay took the deletion"},
		{"list installed without a running node", []string{"app", "list", "--data", t.TempDir()}, "no running node found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, stderr, err := p.run(t, tt.args...)
			if err == nil {
				t.Fatalf("exit 0:\n%s", out)
			}
			if !strings.Contains(stderr, tt.want) {
				t.Fatalf("stderr lacks %q:\n%s", tt.want, stderr)
			}
		})
	}
	p.checkNoSecrets(t, "")
}

// TestPublishChannel publishes to a channel the manifest leaves open; the
// channel is signed, and the events and the envelope agree.
func TestPublishChannel(t *testing.T) {
	url := relaytest.Start(t, relay.Config{})
	p := newPublisher(t)
	out, stderr, err := p.run(t, "app", "publish", p.app, "--key", p.didKey, "--nostr-key", p.nostrKey, "--relay", url, "--channel", "beta", "--json")
	if err != nil {
		t.Fatalf("publish: %v %s", err, stderr)
	}
	var res publishResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	if res.Channel != "beta" || !res.Inline || len(res.Events) != 2 || len(res.Relays) != 1 || res.Relays[0].Err != "" || res.NostrPubKey != p.nostrPub {
		t.Fatalf("publish --json: %+v", res)
	}
	env, _ := os.ReadFile(res.Envelope)
	v, err := registry.VerifyEnvelope(bytes.TrimSpace(env))
	if err != nil || v.Manifest.Channel != "beta" || v.CID.String() != res.CID {
		t.Fatalf("envelope: %v %+v", err, v)
	}
	st, changed, _ := startDiscoverer(t, t.TempDir(), []string{url}, io.Discard)
	waitStore(t, st, changed, "hello 1.0.0 true")
	if r := st.List()[0]; r.Channel != "beta" {
		t.Fatalf("discovered channel %q", r.Channel)
	}
	p.checkNoSecrets(t, "")
}

func TestNostrKeyCommands(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "nostr.key")
	out, _, err := execArchy(t, "nostr", "new", "--out", key)
	m := regexp.MustCompile(`^pubkey: ([0-9a-f]{64})\nnpub: (npub1[02-9ac-hj-np-z]{58})\n$`).FindStringSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("nostr new: %v\n%q", err, out)
	}
	st, err := os.Stat(key)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", err, st.Mode())
	}
	k, err := discovery.LoadKey(key)
	if err != nil || k.PublicKey() != m[1] || k.Npub() != m[2] {
		t.Fatalf("the printed key is not the file's: %v", err)
	}
	if strings.Contains(out, k.SecretHex()) {
		t.Fatal("nostr new printed the secret")
	}
	show, _, err := execArchy(t, "nostr", "show", key)
	if err != nil || show != out {
		t.Fatalf("nostr show = %q, %v; want %q", show, err, out)
	}
	before, _ := os.ReadFile(key)
	if _, stderr, err := execArchy(t, "nostr", "new", "--out", key); err == nil || !strings.Contains(stderr, "refusing to overwrite") {
		t.Fatalf("nostr new over a key: %v %s", err, stderr)
	}
	if after, _ := os.ReadFile(key); !bytes.Equal(before, after) {
		t.Fatal("nostr new changed an existing key")
	}
	if _, stderr, err := execArchy(t, "nostr", "new"); err == nil || !strings.Contains(stderr, "--out is required") {
		t.Fatalf("nostr new without --out: %v %s", err, stderr)
	}
	os.Chmod(key, 0o640)
	if _, stderr, err := execArchy(t, "nostr", "show", key); err == nil || !strings.Contains(stderr, "chmod 600") {
		t.Fatalf("nostr show of a 0640 key: %v %s", err, stderr)
	}
	for _, sub := range [][]string{{"nostr", "new"}, {"nostr", "show"}, {"app", "publish"}, {"app", "withdraw"}, {"app", "list"}} {
		out, _, err := execArchy(t, append(sub, "--help")...)
		if err != nil || !strings.Contains(out, "archy "+strings.Join(sub, " ")) {
			t.Errorf("%v --help: %v\n%s", sub, err, out)
		}
	}
}

// TestNostrToolsReadsPublishedRelease has nostr-tools (an independent
// Nostr implementation) read and verify the events `archy app publish`
// wrote, as CI must.
func TestNostrToolsReadsPublishedRelease(t *testing.T) {
	npm := nostrtools.NPMDir(t)
	url := relaytest.Start(t, relay.Config{})
	p := newPublisher(t)
	out, stderr, err := p.run(t, "app", "publish", p.app, "--key", p.didKey, "--nostr-key", p.nostrKey, "--relay", url, "--json")
	if err != nil {
		t.Fatalf("publish: %v %s", err, stderr)
	}
	var res publishResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.Events) != 2 {
		t.Fatalf("publish --json: %v %s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got, err := nostrtools.Read(ctx, npm, url)
	if err != nil {
		t.Fatal(err)
	}
	if !got.EOSE || len(got.Events) != 2 {
		t.Fatalf("nostr-tools read %d events (eose %v), want 2", len(got.Events), got.EOSE)
	}
	wantD := map[string]string{res.Events[0]: discovery.ReleaseD("hello", "1.0.0"), res.Events[1]: discovery.LatestD("hello")}
	for _, e := range got.Events {
		if !e.Valid || e.TamperedValid || e.Kind != discovery.KindAppData || e.D != wantD[e.ID] || e.PubKey != p.nostrPub {
			t.Fatalf("nostr-tools verdict: %+v", e)
		}
		if e.Tags["cid"] != res.CID || e.Tags["did"] != p.did || e.Tags["i"] != "hello" || e.Tags["t"] != discovery.Topic {
			t.Fatalf("nostr-tools read tags %v", e.Tags)
		}
	}
	p.checkNoSecrets(t, "")
}
