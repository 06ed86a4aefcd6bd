package main

import (
	"os"
	"os/user"
	"strings"
	"testing"

	"github.com/archy-node/archy/examples"
	"github.com/archy-node/archy/internal/podmantest"
)

// Root running `archy app test` against the rootless socket of another
// user used to get through most steps and fail the apps with data
// folders midway ("podman unshare: please use unshare with rootless").
// It is refused before the first step, with the command to run instead.
func TestAppTestRefusesAnotherUsersSocket(t *testing.T) {
	sock := podmantest.Socket(t)
	owner := os.Getenv(podmantest.EnvUser)
	if os.Geteuid() != 0 || owner == "" {
		podmantest.Require(t, "needs root and "+podmantest.EnvUser+" (the socket's owner), as make test runs")
	}
	u, err := user.Lookup(owner)
	if err != nil {
		t.Fatal(err)
	}
	stdout, stderr, err := execArchy(t, "app", "test", "hello", "--podman-socket", sock,
		"--examples", examples.AppsDir(), "--key", examples.KeyFile())
	if err == nil {
		t.Fatalf("app test as root against %s's socket succeeded:\n%s", owner, stdout)
	}
	if stdout != "" {
		t.Fatalf("steps ran before the refusal:\n%s", stdout)
	}
	for _, want := range []string{"belongs to " + owner, "runs as root", "runuser -u " + owner, "XDG_RUNTIME_DIR=/run/user/" + u.Uid} {
		if !strings.Contains(stderr, want) {
			t.Errorf("refusal lacks %q:\n%s", want, stderr)
		}
	}
}
