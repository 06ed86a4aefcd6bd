package p2p

import (
	"crypto/sha256"
	"encoding/binary"
	"io"
	"testing"
	"time"

	pb "github.com/libp2p/go-libp2p-kad-dht/pb"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-msgio/pbio"
	mh "github.com/multiformats/go-multihash"
)

// TestProviderFloodCapped: a peer sends 100,000 ADD_PROVIDER records over
// the real DHT protocol; the node keeps at most MaxProvidersPerPeer of
// them, and another peer can still announce.
func TestProviderFloodCapped(t *testing.T) {
	const flood = 100_000
	victim := newNode(t, nil)
	attacker := newNode(t, nil)
	honest := newNode(t, nil)
	connect(t, attacker, victim)
	connect(t, honest, victim)

	send := func(from *Node, first, count int) {
		t.Helper()
		ctx := t.Context()
		s, err := from.host.NewStream(ctx, victim.ID(), protocolID(DefaultDHTPrefix+"/kad/1.0.0"))
		if err != nil {
			t.Fatal(err)
		}
		w := pbio.NewDelimitedWriter(s)
		me := []peer.AddrInfo{{ID: from.ID(), Addrs: from.host.Addrs()}}
		for i := first; i < first+count; i++ {
			var b [8]byte
			binary.BigEndian.PutUint64(b[:], uint64(i))
			sum := sha256.Sum256(b[:])
			key, _ := mh.Encode(sum[:], mh.SHA2_256)
			m := pb.NewMessage(pb.Message_ADD_PROVIDER, key, 0)
			m.ProviderPeers = pb.RawPeerInfosToPBPeers(me)
			if err := w.WriteMsg(m); err != nil {
				t.Fatalf("add provider %d: %v", i, err)
			}
		}
		// The node handles a stream's messages in order and closes it
		// after the last: when it does, every record has been handled.
		if err := s.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		_ = s.SetReadDeadline(time.Now().Add(2 * time.Minute))
		if _, err := io.Copy(io.Discard, s); err != nil {
			t.Fatalf("node did not finish the stream: %v", err)
		}
	}
	start := time.Now()
	send(attacker, 0, flood)
	t.Logf("%d ADD_PROVIDERs handled in %v", flood, time.Since(start))
	send(honest, flood, 10)
	// Close flushes the provider manager's write buffer into the store.
	if err := victim.Close(); err != nil {
		t.Fatal(err)
	}
	got, all := victim.provs.held(attacker.ID())
	if got > DefaultProvidersPerPeer {
		t.Fatalf("node keeps %d provider records of one peer, cap %d", got, DefaultProvidersPerPeer)
	}
	if got == 0 {
		t.Fatal("node keeps none of the attacker's records: the cap dropped honest use too")
	}
	if mine, _ := victim.provs.held(honest.ID()); mine != 10 {
		t.Fatalf("node keeps %d of the honest peer's 10 records after the flood", mine)
	}
	t.Logf("kept %d of %d records from the flooding peer, %d in all", got, flood, all)
}
