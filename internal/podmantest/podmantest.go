// Package podmantest lets tests reach the rootless Podman that
// .ci/podman-setup.sh starts: it finds the socket, skips (or, in CI, fails)
// a test without one, runs a package's tests as the socket's unprivileged
// owner, and makes small busybox images.
package podmantest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/archy-node/archy/internal/ociimage"
)

// Environment variables set by `eval "$(bash .ci/podman-setup.sh)"`.
const (
	EnvSocket = "ARCHY_PODMAN_SOCKET" // unix:// URL of the rootless API socket
	EnvUser   = "ARCHY_PODMAN_USER"   // the socket's owner; tests run as that user
	envReexec = "ARCHY_PODMANTEST_REEXEC"
)

// Socket returns the Podman socket URL for t. Without one the test is
// skipped, or fails when CI=true: CI never silently skips Podman tests.
func Socket(t testing.TB) string {
	t.Helper()
	s := os.Getenv(EnvSocket)
	if s == "" {
		Require(t, EnvSocket+" is unset: no Podman to test against (as root: eval \"$(bash .ci/podman-setup.sh)\")")
	}
	return s
}

// Require skips t with why, or fails it when CI=true.
func Require(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true and %s", why)
	}
	t.Skip(why)
}

// Main runs the package's tests, then fails them if goroutines leaked. When the process is root and
// ARCHY_PODMAN_USER names a user, it runs them as that user instead: a
// copy of the test binary, readable by that user, is executed with its
// UID, GID, HOME and XDG_RUNTIME_DIR, and its exit code becomes ours.
// Rootless containers can then write the test's folders, as they can a
// node's, which runs as that user too. Call it from TestMain:
//
//	func TestMain(m *testing.M) { podmantest.Main(m) }
func Main(m *testing.M) {
	name := os.Getenv(EnvUser)
	if os.Geteuid() != 0 || name == "" || os.Getenv(envReexec) != "" {
		code := m.Run()
		if code == 0 {
			// No test may leave a goroutine behind; idle keep-alive
			// connections to the Podman socket may stay.
			if err := goleak.Find(
				goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
				goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
			); err != nil {
				fmt.Fprintf(os.Stderr, "podmantest: leaked goroutines: %v\n", err)
				code = 1
			}
		}
		os.Exit(code)
	}
	code, err := reexec(name)
	if err != nil {
		fmt.Fprintf(os.Stderr, "podmantest: run tests as %s: %v\n", name, err)
		os.Exit(2)
	}
	os.Exit(code)
}

func reexec(name string) (int, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return 0, err
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return 0, err
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return 0, err
	}
	self, err := os.Executable()
	if err != nil {
		return 0, err
	}
	// go test builds into a root-only folder: copy the binary out.
	dir, err := os.MkdirTemp("", "podmantest-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		return 0, err
	}
	bin := filepath.Join(dir, filepath.Base(self))
	if err := copyFile(self, bin, 0o755); err != nil {
		return 0, err
	}
	var args []string
	for _, a := range os.Args[1:] {
		// Files go test asks for live in its root-only folder.
		if strings.HasPrefix(a, "-test.testlogfile=") || strings.HasPrefix(a, "-test.gocoverdir=") {
			continue
		}
		args = append(args, a)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	env := []string{envReexec + "=1", "HOME=" + u.HomeDir, "USER=" + name, "LOGNAME=" + name}
	runDir := fmt.Sprintf("/run/user/%d", uid)
	if _, err := os.Stat(runDir); err == nil {
		env = append(env, "XDG_RUNTIME_DIR="+runDir)
	}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "HOME", "USER", "LOGNAME", "XDG_RUNTIME_DIR", "TMPDIR", "GOCOVERDIR":
			continue
		}
		env = append(env, kv)
	}
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}},
		Pdeathsig:  syscall.SIGKILL,
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGQUIT)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-sigs:
				cmd.Process.Signal(s)
			case <-done:
				return
			}
		}
	}()
	err = cmd.Wait()
	close(done)
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if st, ok := ee.Sys().(syscall.WaitStatus); ok && st.Signaled() {
			return 128 + int(st.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	if err != nil {
		return 0, err
	}
	return 0, nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// Busybox is where busybox-static puts its binary.
const Busybox = "/bin/busybox"

// BusyboxImage builds, in a folder of t, an OCI archive named ref holding
// static busybox (/bin/busybox and a link for each applet: sh, httpd,
// wget, sleep..., /www/index.html with body) and
// returns its path. Without busybox the test is skipped (failed in CI).
func BusyboxImage(t testing.TB, ref, body string) string {
	t.Helper()
	if _, err := os.Stat(Busybox); err != nil {
		Require(t, Busybox+" is missing (apt-get install busybox-static)")
	}
	dir := t.TempDir()
	root := filepath.Join(dir, "rootfs")
	for _, d := range []string{"bin", "www", "tmp", "data"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(root, "tmp"), 0o1777); err != nil {
		t.Fatal(err)
	}
	if err := copyFile(Busybox, filepath.Join(root, "bin", "busybox"), 0o755); err != nil {
		t.Fatal(err)
	}
	list, err := exec.Command(Busybox, "--list").Output()
	if err != nil {
		t.Fatalf("busybox --list: %v", err)
	}
	for _, applet := range strings.Fields(string(list)) {
		if applet == "busybox" || strings.Contains(applet, "/") {
			continue
		}
		if err := os.Symlink("busybox", filepath.Join(root, "bin", applet)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "www", "index.html"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "image.tar")
	if _, err := ociimage.Build(context.Background(), root, out, ref); err != nil {
		t.Fatal(err)
	}
	return out
}

// LoadEnvFile sets, from file (the .cache/test.env that `make test-env`
// writes), every variable the environment does not set yet, when the
// environment names no Podman socket: the figure programs of `make bench`
// run outside the test harness and find the set-up's Podman this way.
func LoadEnvFile(file string) {
	if os.Getenv(EnvSocket) != "" {
		return
	}
	f, err := os.Open(file)
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		kv := strings.TrimPrefix(sc.Text(), "export ")
		if k, v, ok := strings.Cut(kv, "="); ok && os.Getenv(k) == "" {
			os.Setenv(k, strings.Trim(v, `"'`))
		}
	}
}

// Inspect asks Podman itself (GET /containers/{name}/json on socket, not
// through the runtime a test checks) what it applied to a container, and
// decodes the answer into v.
func Inspect(t testing.TB, socket, name string, v any) {
	t.Helper()
	u, err := url.Parse(socket)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", u.Path)
		},
	}}
	defer c.CloseIdleConnections()
	resp, err := c.Get("http://d/v4.0.0/libpod/containers/" + url.PathEscape(name) + "/json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("podman inspect %s: %s", name, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("podman inspect %s: %v", name, err)
	}
}
