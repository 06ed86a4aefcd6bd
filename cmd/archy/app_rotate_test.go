package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/archy-node/archy/node"
	"github.com/archy-node/archy/registry"
)

func TestAppRotate(t *testing.T) {
	dir := t.TempDir()
	oldKey, oldDID := newKey(t, dir, "old")
	newKeyFile, newDID := newKey(t, dir, "new")
	out := mustArchy(t, "app", "rotate", "org.example.vault", "--key", oldKey, "--to", newKeyFile)
	r, err := registry.VerifyRotation([]byte(out))
	if err != nil {
		t.Fatalf("the statement does not verify: %v\n%s", err, out)
	}
	if r.App != "org.example.vault" || r.From != oldDID || r.To != newDID {
		t.Fatalf("statement: %+v", r)
	}
	file := filepath.Join(dir, "rot.json")
	if out := mustArchy(t, "app", "rotate", "org.example.vault", "--key", oldKey, "--to", newDID, "--out", file); !strings.Contains(out, newDID) {
		t.Fatalf("rotate --out: %s", out)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := registry.VerifyRotation(b); err != nil {
		t.Fatal(err)
	}
	// The file as archy app install --rotation sends it.
	if _, err := json.Marshal(node.InstallRequest{CID: "x", Rotations: []json.RawMessage{b}}); err != nil {
		t.Fatalf("install request with the statement: %v", err)
	}
	if _, _, err := archy(t, "app", "install", "bafkr4ihkr4ld3m4gqkjf4reryxsy2s5tkbxprqkow6fin2iiyvreuzzab4", "--data", dir,
		"--allow-downgrade", "--rotation", filepath.Join(dir, "missing.json")); err == nil || !strings.Contains(err.Error(), "--rotation") {
		t.Errorf("install with a missing rotation file: %v", err)
	}
	for _, args := range [][]string{
		{"app", "rotate", "org.example.vault", "--key", oldKey},                    // no --to
		{"app", "rotate", "org.example.vault", "--key", oldKey, "--to", oldDID},    // to itself
		{"app", "rotate", "Not An Id", "--key", oldKey, "--to", newDID},            // bad id
		{"app", "rotate", "org.example.vault", "--key", oldKey, "--to", "did:x:y"}, // bad DID
	} {
		if _, _, err := archy(t, args...); err == nil {
			t.Errorf("archy %s: no error", strings.Join(args, " "))
		}
	}
}
