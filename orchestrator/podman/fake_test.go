package podman

import (
	"context"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/archy-node/archy/orchestrator"
)

// fakeService serves h on a unix socket and returns its URL.
func fakeService(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "podman.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return "unix://" + sock
}

func pingHandler(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/libpod/_ping":
			w.Header().Set("Libpod-API-Version", "4.3.1")
			w.Write([]byte("OK"))
		case strings.HasSuffix(r.URL.Path, "/info"):
			w.Write([]byte(`{"host":{"cgroupVersion":"v2","security":{"rootless":true}},"version":{"Version":"4.3.1"}}`))
		default:
			next(w, r)
		}
	}
}

// A service that answers an error with a huge body: the error keeps
// Podman's message (or the body's start), read to a bound.
func TestErrorBodyBounded(t *testing.T) {
	huge := strings.Repeat("x", 4<<20)
	sock := fakeService(t, pingHandler(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.Contains(r.URL.Path, "/containers/archy-a/start"):
			w.WriteHeader(http.StatusInternalServerError)
			w.Write([]byte(`{"cause":"x","message":"crun: something broke","response":500}`))
		default:
			w.WriteHeader(http.StatusInternalServerError)
			w.Write([]byte(huge))
		}
	}))
	p, err := New(context.Background(), Config{Socket: sock})
	if err != nil {
		t.Fatal(err)
	}
	if p.info.Version != "4.3.1" || !p.info.ResourceLimits || !p.info.Rootless {
		t.Fatalf("info %+v", p.info)
	}
	err = p.Start(context.Background(), "archy-a")
	if err == nil || err.Error() != "start container archy-a: crun: something broke" {
		t.Fatalf("start: %v; want the container named with Podman's message", err)
	}
	_, err = p.Inspect(context.Background(), "archy-b")
	if err == nil || !strings.Contains(err.Error(), "inspect container archy-b") || !strings.Contains(err.Error(), "500") {
		t.Fatalf("inspect: %.300v", err)
	}
	if len(err.Error()) > maxErrorBody+200 {
		t.Fatalf("inspect: error of %d bytes, want at most about %d", len(err.Error()), maxErrorBody)
	}
}

// A socket that is not Podman's (no Libpod-API-Version) or an old Podman
// is refused at connect.
func TestConnectChecksVersion(t *testing.T) {
	notPodman := fakeService(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("OK")) })
	if _, err := New(context.Background(), Config{Socket: notPodman}); err == nil || !strings.Contains(err.Error(), "Libpod-API-Version") {
		t.Fatalf("connect to a service that is not Podman: %v", err)
	}
	old := fakeService(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Libpod-API-Version", "4.2.0")
		w.Write([]byte("OK"))
	})
	if _, err := New(context.Background(), Config{Socket: old}); !errors.Is(err, orchestrator.ErrEngineTooOld) {
		t.Fatalf("connect to Podman 4.2: %v, want ErrEngineTooOld", err)
	}
}

// The event stream's set-up is bounded by ReadTimeout: a service that
// never sends the answer's headers turns into ErrTimeout.
func TestEventsSetupTimesOut(t *testing.T) {
	release := make(chan struct{})
	sock := fakeService(t, pingHandler(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer close(release)
	p, err := New(context.Background(), Config{Socket: sock, ReadTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = p.Events(context.Background(), make(chan orchestrator.Event, 1))
	if !errors.Is(err, orchestrator.ErrTimeout) || time.Since(start) > 3*time.Second {
		t.Fatalf("events on a silent service: %v after %s", err, time.Since(start))
	}
}
