package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/archy-node/archy/cas"
)

// blob add prints the file's root and sum; blob get fetches by either,
// and by the sum only bytes that hash to it appear.
func TestBlobAddGetBySum(t *testing.T) {
	data := make([]byte, 3<<20)
	_, _ = rand.Read(data)
	in := filepath.Join(t.TempDir(), "in.bin")
	if err := os.WriteFile(in, data, 0o600); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	common := []string{"--data-dir", dir, "--listen", "/ip4/127.0.0.1/tcp/0"}
	out, _, err := execArchy(t, append([]string{"blob", "add", in, "--json"}, common...)...)
	if err != nil {
		t.Fatal(err)
	}
	var added struct{ CID, Sum string }
	if err := json.Unmarshal([]byte(out), &added); err != nil || !strings.HasPrefix(added.CID, "bafyb4i") || added.Sum != cas.Sum(data).String() {
		t.Fatalf("blob add printed %s (%v); want a root and the file's sum %s", out, err, cas.Sum(data))
	}
	for _, c := range []string{added.CID, added.Sum} {
		got := filepath.Join(t.TempDir(), "out.bin")
		if _, _, err := execArchy(t, append([]string{"blob", "get", c, "-o", got}, common...)...); err != nil {
			t.Fatalf("blob get %s: %v", c, err)
		}
		b, err := os.ReadFile(got)
		if err != nil || !bytes.Equal(b, data) {
			t.Fatalf("blob get %s wrote %d bytes (%v)", c, len(b), err)
		}
	}
}
