// Package nodetest runs a real node for a test of another package: until
// the test ends, with its API up before it returns.
package nodetest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/archy-node/archy/node"
)

// Run runs a node with cfg until the test ends (a stop over 20 s fails
// the test) and returns it once it has written its API address file, so
// clients that find the node by its data folder can reach it.
func Run(t testing.TB, cfg node.Config) *node.Node {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	n, err := node.New(ctx, cfg, nil)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Error("node did not stop in 20 s")
		}
	})
	addr := filepath.Join(cfg.DataDir, node.AddrFile)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(addr); err == nil {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("the node wrote no %s in 30 s", node.AddrFile)
		}
	}
}
