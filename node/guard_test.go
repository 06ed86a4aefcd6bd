package node

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/archy-node/archy/internal/atomicfile"
	"github.com/archy-node/archy/p2p"
)

// TestAPITokenMustBePrivate: a node whose API token file its group or
// others may read does not start: the token may be copied already.
func TestAPITokenMustBePrivate(t *testing.T) {
	dir := t.TempDir()
	tok := filepath.Join(dir, "api.token")
	if err := os.WriteFile(tok, []byte(strings.Repeat("ab", 32)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	n, err := New(t.Context(), Config{DataDir: dir, APIListen: "127.0.0.1:0", RelayListen: "127.0.0.1:0",
		Podman: PodmanConfig{Off: true}, P2P: p2p.Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}}}, nil)
	if err == nil {
		n.Close()
	}
	if err == nil || !errors.Is(err, atomicfile.ErrNotPrivate) || !strings.Contains(err.Error(), tok) {
		t.Fatalf("start with a world-readable API token: %v", err)
	}
}

// machineIP is one of this machine's own non-loopback IPv4 addresses,
// or nil.
func machineIP(t *testing.T) net.IP {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && ipn.IP.IsGlobalUnicast() {
			return ipn.IP
		}
	}
	return nil
}

// TestAPIBeyondLoopback: an API listening on the machine's own address
// (not loopback) still refuses a Host header naming another host (a
// page whose DNS name was rebound to the node), accepts its IP and the
// configured names, and refuses changes from a client that is not on
// loopback, even with the token, unless the node allows remote changes.
func TestAPIBeyondLoopback(t *testing.T) {
	ip := machineIP(t)
	// do sends a request as a client at the machine's address: over TCP
	// to the listener when the machine has one, else straight to the
	// server's handler with that client address.
	type answer struct {
		code int
		body string
	}
	var do func(n *Node, method, path, host string) answer
	listen := "127.0.0.1:0"
	if ip != nil {
		listen = net.JoinHostPort(ip.String(), "0")
		do = func(n *Node, method, path, host string) answer {
			req, _ := http.NewRequest(method, n.APIURL()+path, nil)
			req.Host = host
			req.Header.Set("Authorization", "Bearer "+n.Token())
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return answer{resp.StatusCode, string(b)}
		}
	} else {
		t.Log("no non-loopback address here: requests go to the server's handler with a non-loopback client address")
		do = func(n *Node, method, path, host string) answer {
			req := httptest.NewRequest(method, path, nil)
			req.Host, req.RemoteAddr = host, "192.0.2.77:40000"
			req.Header.Set("Authorization", "Bearer "+n.Token())
			rec := httptest.NewRecorder()
			n.handler().ServeHTTP(rec, req)
			return answer{rec.Code, rec.Body.String()}
		}
	}
	cfg := func(api APIConfig) Config {
		return Config{DataDir: t.TempDir(), APIListen: listen, RelayListen: "127.0.0.1:0", API: api,
			Podman: PodmanConfig{Off: true}, P2P: p2p.Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}}}
	}
	n := runNode(t, cfg(APIConfig{AllowedHosts: []string{"archy.lan"}}))
	self := strings.TrimPrefix(n.APIURL(), "http://")
	if a := do(n, http.MethodGet, "/api/v1/status", "evil.example:7780"); a.code != http.StatusForbidden || !strings.Contains(a.body, "Host") {
		t.Fatalf("rebound Host on a non-loopback listener: %d %s", a.code, a.body)
	}
	for _, h := range []string{self, "archy.lan", "ARCHY.LAN:7780", "localhost:7780"} {
		if a := do(n, http.MethodGet, "/api/v1/status", h); a.code != http.StatusOK {
			t.Fatalf("GET with Host %s: %d %s", h, a.code, a.body)
		}
	}
	// A change from another machine, with the token: refused.
	if a := do(n, http.MethodPost, "/api/v1/apps/x/stop", self); a.code != http.StatusForbidden || !strings.Contains(a.body, "only clients on this machine") {
		t.Fatalf("change from a non-loopback client: %d %s", a.code, a.body)
	}
	// Allowed by configuration, it reaches the handler (apps are off).
	open := runNode(t, cfg(APIConfig{RemoteChanges: true}))
	if a := do(open, http.MethodPost, "/api/v1/apps/x/stop", strings.TrimPrefix(open.APIURL(), "http://")); a.code != http.StatusServiceUnavailable {
		t.Fatalf("change from a non-loopback client with remote changes allowed: %d %s", a.code, a.body)
	}
}
