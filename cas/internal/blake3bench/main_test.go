package main

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestRunPrintsFigures runs a tiny measurement and checks the lines
// `make bench` relies on: every figure present once, each a positive number.
func TestRunPrintsFigures(t *testing.T) {
	var out, log bytes.Buffer
	if err := run(&out, &log, 1<<20, 1, time.Millisecond, true); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"blake3-lukechampine-gibps", "blake3-zeebo-gibps", "memcpy-gibps", "blake3-cas-gibps",
		"blake3-vs-memcpy", "blake3-lukechampine-1cpu-gibps", "blake3-zeebo-1cpu-gibps",
		"blake3-zeebo-gib-per-cpu-s",
	}
	got := make(map[string]float64)
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || f[0] != "figure" {
			t.Fatalf("line %q is not `figure <name> <value>`", line)
		}
		v, err := strconv.ParseFloat(f[2], 64)
		if err != nil || v <= 0 {
			t.Errorf("figure %s = %q, want a positive number", f[1], f[2])
		}
		if _, dup := got[f[1]]; dup {
			t.Errorf("figure %s printed twice", f[1])
		}
		got[f[1]] = v
	}
	for _, name := range want {
		if _, ok := got[name]; !ok {
			t.Errorf("figure %s missing from:\n%s", name, out.String())
		}
	}
	if !strings.Contains(log.String(), "faster") {
		t.Errorf("summary line missing: %q", log.String())
	}
	for _, bad := range [][3]int{{0, 1, 1}, {1, 0, 1}, {1, 1, 0}} {
		if err := run(&out, &log, bad[0], bad[1], time.Duration(bad[2]), false); err == nil {
			t.Errorf("run(%v) accepted a non-positive setting", bad)
		}
	}
}
