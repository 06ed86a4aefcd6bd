package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestRunSmall runs the benchmark small and checks it prints the three
// figures, ordered as percentiles must be, and stops everything it started.
func TestRunSmall(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out, log bytes.Buffer
	dir := t.TempDir()
	if err := run(ctx, &out, &log, config{releases: 10, nodes: 2, interval: time.Millisecond, dir: dir}); err != nil {
		t.Fatal(err)
	}
	// The parts measured are the ones a node runs on disk: the relay's
	// event log holds the releases, each node's store its journal.
	checkOnDisk(t, filepath.Join(dir, "relay", "events.log"), 20*1000)
	for _, n := range []string{"node0", "node1"} {
		checkOnDisk(t, filepath.Join(dir, n, "discovery", "discovered.journal"), 1000)
	}
	var p50, p99, pmax float64
	n, err := fmt.Sscanf(out.String(), "figure discover-p50-ms %g\nfigure discover-p99-ms %g\nfigure discover-max-ms %g\n", &p50, &p99, &pmax)
	if err != nil || n != 3 {
		t.Fatalf("output %q: %v", out.String(), err)
	}
	if !(0 < p50 && p50 <= p99 && p99 <= pmax) {
		t.Fatalf("p50 %v, p99 %v, max %v", p50, p99, pmax)
	}
	if !strings.Contains(log.String(), "20 samples") {
		t.Fatalf("log: %s", log.String())
	}
}

func TestPercentile(t *testing.T) {
	s := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for _, tt := range []struct{ q, want float64 }{{0.5, 5}, {0.99, 10}, {0.1, 1}, {0, 1}, {1, 10}} {
		t.Run(fmt.Sprint(tt.q), func(t *testing.T) {
			if got := percentile(s, tt.q); got != tt.want {
				t.Fatalf("percentile(%v) = %v, want %v", tt.q, got, tt.want)
			}
		})
	}
}

// TestFloodSmall runs the flood small and checks it prints its three
// figures, with the store on disk, and stops everything it started.
func TestFloodSmall(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out, log bytes.Buffer
	dir := t.TempDir()
	if err := flood(ctx, &out, &log, floodConfig{dids: 3, apps: 2, versions: 3, dir: dir}); err != nil {
		t.Fatal(err)
	}
	checkOnDisk(t, filepath.Join(dir, "relay", "events.log"), 24*1000)
	var secs, mib, heap float64
	n, err := fmt.Sscanf(out.String(), "figure discovery-flood-s %g\nfigure discovery-flood-mib %g\nfigure discovery-flood-heap-mib %g\n", &secs, &mib, &heap)
	if err != nil || n != 3 {
		t.Fatalf("output %q: %v", out.String(), err)
	}
	if secs <= 0 || mib <= 0 || heap < 0 {
		t.Fatalf("s %v, MiB %v, heap MiB %v\n%s", secs, mib, heap, log.String())
	}
	if !strings.Contains(log.String(), "flood of 24 events") || !strings.Contains(log.String(), "24 events kept") {
		t.Fatalf("log: %s", log.String())
	}
}

// checkOnDisk fails t unless path is a file of at least min bytes.
func checkOnDisk(t *testing.T, path string, min int64) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("not on disk: %v", err)
	}
	if fi.Size() < min {
		t.Fatalf("%s: %d bytes, want at least %d", path, fi.Size(), min)
	}
}

// TestBehindJunkSmall runs the junk measure small and checks it prints its
// figure, the node having dropped every junk event before the release.
func TestBehindJunkSmall(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out, log bytes.Buffer
	if err := behindJunk(ctx, &out, &log, junkConfig{events: 200, dir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	var ms float64
	if n, err := fmt.Sscanf(out.String(), "figure discover-behind-junk-ms %g\n", &ms); err != nil || n != 1 || ms <= 0 {
		t.Fatalf("output %q: %v", out.String(), err)
	}
	// The junk and the warm-up events (also junk) were all dropped before
	// the release was taken: it waited behind them.
	var dropped int
	if i := strings.Index(log.String(), "dropped "); i < 0 {
		t.Fatalf("log: %s", log.String())
	} else if _, err := fmt.Sscanf(log.String()[i:], "dropped %d", &dropped); err != nil || dropped < 200 {
		t.Fatalf("log: %s (%v)", log.String(), err)
	}
}
