package p2p

import (
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"
)

func TestAddrKey(t *testing.T) {
	for addr, want := range map[string]string{
		"/ip4/203.0.113.7/tcp/4001":               "203.0.113.7",
		"/ip4/203.0.113.7/udp/4001/quic-v1":       "203.0.113.7",
		"/ip6/2001:db8:1:2:3:4:5:6/tcp/4001":      "2001:db8:1:2::/64",
		"/ip6/2001:db8:1:2:ffff::1/udp/1/quic-v1": "2001:db8:1:2::/64",
		"/dns4/example.com/tcp/4001":              "",
		"/ip4/198.51.100.1/tcp/4001/p2p/12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf/p2p-circuit": "",
	} {
		if got := addrKey(ma.StringCast(addr)); got != want {
			t.Errorf("addrKey(%s) = %q, want %q", addr, got, want)
		}
	}
}

// An address is banned at its maxAddrBans-th banned peer, and the ban
// ends after the ban time.
func TestAddrBan(t *testing.T) {
	b := newBanList(200 * time.Millisecond)
	a := ma.StringCast("/ip4/203.0.113.7/tcp/4001")
	for i := 1; i < maxAddrBans; i++ {
		if b.strikeAddr("203.0.113.7") {
			t.Fatalf("banned at strike %d", i)
		}
	}
	if !b.struck("203.0.113.7") || b.hasAddr(a) {
		t.Fatal("struck address should be struck, not banned")
	}
	if !b.strikeAddr("203.0.113.7") || !b.hasAddr(a) || b.InterceptAddrDial("", a) {
		t.Fatal("not banned at maxAddrBans")
	}
	time.Sleep(250 * time.Millisecond)
	if b.hasAddr(a) || b.struck("203.0.113.7") {
		t.Fatal("the address ban outlived the ban time")
	}
}
