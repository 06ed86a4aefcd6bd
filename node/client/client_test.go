package client_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/archy-node/archy/cas"
	"github.com/archy-node/archy/node"
	"github.com/archy-node/archy/node/client"
	"github.com/archy-node/archy/node/nodetest"
	"github.com/archy-node/archy/orchestrator/memruntime"
	"github.com/archy-node/archy/p2p"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/ipfs/go-log/writer.(*MirrorWriter).logRoutine"),
		goleak.IgnoreAnyFunction("github.com/libp2p/go-libp2p/p2p/transport/quicreuse.(*reuse).gc"),
	)
}

// startNode runs a real node (apps on the twin engine) on loopback and
// returns its data folder.
func startNode(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	nodetest.Run(t, node.Config{DataDir: dir, APIListen: "127.0.0.1:0", RelayListen: "127.0.0.1:0",
		Podman: node.PodmanConfig{Runtime: memruntime.New(memruntime.Config{})},
		P2P:    p2p.Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}}})
	return dir
}

// The client against a running node: reads, a file handed over, fetched
// and read back, operations followed to their end with the node's error.
func TestClientAgainstNode(t *testing.T) {
	dir := startNode(t)
	ctx := t.Context()
	c, err := client.Open(dir, "", "")
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.Status(ctx)
	if err != nil || st.DataDir != dir || st.PeerID == "" {
		t.Fatalf("status %+v: %v", st, err)
	}
	if apps, err := c.Apps(ctx); err != nil || len(apps) != 0 {
		t.Fatalf("apps %+v: %v", apps, err)
	}
	if d, err := c.Discovered(ctx); err != nil || len(d) != 0 {
		t.Fatalf("discovered %+v: %v", d, err)
	}

	data := make([]byte, 1<<20+17)
	_, _ = rand.Read(data)
	added, err := c.AddBlob(ctx, bytes.NewReader(data))
	if err != nil || added.Sum != cas.Sum(data).String() {
		t.Fatalf("add blob %+v: %v", added, err)
	}
	var seen []node.OpEvent
	got, err := c.FetchBlob(ctx, node.FetchRequest{CID: added.Sum}, func(ev node.OpEvent) { seen = append(seen, ev) })
	if err != nil || got.CID != added.CID || got.Size != int64(len(data)) {
		t.Fatalf("fetch %+v: %v", got, err)
	}
	if len(seen) < 2 || seen[len(seen)-1].Type != node.EventEnd || !seen[len(seen)-1].OK {
		t.Fatalf("fetch events %+v", seen)
	}
	var buf bytes.Buffer
	var last int64
	if n, err := c.Download(ctx, added.Sum, &buf, func(done, _ int64) { last = done }); err != nil || n != int64(len(data)) || !bytes.Equal(buf.Bytes(), data) || last != n {
		t.Fatalf("download: %d bytes, progress %d: %v", n, last, err)
	}

	// An operation that fails: the error carries the node's end event.
	_, err = c.Install(ctx, node.InstallRequest{CID: "bafkr4ihkr4ld3m4gqkjf4reryxsy2s5tkbxprqkow6fin2iiyvreuzzab4"}, nil)
	var oe *client.OpError
	if !errors.As(err, &oe) || oe.End.Code != http.StatusNotFound || !strings.Contains(oe.End.Error, node.ErrUnknownRelease.Error()) {
		t.Fatalf("install of an unknown release: %v", err)
	}
	// A refusal before any operation: the node's status and words.
	_, err = c.FetchBlob(ctx, node.FetchRequest{CID: "not-a-cid"}, nil)
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Code != http.StatusBadRequest || !strings.Contains(ae.Message, "not-a-cid") {
		t.Fatalf("fetch of a bad cid: %v", err)
	}
}

// The token is read only from a private file; without one, reads work
// and changes say why they cannot be made.
func TestClientToken(t *testing.T) {
	dir := startNode(t)
	ctx := t.Context()
	if _, err := client.Open(t.TempDir(), "", ""); !errors.Is(err, client.ErrNoNode) {
		t.Fatalf("open an empty folder: %v, want ErrNoNode", err)
	}
	addr, err := os.ReadFile(filepath.Join(dir, client.AddrFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		token func(t *testing.T, path string)
		want  string
	}{
		{"none", func(*testing.T, string) {}, client.ErrNoToken.Error()},
		{"readable by others", func(t *testing.T, path string) {
			tok, _ := os.ReadFile(filepath.Join(dir, client.TokenFile))
			if err := os.WriteFile(path, tok, 0o644); err != nil {
				t.Fatal(err)
			}
		}, "read the node's API token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			other := t.TempDir()
			if err := os.WriteFile(filepath.Join(other, client.AddrFile), addr, 0o644); err != nil {
				t.Fatal(err)
			}
			tc.token(t, filepath.Join(other, client.TokenFile))
			c, err := client.Open(other, "", "")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Status(ctx); err != nil {
				t.Fatalf("a read without the token: %v", err)
			}
			if _, err := c.AddBlob(ctx, strings.NewReader("x")); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("a change: %v, want %q", err, tc.want)
			}
			if _, err := c.Download(ctx, "bafkr4ihkr4ld3m4gqkjf4reryxsy2s5tkbxprqkow6fin2iiyvreuzzab4", &bytes.Buffer{}, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("a download: %v, want %q", err, tc.want)
			}
		})
	}
}

// A refusal's body is read only so far, and every call has a deadline.
func TestClientBounds(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v1/status":
			http.Error(w, strings.Repeat("x", 1<<20), http.StatusTeapot)
		case "/api/v1/peers":
			select { // never answers
			case <-r.Context().Done():
			case <-release:
			}
		}
	}))
	defer srv.Close()
	defer close(release)
	c := client.New(srv.URL, "tok")
	_, err := c.Status(t.Context())
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Code != http.StatusTeapot || len(ae.Message) > 4096 || len(ae.Message) < 4000 {
		t.Fatalf("a long refusal: %d bytes kept (%v)", len(fmt.Sprint(err)), ae != nil)
	}
	c.Timeout = 200 * time.Millisecond
	began := time.Now()
	if _, err := c.Peers(t.Context()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a node that never answers: %v after %s, want the deadline", err, time.Since(began))
	}
}

// A stream cut after an event is reopened from that event: each event is
// seen once, and the end is the operation's.
func TestClientFollowResumes(t *testing.T) {
	conns := 0
	var lastIDs []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conns++
		lastIDs = append(lastIDs, r.Header.Get("Last-Event-ID"))
		w.Header().Set("Content-Type", "text/event-stream")
		if r.Header.Get("Last-Event-ID") == "" {
			fmt.Fprint(w, "id: 1\nevent: progress\ndata: {\"seq\":1,\"type\":\"progress\",\"stage\":\"fetch\",\"fraction\":0.5}\n\n")
			return // the connection ends before the operation
		}
		fmt.Fprint(w, ": keep-alive\n\nid: 2\nevent: end\ndata: {\"seq\":2,\"type\":\"end\",\"ok\":true,\"fraction\":1}\n\n")
	}))
	defer srv.Close()
	var seqs []uint64
	end, err := client.New(srv.URL, "").Follow(t.Context(), "/api/v1/operations/x", func(ev node.OpEvent) { seqs = append(seqs, ev.Seq) })
	if err != nil || end == nil || !end.OK {
		t.Fatalf("follow: %+v %v", end, err)
	}
	if fmt.Sprint(seqs) != "[1 2]" || conns != 2 || lastIDs[1] != "1" {
		t.Fatalf("events %v over %d connections, Last-Event-IDs %q", seqs, conns, lastIDs)
	}
}

// The token goes with changes and secret reads only: a status read from
// another node (--api URL) does not hand it this node's token.
func TestClientSendsTokenOnlyWhenNeeded(t *testing.T) {
	var mu sync.Mutex
	auth := map[string]string{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auth[r.Method+" "+r.URL.Path] = r.Header.Get("Authorization")
		mu.Unlock()
		switch r.URL.Path {
		case "/api/v1/blobs/x":
			fmt.Fprint(w, "x")
		default:
			fmt.Fprint(w, "{}")
		}
	}))
	defer srv.Close()
	c := client.New(srv.URL, "secret")
	if _, err := c.Status(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AddBlob(t.Context(), strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Download(t.Context(), "x", &bytes.Buffer{}, nil); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := map[string]string{"GET /api/v1/status": "", "POST /api/v1/blobs": "Bearer secret", "GET /api/v1/blobs/x": "Bearer secret"}
	for k, v := range want {
		if auth[k] != v {
			t.Errorf("%s sent Authorization %q, want %q", k, auth[k], v)
		}
	}
}
