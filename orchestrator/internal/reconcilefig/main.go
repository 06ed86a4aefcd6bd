// Command reconcilefig measures the reconciler on real rootless Podman
// and prints `make bench` figures:
//
//	figure recover-killed-ms     kill -9 of a container's process → running again (median of 3)
//	figure reconcile-pass-cpu-ms CPU time (user+sys) of one reconcile pass with every sample app installed (median of 3),
//	                             archy's own process only: Podman's service and the exec probes' processes are not counted
//
// It installs every sample app (examples/apps, images from `make images`)
// into a temporary folder, measures, and uninstalls them with purge. Run as
// root with ARCHY_PODMAN_USER set, it re-executes itself as that user, as
// the tests do. The socket comes from ARCHY_PODMAN_SOCKET or
// .cache/test.env (make test-env).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/archy-node/archy/did"
	"github.com/archy-node/archy/examples"
	"github.com/archy-node/archy/internal/podmantest"
	"github.com/archy-node/archy/orchestrator"
	"github.com/archy-node/archy/orchestrator/podman"
	"github.com/archy-node/archy/registry"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "reconcilefig:", err)
		os.Exit(1)
	}
}

func run() error {
	podmantest.LoadEnvFile(filepath.Join(filepath.Dir(examples.Root()), ".cache", "test.env"))
	if name := os.Getenv("ARCHY_PODMAN_USER"); os.Geteuid() == 0 && name != "" && os.Getenv("ARCHY_FIG_REEXEC") == "" {
		return reexec(name)
	}
	sock := os.Getenv("ARCHY_PODMAN_SOCKET")
	if sock == "" {
		return errors.New("no Podman: set ARCHY_PODMAN_SOCKET (make test-env writes .cache/test.env)")
	}
	ctx := context.Background()
	rt, err := podman.New(ctx, podman.Config{Socket: sock})
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "archy-reconcilefig-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	o, err := orchestrator.New(orchestrator.Config{Runtime: rt, Dir: dir, IDMapper: &orchestrator.PodmanUnshare{}})
	if err != nil {
		return err
	}
	key, err := did.Generate()
	if err != nil {
		return err
	}
	apps, err := examples.Apps(examples.AppsDir())
	if err != nil {
		return err
	}
	// Requirements first (linkpage needs hello).
	slices.SortStableFunc(apps, func(a, b examples.App) int {
		return len(a.Release(examples.Current).Manifest.Requires) - len(b.Release(examples.Current).Manifest.Requires)
	})
	var installed []string
	defer func() {
		for _, id := range slices.Backward(installed) {
			if err := o.Uninstall(context.Background(), id, true); err != nil {
				fmt.Fprintln(os.Stderr, "reconcilefig: clean-up:", err)
			}
		}
	}()
	for _, a := range apps {
		l, err := registry.Load(a.Dir)
		if err != nil {
			return err
		}
		l.Manifest.Publisher = key.DID()
		env, _, err := registry.Sign(l.Manifest, key)
		if err != nil {
			return err
		}
		v, err := registry.VerifyParsed(env)
		if err != nil {
			return err
		}
		if err := o.Install(ctx, v, l.Archives); err != nil {
			return err
		}
		installed = append(installed, a.ID)
	}

	// CPU of one pass: three passes, each after the probes' 2 s interval
	// so that the pass probes every container, as a steady-state pass does.
	var cpu []time.Duration
	for range 3 {
		time.Sleep(2100 * time.Millisecond)
		before := cpuTime()
		o.Pass(ctx)
		cpu = append(cpu, cpuTime()-before)
	}
	for _, s := range o.Apps() {
		if s.Phase != "running" || !s.Healthy {
			return fmt.Errorf("app %s is %s (%s) after the passes", s.ID, s.Phase, s.Error)
		}
	}

	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- o.Run(rctx) }()
	defer func() { cancel(); <-done }()
	var rec []time.Duration
	for range 3 {
		c, err := rt.Inspect(ctx, "archy-hello-web")
		if err != nil {
			return err
		}
		start := time.Now()
		if err := syscall.Kill(c.PID, syscall.SIGKILL); err != nil {
			return fmt.Errorf("kill %d: %w", c.PID, err)
		}
		for {
			n, err := rt.Inspect(ctx, "archy-hello-web")
			if err == nil && n.Running() && n.PID != c.PID {
				break
			}
			if time.Since(start) > 30*time.Second {
				return errors.New("killed container not running again within 30 s")
			}
			time.Sleep(10 * time.Millisecond)
		}
		rec = append(rec, time.Since(start))
		time.Sleep(time.Second)
	}
	fmt.Printf("figure recover-killed-ms %d\n", median(rec).Milliseconds())
	fmt.Printf("figure reconcile-pass-cpu-ms %.2f\n", float64(median(cpu).Microseconds())/1000)
	return nil
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reexec runs this program as the rootless user that owns the socket.
func reexec(name string) error {
	u, err := user.Lookup(name)
	if err != nil {
		return err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	self, err := os.Executable()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "reconcilefig-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	bin := filepath.Join(tmp, "reconcilefig")
	in, err := os.Open(self)
	if err != nil {
		return err
	}
	out, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		in.Close()
		return err
	}
	_, err = io.Copy(out, in)
	in.Close()
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	cmd := exec.Command(bin)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.Dir = "/"
	cmd.Env = append(os.Environ(), "ARCHY_FIG_REEXEC=1", "HOME="+u.HomeDir, "USER="+name, fmt.Sprintf("XDG_RUNTIME_DIR=/run/user/%d", uid))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, Pdeathsig: syscall.SIGKILL}
	return cmd.Run()
}
