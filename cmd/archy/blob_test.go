package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/archy-node/archy/cas"
	"github.com/archy-node/archy/node/client"
)

// bootstrapTo is the --bootstrap flag that makes a node dial the node
// running on dir.
func bootstrapTo(t *testing.T, dir string) []string {
	t.Helper()
	out, _, err := execArchy(t, "node", "status", "--data", dir, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		PeerID string   `json:"peer_id"`
		Addrs  []string `json:"addrs"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || len(st.Addrs) == 0 {
		t.Fatalf("status %s: %v", out, err)
	}
	return []string{"--bootstrap", st.Addrs[0] + "/p2p/" + st.PeerID}
}

// lastLine is the last line of out: a command's --json result after its
// progress lines.
func lastLine(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return lines[len(lines)-1]
}

// blob add hands a file to node A; blob get on node B fetches it through
// B from the swarm, by its root and by its sum, showing progress, and the
// file appears whole. Neither command opens a store of its own.
func TestBlobAddGetThroughNodes(t *testing.T) {
	data := make([]byte, 3<<20)
	_, _ = rand.Read(data)
	in := filepath.Join(t.TempDir(), "in.bin")
	if err := os.WriteFile(in, data, 0o600); err != nil {
		t.Fatal(err)
	}
	a := startCLINode(t)
	b := startCLINode(t, bootstrapTo(t, a)...)
	out, _, err := execArchy(t, "blob", "add", in, "--json", "--data", a)
	if err != nil {
		t.Fatal(err)
	}
	var added blobResult
	if err := json.Unmarshal([]byte(lastLine(out)), &added); err != nil || !strings.HasPrefix(added.CID, "bafyb4i") || added.Sum != cas.Sum(data).String() {
		t.Fatalf("blob add printed %s (%v); want a root and the file's sum %s", out, err, cas.Sum(data))
	}
	if !strings.Contains(out, `"stage":"upload"`) {
		t.Fatalf("blob add --json showed no upload progress:\n%s", out)
	}
	for _, c := range []string{added.CID, added.Sum} {
		got := filepath.Join(t.TempDir(), "out.bin")
		out, stderr, err := execArchy(t, "blob", "get", c, "-o", got, "--data", b)
		if err != nil {
			t.Fatalf("blob get %s: %v\n%s", c, err, stderr)
		}
		if out != "" || !strings.Contains(stderr, "download 100%") {
			t.Fatalf("blob get %s: stdout %q, stderr (plain progress lines) %q", c, out, stderr)
		}
		b, err := os.ReadFile(got)
		if err != nil || !bytes.Equal(b, data) {
			t.Fatalf("blob get %s wrote %d bytes (%v)", c, len(b), err)
		}
	}
	// --json: the operation's events, then the result.
	got := filepath.Join(t.TempDir(), "out.bin")
	out, _, err = execArchy(t, "blob", "get", added.Sum, "-o", got, "--json", "--data", b)
	if err != nil {
		t.Fatal(err)
	}
	var res blobResult
	if err := json.Unmarshal([]byte(lastLine(out)), &res); err != nil || res.CID != added.CID || res.Size != int64(len(data)) || res.Path != got {
		t.Fatalf("blob get --json result %s: %v", lastLine(out), err)
	}
	if !strings.Contains(out, `"type":"end"`) || !strings.Contains(out, `"stage":"download"`) {
		t.Fatalf("blob get --json showed no operation events:\n%s", out)
	}
	// Reading a file back from the node needs its token.
	nc, err := client.Open(b, "", "")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(nc.Base + "/api/v1/blobs/" + added.CID)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET a blob without the token: %s, want 401", resp.Status)
	}
	// A CID nobody holds fails with the node's word, not a hang.
	if _, _, err := execArchy(t, "blob", "get", "bafkr4ihuqc5gq2azkbwbrzllpvses2qn4lwk7pe6jpbppjrqvmq2koa2ge", "-o", got, "--data", b, "--timeout", "20s"); err == nil || !strings.Contains(err.Error(), "the node refused") {
		t.Fatalf("blob get of a file nobody has: %v, want the node refusing", err)
	}
	// No node: the command says so and how to start one.
	if _, _, err := execArchy(t, "blob", "add", in, "--data", t.TempDir()); err == nil || !strings.Contains(err.Error(), "archy node run") {
		t.Fatalf("blob add without a node: %v", err)
	}
}
