package orchestrator_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/archy-node/archy/did"
	"github.com/archy-node/archy/internal/podmantest"
	"github.com/archy-node/archy/orchestrator"
	"github.com/archy-node/archy/orchestrator/podman"
	"github.com/archy-node/archy/orchestrator/quadlet"
	"github.com/archy-node/archy/registry"
)

// The container boundary on real rootless Podman: what a container, or
// another app's archive, can make the node mount or run.

// sleeper is a PID 1 that leaves at once on SIGTERM (a stop takes
// about a second, not the 10 s stop timeout).
var sleeper = []string{"sh", "-c", `trap "exit 0" TERM; while true; do sleep 1; done`}

// realEnv is an orchestrator over the rootless Podman of the tests.
type realEnv struct {
	t    *testing.T
	rt   *podman.Podman
	o    *orchestrator.Orchestrator
	key  *did.Key
	run  string
	logs *logBuf
}

func newRealEnv(t *testing.T, tune func(*orchestrator.Config)) *realEnv {
	t.Helper()
	sock := podmantest.Socket(t)
	rt, err := podman.New(context.Background(), podman.Config{Socket: sock})
	if err != nil {
		t.Fatal(err)
	}
	k, err := did.Generate()
	if err != nil {
		t.Fatal(err)
	}
	e := &realEnv{t: t, rt: rt, key: k, run: fmt.Sprintf("%d", time.Now().UnixNano()%1e9), logs: &logBuf{}}
	cfg := orchestrator.Config{
		Runtime:  rt,
		Dir:      t.TempDir(),
		IDMapper: &orchestrator.PodmanUnshare{},
		Logger:   slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Interval: time.Hour,
	}
	if tune != nil {
		tune(&cfg)
	}
	if e.o, err = orchestrator.New(cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("orchestrator log:\n%s", e.logs.String())
		}
	})
	return e
}

// app signs a one-container app "web" whose busybox image (tagged ref,
// its /www/index.html holding body) runs cmd.
func (e *realEnv) app(id, ref, body string, mod func(*registry.Container)) (*registry.Verified, map[string]string) {
	t := e.t
	t.Helper()
	archive := podmantest.BusyboxImage(t, ref, body)
	sum, err := registry.ReadOCIArchive(archive)
	if err != nil {
		t.Fatal(err)
	}
	c := registry.Container{
		Name:    "web",
		Image:   registry.Image{Ref: ref, CID: sum.CID.String(), Digest: sum.Digest},
		Command: sleeper,
	}
	if mod != nil {
		mod(&c)
	}
	m := &registry.Manifest{Schema: registry.Schema, ID: id, Name: id, Version: "1.0.0", Publisher: e.key.DID(), Containers: []registry.Container{c}}
	env, _, err := registry.Sign(m, e.key)
	if err != nil {
		t.Fatal(err)
	}
	v, err := registry.VerifyParsed(env)
	if err != nil {
		t.Fatal(err)
	}
	return v, map[string]string{"web": archive}
}

// cleanup uninstalls (purging) the apps, whether or not they installed.
func (e *realEnv) cleanup(ids ...string) {
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		for _, id := range ids {
			if err := e.o.Uninstall(ctx, id, true); err != nil && !errors.Is(err, orchestrator.ErrNotInstalled) {
				e.t.Errorf("uninstall %s: %v", id, err)
			}
		}
	})
}

// exec runs a shell command in a running container.
func (e *realEnv) exec(name, script string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := e.rt.Exec(ctx, name, []string{"sh", "-c", script})
	if err != nil {
		return "", err
	}
	if r.ExitCode != 0 {
		return string(r.Output), fmt.Errorf("exit %d: %s", r.ExitCode, r.Output)
	}
	return string(r.Output), nil
}

// A container that mounts d at /data and d/sub at /sub replaces d/sub
// with a symlink to a host folder and then fails its health probe. The
// restart must not mount the host folder at /sub: the start is refused,
// visibly.
func TestSymlinkSwapRefusedOnRestart(t *testing.T) {
	e := newRealEnv(t, func(c *orchestrator.Config) {
		c.ExecProbeInterval = 300 * time.Millisecond
		c.Interval = time.Second
	})
	host := t.TempDir()
	if err := os.WriteFile(filepath.Join(host, "marker"), []byte("host-secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	id := "symswap" + e.run
	v, arch := e.app(id, "localhost/archytest/"+id+":1", "sym "+e.run, func(c *registry.Container) {
		c.Command = []string{"sh", "-c", `touch /data/ok; trap "exit 0" TERM; while true; do sleep 1; done`}
		c.Volumes = []registry.Volume{{Path: "d", Mount: "/data"}, {Path: "d/sub", Mount: "/sub"}}
		c.Health = &registry.Health{Exec: []string{"test", "-f", "/data/ok"}, Interval: "1s", Timeout: "2s", Retries: 2}
	})
	e.cleanup(id)
	ctx := context.Background()
	if err := e.o.Install(ctx, v, arch); err != nil {
		t.Fatal(err)
	}
	name := quadlet.ContainerName(id, "web")
	// The attack, from inside: /data/sub is the folder mounted at /sub.
	if out, err := e.exec(name, "rm -rf /data/sub && ln -s "+host+" /data/sub && rm /data/ok"); err != nil {
		t.Fatalf("swap d/sub for a symlink: %v %s", err, out)
	}
	run(t, e.o)
	deadline := time.Now().Add(90 * time.Second)
	for {
		s, _ := e.o.Status(id)
		c, ierr := e.rt.Inspect(ctx, name)
		if ierr == nil && c.Running() && s.Restarts > 0 {
			if out, err := e.exec(name, "cat /sub/marker 2>/dev/null; true"); err == nil && strings.Contains(out, "host-secret") {
				t.Fatalf("after the restart the container reads the host folder %s at /sub: %q", host, out)
			}
		}
		if s.Restarts > 0 && strings.Contains(s.Error, "symlink") {
			if ierr == nil && c.Running() {
				t.Fatalf("start refused (%s) but the container runs", s.Error)
			}
			t.Logf("refused: %s", s.Error)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no refusal within 90 s: status %+v", s)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The node's own data was not followed either: the host file is intact.
	if b, err := os.ReadFile(filepath.Join(host, "marker")); err != nil || string(b) != "host-secret" {
		t.Fatalf("host marker: %q %v", b, err)
	}
}

// App b's manifest names app a's image; app c's manifest names its own,
// but its archive carries a's name. Loading either must not make a run
// their code, neither through their install nor when a's container is
// recreated after the tag moved anyway.
func TestImageTagConfusion(t *testing.T) {
	e := newRealEnv(t, nil)
	ctx := context.Background()
	idA, idB, idC := "taga"+e.run, "tagb"+e.run, "tagc"+e.run
	ref := "localhost/archytest/" + idA + "-web:1"
	codeA := "code of a " + e.run // unique: an image left by another run has another digest
	va, archA := e.app(idA, ref, codeA, nil)
	vb, archB := e.app(idB, ref, "code of b "+e.run, nil)
	vc, archC := e.app(idC, ref, "code of c "+e.run, func(c *registry.Container) {
		c.Image.Ref = "localhost/archytest/" + idC + "-web:1" // the archive still says ref
	})
	// After the uninstalls (cleanups run last first): the images by ID,
	// since the tag no longer names a's.
	t.Cleanup(func() {
		for _, v := range []*registry.Verified{va, vb, vc} {
			im := v.Manifest.Containers[0].Image
			if id, err := e.rt.ImageID(context.Background(), im.Ref+"@"+im.Digest); err == nil {
				_ = e.rt.RemoveImage(context.Background(), id)
			}
		}
	})
	e.cleanup(idA, idB, idC)
	if err := e.o.Install(ctx, va, archA); err != nil {
		t.Fatal(err)
	}
	nameA := quadlet.ContainerName(idA, "web")
	recreatedRuns := func(what string) {
		t.Helper()
		if err := e.rt.Remove(ctx, nameA); err != nil {
			t.Fatal(err)
		}
		e.o.Pass(ctx)
		c, err := e.rt.Inspect(ctx, nameA)
		if err != nil || !c.Running() {
			s, _ := e.o.Status(idA)
			t.Fatalf("%s: a's container not back: %+v %v; status %+v", what, c, err, s)
		}
		out, err := e.exec(nameA, "cat /www/index.html")
		if err != nil {
			t.Fatal(err)
		}
		if out != codeA {
			t.Fatalf("%s: app a's recreated container runs %q", what, out)
		}
	}
	for _, x := range []struct {
		what string
		v    *registry.Verified
		arch map[string]string
	}{
		{"b's manifest names a's image", vb, archB},
		{"c's archive names a's image", vc, archC},
	} {
		err := e.o.Install(ctx, x.v, x.arch)
		recreatedRuns("after the install where " + x.what)
		if !errors.Is(err, orchestrator.ErrImageMismatch) {
			t.Fatalf("install where %s: %v, want ErrImageMismatch", x.what, err)
		}
		t.Logf("install where %s: %v", x.what, err)
	}
	// The tag moves anyway (a load outside archy): a is still created from
	// its own verified image.
	if _, err := e.rt.LoadImage(ctx, archB["web"]); err != nil {
		t.Fatal(err)
	}
	recreatedRuns("after the tag moved to b's image")
}

// Every container runs with all capabilities dropped but the manifest's
// allow-listed cap_add, no-new-privileges set, and Podman's default
// seccomp filter kept: as Podman reports it and as the kernel does.
func TestContainerHardened(t *testing.T) {
	e := newRealEnv(t, nil)
	ctx := context.Background()
	id := "hard" + e.run
	v, arch := e.app(id, "localhost/archytest/"+id+":1", "hard "+e.run, func(c *registry.Container) {
		c.CapAdd = []string{"NET_BIND_SERVICE"}
	})
	e.cleanup(id)
	if err := e.o.Install(ctx, v, arch); err != nil {
		t.Fatalf("install with an allow-listed cap_add: %v", err)
	}
	name := quadlet.ContainerName(id, "web")
	d := podmanInspect(t, name)
	if !slices.Equal(d.EffectiveCaps, []string{"CAP_NET_BIND_SERVICE"}) || !slices.Equal(d.BoundingCaps, []string{"CAP_NET_BIND_SERVICE"}) {
		t.Errorf("podman inspect: effective caps %v, bounding %v; want only CAP_NET_BIND_SERVICE", d.EffectiveCaps, d.BoundingCaps)
	}
	if d.HostConfig == nil || !slices.Contains(d.HostConfig.SecurityOpt, "no-new-privileges") {
		t.Errorf("podman inspect: security options %v, want no-new-privileges", d.HostConfig.SecurityOpt)
	}
	for _, o := range d.HostConfig.SecurityOpt {
		if strings.HasPrefix(o, "seccomp=") {
			t.Errorf("podman inspect: seccomp changed (%s), want Podman's default", o)
		}
	}
	// What the kernel says about PID 1: CAP_NET_BIND_SERVICE is bit 10,
	// seccomp mode 2 is a filter.
	out, err := e.exec(name, "grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/1/status")
	if err != nil {
		t.Fatal(err)
	}
	status := strings.Join(strings.Fields(out), " ")
	for _, want := range []string{"CapEff: 0000000000000400", "CapBnd: 0000000000000400", "NoNewPrivs: 1", "Seccomp: 2"} {
		if !strings.Contains(status, want) {
			t.Errorf("/proc/1/status in the container: %q, want %q", status, want)
		}
	}
}

// podmanInspect is what Podman itself says it applied (not the runtime
// under test): the fields these tests read.
func podmanInspect(t *testing.T, name string) (d struct {
	EffectiveCaps, BoundingCaps []string
	HostConfig                  *struct{ SecurityOpt []string }
}) {
	t.Helper()
	podmantest.Inspect(t, podmantest.Socket(t), name, &d)
	return d
}
