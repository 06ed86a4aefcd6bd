// Package runtimetest is the conformance suite every orchestrator.Runtime
// passes: the Podman runtime against a real rootless Podman, and the
// in-memory twin. What the reconciler may rely on is what this suite checks.
package runtimetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/archy-node/archy/internal/podmantest"
	"github.com/archy-node/archy/orchestrator"
	"github.com/archy-node/archy/registry"
)

// Harness is what the suite needs besides the Runtime.
type Harness struct {
	Runtime orchestrator.Runtime
	// Crash kills a running container as `kill -9` would (exit code 137).
	Crash func(t *testing.T, c orchestrator.Container)
}

// FreePort returns a port on 127.0.0.1 that nothing listened on a moment ago.
func FreePort(t *testing.T) uint16 {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port)
}

// Run runs the suite. Every container and network it makes carries a
// label unique to this run and is removed at the end.
func Run(t *testing.T, h Harness) {
	rt := h.Runtime
	run := randomID()
	ctx := context.Background()
	labels := func(extra ...string) map[string]string {
		l := map[string]string{"io.archy.test": run}
		for i := 0; i+1 < len(extra); i += 2 {
			l[extra[i]] = extra[i+1]
		}
		return l
	}
	name := func(s string) string { return "archytest-" + run + "-" + s }
	image := "localhost/archytest-busybox:" + run
	t.Cleanup(func() {
		cs, _ := rt.List(ctx, labels())
		for _, c := range cs {
			_ = rt.Remove(ctx, c.Name)
		}
		ns, _ := rt.ListNetworks(ctx, labels())
		for _, n := range ns {
			_ = rt.RemoveNetwork(ctx, n.Name)
		}
		if err := rt.RemoveImage(ctx, image); err != nil {
			t.Errorf("remove the suite's image after its containers: %v", err)
		}
	})

	archive := podmantest.BusyboxImage(t, image, "hello from "+run)
	names, err := rt.LoadImage(ctx, archive)
	if err != nil {
		t.Fatalf("load image: %v", err)
	}
	if !slices.Contains(names, image) {
		t.Fatalf("load image: names %v, want %s among them", names, image)
	}
	sleeper := func(n string, extra ...string) orchestrator.ContainerSpec {
		return orchestrator.ContainerSpec{Name: name(n), Image: image, Command: []string{"sleep", "3600"}, Labels: labels(extra...)}
	}
	mustCreate := func(t *testing.T, s orchestrator.ContainerSpec) string {
		t.Helper()
		id, err := rt.CreateContainer(ctx, s)
		if err != nil {
			t.Fatalf("create %s: %v", s.Name, err)
		}
		return id
	}
	mustInspect := func(t *testing.T, n string) orchestrator.Container {
		t.Helper()
		c, err := rt.Inspect(ctx, n)
		if err != nil {
			t.Fatalf("inspect %s: %v", n, err)
		}
		return c
	}

	t.Run("Info", func(t *testing.T) {
		info, err := rt.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.Version == "" || info.APIVersion == "" {
			t.Fatalf("info %+v: want version and API version", info)
		}
	})

	t.Run("ImageExists", func(t *testing.T) {
		for ref, want := range map[string]bool{image: true, "localhost/archytest-missing:" + run: false} {
			got, err := rt.ImageExists(ctx, ref)
			if err != nil || got != want {
				t.Errorf("ImageExists(%s) = %v, %v; want %v", ref, got, err, want)
			}
		}
	})

	t.Run("Lifecycle", func(t *testing.T) {
		data := t.TempDir()
		spec := orchestrator.ContainerSpec{
			Name:        name("life"),
			Image:       image,
			Command:     []string{"sleep", "3600"},
			Env:         map[string]string{"ARCHY_TEST": "yes", "EMPTY": ""},
			Labels:      labels("io.archy.app", "life", "io.archy.spec-hash", "abc"),
			Ports:       []orchestrator.Port{{HostPort: FreePort(t), ContainerPort: 8080}},
			Mounts:      []orchestrator.Mount{{Source: data, Target: "/data"}},
			Restart:     orchestrator.RestartPolicy{Name: orchestrator.RestartOnFailure, MaxRetries: 3},
			StopTimeout: 2 * time.Second,
		}
		id := mustCreate(t, spec)
		c := mustInspect(t, spec.Name)
		if c.ID != id || c.Name != spec.Name || c.State != orchestrator.StateCreated || c.PID != 0 {
			t.Fatalf("after create: %+v; want ID %s, state created, no PID", c, id)
		}
		for k, v := range spec.Labels {
			if c.Labels[k] != v {
				t.Errorf("label %s = %q, want %q", k, c.Labels[k], v)
			}
		}
		if _, err := rt.CreateContainer(ctx, spec); !errors.Is(err, orchestrator.ErrNameInUse) {
			t.Fatalf("second create with the same name: %v, want ErrNameInUse", err)
		}

		before := time.Now().Add(-2 * time.Second)
		if err := rt.Start(ctx, spec.Name); err != nil {
			t.Fatalf("start: %v", err)
		}
		c = mustInspect(t, spec.Name)
		if !c.Running() || c.PID <= 0 || c.StartedAt.Before(before) {
			t.Fatalf("after start: %+v; want running with a PID, started after %v", c, before)
		}
		if err := rt.Start(ctx, spec.Name); err != nil {
			t.Fatalf("start a running container: %v, want no error", err)
		}
		if c2 := mustInspect(t, spec.Name); c2.PID != c.PID || !c2.StartedAt.Equal(c.StartedAt) {
			t.Fatalf("start of a running container restarted it: %+v then %+v", c, c2)
		}

		if err := rt.Stop(ctx, spec.Name, 2*time.Second); err != nil {
			t.Fatalf("stop: %v", err)
		}
		c = mustInspect(t, spec.Name)
		if c.Running() || c.PID != 0 || (c.State != orchestrator.StateExited && c.State != orchestrator.StateStopped) {
			t.Fatalf("after stop: %+v; want exited, no PID", c)
		}
		if err := rt.Stop(ctx, spec.Name, time.Second); err != nil {
			t.Fatalf("stop a stopped container: %v, want no error", err)
		}
		if err := rt.Start(ctx, spec.Name); err != nil {
			t.Fatalf("start again: %v", err)
		}
		if c = mustInspect(t, spec.Name); !c.Running() {
			t.Fatalf("after second start: %+v, want running", c)
		}

		if err := rt.Remove(ctx, spec.Name); err != nil {
			t.Fatalf("remove a running container: %v", err)
		}
		if _, err := rt.Inspect(ctx, spec.Name); !errors.Is(err, orchestrator.ErrNotFound) {
			t.Fatalf("inspect after remove: %v, want ErrNotFound", err)
		}
		if err := rt.Remove(ctx, spec.Name); !errors.Is(err, orchestrator.ErrNotFound) {
			t.Fatalf("remove twice: %v, want ErrNotFound", err)
		}
		if _, err := os.Stat(data); err != nil {
			t.Fatalf("data folder after remove: %v, want it kept", err)
		}
	})

	t.Run("ExactNames", func(t *testing.T) {
		mustCreate(t, sleeper("web"))
		mustCreate(t, sleeper("web2"))
		if c := mustInspect(t, name("web")); c.Name != name("web") {
			t.Fatalf("inspect %s gave %s", name("web"), c.Name)
		}
		for _, n := range []string{name("we"), name("web-"), "archytest-" + run} {
			if _, err := rt.Inspect(ctx, n); !errors.Is(err, orchestrator.ErrNotFound) {
				t.Errorf("inspect %s: %v, want ErrNotFound", n, err)
			}
		}
		for _, n := range []string{"", "deadbeef", "a b", "../x", "-x"} {
			if _, err := rt.Inspect(ctx, n); !errors.Is(err, orchestrator.ErrInvalidName) {
				t.Errorf("inspect %q: %v, want ErrInvalidName", n, err)
			}
			s := sleeper("x")
			s.Name = n
			if _, err := rt.CreateContainer(ctx, s); !errors.Is(err, orchestrator.ErrInvalidName) {
				t.Errorf("create %q: %v, want ErrInvalidName", n, err)
			}
		}
	})

	t.Run("ListByLabel", func(t *testing.T) {
		mustCreate(t, sleeper("list-a", "io.archy.app", "a"))
		mustCreate(t, sleeper("list-b", "io.archy.app", "b"))
		mustCreate(t, sleeper("list-ab", "io.archy.app", "ab"))
		got := func(l map[string]string) []string {
			cs, err := rt.List(ctx, l)
			if err != nil {
				t.Fatalf("list %v: %v", l, err)
			}
			var ns []string
			for _, c := range cs {
				if !strings.Contains(c.Name, "-list-") {
					continue
				}
				if c.ID == "" || c.Labels["io.archy.test"] != run {
					t.Errorf("listed %+v: want ID and labels", c)
				}
				ns = append(ns, c.Name)
			}
			slices.Sort(ns)
			return ns
		}
		if g := got(labels("io.archy.app", "a")); !slices.Equal(g, []string{name("list-a")}) {
			t.Errorf("list app=a: %v", g)
		}
		if g := got(labels()); !slices.Equal(g, []string{name("list-a"), name("list-ab"), name("list-b")}) {
			t.Errorf("list run: %v", g)
		}
		if g := got(labels("io.archy.app", "")); len(g) != 0 {
			t.Errorf("list app=\"\": %v, want none", g)
		}
	})

	t.Run("EventsAndCrash", func(t *testing.T) {
		ectx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		events := make(chan orchestrator.Event, 256)
		done := make(chan error, 1)
		go func() { done <- rt.Events(ectx, events) }()
		defer func() {
			cancel()
			if err := <-done; !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("events ended with %v, want the context's error", err)
			}
		}()
		// A container created after the subscription proves it is live:
		// create marker containers until one's event arrives.
		s := sleeper("ev", "io.archy.app", "ev")
		synced := false
		for i := 0; i < 20 && !synced; i++ {
			m := sleeper(fmt.Sprintf("evsync%d", i))
			mustCreate(t, m)
			timeout := time.NewTimer(time.Second)
			for wait := true; wait; {
				select {
				case e := <-events:
					if e.Name == m.Name && e.Action == "create" {
						synced, wait = true, false
					}
				case <-timeout.C:
					wait = false
				}
			}
			timeout.Stop()
		}
		if !synced {
			t.Fatal("no create event for any of 20 containers: the event stream is not live")
		}
		mustCreate(t, s)
		if err := rt.Start(ctx, s.Name); err != nil {
			t.Fatal(err)
		}
		crashed := time.Now()
		h.Crash(t, mustInspect(t, s.Name))
		want := []string{"create", "start", "died"}
		var seen []string
		var exit *int
		for len(seen) < len(want) {
			select {
			case e := <-events:
				if e.Name != s.Name || !slices.Contains(want, e.Action) || slices.Contains(seen, e.Action) {
					continue
				}
				if e.Labels["io.archy.app"] != "ev" || e.Labels["io.archy.test"] != run {
					t.Errorf("event %s: labels %v, want the container's", e.Action, e.Labels)
				}
				if e.Action == "died" {
					exit = e.ExitCode
					t.Logf("kill -9 to died event: %s", time.Since(crashed).Round(time.Millisecond))
				}
				seen = append(seen, e.Action)
			case <-ectx.Done():
				t.Fatalf("events seen %v, want %v", seen, want)
			}
		}
		if !slices.Equal(seen, want) {
			t.Errorf("events %v, want in order %v", seen, want)
		}
		if exit == nil || *exit != 137 {
			t.Errorf("died event exit code %v, want 137", exit)
		}
		c := mustInspect(t, s.Name)
		if c.Running() || c.ExitCode != 137 {
			t.Errorf("after kill -9 (restart policy no): %+v, want exited with 137", c)
		}
	})

	t.Run("Networks", func(t *testing.T) {
		n := orchestrator.Network{Name: name("net"), Labels: labels("io.archy.app", "net")}
		if err := rt.CreateNetwork(ctx, n); err != nil {
			t.Fatalf("create network: %v", err)
		}
		if err := rt.CreateNetwork(ctx, n); !errors.Is(err, orchestrator.ErrNameInUse) {
			t.Fatalf("create network twice: %v, want ErrNameInUse", err)
		}
		ns, err := rt.ListNetworks(ctx, labels("io.archy.app", "net"))
		if err != nil || len(ns) != 1 || ns[0].Name != n.Name || ns[0].ID == "" {
			t.Fatalf("list networks: %+v, %v; want just %s with an ID", ns, err, n.Name)
		}
		s := sleeper("onnet")
		s.Network = n.Name
		s.Aliases = []string{"db"}
		mustCreate(t, s)
		if err := rt.Start(ctx, s.Name); err != nil {
			t.Fatalf("start on network: %v", err)
		}
		if err := rt.RemoveNetwork(ctx, n.Name); !errors.Is(err, orchestrator.ErrInUse) {
			t.Fatalf("remove a network a container uses: %v, want ErrInUse", err)
		}
		if err := rt.Remove(ctx, s.Name); err != nil {
			t.Fatal(err)
		}
		if err := rt.RemoveNetwork(ctx, n.Name); err != nil {
			t.Fatalf("remove network: %v", err)
		}
		if err := rt.RemoveNetwork(ctx, n.Name); !errors.Is(err, orchestrator.ErrNotFound) {
			t.Fatalf("remove network twice: %v, want ErrNotFound", err)
		}
		if ns, err := rt.ListNetworks(ctx, labels("io.archy.app", "net")); err != nil || len(ns) != 0 {
			t.Fatalf("list after remove: %+v, %v", ns, err)
		}
	})

	t.Run("Exec", func(t *testing.T) {
		s := sleeper("exec")
		mustCreate(t, s)
		if _, err := rt.Exec(ctx, s.Name, []string{"true"}); !errors.Is(err, orchestrator.ErrNotRunning) {
			t.Errorf("exec in a created container: %v, want ErrNotRunning", err)
		}
		if err := rt.Start(ctx, s.Name); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			cmd    []string
			code   int
			output string
		}{
			{[]string{"true"}, 0, ""},
			{[]string{"false"}, 1, ""},
			{[]string{"sh", "-c", "exit 3"}, 3, ""},
			{[]string{"echo", "hello", "probe"}, 0, "hello probe\n"},
		} {
			r, err := rt.Exec(ctx, s.Name, tc.cmd)
			if err != nil || r.ExitCode != tc.code || string(r.Output) != tc.output {
				t.Errorf("exec %q: %d %q %v; want %d %q", tc.cmd, r.ExitCode, r.Output, err, tc.code, tc.output)
			}
		}
		if _, err := rt.Exec(ctx, name("nosuch"), []string{"true"}); !errors.Is(err, orchestrator.ErrNotFound) {
			t.Errorf("exec in a missing container: %v, want ErrNotFound", err)
		}
	})

	t.Run("ResourcesApplyOrFail", func(t *testing.T) {
		info, err := rt.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		s := sleeper("res")
		s.Resources = orchestrator.Resources{MemoryBytes: 64 << 20, PidsLimit: 64}
		_, err = rt.CreateContainer(ctx, s)
		if info.ResourceLimits {
			if err != nil {
				t.Fatalf("engine enforces limits, create: %v", err)
			}
			return
		}
		var se *orchestrator.SpecError
		if !errors.Is(err, orchestrator.ErrSpecNotApplied) || !errors.As(err, &se) {
			t.Fatalf("engine cannot enforce limits, create: %v; want a SpecError", err)
		}
		if _, err := rt.Inspect(ctx, s.Name); !errors.Is(err, orchestrator.ErrNotFound) {
			t.Fatalf("container whose spec did not take was left behind: %v", err)
		}
	})

	t.Run("SaveImage", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "saved.tar")
		if err := rt.SaveImage(ctx, image, out); err != nil {
			t.Fatal(err)
		}
		got, err := rt.LoadImage(ctx, out)
		if err != nil || !slices.Contains(got, image) {
			t.Fatalf("reload of the saved archive: %v %v, want %s", got, err, image)
		}
		missing := filepath.Join(t.TempDir(), "missing.tar")
		if err := rt.SaveImage(ctx, "localhost/archytest-none:"+run, missing); !errors.Is(err, orchestrator.ErrNotFound) {
			t.Fatalf("save a missing image: %v, want ErrNotFound", err)
		}
		if _, err := os.Stat(missing); !os.IsNotExist(err) {
			t.Fatalf("a failed save left %s: %v", missing, err)
		}
	})

	t.Run("RemoveImage", func(t *testing.T) {
		ref := "localhost/archytest-rm:" + run
		if _, err := rt.LoadImage(ctx, podmantest.BusyboxImage(t, ref, "rm "+run)); err != nil {
			t.Fatal(err)
		}
		s := sleeper("rmimg")
		s.Image = ref
		mustCreate(t, s)
		if err := rt.RemoveImage(ctx, ref); !errors.Is(err, orchestrator.ErrInUse) {
			t.Fatalf("remove an image a container uses: %v, want ErrInUse", err)
		}
		if err := rt.Remove(ctx, s.Name); err != nil {
			t.Fatal(err)
		}
		if err := rt.RemoveImage(ctx, ref); err != nil {
			t.Fatalf("remove image: %v", err)
		}
		if ok, err := rt.ImageExists(ctx, ref); ok || err != nil {
			t.Fatalf("image exists after remove: %v %v", ok, err)
		}
		if err := rt.RemoveImage(ctx, ref); !errors.Is(err, orchestrator.ErrNotFound) {
			t.Fatalf("remove image twice: %v, want ErrNotFound", err)
		}
	})

	// A load that carries a name another image holds moves the name; the
	// first image stays reachable by ID and by name@digest, and a
	// container made from its ID holds it.
	t.Run("ImageIDAndTagMove", func(t *testing.T) {
		ref := "localhost/archytest-tag:" + run
		first := podmantest.BusyboxImage(t, ref, "first "+run)
		second := podmantest.BusyboxImage(t, ref, "second "+run)
		sum1, err := registry.ReadOCIArchive(first)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rt.LoadImage(ctx, first); err != nil {
			t.Fatal(err)
		}
		id1, err := rt.ImageID(ctx, ref)
		if err != nil || !orchestrator.IsImageID(id1) {
			t.Fatalf("ImageID(%s) = %q, %v; want 64 hex digits", ref, id1, err)
		}
		pinned := strings.SplitN(ref, ":", 2)[0] + "@" + sum1.Digest
		if got, err := rt.ImageID(ctx, pinned); err != nil || got != id1 {
			t.Fatalf("ImageID(%s) = %q, %v; want %s", pinned, got, err, id1)
		}
		if got, err := rt.ImageID(ctx, id1); err != nil || got != id1 {
			t.Fatalf("ImageID(its own ID) = %q, %v", got, err)
		}
		if _, err := rt.ImageID(ctx, "localhost/archytest-none:"+run); !errors.Is(err, orchestrator.ErrNotFound) {
			t.Fatalf("ImageID of a missing image: %v, want ErrNotFound", err)
		}
		if _, err := rt.LoadImage(ctx, second); err != nil {
			t.Fatal(err)
		}
		id2, err := rt.ImageID(ctx, ref)
		if err != nil || id2 == id1 {
			t.Fatalf("after loading another image under %s: ID %q, %v; want a new one", ref, id2, err)
		}
		t.Cleanup(func() {
			_ = rt.RemoveImage(ctx, id1)
			_ = rt.RemoveImage(ctx, id2)
		})
		if got, err := rt.ImageID(ctx, pinned); err != nil || got != id1 {
			t.Fatalf("after the tag moved, ImageID(%s) = %q, %v; want %s", pinned, got, err, id1)
		}
		s := sleeper("byid")
		s.Image = id1
		mustCreate(t, s)
		if c := mustInspect(t, s.Name); c.ImageID != id1 {
			t.Fatalf("container made from %s holds image %q", id1, c.ImageID)
		}
		if err := rt.Remove(ctx, s.Name); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("CancelledContext", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		start := time.Now()
		_, err := rt.List(cctx, labels())
		if !errors.Is(err, context.Canceled) || errors.Is(err, orchestrator.ErrTimeout) {
			t.Fatalf("list with a cancelled context: %v, want context.Canceled", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("cancelled call took %s", d)
		}
	})

	t.Run("MountsKeepData", func(t *testing.T) {
		data := t.TempDir()
		s := sleeper("mount")
		s.Mounts = []orchestrator.Mount{{Source: data, Target: "/data"}, {Source: data, Target: "/ro", ReadOnly: true}}
		mustCreate(t, s)
		c := mustInspect(t, s.Name)
		if c.Name != s.Name {
			t.Fatal(c)
		}
		if err := os.WriteFile(filepath.Join(data, "keep"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := rt.Remove(ctx, s.Name); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(filepath.Join(data, "keep")); err != nil || string(b) != "x" {
			t.Fatalf("data after remove: %q %v", b, err)
		}
	})
}

func randomID() string {
	b := make([]byte, 4)
	rand.Read(b)
	return "r" + hex.EncodeToString(b)
}
