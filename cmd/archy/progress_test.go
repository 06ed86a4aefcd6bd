package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/archy-node/archy/node"
)

// On a terminal the work is a bar; elsewhere plain lines, each once; with
// --json, one JSON event per line.
func TestProgressShapes(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent()) // no bar leaves a goroutine behind
	fetch := node.OpEvent{Type: node.EventProgress, Op: "install", App: "hello", Stage: "fetch", Fraction: 0.5, Message: "image of web"}

	var term bytes.Buffer
	p := &progress{err: &term, tty: true}
	p.event(fetch)
	p.bytes("download", 512<<10, 1<<20)
	p.bytes("upload", 3<<20, -1) // size unknown: a spinner, moved by the work alone
	p.finish()
	if s := term.String(); !strings.Contains(s, "50%") || !strings.Contains(s, "install hello: fetch image of web") ||
		!strings.Contains(s, "download") || !strings.Contains(s, "upload") || !strings.Contains(s, "\r") {
		t.Fatalf("terminal output has no bar:\n%q", s)
	}

	var plain bytes.Buffer
	p = &progress{err: &plain}
	p.event(fetch)
	p.event(fetch)
	for done := int64(0); done <= 100; done += 5 {
		p.bytes("download", done, 100)
	}
	p.event(node.OpEvent{Type: node.EventEnd, OK: true})
	lines := strings.Split(strings.TrimSpace(plain.String()), "\n")
	if lines[0] != "install hello: fetch 50% image of web" || len(lines) != 12 || lines[11] != "download 100%" || strings.Contains(plain.String(), "\r") {
		t.Fatalf("plain lines:\n%s", plain.String())
	}

	var out bytes.Buffer
	p = &progress{out: &out, json: true}
	p.event(fetch)
	p.bytes("upload", 1, 2)
	p.bytes("upload", 1, 2)
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var ev node.OpEvent
		if err := json.Unmarshal([]byte(l), &ev); err != nil || ev.Type != node.EventProgress {
			t.Fatalf("json line %q: %v", l, err)
		}
	}
	if n := strings.Count(out.String(), "\n"); n != 2 {
		t.Fatalf("%d JSON lines, want 2 (a repeated percent is not printed again):\n%s", n, out.String())
	}
}
