package p2p

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/archy-node/archy/internal/atomicfile"
)

// TestIdentityKeyMustBePrivate: a node whose identity key its group or
// others may read does not start with it: the key may be copied already.
func TestIdentityKeyMustBePrivate(t *testing.T) {
	n := newNode(t, nil)
	dir := n.cfg.DataDir
	id := n.ID()
	n.Close()
	key := filepath.Join(dir, keyFile)
	if err := os.Chmod(key, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := New(t.Context(), Config{DataDir: dir, ListenAddrs: localAddrs}, testLogger(t))
	if err == nil || !errors.Is(err, atomicfile.ErrNotPrivate) || !strings.Contains(err.Error(), key) {
		t.Fatalf("start with a world-readable identity key: %v", err)
	}
	// Made private again, the same identity comes back.
	if err := os.Chmod(key, 0o600); err != nil {
		t.Fatal(err)
	}
	n2 := newNode(t, func(c *Config) { c.DataDir = dir })
	if n2.ID() != id {
		t.Fatalf("identity changed: %s, was %s", n2.ID(), id)
	}
}
