package orchestrator

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/archy-node/archy/registry"
)

// openBeneath (openat2) and openEach (its fallback before Linux 5.6) give
// the same answers on real folders: any symlink on the way is ELOOP.
func TestOpenBeneathRefusesSymlinks(t *testing.T) {
	base := t.TempDir()
	outside := t.TempDir()
	for _, d := range []string{"app/d/sub", "app/e"} {
		if err := os.MkdirAll(filepath.Join(base, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(base, "app/file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{"app/out": outside, "app/in": "d", "app/e/up": "../d"} {
		if err := os.Symlink(target, filepath.Join(base, link)); err != nil {
			t.Fatal(err)
		}
	}
	dir, err := os.Open(base)
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	fd := int(dir.Fd())
	for rel, want := range map[string]error{
		"app/d/sub":   nil,
		"app/d":       nil,
		"app/out":     unix.ELOOP, // to a host folder
		"app/out/x":   unix.ELOOP,
		"app/in":      unix.ELOOP, // even to a folder inside
		"app/in/sub":  unix.ELOOP,
		"app/e/up":    unix.ELOOP,
		"app/file":    unix.ENOTDIR,
		"app/missing": unix.ENOENT,
	} {
		for name, open := range map[string]func(int, string) error{"openat2": openBeneath, "one by one": openEach} {
			if err := open(fd, rel); !errors.Is(err, want) && !(want == nil && err == nil) {
				t.Errorf("%s %s: %v, want %v", name, rel, err, want)
			}
		}
	}
}

// The orchestrator refuses, even without validation, volumes one
// container could swap under another.
func TestPlanRefusesVolumesNestedAcrossContainers(t *testing.T) {
	m := &registry.Manifest{ID: "nest", Version: "1.0.0", Containers: []registry.Container{
		{Name: "a", Image: registry.Image{Ref: "localhost/a:1"}, Volumes: []registry.Volume{{Path: "d", Mount: "/data"}}},
		{Name: "b", Image: registry.Image{Ref: "localhost/b:1"}, Volumes: []registry.Volume{{Path: "d/sub", Mount: "/sub"}}},
	}}
	_, err := makePlan(planInput{manifest: m, dataDir: "/srv/nest"})
	if err == nil || !strings.Contains(err.Error(), `volume "d/sub" lies inside volume "d" of container a`) {
		t.Fatalf("plan: %v", err)
	}
	m.Containers[1].Volumes[0].Path = "d2"
	m.Containers[0].Volumes = append(m.Containers[0].Volumes, registry.Volume{Path: "d/sub", Mount: "/sub"})
	m.Containers[0].CapAdd = []string{"CHOWN"}
	p, err := makePlan(planInput{manifest: m, dataDir: "/srv/nest"})
	if err != nil {
		t.Fatalf("nesting within one container and an allowed cap_add: %v", err)
	}
	if got := p.Containers[0].Spec.CapAdd; len(got) != 1 || got[0] != "CHOWN" {
		t.Fatalf("planned capabilities %v", got)
	}
	m.Containers[0].CapAdd = []string{"SYS_ADMIN"}
	if _, err := makePlan(planInput{manifest: m, dataDir: "/srv/nest"}); err == nil {
		t.Fatal("plan with cap_add SYS_ADMIN: no error")
	}
}
