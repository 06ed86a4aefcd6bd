package p2p

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// banList holds peers banned for misbehaving. As the host's connection
// gater it keeps them from reconnecting, in either direction, until the
// ban expires.
type banList struct {
	ttl time.Duration
	mu  sync.Mutex
	m   map[peer.ID]time.Time
}

var _ connmgr.ConnectionGater = (*banList)(nil)

func newBanList(ttl time.Duration) *banList {
	return &banList{ttl: ttl, m: map[peer.ID]time.Time{}}
}

func (b *banList) add(p peer.ID) {
	b.mu.Lock()
	b.m[p] = time.Now()
	b.mu.Unlock()
}

func (b *banList) has(p peer.ID) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	t, ok := b.m[p]
	if ok && time.Since(t) > b.ttl {
		delete(b.m, p)
		return false
	}
	return ok
}

func (b *banList) InterceptPeerDial(p peer.ID) bool                 { return !b.has(p) }
func (b *banList) InterceptAddrDial(p peer.ID, _ ma.Multiaddr) bool { return !b.has(p) }
func (b *banList) InterceptAccept(network.ConnMultiaddrs) bool      { return true }
func (b *banList) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return !b.has(p)
}
func (b *banList) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }
