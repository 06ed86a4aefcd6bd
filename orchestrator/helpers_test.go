package orchestrator_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/archy-node/archy/did"
	"github.com/archy-node/archy/internal/ociimage"
	"github.com/archy-node/archy/internal/podmantest"
	"github.com/archy-node/archy/orchestrator"
	"github.com/archy-node/archy/orchestrator/memruntime"
	"github.com/archy-node/archy/registry"
)

func TestMain(m *testing.M) { podmantest.Main(m) }

// digestRT is memruntime plus name@digest lookups, which the twin does
// not know: it records the digest of every archive it loads.
type digestRT struct {
	*memruntime.Runtime
	mu      sync.Mutex
	digests map[string]bool
}

func newDigestRT(cfg memruntime.Config) *digestRT {
	return &digestRT{Runtime: memruntime.New(cfg), digests: map[string]bool{}}
}

func repo(ref string) string {
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		return ref[:i]
	}
	return ref
}

func (r *digestRT) LoadImage(ctx context.Context, path string) ([]string, error) {
	names, err := r.Runtime.LoadImage(ctx, path)
	if err != nil {
		return nil, err
	}
	sum, err := registry.ReadOCIArchive(path)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range names {
		r.digests[repo(n)+"@"+sum.Digest] = true
	}
	return names, nil
}

func (r *digestRT) ImageExists(ctx context.Context, ref string) (bool, error) {
	if strings.Contains(ref, "@") {
		if _, err := r.Runtime.ImageExists(ctx, "probe"); err != nil {
			return false, err // a hung twin hangs here too
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.digests[ref], nil
	}
	return r.Runtime.ImageExists(ctx, ref)
}

func (r *digestRT) RemoveImage(ctx context.Context, ref string) error {
	if err := r.Runtime.RemoveImage(ctx, ref); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for k := range r.digests {
		if strings.HasPrefix(k, repo(ref)+"@") {
			delete(r.digests, k)
		}
	}
	return nil
}

// fixture builds small signed apps for the twin.
type fixture struct {
	t   *testing.T
	key *did.Key
	dir string
}

func newFixture(t *testing.T) *fixture {
	k, err := did.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, key: k, dir: t.TempDir()}
}

// ctr describes a test container.
type ctr struct {
	name      string
	health    []string // exec probe; nil: none
	hostPort  int
	depends   []string
	secretEnv string
	volume    string
	user      string
}

// app signs a manifest with the given containers; each image is a tiny
// archive holding the version, so versions differ in digest.
func (f *fixture) app(id, version string, cs []ctr, mod func(*registry.Manifest)) (*registry.Verified, map[string]string) {
	t := f.t
	t.Helper()
	m := &registry.Manifest{Schema: registry.Schema, ID: id, Name: id, Version: version, Publisher: f.key.DID()}
	archives := map[string]string{}
	for _, c := range cs {
		ref := "localhost/archytest/" + id + "-" + c.name + ":" + version
		root := filepath.Join(f.dir, "rootfs-"+id+"-"+c.name+"-"+version)
		if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "etc", "app-version"), []byte(version+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(f.dir, id+"-"+c.name+"-"+version+".oci.tar")
		if _, err := ociimage.Build(context.Background(), root, out, ref); err != nil {
			t.Fatal(err)
		}
		sum, err := registry.ReadOCIArchive(out)
		if err != nil {
			t.Fatal(err)
		}
		rc := registry.Container{
			Name:    c.name,
			Image:   registry.Image{Ref: ref, CID: sum.CID.String(), Digest: sum.Digest},
			Command: []string{"/bin/sh", "/app/start.sh"},
			User:    c.user, DependsOn: c.depends,
		}
		if c.health != nil {
			rc.Health = &registry.Health{Exec: c.health, Interval: "1s", Timeout: "1s", Retries: 2}
		}
		if c.hostPort != 0 {
			rc.Ports = []registry.Port{{Container: 8080, Host: c.hostPort}}
		}
		if c.secretEnv != "" {
			rc.Env = []registry.EnvVar{{Name: "SECRET", Secret: c.secretEnv}, {Name: "PLAIN", Value: "v"}}
		}
		if c.volume != "" {
			rc.Volumes = []registry.Volume{{Path: c.volume, Mount: "/data"}}
		}
		m.Containers = append(m.Containers, rc)
		archives[c.name] = out
	}
	if mod != nil {
		mod(m)
	}
	env, _, err := registry.Sign(m, f.key)
	if err != nil {
		t.Fatal(err)
	}
	v, err := registry.VerifyParsed(env)
	if err != nil {
		t.Fatal(err)
	}
	return v, archives
}

// logBuf collects log lines for secret checks.
type logBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

type env struct {
	t    *testing.T
	rt   *digestRT
	dir  string
	logs *logBuf
	cfg  orchestrator.Config
}

func newEnv(t *testing.T, memCfg memruntime.Config) *env {
	e := &env{t: t, rt: newDigestRT(memCfg), dir: t.TempDir(), logs: &logBuf{}}
	e.cfg = orchestrator.Config{
		Runtime:        e.rt,
		Dir:            e.dir,
		Logger:         slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		PIDAlive:       func(int) bool { return true },
		RequireTimeout: 2 * time.Second,
		Interval:       time.Hour,
	}
	return e
}

func (e *env) orch() *orchestrator.Orchestrator {
	o, err := orchestrator.New(e.cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	return o
}

// run starts o's loop for the test's lifetime.
func run(t *testing.T, o *orchestrator.Orchestrator) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- o.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
}

// eventually polls cond (external or loop-driven state) until it holds
// or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}
