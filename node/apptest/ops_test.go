package apptest

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/archy-node/archy/internal/podmantest"
	"github.com/archy-node/archy/node"
	"github.com/archy-node/archy/node/client"
	"github.com/archy-node/archy/p2p"
)

// opsPort is apart from the other acceptance tests' ports.
const opsPort = port + 7

// events follows an operation's Server-Sent Events after lastID to its
// end event, through the node's client.
func events(t *testing.T, ctx context.Context, n *node.Node, loc, lastID string) []node.OpEvent {
	t.Helper()
	var out []node.OpEvent
	_, err := client.New(n.APIURL(), n.Token()).FollowAfter(ctx, loc, lastID, func(ev node.OpEvent) { out = append(out, ev) })
	var failed *client.OpError
	if err != nil && !errors.As(err, &failed) {
		t.Fatalf("events of %s: %v", loc, err)
	}
	return out
}

// TestLongInstallOutlivesRequestTimeout: on real rootless Podman, with
// the API's request timeout at one second, an app whose web server
// starts after four seconds installs: the request answers 202 at once,
// the client following the event stream sees the health stage and the
// successful end, and a client that comes back later (Last-Event-ID)
// reads the same end. As one request, the install would be cut after
// one second with no answer.
func TestLongInstallOutlivesRequestTimeout(t *testing.T) {
	sock := podmantest.Socket(t)
	l, envJSON, _, _ := signedAppCmd(t, "slowapp", "localhost/archy-test/slowapp:1", "hello at last", opsPort,
		`[sh, -c, "sleep 4; exec httpd -f -p 8080 -h /www"]`)
	n := startNode(t, node.Config{DataDir: t.TempDir(), APIListen: "127.0.0.1:0", RelayListen: "127.0.0.1:0",
		Podman: node.PodmanConfig{Socket: sock}, API: node.APIConfig{RequestTimeout: time.Second},
		P2P: p2p.Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}}})
	t.Cleanup(func() { call(t, n, http.MethodDelete, "/api/v1/apps/slowapp?purge=1", nil) })

	began := time.Now()
	loc, err := client.New(n.APIURL(), n.Token()).Start(t.Context(), http.MethodPost, "/api/v1/apps",
		node.InstallRequest{Envelope: envJSON, Archives: map[string]string{"web": l.Archives["web"]}})
	if err != nil || loc == "" || time.Since(began) > time.Second {
		t.Fatalf("install: %v, operation %q, after %s", err, loc, time.Since(began))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	evs := events(t, ctx, n, loc, "")
	took := time.Since(began)
	if len(evs) == 0 {
		t.Fatal("no events")
	}
	end := evs[len(evs)-1]
	if end.Type != node.EventEnd || !end.OK {
		t.Fatalf("after %s the stream ended with %+v", took, end)
	}
	if took < 4*time.Second {
		t.Fatalf("the install ended after %s, before its web server started", took)
	}
	health := false
	for _, ev := range evs {
		health = health || ev.Stage == "health"
	}
	if !health {
		t.Fatalf("no health stage among %+v", evs)
	}
	r, err := http.Get("http://127.0.0.1:" + strconv.Itoa(opsPort) + "/")
	if err != nil {
		t.Fatalf("the app does not answer: %v", err)
	}
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if !strings.Contains(string(b), "hello at last") {
		t.Fatalf("the app answered %q", b)
	}
	// A client that left after the first event reads the rest.
	rest := events(t, ctx, n, loc, strconv.FormatUint(evs[0].Seq, 10))
	if len(rest) != len(evs)-1 || rest[len(rest)-1].Seq != end.Seq || !rest[len(rest)-1].OK {
		t.Fatalf("after reconnecting: %d events (want %d), last %+v", len(rest), len(evs)-1, rest[len(rest)-1])
	}
}
