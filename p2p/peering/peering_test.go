package peering_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/record"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/nbd-wtf/go-nostr"
	"go.uber.org/goleak"

	"github.com/archy-node/archy/p2p"
	"github.com/archy-node/archy/p2p/discovery"
	"github.com/archy-node/archy/p2p/peering"
	"github.com/archy-node/archy/relay"
	"github.com/archy-node/archy/relay/relaytest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// libp2p and the DHT keep a few process-wide workers.
		goleak.IgnoreAnyFunction("github.com/ipfs/go-log/v2/writer.(*MirrorWriter).logRoutine"),
		goleak.IgnoreTopFunction("github.com/libp2p/go-libp2p/p2p/transport/tcp.(*reuseportListener).Accept"),
		goleak.IgnoreAnyFunction("github.com/libp2p/go-cidranger/net.(*network).Covers"),
		goleak.IgnoreTopFunction("go.opencensus.io/stats/view.(*worker).start"),
		goleak.IgnoreTopFunction("github.com/libp2p/go-libp2p/p2p/transport/quicreuse.(*reuseConn).Read"),
	)
}

func newNode(t *testing.T) *p2p.Node {
	t.Helper()
	n, err := p2p.New(t.Context(), p2p.Config{DataDir: t.TempDir(), ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return n
}

func run(t *testing.T, cfg peering.Config) *peering.Peering {
	t.Helper()
	if cfg.Key == nil {
		k, err := discovery.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		cfg.Key = k
	}
	p, err := peering.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("peering: %v", err)
		}
	})
	return p
}

// Three nodes with no bootstrap peers, pointed at one relay, end up
// connected to each other and fetch from each other.
func TestNodesFindEachOtherThroughARelay(t *testing.T) {
	url := relaytest.Start(t, relay.Config{DataDir: t.TempDir()})
	nodes := []*p2p.Node{newNode(t), newNode(t), newNode(t)}
	var ps []*peering.Peering
	for _, n := range nodes {
		if len(n.Host().Network().Peers()) != 0 {
			t.Fatal("a new node already has peers")
		}
		ps = append(ps, run(t, peering.Config{Relays: []string{url}, Host: n.Host()}))
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		missing := 0
		for i, a := range nodes {
			for j, b := range nodes {
				if i != j && a.Host().Network().Connectedness(b.ID()) != network.Connected {
					missing++
				}
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			for i, p := range ps {
				t.Logf("node %d: %+v", i, p.Stats())
			}
			t.Fatalf("after 30 s, %d of 6 connections are missing", missing)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The swarm works over the connections the relay gave.
	data := make([]byte, 1<<20)
	_, _ = rand.Read(data)
	root, err := nodes[0].Add(t.Context(), bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if _, size, err := nodes[2].Fetch(ctx, root); err != nil || size != uint64(len(data)) {
		t.Fatalf("fetch from a peer found on the relay: %d bytes, %v", size, err)
	}
}

// sealed returns an announcement whose peer record claims id but is
// signed by signer.
func sealed(t *testing.T, id peer.ID, signer crypto.PrivKey, at time.Time) nostr.Event {
	t.Helper()
	return sealedAddrs(t, id, signer, newNode(t).Host().Addrs(), at)
}

func sealedAddrs(t *testing.T, id peer.ID, signer crypto.PrivKey, addrs []ma.Multiaddr, at time.Time) nostr.Event {
	t.Helper()
	rec := peer.PeerRecordFromAddrInfo(peer.AddrInfo{ID: id, Addrs: addrs})
	env, err := record.Seal(rec, signer)
	if err != nil {
		t.Fatal(err)
	}
	b, err := env.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	k, _ := discovery.GenerateKey()
	ev := nostr.Event{Kind: peering.Kind, CreatedAt: nostr.Timestamp(at.Unix()), Tags: nostr.Tags{{"d", peering.D}},
		Content: base64.StdEncoding.EncodeToString(b)}
	if err := ev.Sign(k.SecretHex()); err != nil {
		t.Fatal(err)
	}
	return ev
}

func TestParseRefusesForgedAndStale(t *testing.T) {
	now := time.Now()
	victim := newNode(t)
	mine, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	myID, _ := peer.IDFromPrivateKey(mine)

	good := sealed(t, myID, mine, now)
	if ai, _, err := peering.Parse(&good, now, time.Hour); err != nil || ai.ID != myID || len(ai.Addrs) == 0 {
		t.Fatalf("good announcement: %v %v", ai, err)
	}
	tampered := good
	tampered.Content = base64.StdEncoding.EncodeToString([]byte("x")) + tampered.Content[4:]
	forged := sealed(t, victim.ID(), mine, now)
	stale := sealed(t, myID, mine, now.Add(-2*time.Hour))
	other := good
	other.Tags = nostr.Tags{{"d", "archy:release:x@1"}}
	for name, ev := range map[string]nostr.Event{"tampered": tampered, "forged record": forged, "stale": stale, "other d": other} {
		if _, _, err := peering.Parse(&ev, now, time.Hour); !errors.Is(err, peering.ErrBadAnnouncement) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// A relay user announcing a record that names another node's ID, signed
// by its own key, gets no dial out of a node reading the relay.
func TestForgedAnnouncementNotDialled(t *testing.T) {
	url := relaytest.Start(t, relay.Config{DataDir: t.TempDir()})
	victim := newNode(t)
	mine, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	ev := sealed(t, victim.ID(), mine, time.Now())
	if _, err := discovery.Publish(t.Context(), []string{url}, 5*time.Second, ev); err != nil {
		t.Fatal(err)
	}
	reader := newNode(t)
	p := run(t, peering.Config{Relays: []string{url}, Host: reader.Host()})
	deadline := time.Now().Add(10 * time.Second)
	for p.Stats().Refused == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the forged announcement was never read: %+v", p.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st := p.Stats(); st.Dialled != 0 || st.Failed != 0 {
		t.Fatalf("dialled on a forged announcement: %+v", st)
	}
	if reader.Host().Network().Connectedness(victim.ID()) == network.Connected {
		t.Fatal("connected to the peer a forged announcement named")
	}
}

// A peer read once but not reachable yet (it is still starting, or the
// dial raced) is dialled again a little later, not only at its next
// announcement ten minutes on.
func TestDialRetriedUntilThePeerListens(t *testing.T) {
	url := relaytest.Start(t, relay.Config{DataDir: t.TempDir()})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	addr := ma.StringCast(fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port))
	priv, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	late, err := libp2p.New(libp2p.Identity(priv), libp2p.NoListenAddrs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = late.Close() })
	ev := sealedAddrs(t, late.ID(), priv, []ma.Multiaddr{addr}, time.Now())
	if _, err := discovery.Publish(t.Context(), []string{url}, 5*time.Second, ev); err != nil {
		t.Fatal(err)
	}
	reader := newNode(t)
	p := run(t, peering.Config{Relays: []string{url}, Host: reader.Host(), DialTimeout: time.Second})
	deadline := time.Now().Add(10 * time.Second)
	for p.Stats().Read == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the announcement was never read: %+v", p.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The first dial has failed (nothing listens); now the peer comes up.
	time.Sleep(300 * time.Millisecond)
	if err := late.Network().Listen(addr); err != nil {
		t.Fatal(err)
	}
	for reader.Host().Network().Connectedness(late.ID()) != network.Connected {
		if time.Now().After(deadline) {
			t.Fatalf("never dialled the peer again once it listened: %+v", p.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
