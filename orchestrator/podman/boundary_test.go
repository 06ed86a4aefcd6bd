package podman_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/archy-node/archy/internal/podmantest"
	"github.com/archy-node/archy/orchestrator"
	"github.com/archy-node/archy/orchestrator/podman"
	"github.com/archy-node/archy/orchestrator/runtimetest"
)

// rawInspect is what Podman itself says it applied (not the runtime
// under test), as a JSON tree.
func rawInspect(t *testing.T, socket, name string) map[string]any {
	t.Helper()
	var d map[string]any
	podmantest.Inspect(t, socket, name, &d)
	return d
}

// at walks a JSON tree: at(d, "HostConfig", "PidsLimit").
func at(d any, path ...string) any {
	for _, k := range path {
		m, ok := d.(map[string]any)
		if !ok {
			return nil
		}
		d = m[k]
	}
	return d
}

func strs(v any) []string {
	var out []string
	l, _ := v.([]any)
	for _, s := range l {
		out = append(out, fmt.Sprint(s))
	}
	return out
}

// Every setting of the container boundary that the create request carries
// reaches Podman: capabilities dropped but the kept one, no new
// privileges, default seccomp, user, read-only mount, port bound to
// loopback, the stack's network and alias, restart policy, stop timeout,
// and (where the engine can enforce them) memory, CPU and PID limits. Each
// is read back from Podman's own inspect and, for the kernel-enforced ones,
// from /proc/1/status inside the container.
func TestBoundaryReachesPodman(t *testing.T) {
	p := connect(t, podman.Config{})
	sock := podmantest.Socket(t)
	ctx := context.Background()
	info, err := p.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	run := fmt.Sprintf("b%d", time.Now().UnixNano())
	ref := "localhost/archytest-boundary:" + run
	if _, err := p.LoadImage(ctx, podmantest.BusyboxImage(t, ref, run)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.RemoveImage(context.Background(), ref) })
	netName := "archytest-net-" + run
	if err := p.CreateNetwork(ctx, orchestrator.Network{Name: netName, Labels: map[string]string{"io.archy.test": run}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.RemoveNetwork(context.Background(), netName) })
	name := "archytest-boundary-" + run
	s := orchestrator.ContainerSpec{
		Name: name, Image: ref, Command: []string{"sleep", "3600"},
		Labels:  map[string]string{"io.archy.test": run},
		Ports:   []orchestrator.Port{{HostPort: runtimetest.FreePort(t), ContainerPort: 8080}},
		Mounts:  []orchestrator.Mount{{Source: t.TempDir(), Target: "/conf", ReadOnly: true}},
		Network: netName, Aliases: []string{"web"},
		User:        "1000:1000",
		CapAdd:      []string{"NET_BIND_SERVICE"},
		Restart:     orchestrator.RestartPolicy{Name: orchestrator.RestartOnFailure, MaxRetries: 3},
		StopTimeout: 4 * time.Second,
	}
	if info.ResourceLimits {
		s.Resources = orchestrator.Resources{MemoryBytes: 64 << 20, NanoCPUs: 5e8, PidsLimit: 32}
	} else {
		t.Logf("this Podman cannot enforce resource limits (rootless, cgroup v1): limits are checked by ResourcesApplyOrFail instead")
	}
	if _, err := p.CreateContainer(ctx, s); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Remove(context.Background(), name) })
	if err := p.Start(ctx, name); err != nil {
		t.Fatal(err)
	}
	d := rawInspect(t, sock, name)
	for _, key := range []string{"EffectiveCaps", "BoundingCaps"} {
		if got := strs(at(d, key)); !slices.Equal(got, []string{"CAP_NET_BIND_SERVICE"}) {
			t.Errorf("%s %v, want only CAP_NET_BIND_SERVICE", key, got)
		}
	}
	sec := strs(at(d, "HostConfig", "SecurityOpt"))
	if !slices.Contains(sec, "no-new-privileges") {
		t.Errorf("SecurityOpt %v, want no-new-privileges", sec)
	}
	for _, o := range sec {
		if strings.HasPrefix(o, "seccomp=") {
			t.Errorf("SecurityOpt %v: seccomp changed, want Podman's default", sec)
		}
	}
	if got := at(d, "Config", "User"); got != "1000:1000" {
		t.Errorf("Config.User %v, want 1000:1000", got)
	}
	mounted := false
	for _, m := range at(d, "Mounts").([]any) {
		if at(m, "Destination") == "/conf" {
			mounted = true
			if at(m, "RW") != false {
				t.Errorf("mount /conf is writable, want read-only: %v", m)
			}
		}
	}
	if !mounted {
		t.Errorf("mount /conf missing: %v", at(d, "Mounts"))
	}
	binds := at(d, "HostConfig", "PortBindings", "8080/tcp")
	if ip := at(strsAny(binds, 0), "HostIp"); ip != "127.0.0.1" {
		t.Errorf("port 8080 bound on %v, want 127.0.0.1 only", binds)
	}
	if a := strs(at(d, "NetworkSettings", "Networks", netName, "Aliases")); !slices.Contains(a, "web") {
		t.Errorf("network %s aliases %v, want web", netName, a)
	}
	if rp := at(d, "HostConfig", "RestartPolicy"); at(rp, "Name") != "on-failure" || at(rp, "MaximumRetryCount") != 3.0 {
		t.Errorf("RestartPolicy %v, want on-failure 3", rp)
	}
	if st := at(d, "Config", "StopTimeout"); st != 4.0 {
		t.Errorf("StopTimeout %v, want 4", st)
	}
	if info.ResourceLimits {
		if v := at(d, "HostConfig", "Memory"); v != float64(64<<20) {
			t.Errorf("Memory %v, want %d", v, 64<<20)
		}
		if v := at(d, "HostConfig", "PidsLimit"); v != 32.0 {
			t.Errorf("PidsLimit %v, want 32", v)
		}
	}
	// What the kernel enforces on PID 1: CAP_NET_BIND_SERVICE is bit 10,
	// seccomp mode 2 is a filter; the read-only mount refuses writes.
	r, err := p.Exec(ctx, name, []string{"sh", "-c", "grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/1/status; id -u; touch /conf/x && echo writable"})
	if err != nil {
		t.Fatal(err)
	}
	out := strings.Join(strings.Fields(string(r.Output)), " ")
	for _, want := range []string{"CapEff: 0000000000000400", "CapBnd: 0000000000000400", "NoNewPrivs: 1", "Seccomp: 2", " 1000 "} {
		if !strings.Contains(out, want) {
			t.Errorf("in the container: %q, want %q", out, want)
		}
	}
	if strings.Contains(out, "writable") {
		t.Errorf("the read-only mount took a write: %q", out)
	}
}

func strsAny(v any, i int) any {
	l, _ := v.([]any)
	if i < len(l) {
		return l[i]
	}
	return nil
}

// Errors name what was asked for and carry Podman's own message.
func TestErrorsNameTheObject(t *testing.T) {
	p := connect(t, podman.Config{})
	ctx := context.Background()
	missing := fmt.Sprintf("archytest-missing-%d", time.Now().UnixNano())
	_, err := p.Inspect(ctx, missing)
	if !errors.Is(err, orchestrator.ErrNotFound) || !strings.Contains(err.Error(), missing) || !strings.Contains(err.Error(), "no such container") {
		t.Errorf("inspect a missing container: %v; want ErrNotFound naming it with Podman's message", err)
	}
	ref := "localhost/" + missing + ":1"
	_, err = p.ImageID(ctx, ref)
	if !errors.Is(err, orchestrator.ErrNotFound) || !strings.Contains(err.Error(), ref) {
		t.Errorf("inspect a missing image: %v; want ErrNotFound naming it", err)
	}
	err = p.RemoveImage(ctx, ref)
	if !errors.Is(err, orchestrator.ErrNotFound) || !strings.Contains(err.Error(), ref) {
		t.Errorf("remove a missing image: %v; want ErrNotFound naming it", err)
	}
	err = p.Start(ctx, missing)
	if !errors.Is(err, orchestrator.ErrNotFound) || !strings.Contains(err.Error(), missing) {
		t.Errorf("start a missing container: %v; want ErrNotFound naming it", err)
	}
}
