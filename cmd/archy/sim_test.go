package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSimForwards builds archy-sim and checks that archy sim runs it with
// its arguments and output, and that a failure there fails archy sim.
func TestSimForwards(t *testing.T) {
	bin := filepath.Join(t.TempDir(), simBinary)
	if out, err := exec.Command("go", "build", "-o", bin, "../archy-sim").CombinedOutput(); err != nil {
		t.Fatalf("build archy-sim: %v\n%s", err, out)
	}
	t.Setenv("ARCHY_SIM", bin)
	out := t.TempDir()
	var stdout bytes.Buffer
	if err := run(context.Background(), []string{"sim", "run", "flash-crowd", "--out", out, "--nodes", "8", "--seeds", "1", "--sizes", "none"}, &stdout, &stdout); err != nil {
		t.Fatalf("archy sim run: %v\n%s", err, stdout.String())
	}
	if !strings.Contains(stdout.String(), "index.html") {
		t.Errorf("output does not name the page:\n%s", stdout.String())
	}
	if _, err := os.Stat(filepath.Join(out, "report.json")); err != nil {
		t.Errorf("no report written: %v", err)
	}
	stdout.Reset()
	if err := run(context.Background(), []string{"sim", "run", "no-such-scenario", "--out", out}, &stdout, &stdout); err == nil {
		t.Errorf("archy sim run of an unknown scenario succeeded:\n%s", stdout.String())
	} else if !strings.Contains(stdout.String(), "no-such-scenario") {
		t.Errorf("archy-sim's reason did not reach the output: %q", stdout.String())
	}
}

func TestSimWithoutBinary(t *testing.T) {
	t.Setenv("ARCHY_SIM", "")
	t.Setenv("PATH", t.TempDir())
	var out bytes.Buffer
	err := run(context.Background(), []string{"sim", "run", "flash-crowd"}, &out, &out)
	if err == nil || !strings.Contains(err.Error(), simBinary) {
		t.Errorf("archy sim with no archy-sim: %v, want an error naming %s", err, simBinary)
	}
}
