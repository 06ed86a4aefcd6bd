package podmantest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"
)

// TestWaitLoggedAfterABurst: the line a test waits for comes after a
// burst of debug lines nobody read yet (Podman at --log-level debug
// writes thousands while a test sets up); WaitLogged must still find it,
// each line at most once, in order.
func TestWaitLoggedAfterABurst(t *testing.T) {
	r, w := io.Pipe()
	s, copied := follow(r, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fmt.Fprintln(w, "Sending signal 15 to container old")
	if err := s.waitLogged(ctx, "container old"); err != nil {
		t.Fatal(err)
	}
	for i := range 20000 {
		fmt.Fprintf(w, "level=debug msg=\"request %d\"\n", i)
	}
	fmt.Fprintln(w, "Sending signal 15 to container new")
	fmt.Fprintln(w, "level=debug msg=\"after\"")
	// The old line was consumed by the first wait: this finds the new one.
	if err := s.waitLogged(ctx, "Sending signal 15 to container"); err != nil {
		t.Fatal(err)
	}
	if err := s.waitLogged(ctx, `msg="after"`); err != nil {
		t.Fatal(err)
	}
	w.Close()
	<-copied
	if err := s.waitLogged(ctx, `msg="request 5"`); err == nil {
		t.Fatal("found a line again that an earlier wait had passed")
	}
}

// TestWaitLoggedEnded: when the service's log ends (it exited) without
// the line, WaitLogged fails at once rather than at its timeout.
func TestWaitLoggedEnded(t *testing.T) {
	r, w := io.Pipe()
	s, copied := follow(r, t.TempDir())
	fmt.Fprintln(w, "Error: something went wrong")
	w.Close()
	<-copied
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := s.waitLogged(ctx, "API service listening")
	if err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait on an ended log: %v, want an error before the deadline", err)
	}
}
