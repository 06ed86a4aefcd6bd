package relay

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nbd-wtf/go-nostr"
)

// dialFrom opens a websocket to s from the local address from (any
// 127.x.y.z works on Linux), with the Origin and Host headers given
// (none when empty), and returns the connection or the refusal's status.
func dialFrom(t testing.TB, s *served, from, origin, host string) (*websocket.Conn, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	transport := &http.Transport{DialContext: dialer.DialContext}
	defer transport.CloseIdleConnections()
	opts := &websocket.DialOptions{HTTPClient: &http.Client{Transport: transport}, Host: host}
	if origin != "" {
		opts.HTTPHeader = http.Header{"Origin": {origin}}
	}
	ws, resp, err := websocket.Dial(ctx, s.URL(), opts)
	if err != nil {
		if resp == nil {
			t.Fatalf("dial from %s: %v", from, err)
		}
		return nil, resp.StatusCode
	}
	t.Cleanup(func() { ws.CloseNow() })
	return ws, http.StatusSwitchingProtocols
}

// mustDialFrom is dialFrom that fails the test on a refusal, and checks
// that the relay answers on the connection.
func mustDialFrom(t testing.TB, s *served, from, origin string) *websocket.Conn {
	t.Helper()
	ws, status := dialFrom(t, s, from, origin, "")
	if ws == nil {
		t.Fatalf("dial from %s with origin %q refused with %d", from, origin, status)
	}
	c := &rawClient{t, ws}
	c.send("REQ", "probe", map[string]any{"limit": 0})
	if m := c.next(); str(t, m[0]) != "EOSE" {
		t.Fatalf("from %s: got %s, want EOSE", from, m[0])
	}
	return ws
}

// waitConnections waits until s has n connections.
func waitConnections(t testing.TB, s *served, n int) {
	t.Helper()
	for deadline := time.Now().Add(testTimeout); s.Stats().Connections != n; {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections, want %d", s.Stats().Connections, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestConnectionsPerIP: one address opening connections past the per-IP
// cap (the default one) is refused, while a client from another address
// still gets in; a closed connection frees its slot.
func TestConnectionsPerIP(t *testing.T) {
	s := start(t, Config{})
	var mine []*websocket.Conn
	for range DefaultMaxConnectionsPerIP {
		mine = append(mine, mustDialFrom(t, s, "127.0.0.1", ""))
	}
	for range 3 {
		if ws, status := dialFrom(t, s, "127.0.0.1", "", ""); ws != nil || status != http.StatusTooManyRequests {
			t.Fatalf("connection %d from one address: status %d, want %d", DefaultMaxConnectionsPerIP+1, status, http.StatusTooManyRequests)
		}
	}
	other := mustDialFrom(t, s, "127.0.0.2", "")
	other.Close(websocket.StatusNormalClosure, "")

	mine[0].Close(websocket.StatusNormalClosure, "")
	waitConnections(t, s, DefaultMaxConnectionsPerIP-1)
	mustDialFrom(t, s, "127.0.0.1", "")
}

// TestCrossOriginRefused: a page of another origin, in a browser on this
// machine, cannot open a websocket to the relay on 127.0.0.1 (nor through
// a DNS-rebound name); a page of the relay's own loopback address, and a
// client without Origin, can.
func TestCrossOriginRefused(t *testing.T) {
	s := start(t, Config{})
	port := s.Addr().(*net.TCPAddr).Port
	for _, tc := range []struct{ origin, host string }{
		{"https://evil.example", ""},
		{"http://localhost:8080", ""},
		{"null", ""},
		{fmt.Sprintf("http://rebound.example:%d", port), fmt.Sprintf("rebound.example:%d", port)},
	} {
		if ws, status := dialFrom(t, s, "127.0.0.1", tc.origin, tc.host); ws != nil || status != http.StatusForbidden {
			t.Errorf("origin %q host %q: status %d, want %d", tc.origin, tc.host, status, http.StatusForbidden)
		}
	}
	mustDialFrom(t, s, "127.0.0.1", fmt.Sprintf("http://127.0.0.1:%d", port))
	mustDialFrom(t, s, "127.0.0.1", "")
	if n := s.Stats().Connections; n != 2 {
		t.Fatalf("%d connections, want 2", n)
	}
}

// TestConnectionsPerOrigin: an allowed origin's pages get at most
// MaxConnectionsPerOrigin connections; other clients still get in.
func TestConnectionsPerOrigin(t *testing.T) {
	s := start(t, Config{AllowedOrigins: []string{"https://App.example"}, MaxConnectionsPerOrigin: 2})
	mustDialFrom(t, s, "127.0.0.1", "https://app.example")
	mustDialFrom(t, s, "127.0.0.2", "https://app.example")
	if ws, status := dialFrom(t, s, "127.0.0.3", "https://app.example", ""); ws != nil || status != http.StatusTooManyRequests {
		t.Fatalf("third page of one origin: status %d, want %d", status, http.StatusTooManyRequests)
	}
	if ws, status := dialFrom(t, s, "127.0.0.3", "https://other.example", ""); ws != nil || status != http.StatusForbidden {
		t.Fatalf("origin not listed: status %d, want %d", status, http.StatusForbidden)
	}
	mustDialFrom(t, s, "127.0.0.3", "")

	// With every origin allowed, each still has its cap; "null" (a
	// sandboxed or file page) is an origin like any other.
	s = start(t, Config{AllowedOrigins: []string{"*"}, MaxConnectionsPerOrigin: 1})
	mustDialFrom(t, s, "127.0.0.1", "null")
	if ws, status := dialFrom(t, s, "127.0.0.1", "null", ""); ws != nil || status != http.StatusTooManyRequests {
		t.Fatalf("second null origin: status %d, want %d", status, http.StatusTooManyRequests)
	}
	mustDialFrom(t, s, "127.0.0.1", "https://any.example")
}

func TestAllowedOriginsValidate(t *testing.T) {
	for _, o := range []string{"app.example", "https://app.example/path", "ftp://app.example", "https://user@app.example", ""} {
		err := Config{AllowedOrigins: []string{"*", o}}.Validate()
		if err == nil || !strings.Contains(err.Error(), "AllowedOrigins[1]") {
			t.Errorf("origin %q: %v, want an AllowedOrigins[1] error", o, err)
		}
	}
	if err := (Config{AllowedOrigins: []string{"*", "http://127.0.0.1:8080", "https://app.example/"}}).Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestTombstonesCount: a deletion request names events that do not exist;
// each name is a tombstone the relay keeps for good, so it must count
// against MaxEvents like an event, or a few requests make the relay
// remember without bound.
func TestTombstonesCount(t *testing.T) {
	const capacity = 10
	s := start(t, Config{MaxEvents: capacity})
	c := connectWire(t, s)
	k := newKey(t)
	now := time.Now().Unix()

	// A request naming 20 made-up events does not fit in 10 places.
	tags := make(nostr.Tags, 20)
	for i := range tags {
		tags[i] = nostr.Tag{"e", randomHex(32)}
	}
	refusedWith(t, publish(t, c, k.sign(t, nostr.KindDeletion, now, tags, "")), "error: relay storage is full")

	// One naming 5 takes 6 places (itself and 5 tombstones); 3 notes
	// take 3 more.
	mustPublish(t, c, k.sign(t, nostr.KindDeletion, now, tags[:5], ""))
	for i := range 3 {
		mustPublish(t, c, k.sign(t, 1, now, nil, fmt.Sprint("note ", i)))
	}
	// Deleting a stored note trades it for a tombstone, plus the request:
	// the tenth place.
	notes := query(t, c, nostr.Filter{Kinds: []int{1}})
	mustPublish(t, c, k.sign(t, nostr.KindDeletion, now, nostr.Tags{{"e", notes[0].ID}}, ""))
	if st := s.Stats(); st.Events != 4 || st.Tombstones != 6 {
		t.Fatalf("stats %+v, want 4 events (2 requests, 2 notes) and 6 tombstones", st)
	}
	refusedWith(t, publish(t, c, k.sign(t, 1, now, nil, "one too many")), "error: relay storage is full")
}

// TestTombstonesCountBytes: tombstones are charged against MaxStoredBytes
// too, more than their tag in the request's JSON, since each is kept as
// a map entry.
func TestTombstonesCountBytes(t *testing.T) {
	s := start(t, Config{MaxStoredBytes: 16 << 10, MaxMessageSize: 64 << 10})
	c := connectWire(t, s)
	k := newKey(t)
	tags := make(nostr.Tags, 100) // about 7.5 KiB of JSON, charged about 19 KiB
	for i := range tags {
		tags[i] = nostr.Tag{"e", randomHex(32)}
	}
	refusedWith(t, publish(t, c, k.sign(t, nostr.KindDeletion, time.Now().Unix(), tags, "")), "error: relay storage is full")
	mustPublish(t, c, k.sign(t, nostr.KindDeletion, time.Now().Unix(), tags[:40], ""))
	if st := s.Stats(); st.StoredBytes > 16<<10 || st.Tombstones != 40 {
		t.Fatalf("stats %+v: want 40 tombstones within 16 KiB", st)
	}
}

func TestClientKey(t *testing.T) {
	for _, tc := range []struct{ remote, want string }{
		{"192.0.2.7:5000", "192.0.2.7"},
		{"[::ffff:192.0.2.7]:5000", "192.0.2.7"},
		{"[2001:db8:1:2:aaaa::1]:5000", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:bbbb::9]:6000", "2001:db8:1:2::/64"},
		{"[fe80::1%eth0]:1", "fe80::/64"},
		{"not an address", "not an address"},
	} {
		if got := clientKey(tc.remote); got != tc.want {
			t.Errorf("clientKey(%q) = %q, want %q", tc.remote, got, tc.want)
		}
	}
}
