package apptest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/archy-node/archy/did"
	"github.com/archy-node/archy/internal/podmantest"
	"github.com/archy-node/archy/node"
	"github.com/archy-node/archy/orchestrator"
	"github.com/archy-node/archy/p2p"
	"github.com/archy-node/archy/registry"
)

func TestMain(m *testing.M) { podmantest.Main(m) }

// port is outside the sample apps' 18080-18099, so the lifecycle gate can
// run beside this test.
const port = 18190

func call(t *testing.T, n *node.Node, method, path string, body any) (int, string) {
	t.Helper()
	var r io.Reader
	if b, ok := body.([]byte); ok { // sent as it is (a blob, an envelope)
		r = bytes.NewReader(b)
	} else if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, n.APIURL()+path, r)
	req.Header.Set("Authorization", "Bearer "+n.Token())
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted {
		return resp.StatusCode, string(out)
	}
	// An operation: its outcome is its end, as 200 or the status its
	// error stands for.
	loc := resp.Header.Get("Location")
	for {
		var op node.Operation
		_, st := call(t, n, http.MethodGet, loc, nil)
		if err := json.Unmarshal([]byte(st), &op); err != nil {
			t.Fatalf("%s %s: operation %s: %s", method, path, loc, st)
		}
		if op.State != node.OpRunning {
			if op.Last.OK {
				return http.StatusOK, st
			}
			return op.Last.Code, op.Last.Error
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s %s: operation %s did not end", method, path, loc)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// signedApp writes an app folder as a developer does (a busybox httpd
// image serving body on hostPort, pinned by the loader by its archive's
// BLAKE3 CID and OCI digest), loads it and signs it with a new key.
func signedApp(t *testing.T, id, ref, body string, hostPort int) (*registry.Loaded, []byte, *registry.Verified, *did.Key) {
	t.Helper()
	return signedAppCmd(t, id, ref, body, hostPort, `[httpd, -f, -p, "8080", -h, /www]`)
}

// signedAppCmd is signedApp with the container's command (YAML flow).
func signedAppCmd(t *testing.T, id, ref, body string, hostPort int, command string) (*registry.Loaded, []byte, *registry.Verified, *did.Key) {
	t.Helper()
	archive := podmantest.BusyboxImage(t, ref, body)
	key, err := did.Generate()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Rename(archive, filepath.Join(dir, "image.tar")); err != nil {
		t.Fatal(err)
	}
	manifest := `schema: archy.app/v1
id: ` + id + `
name: Test app ` + id + `
version: 1.0.0
publisher: ` + key.DID() + `
containers:
  - name: web
    image: {ref: "` + ref + `", archive: image.tar}
    command: ` + command + `
    ports: [{container: 8080, host: ` + strconv.Itoa(hostPort) + `}]
    health: {http: {port: 8080, path: /}, interval: 500ms}
ui: {container: web, port: 8080}
`
	if err := os.WriteFile(filepath.Join(dir, "manifest.yaml"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := registry.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	env, _, err := registry.Sign(l.Manifest, key)
	if err != nil {
		t.Fatal(err)
	}
	envJSON, _ := env.Marshal()
	v, err := registry.VerifyEnvelope(envJSON)
	if err != nil {
		t.Fatal(err)
	}
	return l, envJSON, v, key
}

// TestNodeRunsAnApp has a node install a signed app through its API on
// real rootless Podman, serve it on 127.0.0.1, and uninstall it with
// purge leaving no app behind.
func TestNodeRunsAnApp(t *testing.T) {
	sock := podmantest.Socket(t)
	l, envJSON, _, _ := signedApp(t, "nodeapp", "localhost/archy-test/nodeapp:1", "hello from a node", port)
	archive := l.Archives["web"]

	n := startNode(t, node.Config{DataDir: t.TempDir(), APIListen: "127.0.0.1:0", RelayListen: "127.0.0.1:0",
		Podman: node.PodmanConfig{Socket: sock},
		P2P:    p2p.Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}}})

	if code, out := call(t, n, http.MethodPost, "/api/v1/apps", node.InstallRequest{Envelope: envJSON,
		Archives: map[string]string{"web": archive}}); code != http.StatusOK {
		t.Fatalf("install: %d %s", code, out)
	}
	resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/")
	if err != nil {
		t.Fatalf("the app does not answer: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "hello from a node") {
		t.Fatalf("the app answered %q", body)
	}
	var apps []orchestrator.AppStatus
	_, out := call(t, n, http.MethodGet, "/api/v1/apps", nil)
	if err := json.Unmarshal([]byte(out), &apps); err != nil || len(apps) != 1 || apps[0].ID != "nodeapp" || !apps[0].Healthy {
		t.Fatalf("apps: %s (%v)", out, err)
	}
	// A tampered envelope never reaches Podman.
	bad := bytes.Replace(envJSON, []byte(`"payload":"`), []byte(`"payload":"A`), 1)
	if code, _ := call(t, n, http.MethodPost, "/api/v1/apps", node.InstallRequest{Envelope: bad,
		Archives: map[string]string{"web": archive}}); code != http.StatusBadRequest {
		t.Fatalf("tampered install answered %d", code)
	}
	if code, out := call(t, n, http.MethodDelete, "/api/v1/apps/nodeapp?purge=1", nil); code != http.StatusOK {
		t.Fatalf("uninstall: %d %s", code, out)
	}
	_, out = call(t, n, http.MethodGet, "/api/v1/apps", nil)
	if strings.TrimSpace(out) != "[]" {
		t.Fatalf("after purge: %s", out)
	}
}
