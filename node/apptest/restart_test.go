package apptest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/archy-node/archy/internal/podmantest"
	"github.com/archy-node/archy/node"
	"github.com/archy-node/archy/orchestrator"
	"github.com/archy-node/archy/orchestrator/podman"
	"github.com/archy-node/archy/p2p"
)

// restartPort is apart from the other acceptance tests' ports.
const restartPort = port + 2

// TestNodeRestartsUnhealthyContainer: on real rootless Podman, an app's
// web server dies inside a container that keeps running (its shell
// waits on), so the container fails its HTTP health probe; the node
// restarts it, and the app answers again.
func TestNodeRestartsUnhealthyContainer(t *testing.T) {
	sock := podmantest.Socket(t)
	l, envJSON, _, _ := signedAppCmd(t, "sickapp", "localhost/archy-test/sickapp:1", "hello again", restartPort,
		`[sh, -c, "httpd -p 8080 -h /www; exec sleep 1000000"]`)
	n := startNode(t, node.Config{DataDir: t.TempDir(), APIListen: "127.0.0.1:0", RelayListen: "127.0.0.1:0",
		Podman: node.PodmanConfig{Socket: sock},
		P2P:    p2p.Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}}})
	if code, out := call(t, n, http.MethodPost, "/api/v1/apps", node.InstallRequest{Envelope: envJSON,
		Archives: map[string]string{"web": l.Archives["web"]}}); code != http.StatusOK {
		t.Fatalf("install: %d %s", code, out)
	}
	t.Cleanup(func() { call(t, n, http.MethodDelete, "/api/v1/apps/sickapp?purge=1", nil) })
	status := func() orchestrator.AppStatus {
		var apps []orchestrator.AppStatus
		_, out := call(t, n, http.MethodGet, "/api/v1/apps", nil)
		if err := json.Unmarshal([]byte(out), &apps); err != nil || len(apps) != 1 {
			t.Fatalf("apps: %s (%v)", out, err)
		}
		return apps[0]
	}
	answers := func() bool {
		resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(restartPort) + "/")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(b), "hello again")
	}
	if !answers() {
		t.Fatal("the app does not answer after install")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rt, err := podman.New(ctx, podman.Config{Socket: sock})
	if err != nil {
		t.Fatal(err)
	}
	engine := status().Containers[0].Engine
	if res, err := rt.Exec(ctx, engine, []string{"killall", "httpd"}); err != nil || res.ExitCode != 0 {
		t.Fatalf("kill the web server: %+v %v", res, err)
	}
	if answers() {
		t.Fatal("the app still answers with its web server killed")
	}
	deadline := time.Now().Add(90 * time.Second)
	killed, last := time.Now(), ""
	for {
		s := status()
		if now := fmt.Sprintf("%s healthy=%v restarts=%d", s.Phase, s.Healthy, s.Restarts); now != last {
			t.Logf("%5.1fs after the kill: %s", time.Since(killed).Seconds(), now)
			last = now
		}
		if s.Restarts == 1 && s.Healthy && answers() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not restarted: %+v", s)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
