// Command idlefig measures an idle node and prints `make bench` figures:
//
//	figure idle-rss-mib  VmRSS of the `archy node run` process after 60 s idle
//	figure idle-anon-mib its anonymous part (RssAnon): heap, stacks, runtime
//	figure idle-cpu-pct  its CPU time (user+sys) over those 60 s, in % of one core
//
// It builds the real archy binary, runs `archy node run` on a new data
// folder with loopback ports the kernel picks, Podman on, installs the six
// sample apps (examples/apps, images from `go run ./examples/build`)
// through the node's API signed with the example key, waits until all run
// healthy, idles, measures, then uninstalls them with purge and stops the
// node. Run as root with ARCHY_PODMAN_USER set, the node runs as that user
// (the socket's owner), as the tests do. The socket comes from
// ARCHY_PODMAN_SOCKET or .cache/test.env (make test-env). The sample apps
// publish host ports 18080-18099: it waits (bounded) until nothing listens
// there before it starts.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/archy-node/archy/did"
	"github.com/archy-node/archy/examples"
	"github.com/archy-node/archy/internal/podmantest"
	"github.com/archy-node/archy/node"
	"github.com/archy-node/archy/orchestrator"
	"github.com/archy-node/archy/registry"
)

var (
	idle    = flag.Duration("idle", 60*time.Second, "how long the node idles before it is measured")
	logs    = flag.Bool("logs", false, "print the node's log to stderr")
	extraFl = flag.String("node-flags", "", "extra `archy node run` flags, space-separated (for comparisons)")
)

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "idlefig:", err)
		os.Exit(1)
	}
}

// owner is who the node runs as: nil for this process's user.
type owner struct {
	uid, gid int
	home     string
}

func run() error {
	podmantest.LoadEnvFile(filepath.Join(filepath.Dir(examples.Root()), ".cache", "test.env"))
	sock := os.Getenv("ARCHY_PODMAN_SOCKET")
	if sock == "" {
		return errors.New("no Podman: set ARCHY_PODMAN_SOCKET (make test-env writes .cache/test.env)")
	}
	var as *owner
	if name := os.Getenv("ARCHY_PODMAN_USER"); os.Geteuid() == 0 && name != "" {
		u, err := user.Lookup(name)
		if err != nil {
			return fmt.Errorf("look up ARCHY_PODMAN_USER %s: %w", name, err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		as = &owner{uid: uid, gid: gid, home: u.HomeDir}
	}

	tmp, err := os.MkdirTemp("", "archy-idlefig-")
	if err != nil {
		return fmt.Errorf("make a temporary folder: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	bin := filepath.Join(tmp, "archy")
	bctx, bcancel := context.WithTimeout(context.Background(), 10*time.Minute)
	build := exec.CommandContext(bctx, "go", "build", "-o", bin, "./cmd/archy")
	build.Dir = filepath.Dir(examples.Root()) // the module's folder
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	err = build.Run()
	bcancel()
	if err != nil {
		return fmt.Errorf("build archy: %w", err)
	}
	data := filepath.Join(tmp, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		return err
	}
	if as != nil {
		if err := os.Chown(data, as.uid, as.gid); err != nil {
			return fmt.Errorf("hand the data folder to uid %d: %w", as.uid, err)
		}
	}

	apps, envs, archives, err := signedApps()
	if err != nil {
		return err
	}
	if err := waitQuiet(sock, apps, 10*time.Minute); err != nil {
		return err
	}

	args := []string{"node", "run", "--data", data, "--api", "127.0.0.1:0", "--relay-listen", "127.0.0.1:0",
		"--listen", "/ip4/127.0.0.1/tcp/0,/ip4/127.0.0.1/udp/0/quic-v1", "--podman-socket", sock}
	args = append(args, strings.Fields(*extraFl)...)
	cmd := exec.Command(bin, args...)
	cmd.Dir = "/"
	nodeLog := new(lockedBuffer) // read on failure while the node still writes
	cmd.Stdout, cmd.Stderr = nodeLog, nodeLog
	if *logs {
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	}
	cmd.Env = os.Environ()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if as != nil {
		name := os.Getenv("ARCHY_PODMAN_USER")
		cmd.Env = append(cmd.Env, "HOME="+as.home, "USER="+name, "LOGNAME="+name,
			fmt.Sprintf("XDG_RUNTIME_DIR=/run/user/%d", as.uid))
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(as.uid), Gid: uint32(as.gid), Groups: []uint32{}}
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start archy node run: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() { // stop the node: SIGTERM, then SIGKILL after 30 s
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-exited
			fmt.Fprintln(os.Stderr, "idlefig: the node did not stop within 30 s of SIGTERM; killed")
		}
	}()
	fail := func(err error) error {
		if !*logs {
			fmt.Fprintf(os.Stderr, "idlefig: the node's log:\n%s\n", nodeLog.String())
		}
		return err
	}

	c, err := connect(data, exited)
	if err != nil {
		return fail(err)
	}
	var installed []string
	defer func() {
		for _, id := range slices.Backward(installed) {
			if code, out := c.call(http.MethodDelete, "/api/v1/apps/"+id+"?purge=1", nil); code != http.StatusOK {
				fmt.Fprintf(os.Stderr, "idlefig: clean-up: uninstall %s: %d %s\n", id, code, out)
			}
		}
	}()
	for i, id := range apps {
		installed = append(installed, id) // a half-done install is cleaned up too
		if code, out := c.call(http.MethodPost, "/api/v1/apps", node.InstallRequest{Envelope: envs[i], Archives: archives[i]}); code != http.StatusOK {
			return fail(fmt.Errorf("install %s: %d %s", id, code, out))
		}
	}
	if err := c.waitRunning(len(apps), 3*time.Minute); err != nil {
		return fail(err)
	}

	pid := cmd.Process.Pid
	t0, err := cpuTicks(pid)
	if err != nil {
		return fail(err)
	}
	start := time.Now()
	select {
	case err := <-exited:
		return fail(fmt.Errorf("the node exited while idle: %v", err))
	case <-time.After(*idle):
	}
	t1, err := cpuTicks(pid)
	if err != nil {
		return fail(err)
	}
	wall := time.Since(start)
	rss, err := statusKiB(pid, "VmRSS")
	if err != nil {
		return fail(err)
	}
	anon, err := statusKiB(pid, "RssAnon")
	if err != nil {
		return fail(err)
	}
	// Context for the figures, on stderr: what the RSS is made of (the
	// binary's mapped pages against anonymous memory), the Go heap and
	// goroutines.
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "RssFile:") || strings.HasPrefix(l, "Threads:") {
				fmt.Fprintln(os.Stderr, "idlefig:", strings.Join(strings.Fields(l), " "))
			}
		}
	}
	if code, out := c.call(http.MethodGet, "/metrics", nil); code == http.StatusOK {
		for _, l := range strings.Split(out, "\n") {
			for _, m := range []string{"go_goroutines ", "go_memstats_heap_inuse_bytes ", "go_memstats_heap_alloc_bytes ", "go_memstats_stack_inuse_bytes ", "go_memstats_sys_bytes ", "go_threads "} {
				if strings.HasPrefix(l, m) {
					fmt.Fprintln(os.Stderr, "idlefig:", l)
				}
			}
		}
	}
	// utime and stime are in clock ticks: USER_HZ, 100 on Linux.
	cpu := time.Duration(t1-t0) * 10 * time.Millisecond
	fmt.Printf("figure idle-rss-mib %.1f\n", float64(rss)/1024)
	// The anonymous part is what the node's code and heap hold; the rest
	// is the executable's pages (see node/BENCHMARKS.md).
	fmt.Printf("figure idle-anon-mib %.1f\n", float64(anon)/1024)
	fmt.Printf("figure idle-cpu-pct %.2f\n", 100*cpu.Seconds()/wall.Seconds())
	return nil
}

// signedApps signs every sample app's current release with the example
// key, requirements first (linkpage needs hello).
func signedApps() ([]string, [][]byte, []map[string]string, error) {
	key, err := did.LoadKey(examples.KeyFile())
	if err != nil {
		return nil, nil, nil, fmt.Errorf("load the example key: %w", err)
	}
	apps, err := examples.Apps(examples.AppsDir())
	if err != nil {
		return nil, nil, nil, err
	}
	slices.SortStableFunc(apps, func(a, b examples.App) int {
		return len(a.Release(examples.Current).Manifest.Requires) - len(b.Release(examples.Current).Manifest.Requires)
	})
	var ids []string
	var envs [][]byte
	var archives []map[string]string
	for _, a := range apps {
		l, err := registry.Load(a.Dir)
		if err != nil {
			return nil, nil, nil, err
		}
		for name, p := range l.Archives {
			if _, err := os.Stat(p); err != nil {
				return nil, nil, nil, fmt.Errorf("app %s container %s: image archive missing (go run ./examples/build): %w", a.ID, name, err)
			}
		}
		env, _, err := registry.Sign(l.Manifest, key)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("sign %s: %w", a.ID, err)
		}
		b, err := env.Marshal()
		if err != nil {
			return nil, nil, nil, err
		}
		ids = append(ids, a.ID)
		envs = append(envs, b)
		archives = append(archives, l.Archives)
	}
	return ids, envs, archives, nil
}

// waitQuiet waits until nothing listens on the sample apps' host ports
// and Podman holds none of their containers: every helper and test on this
// machine shares one rootless Podman user, and a gate or test elsewhere
// running the same apps would fight this node over names and ports.
func waitQuiet(sock string, apps []string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		busy := busyPort()
		if busy == "" {
			busy = sampleContainer(sock, apps)
		}
		if busy == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s still there after %s", busy, limit)
		}
		fmt.Fprintf(os.Stderr, "idlefig: %s; waiting\n", busy)
		time.Sleep(5 * time.Second)
	}
}

// busyPort names a port of 18080-18099 something listens on, or "".
func busyPort() string {
	for p := 18080; p <= 18099; p++ {
		for _, host := range []string{"127.0.0.1", "0.0.0.0"} {
			ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(p)))
			if err != nil {
				return fmt.Sprintf("port %d (sample apps use 18080-18099) is in use", p)
			}
			ln.Close()
		}
	}
	return ""
}

// sampleContainer names a container of a sample app Podman holds, or "".
func sampleContainer(sock string, apps []string) string {
	path := strings.TrimPrefix(sock, "unix://")
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		}}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get("http://d/v4.0.0/libpod/containers/json?all=true")
	if err != nil {
		return fmt.Sprintf("cannot list Podman's containers (%v)", err)
	}
	defer resp.Body.Close()
	var list []struct{ Names []string }
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return fmt.Sprintf("cannot read Podman's container list (%v)", err)
	}
	for _, c := range list {
		for _, name := range c.Names {
			name = strings.TrimPrefix(name, "/")
			for _, id := range apps {
				if strings.HasPrefix(name, "archy-"+id+"-") {
					return "container " + name + " exists"
				}
			}
		}
	}
	return ""
}

// lockedBuffer is a bytes.Buffer that one goroutine writes and another reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type client struct{ url, token string }

// connect waits (30 s at most) for the node to write its API address.
func connect(data string, exited <-chan error) (*client, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		addr, err1 := os.ReadFile(filepath.Join(data, node.AddrFile))
		token, err2 := os.ReadFile(filepath.Join(data, node.TokenFile))
		if err1 == nil && err2 == nil && len(bytes.TrimSpace(addr)) > 0 {
			return &client{url: strings.TrimSpace(string(addr)), token: strings.TrimSpace(string(token))}, nil
		}
		if time.Now().After(deadline) {
			return nil, errors.New("the node wrote no api.addr within 30 s")
		}
		select {
		case err := <-exited:
			return nil, fmt.Errorf("the node exited at start: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// call sends one API request; an operation it starts is followed to its
// end (3 min at most), whose outcome it returns as 200 or the error's code.
func (c *client) call(method, path string, body any) (int, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	return c.callCtx(ctx, method, path, body)
}

func (c *client) callCtx(ctx context.Context, method, path string, body any) (int, string) {
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.url+path, r)
	if err != nil {
		return 0, err.Error()
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted {
		return resp.StatusCode, string(out)
	}
	loc := resp.Header.Get("Location")
	for {
		var op node.Operation
		code, st := c.callCtx(ctx, http.MethodGet, loc, nil)
		if code != http.StatusOK || json.Unmarshal([]byte(st), &op) != nil {
			return code, fmt.Sprintf("operation %s: %s", loc, st)
		}
		if op.State != node.OpRunning && op.Last != nil {
			if op.Last.OK {
				return http.StatusOK, st
			}
			return op.Last.Code, op.Last.Error
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Sprintf("operation %s did not end: %v", loc, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// waitRunning waits until n apps run healthy.
func (c *client) waitRunning(n int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		var apps []orchestrator.AppStatus
		code, out := c.call(http.MethodGet, "/api/v1/apps", nil)
		if code == http.StatusOK && json.Unmarshal([]byte(out), &apps) == nil {
			ok := 0
			for _, a := range apps {
				if a.Phase == "running" && a.Healthy {
					ok++
				}
			}
			if ok == n && len(apps) == n {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not every app runs healthy after %s: %d %s", limit, code, out)
		}
		time.Sleep(time.Second)
	}
}

// cpuTicks is the process's utime+stime (/proc/PID/stat fields 14 and 15).
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read the node's CPU time: %w", err)
	}
	// The command name (field 2) may hold spaces: count from its ")".
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	s, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return u + s, nil
}

// statusKiB reads a field in KiB of /proc/PID/status (VmRSS, RssAnon).
func statusKiB(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read the node's %s: %w", field, err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no %s", pid, field)
}
