package main

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/archy-node/archy/did"
	"github.com/archy-node/archy/internal/ociimage"
	"github.com/archy-node/archy/node"
	"github.com/archy-node/archy/node/nodetest"
	"github.com/archy-node/archy/orchestrator/memruntime"
	"github.com/archy-node/archy/p2p"
	"github.com/archy-node/archy/registry"
)

// twinNode runs a node on the twin engine with a short API request
// timeout and returns its data folder once it has written api.addr.
func twinNode(t *testing.T, rt *memruntime.Runtime, timeout time.Duration) string {
	t.Helper()
	dir := t.TempDir()
	nodetest.Run(t, node.Config{DataDir: dir, APIListen: "127.0.0.1:0", RelayListen: "127.0.0.1:0",
		Podman: node.PodmanConfig{Runtime: rt}, API: node.APIConfig{RequestTimeout: timeout},
		P2P: p2p.Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}}})
	return dir
}

// twinAppDir writes and signs an app folder whose image archive the twin
// engine has (it cannot look images up by digest after a load).
func twinAppDir(t *testing.T, rt *memruntime.Runtime, id string) string {
	t.Helper()
	key, err := did.Generate()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ref := "localhost/archy-test/" + id + ":1"
	archive := filepath.Join(dir, "image.tar")
	if _, err := ociimage.Build(t.Context(), t.TempDir(), archive, ref); err != nil {
		t.Fatal(err)
	}
	sum, err := registry.ReadOCIArchive(archive)
	if err != nil {
		t.Fatal(err)
	}
	rt.LoadImageNames(ref, strings.TrimSuffix(ref, ":1")+"@"+sum.Digest)
	manifest := "schema: archy.app/v1\nid: " + id + "\nname: " + id + "\nversion: 1.0.0\npublisher: " + key.DID() +
		"\ncontainers:\n  - name: web\n    image: {ref: \"" + ref + "\", archive: image.tar}\n"
	if err := os.WriteFile(filepath.Join(dir, "manifest.yaml"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := registry.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	data, _, err := signLoaded(l, key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := writeSigned(l, "", data); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestInstallFollowsOperation: against a node whose API request timeout
// is one second, `archy app install` outlasts a three-second engine
// stall: it follows the operation's events, prints each progress step
// on its own line (stderr is no terminal) and ends with the result;
// `archy app uninstall --json` prints the events as JSON lines, the last
// one the successful end.
func TestInstallFollowsOperation(t *testing.T) {
	rt := memruntime.New(memruntime.Config{CallTimeout: time.Minute})
	data := twinNode(t, rt, time.Second)
	app := twinAppDir(t, rt, "cliapp")

	rt.Hang()
	resume := time.AfterFunc(3*time.Second, rt.Resume)
	defer resume.Stop()
	began := time.Now()
	stdout, stderr, err := execArchy(t, "app", "install", app, "--data", data)
	if err != nil {
		t.Fatalf("install: %v\n%s", err, stderr)
	}
	if took := time.Since(began); took < 3*time.Second {
		t.Fatalf("install returned after %s, before the engine resumed", took)
	}
	if stdout != "installed cliapp 1.0.0\n" {
		t.Fatalf("install printed %q", stdout)
	}
	for _, want := range []string{"install started\n", "install cliapp: fetch 0% checking ports\n", "install cliapp: load ", "install cliapp: done 100% done\n"} {
		if !strings.Contains(stderr, want) {
			t.Fatalf("install progress lacks %q:\n%s", want, stderr)
		}
	}

	rt.Hang()
	resume = time.AfterFunc(2*time.Second, rt.Resume)
	defer resume.Stop()
	stdout, stderr, err = execArchy(t, "app", "uninstall", "cliapp", "--purge", "--json", "--data", data)
	if err != nil {
		t.Fatalf("uninstall: %v\n%s", err, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	var evs []node.OpEvent
	for _, l := range lines {
		var ev node.OpEvent
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("uninstall --json line %q: %v", l, err)
		}
		evs = append(evs, ev)
	}
	if len(evs) < 3 || evs[len(evs)-1].Type != node.EventEnd || !evs[len(evs)-1].OK || evs[len(evs)-1].App != "cliapp" {
		t.Fatalf("uninstall --json events:\n%s", stdout)
	}
	for i := 1; i < len(evs); i++ {
		if evs[i].Seq <= evs[i-1].Seq {
			t.Fatalf("events out of order:\n%s", stdout)
		}
	}
	// A failing operation says why.
	_, _, err = execArchy(t, "app", "uninstall", "cliapp", "--data", data)
	if err == nil || !strings.Contains(err.Error(), "not installed") {
		t.Fatalf("uninstall of an app not installed: %v", err)
	}
}

// cutProxy relays TCP connections to a node's API and cuts, once, the
// connection that carries the first event of a stream to the client;
// it notes whether a later request resumed with Last-Event-ID.
type cutProxy struct {
	ln      net.Listener
	target  string
	cut     atomic.Bool
	resumed atomic.Bool
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   []net.Conn
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			p.conns = append(p.conns, c)
			p.mu.Unlock()
			p.wg.Add(1)
			go func() { defer p.wg.Done(); p.relay(c) }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns { // idle keep-alive connections too
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *cutProxy) relay(c net.Conn) {
	defer c.Close()
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer s.Close()
	go func() {
		buf := make([]byte, 32<<10)
		for {
			k, err := c.Read(buf)
			if k > 0 {
				if p.cut.Load() && bytes.Contains(bytes.ToLower(buf[:k]), []byte("last-event-id:")) {
					p.resumed.Store(true)
				}
				if _, werr := s.Write(buf[:k]); werr != nil {
					return
				}
			}
			if err != nil {
				s.Close()
				return
			}
		}
	}()
	buf := make([]byte, 32<<10)
	for {
		k, err := s.Read(buf)
		if k > 0 {
			if _, werr := c.Write(buf[:k]); werr != nil {
				return
			}
			if bytes.Contains(buf[:k], []byte("event: progress")) && p.cut.CompareAndSwap(false, true) {
				return // the client loses the connection mid-stream
			}
		}
		if err != nil {
			return
		}
	}
}

// TestInstallSurvivesLostStream: the connection carrying an install's
// event stream breaks after the first event; `archy app install` opens
// the stream again from the last event it saw and reports the install's
// success.
func TestInstallSurvivesLostStream(t *testing.T) {
	rt := memruntime.New(memruntime.Config{CallTimeout: time.Minute})
	data := twinNode(t, rt, time.Second)
	app := twinAppDir(t, rt, "cutapp")
	b, err := os.ReadFile(filepath.Join(data, "api.addr"))
	if err != nil {
		t.Fatal(err)
	}
	p := newCutProxy(t, strings.TrimPrefix(strings.TrimSpace(string(b)), "http://"))
	if err := os.WriteFile(filepath.Join(data, "api.addr"), []byte("http://"+p.ln.Addr().String()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rt.Hang()
	resume := time.AfterFunc(2*time.Second, rt.Resume)
	defer resume.Stop()
	stdout, stderr, err := execArchy(t, "app", "install", app, "--data", data)
	if err != nil {
		t.Fatalf("install: %v\n%s", err, stderr)
	}
	if stdout != "installed cutapp 1.0.0\n" || !p.cut.Load() || !p.resumed.Load() {
		t.Fatalf("install printed %q; stream cut %v, resumed with Last-Event-ID %v\n%s", stdout, p.cut.Load(), p.resumed.Load(), stderr)
	}
	if strings.Count(stderr, "install started\n") != 1 {
		t.Fatalf("events repeated after the reconnect:\n%s", stderr)
	}
}
