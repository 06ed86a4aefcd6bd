package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestNodeRunStatusPeers runs `archy node run` in-process on loopback
// ports and asks it about itself with `archy node status|peers`.
func TestNodeRunStatusPeers(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var out, errb bytes.Buffer
	go func() {
		done <- run(ctx, []string{"node", "run", "--data", dir, "--api", "127.0.0.1:0", "--relay-listen", "127.0.0.1:0",
			"--listen", "/ip4/127.0.0.1/tcp/0"}, &out, &errb)
	}()
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
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("node wrote no api.addr in 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
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
	if _, _, err := execArchy(t, "node", "status", "--data", t.TempDir()); err == nil {
		t.Fatal("status found a node in an empty data folder")
	}
}
