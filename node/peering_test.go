package node

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/archy-node/archy/p2p"
)

// Nodes with no bootstrap list that read a common relay (here A's
// embedded one) find each other: the swarm needs nothing else.
func TestNodesFindEachOtherThroughRelays(t *testing.T) {
	a := startNode(t, nil, nil)
	b := startNode(t, a.RelayURLs()[:1], nil)
	c := startNode(t, a.RelayURLs()[:1], nil)
	nodes := []*Node{a, b, c}
	deadline := time.Now().Add(30 * time.Second)
	for {
		missing := 0
		for i, x := range nodes {
			for j, y := range nodes {
				if i != j && x.P2P().Host().Network().Connectedness(y.P2P().ID()) != network.Connected {
					missing++
				}
			}
		}
		if missing == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s, %d of 6 connections are missing", missing)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A second node on a data folder in use used to panic in New's clean-up
// (a nil *Node); it fails with an error that says what is held.
func TestSecondNodeOnSameDataFolderFails(t *testing.T) {
	a := startNode(t, nil, nil)
	cfg := Config{
		DataDir: a.cfg.DataDir, APIListen: "127.0.0.1:0", RelayListen: "127.0.0.1:0",
		Podman: PodmanConfig{Off: true},
		P2P:    p2p.Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}},
	}
	n, err := New(context.Background(), cfg, nil)
	if err == nil {
		n.Close()
		t.Fatal("a second node started on a data folder in use")
	}
	if !strings.Contains(err.Error(), "lock") && !strings.Contains(err.Error(), "in use") {
		t.Errorf("error does not say the folder is in use: %v", err)
	}
}
