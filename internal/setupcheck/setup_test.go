package setupcheck

import (
	"bytes"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/archy-node/archy/internal/podmantest"
)

// moduleRoot walks up from the test's folder to the go.mod.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's folder")
		}
		dir = parent
	}
}

// cleanEnv is the environment without the make variables of a make that
// may be running this test.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "GNUMAKEFLAGS":
			continue
		}
		env = append(env, kv)
	}
	return env
}

// On a new machine `make test` once built the sample images (which need
// busybox) before the set-up that installs busybox. The dry run of
// `make test` must run the set-up before anything that needs what it
// installs.
func TestMakeTestSetsUpFirst(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Fatalf("make: %v", err)
	}
	cmd := exec.Command("make", "-n", "--no-print-directory", "test")
	cmd.Dir = moduleRoot(t)
	cmd.Env = cleanEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make -n test: %v\n%s", err, out)
	}
	lines := strings.Split(string(out), "\n")
	first := func(sub string) int {
		for i, l := range lines {
			if strings.Contains(l, sub) {
				return i
			}
		}
		t.Fatalf("make -n test never runs %q:\n%s", sub, out)
		return -1
	}
	setup := first("bash .ci/setup.sh")
	// The end-to-end test (make e2e) needs the second Podman user the
	// set-up makes.
	for _, needs := range []string{"run ./examples/build", " test -tags", "fuzz-one.sh", "-run TestEndToEnd"} {
		if at := first(needs); at < setup {
			t.Errorf("make test runs %q (line %d) before the set-up (line %d):\n%s", needs, at+1, setup+1, out)
		}
	}
}

// as runs name with args as the user u, from /.
func as(u *user.User, name string, args ...string) error {
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	cmd := exec.Command(name, args...)
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}}
	return cmd.Run()
}

// A newcomer logged in as root clones into /root/archy (0700): the Podman
// user cannot enter it, and the tests it runs read the tree. .ci/stage.sh
// then copies the tree where that user can read it, and leaves a checkout
// it can enter where it is.
func TestStageCheckoutTheUserCannotEnter(t *testing.T) {
	name := os.Getenv(podmantest.EnvUser)
	if os.Geteuid() != 0 || name == "" {
		podmantest.Require(t, "needs root and "+podmantest.EnvUser+", as make test runs")
	}
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	script, err := os.ReadFile(filepath.Join(moduleRoot(t), ".ci", "stage.sh"))
	if err != nil {
		t.Fatal(err)
	}
	// A small checkout: what stage.sh looks at, and a file to read.
	checkout := func(parent string) string {
		dir := filepath.Join(parent, "archy")
		for path, body := range map[string]string{
			".ci/stage.sh":              string(script),
			"go.mod":                    "module example\n",
			"examples/apps/hello/x.txt": "hello\n",
			".cache/test.env":           "export " + podmantest.EnvUser + "=" + name + "\n",
			".cache/junk":               "not copied\n",
		} {
			p := filepath.Join(dir, path)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	stage := func(dir string) string {
		var out, errb bytes.Buffer
		cmd := exec.Command("bash", filepath.Join(dir, ".ci", "stage.sh"))
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("stage.sh in %s: %v\n%s", dir, err, errb.String())
		}
		return strings.TrimSpace(out.String())
	}

	closed := t.TempDir() // 0700, root's: the user cannot enter
	if err := os.Chmod(closed, 0o700); err != nil {
		t.Fatal(err)
	}
	dir := checkout(closed)
	if err := as(u, "test", "-r", filepath.Join(dir, "go.mod")); err == nil {
		t.Fatalf("%s can read %s: not a closed checkout", name, dir)
	}
	got := stage(dir)
	if got == dir || !strings.HasPrefix(got, "/var/tmp/archy-stage/") {
		t.Fatalf("closed checkout staged at %q", got)
	}
	t.Cleanup(func() { os.RemoveAll(got) })
	if err := as(u, "test", "-r", filepath.Join(got, "examples/apps/hello/x.txt")); err != nil {
		t.Fatalf("%s cannot read the staged copy %s: %v", name, got, err)
	}
	if _, err := os.Stat(filepath.Join(got, ".cache", "junk")); err == nil {
		t.Error("the staged copy carries .cache")
	}
	if _, err := os.Stat(filepath.Join(got, ".cache", "test.env")); err != nil {
		t.Errorf("the staged copy lacks the set-up's environment: %v", err)
	}
	if fi, err := os.Stat(closed); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("the closed folder's mode changed: %v %v", fi.Mode(), err)
	}

	// t.TempDir's own parent is 0700: make one the user can enter.
	open, err := os.MkdirTemp("", "archy-stage-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(open) })
	if err := os.Chmod(open, 0o755); err != nil {
		t.Fatal(err)
	}
	if dir := checkout(open); stage(dir) != dir {
		t.Errorf("a checkout %s can enter was staged", name)
	}
}

// make install puts the binaries and a user unit that runs the node in place.
func TestMakeInstall(t *testing.T) {
	dest := t.TempDir()
	// Built aside: other tests may be running bin/archy.
	cmd := exec.Command("make", "--no-print-directory", "install", "DESTDIR="+dest, "PREFIX=/opt/archy", "BIN="+filepath.Join(t.TempDir(), "archy"))
	cmd.Dir = moduleRoot(t)
	cmd.Env = cleanEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	for _, bin := range []string{"archy", "archy-sim"} {
		if fi, err := os.Stat(filepath.Join(dest, "opt/archy/bin", bin)); err != nil || fi.Mode().Perm() != 0o755 {
			t.Fatalf("binary %s: %v %v", bin, fi, err)
		}
	}
	unit, err := os.ReadFile(filepath.Join(dest, "opt/archy/lib/systemd/user/archy.service"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"\nExecStart=/opt/archy/bin/archy node run\n", "ARCHY_PODMAN_SOCKET=unix://%t/podman/podman.sock", "WantedBy=default.target"} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("unit lacks %q:\n%s", want, unit)
		}
	}
	if strings.Contains(string(unit), "@") {
		t.Errorf("unit has an unfilled placeholder:\n%s", unit)
	}
}
