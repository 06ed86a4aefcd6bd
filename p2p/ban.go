package p2p

import (
	"net"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// maxAddrBans is how many peers connecting from one address may be banned
// within BanTime before the address itself is: fresh peer IDs cost
// nothing, so a ban by ID alone only slows a sybil set down.
const maxAddrBans = 3

// maxAddrStrikes bounds the addresses whose bans are counted.
const maxAddrStrikes = 4096

// banList holds peers banned for misbehaving, and the addresses that
// several banned peers came from. As the host's connection gater it keeps
// them from reconnecting, in either direction, until the ban expires.
type banList struct {
	ttl time.Duration
	mu  sync.Mutex
	m   map[peer.ID]time.Time
	// strikes holds, per address (addrKey), when its peers were banned;
	// addrs the addresses banned and since when.
	strikes map[string][]time.Time
	addrs   map[string]time.Time
}

var _ connmgr.ConnectionGater = (*banList)(nil)

func newBanList(ttl time.Duration) *banList {
	return &banList{ttl: ttl, m: map[peer.ID]time.Time{}, strikes: map[string][]time.Time{}, addrs: map[string]time.Time{}}
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

// strikeAddr counts the ban of a peer that connected from key and
// reports whether key is now banned itself.
func (b *banList) strikeAddr(key string) bool {
	if key == "" {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	kept := b.strikes[key][:0]
	for _, t := range b.strikes[key] {
		if now.Sub(t) <= b.ttl {
			kept = append(kept, t)
		}
	}
	kept = append(kept, now)
	if _, ok := b.strikes[key]; !ok && len(b.strikes) >= maxAddrStrikes {
		b.pruneLocked(now)
	}
	b.strikes[key] = kept
	if len(kept) < maxAddrBans {
		return false
	}
	b.addrs[key] = now
	delete(b.strikes, key)
	return true
}

// pruneLocked forgets expired strikes and bans, and if that frees no room,
// one address's strikes.
func (b *banList) pruneLocked(now time.Time) {
	for k, ts := range b.strikes {
		if len(ts) == 0 || now.Sub(ts[len(ts)-1]) > b.ttl {
			delete(b.strikes, k)
		}
	}
	for k, t := range b.addrs {
		if now.Sub(t) > b.ttl {
			delete(b.addrs, k)
		}
	}
	for k := range b.strikes {
		if len(b.strikes) < maxAddrStrikes {
			break
		}
		delete(b.strikes, k)
	}
}

// struck reports whether a peer at the address key (addrKey) was banned
// within BanTime, or the address is.
func (b *banList) struck(key string) bool {
	if key == "" {
		return false
	}
	if b.hasKey(key) {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	ts := b.strikes[key]
	return len(ts) > 0 && time.Since(ts[len(ts)-1]) <= b.ttl
}

// hasAddr reports whether a is at a banned address.
func (b *banList) hasAddr(a ma.Multiaddr) bool { return b.hasKey(addrKey(a)) }

// hasKey reports whether the address key (addrKey) is banned.
func (b *banList) hasKey(key string) bool {
	if key == "" {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	t, ok := b.addrs[key]
	if ok && time.Since(t) > b.ttl {
		delete(b.addrs, key)
		return false
	}
	return ok
}

// addrKey is what bans of peers at a count against: the IPv4 address, or
// the /64 of an IPv6 one (what one host is usually given). A relayed
// address is the relay's, and a non-IP one names no host: "" for both.
func addrKey(a ma.Multiaddr) string {
	if a == nil {
		return ""
	}
	if _, err := a.ValueForProtocol(ma.P_CIRCUIT); err == nil {
		return ""
	}
	ip, err := manet.ToIP(a)
	if err != nil {
		return ""
	}
	if v4 := ip.To4(); v4 != nil {
		return v4.String()
	}
	return (&net.IPNet{IP: ip.Mask(net.CIDRMask(64, 128)), Mask: net.CIDRMask(64, 128)}).String()
}

func (b *banList) InterceptPeerDial(p peer.ID) bool { return !b.has(p) }
func (b *banList) InterceptAddrDial(p peer.ID, a ma.Multiaddr) bool {
	return !b.has(p) && !b.hasAddr(a)
}
func (b *banList) InterceptAccept(c network.ConnMultiaddrs) bool {
	return !b.hasAddr(c.RemoteMultiaddr())
}
func (b *banList) InterceptSecured(_ network.Direction, p peer.ID, c network.ConnMultiaddrs) bool {
	return !b.has(p) && !b.hasAddr(c.RemoteMultiaddr())
}
func (b *banList) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }
