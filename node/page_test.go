package node

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/archy-node/archy/p2p"
)

func fetch(t *testing.T, method, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The page is served at /, with its assets, under a policy that allows
// nothing but the node's own files.
func TestPageServed(t *testing.T) {
	n := startNode(t, nil, nil)
	code, body := fetch(t, http.MethodGet, n.APIURL()+"/", "")
	if code != http.StatusOK || !strings.Contains(body, `<script src="app.js"`) {
		t.Fatalf("GET /: %d %.200s", code, body)
	}
	resp, err := http.Get(n.APIURL() + "/app.js")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); resp.StatusCode != http.StatusOK || !strings.Contains(csp, "default-src 'self'") {
		t.Fatalf("app.js: %d, CSP %q", resp.StatusCode, csp)
	}
	if code, _ := fetch(t, http.MethodGet, n.APIURL()+"/no-such-file.js", ""); code != http.StatusNotFound {
		t.Fatalf("a missing asset answered %d", code)
	}
}

// The browse listener serves the marketplace to other machines and
// refuses every change, even with the token, and never shows a secret.
func TestBrowseListenerIsReadOnly(t *testing.T) {
	n := runNode(t, Config{
		DataDir: t.TempDir(), APIListen: "127.0.0.1:0", RelayListen: "127.0.0.1:0", BrowseListen: "127.0.0.1:0",
		Podman: PodmanConfig{Off: true},
		P2P:    p2p.Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}},
	})
	if n.browseURL == "" {
		t.Fatal("no browse listener")
	}
	browse := n.browseURL
	if code, body := fetch(t, http.MethodGet, browse+"/", ""); code != http.StatusOK || !strings.Contains(body, "archy") {
		t.Fatalf("browse page: %d", code)
	}
	code, body := fetch(t, http.MethodGet, browse+"/api/v1/status", "")
	var st Status
	if err := json.Unmarshal([]byte(body), &st); code != http.StatusOK || err != nil || !st.ReadOnly || strings.Contains(body, n.cfg.DataDir) {
		t.Fatalf("browse status: %d %s", code, body)
	}
	for _, c := range []struct{ method, path string }{
		{http.MethodPost, "/api/v1/apps"},
		{http.MethodDelete, "/api/v1/apps/x"},
		{http.MethodPost, "/api/v1/blobs"},
		{http.MethodPost, "/api/v1/catalogs/x"},
	} {
		if code, _ := fetch(t, c.method, browse+c.path, n.token); code != http.StatusForbidden {
			t.Errorf("browse %s %s with the token: %d, want 403", c.method, c.path, code)
		}
	}
	if code, _ := fetch(t, http.MethodGet, browse+"/api/v1/apps/x/credentials", n.token); code != http.StatusNotFound {
		t.Errorf("browse credentials: %d, want 404 (not served there)", code)
	}
	// On the API, credentials need the token.
	if code, _ := fetch(t, http.MethodGet, n.APIURL()+"/api/v1/apps/x/credentials", ""); code != http.StatusUnauthorized {
		t.Errorf("credentials without the token: %d, want 401", code)
	}
}
