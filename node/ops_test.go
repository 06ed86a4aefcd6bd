package node

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/archy-node/archy/cas"
	"github.com/archy-node/archy/did"
	"github.com/archy-node/archy/internal/ociimage"
	"github.com/archy-node/archy/orchestrator"
	"github.com/archy-node/archy/orchestrator/memruntime"
	"github.com/archy-node/archy/p2p"
	"github.com/archy-node/archy/registry"
)

// twinApp signs a one-container app whose image archive is built here,
// pinned by its CID and digest, and present in the twin engine (which
// cannot look images up by digest after a load).
func twinApp(t *testing.T, rt *memruntime.Runtime, id string) ([]byte, string) {
	t.Helper()
	ref := "localhost/archy-test/" + id + ":1"
	archive := filepath.Join(t.TempDir(), "image.tar")
	if _, err := ociimage.Build(t.Context(), t.TempDir(), archive, ref); err != nil {
		t.Fatal(err)
	}
	sum, err := registry.ReadOCIArchive(archive)
	if err != nil {
		t.Fatal(err)
	}
	rt.LoadImageNames(ref, strings.TrimSuffix(ref, ":1")+"@"+sum.Digest)
	key, err := did.Generate()
	if err != nil {
		t.Fatal(err)
	}
	m := &registry.Manifest{Schema: registry.Schema, ID: id, Name: id, Version: "1.0.0", Publisher: key.DID(),
		Containers: []registry.Container{{Name: "web", Image: registry.Image{Ref: ref, CID: sum.CID.String(), Digest: sum.Digest}}}}
	env, _, err := registry.Sign(m, key)
	if err != nil {
		t.Fatal(err)
	}
	envJSON, _ := env.Marshal()
	return envJSON, archive
}

// sseEvent is one Server-Sent Event as a client reads it.
type sseEvent struct {
	id, typ string
	ev      OpEvent
}

// readSSE reads events from an event stream until it ends, calling
// each; each returns false to stop reading.
func readSSE(t *testing.T, body io.Reader, each func(sseEvent) bool) error {
	t.Helper()
	sc := bufio.NewScanner(body)
	var cur sseEvent
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur.typ == "" {
				continue
			}
			if !each(cur) {
				return nil
			}
			cur = sseEvent{}
		case strings.HasPrefix(line, "id: "):
			cur.id = line[4:]
		case strings.HasPrefix(line, "event: "):
			cur.typ = line[7:]
		case strings.HasPrefix(line, "data: "):
			if err := json.Unmarshal([]byte(line[6:]), &cur.ev); err != nil {
				return fmt.Errorf("event data %q: %w", line, err)
			}
		}
	}
	return sc.Err()
}

// openEvents opens an operation's event stream, after lastID if set.
func openEvents(t *testing.T, ctx context.Context, n *Node, loc, lastID string) *http.Response {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, n.APIURL()+loc+"/events", nil)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		resp.Body.Close()
		t.Fatalf("events of %s: %s %s", loc, resp.Status, resp.Header.Get("Content-Type"))
	}
	return resp
}

// startOp posts a change and returns the operation's URL (202 Location).
func startOp(t *testing.T, n *Node, method, path string, body any) string {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, n.APIURL()+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+n.Token())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || resp.Header.Get("Location") == "" {
		out, _ := io.ReadAll(resp.Body)
		t.Fatalf("%s %s: %s %s, want 202 with a Location", method, path, resp.Status, out)
	}
	return resp.Header.Get("Location")
}

// TestOperationOutlivesRequestTimeout: with the API's request timeout
// at one second, an install whose engine hangs for three seconds is not
// cut: it answers 202 at once, a client following its event stream the
// whole time sees the progress and the final event, a client that
// disconnected after the first event reconnects (Last-Event-ID) and
// reads the rest, and the status URL keeps the result after the end.
// On a node where the install is one request, the write timeout cuts the
// answer and the client never learns the outcome.
func TestOperationOutlivesRequestTimeout(t *testing.T) {
	const timeout = time.Second
	rt := memruntime.New(memruntime.Config{CallTimeout: time.Minute})
	envJSON, archive := twinApp(t, rt, "slowapp")
	n := runNode(t, Config{DataDir: t.TempDir(), APIListen: "127.0.0.1:0", RelayListen: "127.0.0.1:0",
		Podman: PodmanConfig{Runtime: rt}, API: APIConfig{RequestTimeout: timeout},
		P2P: p2p.Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}}})

	rt.Hang() // the engine stalls: the install cannot progress until Resume
	began := time.Now()
	loc := startOp(t, n, http.MethodPost, "/api/v1/apps", InstallRequest{Envelope: envJSON, Archives: map[string]string{"web": archive}})
	if time.Since(began) > timeout {
		t.Fatalf("the install request took %s: it must answer at once", time.Since(began))
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// A client that reads the first event and goes away.
	resp := openEvents(t, ctx, n, loc, "")
	var firstID string
	if err := readSSE(t, resp.Body, func(e sseEvent) bool { firstID = e.id; return false }); err != nil || firstID == "" {
		t.Fatalf("first event: %q %v", firstID, err)
	}
	resp.Body.Close()

	// A client that follows the stream from the start to the end.
	type result struct {
		evs []sseEvent
		err error
	}
	follower := make(chan result, 1)
	resp = openEvents(t, ctx, n, loc, "")
	go func() {
		defer resp.Body.Close()
		var r result
		r.err = readSSE(t, resp.Body, func(e sseEvent) bool { r.evs = append(r.evs, e); return e.typ != EventEnd })
		follower <- r
	}()

	time.Sleep(3 * timeout)
	rt.Resume()
	var r result
	select {
	case r = <-follower:
	case <-ctx.Done():
		t.Fatal("the follower saw no end")
	}
	if r.err != nil || len(r.evs) < 3 {
		t.Fatalf("follower: %d events, %v", len(r.evs), r.err)
	}
	if took := time.Since(began); took < 3*timeout {
		t.Fatalf("the stream ended after %s: the engine was hung for %s", took, 3*timeout)
	}
	end := r.evs[len(r.evs)-1]
	if end.typ != EventEnd || !end.ev.OK || end.ev.Error != "" || end.ev.App != "slowapp" {
		t.Fatalf("final event: %+v", end)
	}
	stages := map[string]bool{}
	for _, e := range r.evs {
		stages[e.ev.Stage] = true
	}
	if !stages[string(orchestrator.StageLoad)] || !stages[string(orchestrator.StageDone)] {
		t.Fatalf("progress stages %v: want load and done among them", stages)
	}

	// The client that went away comes back and reads the rest.
	resp = openEvents(t, ctx, n, loc, firstID)
	var rest []sseEvent
	err := readSSE(t, resp.Body, func(e sseEvent) bool { rest = append(rest, e); return true })
	resp.Body.Close()
	if err != nil || len(rest) == 0 || rest[0].id == firstID || rest[len(rest)-1].typ != EventEnd || !rest[len(rest)-1].ev.OK {
		t.Fatalf("after reconnecting: %+v %v", rest, err)
	}
	var st Operation
	get(t, n.APIURL()+loc, &st)
	if st.State != OpSucceeded || st.Kind != "install" || st.App != "slowapp" || st.Last == nil || st.Last.Type != EventEnd {
		t.Fatalf("status: %+v", st)
	}
	var apps []orchestrator.AppStatus
	get(t, n.APIURL()+"/api/v1/apps", &apps)
	if len(apps) != 1 || apps[0].ID != "slowapp" || apps[0].Phase != "running" {
		t.Fatalf("apps after the install: %+v", apps)
	}

	// A failing operation ends with its error and the status it means.
	loc = startOp(t, n, http.MethodPost, "/api/v1/apps", InstallRequest{Envelope: []byte(`{"payload":"bm90IGpzb24="}`)})
	resp = openEvents(t, ctx, n, loc, "")
	var last sseEvent
	err = readSSE(t, resp.Body, func(e sseEvent) bool { last = e; return true })
	resp.Body.Close()
	if err != nil || last.typ != EventEnd || last.ev.OK || last.ev.Code != http.StatusBadRequest || last.ev.Error == "" {
		t.Fatalf("bad install's final event: %+v %v", last, err)
	}
	get(t, n.APIURL()+loc, &st)
	if st.State != OpFailed {
		t.Fatalf("bad install's status: %+v", st)
	}
	// An operation nobody started is not found.
	if resp, err := http.Get(n.APIURL() + "/api/v1/operations/nosuchop/events"); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown operation: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
}

// trickle is an upload body that sends a chunk every gap, until stop
// is closed.
type trickle struct {
	left, chunk int
	gap         time.Duration
	sent        bool
	stop        chan struct{}
}

func (r *trickle) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	if r.sent {
		select {
		case <-time.After(r.gap):
		case <-r.stop:
			return 0, io.ErrUnexpectedEOF
		}
	}
	r.sent = true
	k := min(len(p), r.chunk, r.left)
	for i := range p[:k] {
		p[i] = byte(r.left - i)
	}
	r.left -= k
	return k, nil
}

// TestSlowUploadOutlivesRequestTimeout: with the API's request timeout
// at one second, a blob upload that takes three seconds but never stalls
// for a second is kept whole and answered; one that stalls is cut.
func TestSlowUploadOutlivesRequestTimeout(t *testing.T) {
	n := runNode(t, Config{DataDir: t.TempDir(), APIListen: "127.0.0.1:0", RelayListen: "127.0.0.1:0",
		Podman: PodmanConfig{Off: true}, API: APIConfig{RequestTimeout: time.Second},
		P2P: p2p.Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}}})
	const size, chunk = 12 * 32 << 10, 32 << 10
	var want bytes.Buffer
	if _, err := io.Copy(&want, &trickle{left: size, chunk: chunk}); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, n.APIURL()+"/api/v1/blobs", &trickle{left: size, chunk: chunk, gap: 250 * time.Millisecond})
	req.Header.Set("Authorization", "Bearer "+n.Token())
	began := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("upload cut after %s: %v", time.Since(began), err)
	}
	defer resp.Body.Close()
	var res struct{ Sum string }
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("upload: %s %v", resp.Status, err)
	}
	if took := time.Since(began); took < 2*time.Second {
		t.Fatalf("the upload took %s: it was meant to outlast the timeout", took)
	}
	if res.Sum != cas.Sum(want.Bytes()).String() {
		t.Fatalf("the node kept %s, the upload was %s", res.Sum, cas.Sum(want.Bytes()))
	}
	// A stalled upload still ends.
	stop := make(chan struct{})
	defer close(stop)
	req, _ = http.NewRequest(http.MethodPost, n.APIURL()+"/api/v1/blobs", &trickle{left: 3 * chunk, chunk: chunk, gap: 2 * time.Second, stop: stop})
	req.Header.Set("Authorization", "Bearer "+n.Token())
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("an upload stalled for twice the timeout was kept")
		}
	}
}

// TestOpTableKeepsEndedOpsForTTL: an ended operation stays readable for
// the TTL, then goes; at most maxEndedOps ended ones are kept (the
// oldest go first), at most maxRunningOps run at once, and an operation
// keeps at most maxOpEvents events, the end event last.
func TestOpTableKeepsEndedOpsForTTL(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	tab := newOpTable(time.Minute, func() time.Time { return now })
	o, err := tab.start("install", "a")
	if err != nil {
		t.Fatal(err)
	}
	for range maxOpEvents + 10 {
		tab.emit(o, OpEvent{Type: EventProgress})
	}
	tab.emit(o, OpEvent{Type: EventEnd, OK: true})
	tab.emit(o, OpEvent{Type: EventProgress}) // after the end: dropped
	evs, ended, _ := tab.since(o, 0)
	if !ended || len(evs) != maxOpEvents || evs[len(evs)-1].Type != EventEnd || evs[len(evs)-1].Seq != maxOpEvents+11 {
		t.Fatalf("%d events kept, ended %v, last %+v", len(evs), ended, evs[len(evs)-1])
	}
	now = now.Add(59 * time.Second)
	if tab.get(o.id) == nil || tab.status(o).State != OpSucceeded {
		t.Fatal("an operation that ended 59 s ago is gone")
	}
	now = now.Add(2 * time.Second)
	if tab.get(o.id) != nil {
		t.Fatal("an operation that ended past the TTL is kept")
	}

	var first *op
	for i := range maxEndedOps + 5 {
		o, err := tab.start("stop", "a")
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = o
		}
		tab.emit(o, OpEvent{Type: EventEnd})
		now = now.Add(time.Millisecond)
	}
	tab.get("")
	if len(tab.ops) != maxEndedOps || tab.ops[first.id] != nil {
		t.Fatalf("%d ended operations kept (at most %d), the oldest kept: %v", len(tab.ops), maxEndedOps, tab.ops[first.id] != nil)
	}
	for range maxRunningOps {
		if _, err := tab.start("start", "b"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tab.start("start", "b"); !errors.Is(err, ErrTooManyOps) {
		t.Fatalf("operation beyond %d running: %v", maxRunningOps, err)
	}
}
