package podman_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/archy-node/archy/internal/podmantest"
	"github.com/archy-node/archy/orchestrator"
	"github.com/archy-node/archy/orchestrator/podman"
	"github.com/archy-node/archy/orchestrator/runtimetest"
)

func TestMain(m *testing.M) { podmantest.Main(m) }

func connect(t *testing.T, cfg podman.Config) *podman.Podman {
	t.Helper()
	if cfg.Socket == "" {
		cfg.Socket = podmantest.Socket(t)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	p, err := podman.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	return p
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func TestConformance(t *testing.T) {
	p := connect(t, podman.Config{})
	runtimetest.Run(t, runtimetest.Harness{
		Runtime: p,
		Crash: func(t *testing.T, c orchestrator.Container) {
			// The tests run as the socket's owner, who owns the
			// container's user namespace: kill -9 works as for a node.
			if err := syscall.Kill(c.PID, syscall.SIGKILL); err != nil {
				t.Fatalf("kill -9 %d (%s): %v", c.PID, c.Name, err)
			}
		},
	})
}

func TestConnectRefusesMissingSocket(t *testing.T) {
	podmantest.Socket(t)
	start := time.Now()
	_, err := podman.New(context.Background(), podman.Config{Socket: "unix://" + filepath.Join(t.TempDir(), "none.sock"), ReadTimeout: 2 * time.Second})
	if err == nil {
		t.Fatal("connect to a missing socket: no error")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("connect to a missing socket took %s", d)
	}
}

// An image built by ociimage loads through the API and serves HTTP from a
// port published on 127.0.0.1 (rootless: slirp4netns and rootlessport).
func TestLoadedImageServesHTTP(t *testing.T) {
	p := connect(t, podman.Config{})
	ctx := context.Background()
	run := fmt.Sprintf("h%d", time.Now().UnixNano())
	ref := "localhost/archytest-httpd:" + run
	archive := podmantest.BusyboxImage(t, ref, "hello "+run)
	st, _ := os.Stat(archive)
	t0 := time.Now()
	names, err := p.LoadImage(ctx, archive)
	tLoad := time.Since(t0)
	if err != nil || len(names) != 1 || names[0] != ref {
		t.Fatalf("load: %v %v; want [%s]", names, err, ref)
	}
	t.Cleanup(func() { p.RemoveImage(context.Background(), ref) })
	port := runtimetest.FreePort(t)
	name := "archytest-httpd-" + run
	t1 := time.Now()
	_, err = p.CreateContainer(ctx, orchestrator.ContainerSpec{
		Name:    name,
		Image:   ref,
		Command: []string{"httpd", "-f", "-v", "-p", "8080", "-h", "/www"},
		Labels:  map[string]string{"io.archy.test": run},
		Ports:   []orchestrator.Port{{HostPort: port, ContainerPort: 8080}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Remove(context.Background(), name) })
	t2 := time.Now()
	if err := p.Start(ctx, name); err != nil {
		t.Fatal(err)
	}
	t3 := time.Now()
	body := waitHTTP(t, p, name, fmt.Sprintf("http://127.0.0.1:%d/index.html", port))
	t.Logf("load %d-byte archive %s, create (with re-inspect) %s, start %s, first HTTP answer from the host %s after start",
		st.Size(), tLoad.Round(time.Millisecond), t2.Sub(t1).Round(time.Millisecond), t3.Sub(t2).Round(time.Millisecond), time.Since(t3).Round(time.Millisecond))
	if body != "hello "+run {
		t.Fatalf("GET: %q, want %q", body, "hello "+run)
	}
}

// waitHTTP polls url until it answers: nothing in Podman signals that a
// process inside has begun to listen. Exec probes decide; bounded to 30 s.
func waitHTTP(t *testing.T, p *podman.Podman, name, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		// An exec probe inside the container first: it returns once wget
		// has had its answer, so this loop waits on the server, not a timer.
		r, err := p.Exec(ctx, name, []string{"wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/index.html"})
		if err == nil && r.ExitCode == 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("httpd in %s never answered: %v %+v", name, err, r)
		}
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s from the host: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// A data folder made by the node's user is writable by the container's
// root, and what the container writes belongs to the node's user.
func TestDataFolderWritable(t *testing.T) {
	p := connect(t, podman.Config{})
	ctx := context.Background()
	run := fmt.Sprintf("d%d", time.Now().UnixNano())
	ref := "localhost/archytest-data:" + run
	if _, err := p.LoadImage(ctx, podmantest.BusyboxImage(t, ref, run)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.RemoveImage(context.Background(), ref) })
	data := t.TempDir()
	name := "archytest-data-" + run
	if _, err := p.CreateContainer(ctx, orchestrator.ContainerSpec{
		Name: name, Image: ref, Command: []string{"sleep", "3600"},
		Mounts: []orchestrator.Mount{{Source: data, Target: "/data"}},
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Remove(context.Background(), name) })
	if err := p.Start(ctx, name); err != nil {
		t.Fatal(err)
	}
	r, err := p.Exec(ctx, name, []string{"sh", "-c", "echo kept > /data/file && id -u"})
	if err != nil || r.ExitCode != 0 {
		t.Fatalf("write into the data folder: %+v %v", r, err)
	}
	b, err := os.ReadFile(filepath.Join(data, "file"))
	if err != nil || string(b) != "kept\n" {
		t.Fatalf("file written by the container: %q %v", b, err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(data, "file"), &st); err != nil {
		t.Fatal(err)
	}
	if int(st.Uid) != os.Getuid() {
		t.Fatalf("file owner %d, want the node's user %d (container root maps to it)", st.Uid, os.Getuid())
	}
}

// A hung Podman (its service SIGSTOPped mid-call) turns the call in flight
// and every new call into ErrTimeout within its deadline; after SIGCONT the
// same runtime works again. The test starts a Podman service of its own,
// with its own storage, so that stopping it stalls no other test.
func TestHungServiceTimesOut(t *testing.T) {
	podmantest.Socket(t)
	svc := podmantest.PrivateService(t, "debug")
	const read = 2 * time.Second
	p := connect(t, podman.Config{Socket: svc.URL, ReadTimeout: read, StopMargin: 2 * time.Second})
	ctx := context.Background()
	run := fmt.Sprintf("f%d", time.Now().UnixNano())
	ref := "localhost/archytest-fault:" + run
	if _, err := p.LoadImage(ctx, podmantest.BusyboxImage(t, ref, "")); err != nil {
		t.Fatal(err)
	}
	name := "archytest-fault-" + run
	// sleep as PID 1 ignores SIGTERM: a stop waits its whole timeout.
	if _, err := p.CreateContainer(ctx, orchestrator.ContainerSpec{Name: name, Image: ref, Command: []string{"sleep", "3600"}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Remove(context.Background(), name) })
	if err := p.Start(ctx, name); err != nil {
		t.Fatal(err)
	}

	// A stop with a 3 s timeout is in flight (Podman is waiting for the
	// process) when the service is frozen.
	svc.Drain()
	stopErr := make(chan error, 1)
	stopStart := time.Now()
	go func() { stopErr <- p.Stop(ctx, name, 3*time.Second) }()
	// Podman has sent SIGTERM and waits for the process: mid-call.
	svc.WaitLogged(t, "Sending signal 15 to container")
	svc.Signal(t, syscall.SIGSTOP)
	resumed := false
	defer func() {
		if !resumed {
			svc.Signal(t, syscall.SIGCONT)
		}
	}()

	start := time.Now()
	_, err := p.Inspect(ctx, name)
	took := time.Since(start)
	if !errors.Is(err, orchestrator.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("inspect on a stopped service: %v, want ErrTimeout", err)
	}
	// The deadline, and some slack for a loaded machine.
	if took < read || took > read+2*time.Second {
		t.Fatalf("inspect on a stopped service returned after %s, want about %s", took, read)
	}
	t.Logf("inspect on a SIGSTOPped service: %v after %s", err, took.Round(time.Millisecond))

	err = <-stopErr
	stopTook := time.Since(stopStart)
	if !errors.Is(err, orchestrator.ErrTimeout) {
		t.Fatalf("stop in flight when the service froze: %v, want ErrTimeout", err)
	}
	if stopTook > 3*time.Second+2*time.Second+2*time.Second {
		t.Fatalf("stop returned after %s, want its timeout + margin (5 s)", stopTook)
	}
	t.Logf("stop in flight on a SIGSTOPped service: %v after %s", err, stopTook.Round(time.Millisecond))

	svc.Signal(t, syscall.SIGCONT)
	resumed = true
	if _, err := p.Info(ctx); err != nil {
		t.Fatalf("info after SIGCONT: %v", err)
	}
	c, err := p.Inspect(ctx, name)
	if err != nil {
		t.Fatalf("inspect after SIGCONT: %v", err)
	}
	t.Logf("after SIGCONT: %s is %s", c.Name, c.State)
	if err := p.Remove(ctx, name); err != nil {
		t.Fatalf("remove after SIGCONT: %v", err)
	}
}
