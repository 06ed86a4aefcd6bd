//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/archy-node/archy/examples"
	"github.com/archy-node/archy/internal/podmantest"
	"github.com/archy-node/archy/node"
)

// TestMain fails the package when a test leaves a goroutine behind; idle
// keep-alive connections to the nodes and Podman may stay.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"))
}

// portsLock is the machine-wide lock every run of the sample apps holds.
const portsLock = "/tmp/archy-ports.lock"

// lockPorts takes portsLock for the test's lifetime: the sample apps
// publish fixed host ports and container names.
func lockPorts(t *testing.T) {
	t.Helper()
	f, err := os.OpenFile(portsLock, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		t.Fatalf("open %s: %v", portsLock, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Logf("waiting for %s (another run of the sample apps holds it)", portsLock)
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
			f.Close()
			t.Fatalf("lock %s: %v", portsLock, err)
		}
	}
	t.Cleanup(func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	})
}

// account is a user a node or a command runs as; nil is this process's.
type account struct {
	name     string
	uid, gid int
	home     string
}

func lookupAccount(t *testing.T, name string) *account {
	t.Helper()
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatalf("look up user %s: %v", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &account{name: name, uid: uid, gid: gid, home: u.HomeDir}
}

// command is the archy binary's cmd run as a: a clean environment (no
// ARCHY_ variable may set a node's flag behind the test's back), from /.
func command(ctx context.Context, bin string, a *account, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if a == nil {
		cmd.Env = append(cmd.Env, "HOME="+os.Getenv("HOME"))
		return cmd
	}
	cmd.Env = append(cmd.Env, "HOME="+a.home, "USER="+a.name, "LOGNAME="+a.name, fmt.Sprintf("XDG_RUNTIME_DIR=/run/user/%d", a.uid))
	cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(a.uid), Gid: uint32(a.gid), Groups: []uint32{}}
	return cmd
}

// world is what the test's nodes and commands share.
type world struct {
	t    *testing.T
	bin  string // the archy binary, readable by every account
	work string // a folder every account can enter
}

func newWorld(t *testing.T) *world {
	t.Helper()
	work, err := os.MkdirTemp("", "archy-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() && os.Getenv("ARCHY_E2E_KEEP") != "" {
			t.Logf("kept %s", work)
			return
		}
		os.RemoveAll(work)
	})
	if err := os.Chmod(work, 0o755); err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, bin: filepath.Join(work, "archy"), work: work}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-o", w.bin, "./cmd/archy")
	build.Dir = filepath.Dir(examples.Root())
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build archy: %v\n%s", err, out)
	}
	return w
}

// run runs an archy command as a (5 min at most) and returns its stdout;
// a failure carries its stderr.
func (w *world) run(a *account, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := command(ctx, w.bin, a, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("archy %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// must is run that fails the test on an error.
func (w *world) must(a *account, args ...string) string {
	w.t.Helper()
	out, err := w.run(a, args...)
	if err != nil {
		w.t.Fatal(err)
	}
	return out
}

// proc is a running `archy node run`.
type proc struct {
	name   string
	data   string
	logf   string
	as     *account
	api    string
	token  string
	exited chan error
}

// startNode starts `archy node run` as a on a new data folder, loopback
// ports the kernel picks and debug logs, with the extra flags, and waits
// for its API. The test's cleanup stops it.
func (w *world) startNode(name string, a *account, flags ...string) *proc {
	t := w.t
	t.Helper()
	p := &proc{name: name, data: filepath.Join(w.work, name), logf: filepath.Join(w.work, name+".log"), as: a, exited: make(chan error, 1)}
	if err := os.Mkdir(p.data, 0o700); err != nil {
		t.Fatal(err)
	}
	if a != nil {
		if err := os.Chown(p.data, a.uid, a.gid); err != nil {
			t.Fatal(err)
		}
	}
	logFile, err := os.Create(p.logf)
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"node", "run", "--data", p.data, "--api", "127.0.0.1:0", "--relay-listen", "127.0.0.1:0",
		"--listen", "/ip4/127.0.0.1/tcp/0", "-v"}, flags...)
	cmd := command(context.Background(), w.bin, a, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("start node %s: %v", name, err)
	}
	go func() { p.exited <- cmd.Wait(); logFile.Close() }()
	t.Cleanup(func() {
		// A test that failed half-way leaves apps installed: they would
		// hold the sample apps' ports and names in a Podman others share.
		p.purgeAll(t)
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-p.exited
			t.Errorf("node %s did not stop within 30 s of SIGTERM", name)
		}
		if t.Failed() {
			b, _ := os.ReadFile(p.logf)
			t.Logf("node %s's log (last 60 lines):\n%s", name, tail(string(b), 60))
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		addr, err1 := os.ReadFile(filepath.Join(p.data, "api.addr"))
		token, err2 := os.ReadFile(filepath.Join(p.data, "api.token"))
		if err1 == nil && err2 == nil && len(bytes.TrimSpace(addr)) > 0 && len(bytes.TrimSpace(token)) > 0 {
			p.api, p.token = strings.TrimSpace(string(addr)), strings.TrimSpace(string(token))
			return p
		}
		select {
		case err := <-p.exited:
			p.exited <- err
			b, _ := os.ReadFile(p.logf)
			t.Fatalf("node %s exited at start: %v\n%s", name, err, b)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s wrote no api.addr within 60 s", name)
		}
	}
}

// purgeAll uninstalls, with purge, every app the node still lists.
func (p *proc) purgeAll(t *testing.T) {
	var apps []struct{ ID string }
	if err := p.get("/api/v1/apps", &apps); err != nil {
		return // apps off, or the node is gone
	}
	for _, a := range apps {
		if err := p.change(http.MethodDelete, "/api/v1/apps/"+url.PathEscape(a.ID)+"?purge=1"); err != nil {
			t.Errorf("clean-up: %v", err)
		}
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// get reads path from the node's API into v (GETs need no token).
func (p *proc) get(path string, v any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.api+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("node %s: GET %s: %w", p.name, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("node %s: GET %s: %s: %s", p.name, path, resp.Status, b)
	}
	if s, ok := v.(*string); ok {
		*s = string(b)
		return nil
	}
	return json.Unmarshal(b, v)
}

// post sends a change with the node's token; an operation it starts is
// followed to its end (3 min at most), whose failure is an error.
func (p *proc) post(path string) error { return p.change(http.MethodPost, path) }

func (p *proc) change(method, path string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, p.api+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+p.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("node %s: %s %s: %w", p.name, method, path, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted && resp.StatusCode != http.StatusOK {
		return fmt.Errorf("node %s: %s %s: %s: %s", p.name, method, path, resp.Status, b)
	}
	loc := resp.Header.Get("Location")
	for loc != "" {
		var op node.Operation
		if err := p.get(loc, &op); err != nil {
			return err
		}
		if op.State != node.OpRunning && op.Last != nil {
			if !op.Last.OK {
				return fmt.Errorf("node %s: %s %s: %s", p.name, method, path, op.Last.Error)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("node %s: %s %s: operation %s did not end", p.name, method, path, loc)
		case <-time.After(200 * time.Millisecond):
		}
	}
	return nil
}

// metric reads a counter or gauge without labels from the node's /metrics.
func (p *proc) metric(name string) float64 {
	var text string
	if err := p.get("/metrics", &text); err != nil {
		return -1
	}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	return 0
}

func (p *proc) status(t *testing.T) node.Status {
	t.Helper()
	var st node.Status
	if err := p.get("/api/v1/status", &st); err != nil {
		t.Fatal(err)
	}
	if st.PeerID == "" || len(st.Relays) == 0 {
		t.Fatalf("node %s's status names no peer id or relay: %+v", p.name, st)
	}
	return st
}

// log is what the node has written so far.
func (p *proc) log() string {
	b, _ := os.ReadFile(p.logf)
	return string(b)
}

// within polls cond every 200 ms until it holds or limit passes; the
// failure names what and the last reason cond gave.
func within(t *testing.T, limit time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %s", what, limit, why)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// podman talks to one user's rootless Podman service over its socket.
type podman struct {
	sock string
	hc   *http.Client
}

func newPodman(t *testing.T, sock string) *podman {
	path := strings.TrimPrefix(sock, "unix://")
	p := &podman{sock: sock, hc: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		}}}}
	t.Cleanup(p.hc.CloseIdleConnections)
	return p
}

// call sends one request to the libpod API and returns the status and body.
func (p *podman) call(t *testing.T, method, path string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, "http://d/v4.0.0/libpod"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := p.hc.Do(req)
	if err != nil {
		t.Fatalf("podman %s: %s %s: %v", p.sock, method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// exists asks an .../exists endpoint (204 yes, 404 no).
func (p *podman) exists(t *testing.T, path string) bool {
	t.Helper()
	code, b := p.call(t, http.MethodGet, path+"/exists")
	switch code {
	case http.StatusNoContent:
		return true
	case http.StatusNotFound:
		return false
	}
	t.Fatalf("podman %s: GET %s/exists: %d %s", p.sock, path, code, b)
	return false
}

func (p *podman) hasImage(t *testing.T, ref string) bool {
	return p.exists(t, "/images/"+url.PathEscape(ref))
}

// removeImage removes ref if Podman holds it, so that an install must
// fetch it from the swarm (a Podman that holds the image by digest is
// used as it is).
func (p *podman) removeImage(t *testing.T, ref string) {
	t.Helper()
	code, b := p.call(t, http.MethodDelete, "/images/"+url.PathEscape(ref))
	if code != http.StatusOK && code != http.StatusNotFound {
		t.Fatalf("podman %s: remove image %s: %d %s", p.sock, ref, code, b)
	}
}

// labelled lists the names of the containers, networks or volumes
// (kind) labelled as app's by archy's orchestrator.
func (p *podman) labelled(t *testing.T, kind, app string) []string {
	t.Helper()
	filters, _ := json.Marshal(map[string][]string{"label": {"io.archy.app=" + app}})
	path := "/" + kind + "/json?filters=" + url.QueryEscape(string(filters))
	if kind == "containers" {
		path += "&all=true"
	}
	code, b := p.call(t, http.MethodGet, path)
	if code != http.StatusOK {
		t.Fatalf("podman %s: list %s: %d %s", p.sock, kind, code, b)
	}
	var list []struct {
		Names []string
		Name  string
	}
	if err := json.Unmarshal(b, &list); err != nil {
		t.Fatalf("podman %s: list %s: %v", p.sock, kind, err)
	}
	var out []string
	for _, x := range list {
		out = append(out, x.Names...)
		if x.Name != "" {
			out = append(out, x.Name)
		}
	}
	return out
}

// containersNamed lists the containers whose name starts with prefix.
func (p *podman) containersNamed(t *testing.T, prefix string) []string {
	t.Helper()
	code, b := p.call(t, http.MethodGet, "/containers/json?all=true")
	if code != http.StatusOK {
		t.Fatalf("podman %s: list containers: %d %s", p.sock, code, b)
	}
	var list []struct{ Names []string }
	if err := json.Unmarshal(b, &list); err != nil {
		t.Fatalf("podman %s: list containers: %v", p.sock, err)
	}
	var out []string
	for _, c := range list {
		for _, n := range c.Names {
			if strings.HasPrefix(strings.TrimPrefix(n, "/"), prefix) {
				out = append(out, n)
			}
		}
	}
	return out
}

// answers GETs url once (3 s at most) and returns the body on a 200.
func answers(u string) (string, error) {
	c := &http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(u)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", u, resp.Status)
	}
	return string(b), nil
}

// portFree reports whether nothing listens on 127.0.0.1:port.
func portFree(port int) bool {
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
	if err != nil {
		return true
	}
	c.Close()
	return false
}

// requireAccounts returns the two Podman users and their sockets, or
// skips (fails in CI) without them or without root to run as them.
func requireAccounts(t *testing.T) (a1, a2 *account, sock1, sock2 string) {
	t.Helper()
	sock1 = podmantest.Socket(t)
	sock2 = os.Getenv("ARCHY_PODMAN_SOCKET2")
	n1, n2 := os.Getenv(podmantest.EnvUser), os.Getenv("ARCHY_PODMAN_USER2")
	if sock2 == "" || n1 == "" || n2 == "" {
		podmantest.Require(t, "ARCHY_PODMAN_USER, ARCHY_PODMAN_SOCKET2 and ARCHY_PODMAN_USER2 are unset: no second Podman user (as root: make test-env)")
	}
	if os.Geteuid() != 0 {
		podmantest.Require(t, "the end-to-end test runs its nodes as two Podman users: run it as root (make e2e)")
	}
	return lookupAccount(t, n1), lookupAccount(t, n2), sock1, sock2
}
