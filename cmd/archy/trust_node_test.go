package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/archy-node/archy/node"
	"github.com/archy-node/archy/p2p/discovery"
)

// runCLINodeIn runs `archy node run` in-process on dir with extra flags
// and waits for its API address.
func runCLINodeIn(t *testing.T, dir string, extra ...string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var out, errb bytes.Buffer
	args := append([]string{"node", "run", "--data", dir, "--api", "127.0.0.1:0", "--relay-listen", "127.0.0.1:0",
		"--listen", "/ip4/127.0.0.1/tcp/0", "--podman-socket", "off", "--no-peering"}, extra...)
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
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("node wrote no api.addr in 30s\n%s", errb.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestTrustCommandsAskTheNode: the owner's npub and the allow list come
// from the config file (keys are the flags' names); node status shows
// the owner; trust score and explain answer from the running node (its
// policy and pins); a node with no owner key says what it trusts.
func TestTrustCommandsAskTheNode(t *testing.T) {
	key, err := discovery.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	allowed := "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.yaml"), []byte("owner: "+key.Npub()+"\ntrust-allow: ["+allowed+"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	runCLINodeIn(t, dir)
	out, _, err := execArchy(t, "node", "status", "--data", dir)
	if err != nil || !strings.Contains(out, "owner:      "+key.PublicKey()) {
		t.Fatalf("node status: %v\n%s", err, out)
	}
	out, stderr, err := execArchy(t, "trust", "score", "--data", dir, "--json")
	var sc node.TrustScore
	if err != nil || json.Unmarshal([]byte(out), &sc) != nil || sc.Owner != key.PublicKey() || sc.Note != "" {
		t.Fatalf("trust score from the node: %v %+v\n%s%s", err, sc, out, stderr)
	}
	out, stderr, err = execArchy(t, "trust", "explain", allowed, "--data", dir, "--json")
	var ex node.TrustExplanation
	if err != nil || json.Unmarshal([]byte(out), &ex) != nil || len(ex.Explanations) != 1 || ex.Explanations[0].Name != allowed {
		t.Fatalf("trust explain from the node: %v %+v\n%s%s", err, ex, out, stderr)
	}

	// A name the node does not know: its 404, not the graph file's error.
	if _, _, err := execArchy(t, "trust", "explain", "nosuchapp", "--data", dir); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("trust explain of an unknown app: %v", err)
	}

	// No owner key: no graph file either, so only the node can answer.
	bare := t.TempDir()
	runCLINodeIn(t, bare)
	out, stderr, err = execArchy(t, "trust", "score", "--data", bare)
	if err != nil || !strings.Contains(out, "no owner key") {
		t.Fatalf("trust score without an owner: %v\n%s%s", err, out, stderr)
	}
	out, _, err = execArchy(t, "node", "status", "--data", bare)
	if err != nil || !strings.Contains(out, "owner:      none: no owner key") {
		t.Fatalf("node status without an owner: %v\n%s", err, out)
	}
	// --local reads the graph file, which a node with no owner has not
	// written yet.
	if _, _, err := execArchy(t, "trust", "score", "--data", bare, "--local"); err == nil || !strings.Contains(err.Error(), "no trust graph") {
		t.Fatalf("trust score --local: %v", err)
	}
}
