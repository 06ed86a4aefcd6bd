// Package nostrtools runs nostr-tools, an independent Nostr implementation
// on Node.js, to read archy's events from a relay and verify them: the
// interop check the tests of discovery and of `archy app publish` share.
// The environment (.ci/setup.sh, through `make test`) names the npm folder
// holding nostr-tools and ws in ARCHY_NPM_DIR.
package nostrtools

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

//go:embed read.mjs
var readScript []byte

// Event is nostr-tools' verdict on one event it read.
type Event struct {
	ID     string            `json:"id"`
	PubKey string            `json:"pubkey"`
	Kind   int               `json:"kind"`
	D      string            `json:"d"`
	Tags   map[string]string `json:"tags"` // the value of each tag name (the last if repeated)
	// Valid says id and signature verify; TamperedValid says the same
	// event with one byte added to its content does (it must not).
	Valid         bool `json:"valid"`
	TamperedValid bool `json:"tamperedValid"`
}

// Result is everything read before EOSE.
type Result struct {
	EOSE   bool    `json:"eose"`
	Events []Event `json:"events"`
}

// NPMDir returns the folder holding nostr-tools, or skips t when it is not
// set up (failing instead when CI=true: the interop check is required).
func NPMDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("ARCHY_NPM_DIR")
	if dir == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("ARCHY_NPM_DIR is unset in CI: run `make test-env` (nostr-tools interop is required)")
		}
		t.Skip("ARCHY_NPM_DIR unset: run `make test-env` (or .ci/setup.sh) to install nostr-tools for the interop test")
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("ARCHY_NPM_DIR is set but node is not on PATH: %v", err)
	}
	return dir
}

// Read subscribes to relayURL with nostr-tools for kind 30078 events
// tagged archy-app and returns its verdicts once the relay sent EOSE.
func Read(ctx context.Context, npmDir, relayURL string) (*Result, error) {
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, fmt.Errorf("nostr-tools: %w", err)
	}
	// ESM resolves packages next to the script: put both in one folder.
	dir, err := os.MkdirTemp("", "archy-nostrtools-")
	if err != nil {
		return nil, fmt.Errorf("nostr-tools: %w", err)
	}
	defer os.RemoveAll(dir)
	if err := os.Symlink(filepath.Join(npmDir, "node_modules"), filepath.Join(dir, "node_modules")); err != nil {
		return nil, fmt.Errorf("nostr-tools: %w", err)
	}
	script := filepath.Join(dir, "read.mjs")
	if err := os.WriteFile(script, readScript, 0o644); err != nil {
		return nil, fmt.Errorf("nostr-tools: %w", err)
	}
	var stderr strings.Builder
	cmd := exec.CommandContext(ctx, node, script, relayURL)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("nostr-tools: %w: %.2000s", err, stderr.String())
	}
	var res Result
	if err := json.Unmarshal(out, &res); err != nil {
		return nil, fmt.Errorf("nostr-tools output %.500q: %w", out, err)
	}
	return &res, nil
}
