package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startCLINode runs `archy node run` in-process on loopback ports (with
// extra flags) and waits until it has written its API address.
func startCLINode(t *testing.T, extra ...string) string {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var out, errb syncBuffer
	args := append([]string{"node", "run", "--data", dir, "--api", "127.0.0.1:0", "--relay-listen", "127.0.0.1:0",
		"--listen", "/ip4/127.0.0.1/tcp/0", "--podman-socket", "off"}, extra...)
	go func() { done <- run(ctx, args, &out, &errb) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("node run: %v\n%s", err, errb.String())
			}
		case <-time.After(20 * time.Second):
			t.Error("node run did not stop")
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(dir, "api.addr")); err == nil {
			return dir
		}
		if time.Now().After(deadline) {
			t.Fatal("node wrote no api.addr in 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPublishToRunningNode publishes the hello sample through a running
// node (--node local): the node keeps the image and the manifest in its
// block store, and discovers the release on its own embedded relay.
func TestPublishToRunningNode(t *testing.T) {
	dir := startCLINode(t)
	stdout, _, err := execArchy(t, "node", "status", "--data", dir, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Relays []string `json:"relays"`
	}
	if err := json.Unmarshal([]byte(stdout), &st); err != nil {
		t.Fatal(err)
	}
	p := newPublisher(t)
	_, stderr, err := p.run(t, "app", "publish", p.app, "--key", p.didKey, "--nostr-key", p.nostrKey,
		"--relay", st.Relays[0], "--node", "local", "--data", dir, "--json")
	if err != nil {
		t.Fatalf("publish: %v\n%s", err, stderr)
	}
	if !strings.Contains(stderr, "node keeps image web (bafkr") || !strings.Contains(stderr, ") as bafyb") || !strings.Contains(stderr, "node keeps manifest bafkr") {
		t.Fatalf("publish did not hand the image and manifest to the node:\n%s", stderr)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, _, err := execArchy(t, "app", "list", "--discovered", "--data", dir, "--json")
		if err == nil && strings.Contains(out, p.did) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the node did not discover the release: %s %v", out, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if strings.Contains(p.out.String()+stderr, p.secrets[0]) {
		t.Fatal("a secret was printed")
	}
}

// TestNodeRunStatusPeers runs `archy node run` in-process on loopback
// ports and asks it about itself with `archy node status|peers`.
func TestNodeRunStatusPeers(t *testing.T) {
	dir := startCLINode(t)
	stdout, stderr, err := execArchy(t, "node", "status", "--data", dir, "--json")
	if err != nil {
		t.Fatalf("status: %v\n%s", err, stderr)
	}
	var st struct {
		PeerID string   `json:"peer_id"`
		Relays []string `json:"relays"`
	}
	if err := json.Unmarshal([]byte(stdout), &st); err != nil || st.PeerID == "" || len(st.Relays) != 1 {
		t.Fatalf("status %q: %v", stdout, err)
	}
	if info, err := os.Stat(filepath.Join(dir, "api.token")); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("api.token: %v %v", info, err)
	}
	if stdout, _, err := execArchy(t, "node", "peers", "--data", dir, "--json"); err != nil || stdout != "[]\n" {
		t.Fatalf("peers: %q %v", stdout, err)
	}
	// Apps are off in this node (no Podman): listing says none, installing
	// says why.
	if stdout, _, err := execArchy(t, "app", "list", "--data", dir, "--json"); err != nil || stdout != "[]\n" {
		t.Fatalf("app list: %q %v", stdout, err)
	}
	if _, _, err := execArchy(t, "app", "uninstall", "hello", "--data", dir); err == nil || !strings.Contains(err.Error(), "apps are off") ||
		!strings.Contains(err.Error(), "--podman-socket") {
		t.Fatalf("uninstall with apps off: %v", err)
	}
	// A CID is asked of the node (not read as a folder).
	if _, _, err := execArchy(t, "app", "install", "bafkr4ihkr4ld3m4gqkjf4reryxsy2s5tkbxprqkow6fin2iiyvreuzzab4", "--data", dir); err == nil || !strings.Contains(err.Error(), "apps are off") {
		t.Fatalf("install by cid with apps off: %v", err)
	}
	if _, _, err := execArchy(t, "node", "status", "--data", t.TempDir()); err == nil {
		t.Fatal("status found a node in an empty data folder")
	}
}

// Every command finds the node's folder the same way: --data, else
// $ARCHY_DATA, else the default; the old names still work, with a warning.
func TestDataFolderResolution(t *testing.T) {
	dir := startCLINode(t)
	t.Setenv("ARCHY_DATA", dir)
	if out, _, err := execArchy(t, "node", "status", "--json"); err != nil || !strings.Contains(out, `"data_dir": "`+dir+`"`) {
		t.Fatalf("status with $ARCHY_DATA: %v\n%s", err, out)
	}
	if _, _, err := execArchy(t, "app", "list", "--discovered", "--json"); err != nil {
		t.Fatalf("app list --discovered with $ARCHY_DATA: %v", err)
	}
	// --data wins over the environment.
	if _, _, err := execArchy(t, "node", "status", "--data", t.TempDir()); err == nil || !strings.Contains(err.Error(), "no running node found") {
		t.Fatalf("status with --data of an empty folder: %v", err)
	}
	// The old environment variable, when the new one is not set.
	t.Setenv("ARCHY_DATA", "")
	t.Setenv("ARCHY_DATA_DIR", dir)
	if _, _, err := execArchy(t, "node", "peers"); err != nil {
		t.Fatalf("peers with $ARCHY_DATA_DIR: %v", err)
	}
	// The old flag of blob and image.
	in := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(in, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, stderr, err := execArchy(t, "blob", "add", in, "--data-dir", dir)
	if err != nil || !strings.HasPrefix(out, "bafyb4i") || !strings.Contains(stderr, "--data-dir is deprecated, use --data") {
		t.Fatalf("blob add --data-dir: %v\n%s\n%s", err, out, stderr)
	}
	// No folder can be found: the error names the flag and the variable.
	t.Setenv("ARCHY_DATA_DIR", "")
	t.Setenv("HOME", "")
	t.Setenv("XDG_DATA_HOME", "")
	if _, _, err := execArchy(t, "node", "status"); err == nil || !strings.Contains(err.Error(), "--data DIR") || !strings.Contains(err.Error(), "$ARCHY_DATA") {
		t.Fatalf("status without a folder: %v", err)
	}
}
