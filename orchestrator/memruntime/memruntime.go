// Package memruntime is an in-memory orchestrator.Runtime: the twin of the
// Podman runtime for fast tests of the reconciler. It passes the same
// conformance suite (orchestrator/runtimetest) and adds fault injection:
// Crash a container, Hang and Resume the whole engine.
package memruntime

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/archy-node/archy/internal/ociimage"
	"github.com/archy-node/archy/orchestrator"
	"github.com/archy-node/archy/registry"
)

// Config tunes the twin. Zero values take the defaults.
type Config struct {
	// CallTimeout bounds every call while the engine hangs (default 10 s),
	// like the Podman runtime's deadlines.
	CallTimeout time.Duration
	// NoResourceLimits makes it behave like rootless Podman on cgroup v1:
	// specs asking for limits fail with ErrSpecNotApplied.
	NoResourceLimits bool
	// Now is the clock; default time.Now.
	Now func() time.Time
}

type container struct {
	c       orchestrator.Container
	spec    orchestrator.ContainerSpec
	retries uint
	sick    bool // runs, but every exec in it fails (Sicken)
}

// Runtime is the in-memory engine. The zero value is not usable: use New.
type Runtime struct {
	cfg Config

	mu sync.Mutex
	// images maps each image name to its ID, as Podman's tags do: a load
	// carrying a name another image holds moves the name.
	images map[string]string
	// digests maps an image ID to its OCI manifest digest ("" when the
	// image came from LoadImageNames).
	digests    map[string]string
	containers map[string]*container // by name
	networks   map[string]orchestrator.Network
	subs       map[chan orchestrator.Event]struct{}
	nextID     int
	nextPID    int
	hung       chan struct{} // non-nil while hung; closed by Resume
}

var _ orchestrator.Runtime = (*Runtime)(nil)

// New returns an empty engine.
func New(cfg Config) *Runtime {
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Runtime{
		cfg:        cfg,
		images:     map[string]string{},
		digests:    map[string]string{},
		containers: map[string]*container{},
		networks:   map[string]orchestrator.Network{},
		subs:       map[chan orchestrator.Event]struct{}{},
		nextPID:    1000,
	}
}

// Hang makes every call block, as a SIGSTOPped Podman does, until Resume,
// the call's ctx ends, or CallTimeout passes (then ErrTimeout).
func (r *Runtime) Hang() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.hung == nil {
		r.hung = make(chan struct{})
	}
}

// Resume ends a Hang.
func (r *Runtime) Resume() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.hung != nil {
		close(r.hung)
		r.hung = nil
	}
}

// enter waits out a hang and returns with r.mu held.
func (r *Runtime) enter(ctx context.Context, op string) error {
	r.mu.Lock()
	for r.hung != nil {
		h := r.hung
		r.mu.Unlock()
		t := time.NewTimer(r.cfg.CallTimeout)
		select {
		case <-h:
			t.Stop()
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s: %w", op, ctx.Err())
		case <-t.C:
			return fmt.Errorf("%s: no answer in %s: %w: %w", op, r.cfg.CallTimeout, orchestrator.ErrTimeout, context.DeadlineExceeded)
		}
		r.mu.Lock()
	}
	if err := ctx.Err(); err != nil {
		r.mu.Unlock()
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

func (r *Runtime) emit(action string, c *orchestrator.Container, exit *int) {
	ev := orchestrator.Event{Time: r.cfg.Now(), Action: action, ID: c.ID, Name: c.Name, Labels: maps.Clone(c.Labels), ExitCode: exit}
	for ch := range r.subs {
		select {
		case ch <- ev:
		default: // a subscriber that does not keep up loses events, as with a broken stream
		}
	}
}

// Info reports a Podman 4.3-like engine.
func (r *Runtime) Info(ctx context.Context) (orchestrator.Info, error) {
	if err := r.enter(ctx, "info"); err != nil {
		return orchestrator.Info{}, err
	}
	defer r.mu.Unlock()
	return orchestrator.Info{Version: "4.3.1-mem", APIVersion: "4.3.1", Rootless: true, ResourceLimits: !r.cfg.NoResourceLimits}, nil
}

// LoadImage reads the image names and manifest digest from the archive;
// the image's ID is derived from that digest.
func (r *Runtime) LoadImage(ctx context.Context, archivePath string) ([]string, error) {
	names, err := ociimage.Names(archivePath)
	if err != nil {
		return nil, fmt.Errorf("load image: %w", err)
	}
	sum, err := registry.ReadOCIArchive(archivePath)
	if err != nil {
		return nil, fmt.Errorf("load image: %w", err)
	}
	if err := r.enter(ctx, "load image "+archivePath); err != nil {
		return nil, err
	}
	defer r.mu.Unlock()
	id := imageIDOf(sum.Digest)
	r.digests[id] = sum.Digest
	for _, n := range names {
		r.images[n] = id
	}
	return names, nil
}

// imageIDOf makes a stable 64-hex image ID out of a manifest digest
// (Podman's is the config digest; any stable, distinct ID will do here).
func imageIDOf(digest string) string {
	h := sha256.Sum256([]byte("image:" + digest))
	return hex.EncodeToString(h[:])
}

// resolveLocked finds the image ref names: a name, an ID, or
// "name@sha256:…" (matched by digest alone, as Podman 4.3 does).
func (r *Runtime) resolveLocked(ref string) (string, bool) {
	if id, ok := r.images[ref]; ok {
		return id, true
	}
	if _, ok := r.digests[ref]; ok {
		return ref, true
	}
	if _, d, ok := strings.Cut(ref, "@"); ok && d != "" {
		for id, dd := range r.digests {
			if dd == d {
				return id, true
			}
		}
	}
	return "", false
}

// SaveImage writes an archive LoadImage reads back as ref: an image of
// an empty file system (the twin keeps no layers).
func (r *Runtime) SaveImage(ctx context.Context, ref, path string) error {
	if err := r.enter(ctx, "save image "+ref); err != nil {
		return err
	}
	_, ok := r.resolveLocked(ref)
	r.mu.Unlock()
	if !ok {
		return fmt.Errorf("save image %s: %w", ref, orchestrator.ErrNotFound)
	}
	root, err := os.MkdirTemp("", "memruntime-rootfs-*")
	if err != nil {
		return fmt.Errorf("save image %s: %w", ref, err)
	}
	defer os.RemoveAll(root)
	tmp := path + ".memruntime-tmp"
	if _, err := ociimage.Build(ctx, root, tmp, ref); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("save image %s: %w", ref, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("save image %s: %w", ref, err)
	}
	return nil
}

// ImageExists reports whether an image was loaded under ref.
func (r *Runtime) ImageExists(ctx context.Context, ref string) (bool, error) {
	if err := r.enter(ctx, "image exists "+ref); err != nil {
		return false, err
	}
	defer r.mu.Unlock()
	_, ok := r.resolveLocked(ref)
	return ok, nil
}

// ImageID returns the ID of the image ref names.
func (r *Runtime) ImageID(ctx context.Context, ref string) (string, error) {
	if err := r.enter(ctx, "inspect image "+ref); err != nil {
		return "", err
	}
	defer r.mu.Unlock()
	id, ok := r.resolveLocked(ref)
	if !ok {
		return "", fmt.Errorf("inspect image %s: %w", ref, orchestrator.ErrNotFound)
	}
	return id, nil
}

// RemoveImage forgets an image no container uses.
func (r *Runtime) RemoveImage(ctx context.Context, ref string) error {
	if err := r.enter(ctx, "remove image "+ref); err != nil {
		return err
	}
	defer r.mu.Unlock()
	id, ok := r.resolveLocked(ref)
	if !ok {
		return fmt.Errorf("remove image %s: %w", ref, orchestrator.ErrNotFound)
	}
	if _, named := r.images[ref]; named {
		// Removing one of several names only untags, as Podman does.
		others := 0
		for n, i := range r.images {
			if i == id && n != ref {
				others++
			}
		}
		if others > 0 {
			delete(r.images, ref)
			return nil
		}
	}
	for _, c := range r.containers {
		if c.c.ImageID == id {
			return fmt.Errorf("remove image %s: used by container %s: %w", ref, c.c.Name, orchestrator.ErrInUse)
		}
	}
	for n, i := range r.images {
		if i == id {
			delete(r.images, n)
		}
	}
	delete(r.digests, id)
	return nil
}

// CreateContainer records a created container.
func (r *Runtime) CreateContainer(ctx context.Context, s orchestrator.ContainerSpec) (string, error) {
	if err := orchestrator.CheckSpec(s); err != nil {
		return "", fmt.Errorf("create container: %w", err)
	}
	s = s.Normalized()
	op := "create container " + s.Name
	if err := r.enter(ctx, op); err != nil {
		return "", err
	}
	defer r.mu.Unlock()
	if _, ok := r.containers[s.Name]; ok {
		return "", fmt.Errorf("%s: %w", op, orchestrator.ErrNameInUse)
	}
	imageID, ok := r.resolveLocked(s.Image)
	if !ok {
		return "", fmt.Errorf("%s: image %s: %w", op, s.Image, orchestrator.ErrNotFound)
	}
	if s.Network != "" {
		if _, ok := r.networks[s.Network]; !ok {
			return "", fmt.Errorf("%s: network %s: %w", op, s.Network, orchestrator.ErrNotFound)
		}
	}
	if r.cfg.NoResourceLimits && !s.Resources.IsZero() {
		return "", fmt.Errorf("%s: %w", op, &orchestrator.SpecError{Field: "resources", Want: fmt.Sprint(s.Resources), Got: "no limits (rootless cgroup v1)"})
	}
	r.nextID++
	id := fmt.Sprintf("%064x", r.nextID)
	c := &container{spec: s, c: orchestrator.Container{
		ID: id, Name: s.Name, Image: s.Image, ImageID: imageID, State: orchestrator.StateCreated, Labels: maps.Clone(s.Labels),
	}}
	if c.c.Labels == nil {
		c.c.Labels = map[string]string{}
	}
	r.containers[s.Name] = c
	r.emit("create", &c.c, nil)
	return id, nil
}

func (r *Runtime) lookup(op, name string) (*container, error) {
	if !orchestrator.ValidName(name) {
		return nil, fmt.Errorf("%s %q: %w", op, name, orchestrator.ErrInvalidName)
	}
	c, ok := r.containers[name]
	if !ok {
		return nil, fmt.Errorf("%s %s: %w", op, name, orchestrator.ErrNotFound)
	}
	return c, nil
}

func (r *Runtime) start(c *container) {
	c.sick = false
	r.nextPID++
	c.c.State = orchestrator.StateRunning
	c.c.PID = r.nextPID
	c.c.StartedAt = r.cfg.Now()
	c.c.ExitCode = 0
	r.emit("start", &c.c, nil)
}

func (r *Runtime) die(c *container, code int) {
	c.c.State = orchestrator.StateExited
	c.c.PID = 0
	c.c.ExitCode = code
	c.c.FinishedAt = r.cfg.Now()
	r.emit("died", &c.c, &code)
}

// Start marks the container running with a new PID.
func (r *Runtime) Start(ctx context.Context, name string) error {
	if err := r.enter(ctx, "start container "+name); err != nil {
		return err
	}
	defer r.mu.Unlock()
	c, err := r.lookup("start container", name)
	if err != nil {
		return err
	}
	if c.c.State != orchestrator.StateRunning {
		c.retries = 0
		r.start(c)
	}
	return nil
}

// Stop marks the container exited (code 0: the twin's processes obey SIGTERM).
func (r *Runtime) Stop(ctx context.Context, name string, timeout time.Duration) error {
	if err := r.enter(ctx, "stop container "+name); err != nil {
		return err
	}
	defer r.mu.Unlock()
	c, err := r.lookup("stop container", name)
	if err != nil {
		return err
	}
	if c.c.State == orchestrator.StateRunning {
		r.die(c, 0)
		r.emit("stop", &c.c, nil)
	}
	return nil
}

// Sicken makes a running container's process hang without exiting: it
// keeps running, and every exec in it fails (exit 1), so its exec health
// probe fails, until it is started again.
func (r *Runtime) Sicken(name string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, err := r.lookup("sicken container", name)
	if err != nil {
		return err
	}
	if c.c.State != orchestrator.StateRunning {
		return fmt.Errorf("sicken container %s: %w", name, orchestrator.ErrNotRunning)
	}
	c.sick = true
	return nil
}

// Crash makes a running container die with exitCode (137 for SIGKILL),
// then applies its restart policy as Podman does.
func (r *Runtime) Crash(name string, exitCode int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, err := r.lookup("crash container", name)
	if err != nil {
		return err
	}
	if c.c.State != orchestrator.StateRunning {
		return fmt.Errorf("crash container %s: %w", name, orchestrator.ErrNotRunning)
	}
	r.die(c, exitCode)
	p := c.spec.Restart
	switch {
	case p.Name == orchestrator.RestartAlways, p.Name == orchestrator.RestartUnlessStopped,
		p.Name == orchestrator.RestartOnFailure && exitCode != 0 && (p.MaxRetries == 0 || c.retries < p.MaxRetries):
		c.retries++
		r.start(c)
	}
	return nil
}

// Remove forgets the container.
func (r *Runtime) Remove(ctx context.Context, name string) error {
	if err := r.enter(ctx, "remove container "+name); err != nil {
		return err
	}
	defer r.mu.Unlock()
	c, err := r.lookup("remove container", name)
	if err != nil {
		return err
	}
	if c.c.State == orchestrator.StateRunning {
		r.die(c, 137)
	}
	delete(r.containers, name)
	r.emit("remove", &c.c, nil)
	return nil
}

// Inspect returns a copy of the container.
func (r *Runtime) Inspect(ctx context.Context, name string) (orchestrator.Container, error) {
	if err := r.enter(ctx, "inspect container "+name); err != nil {
		return orchestrator.Container{}, err
	}
	defer r.mu.Unlock()
	c, err := r.lookup("inspect container", name)
	if err != nil {
		return orchestrator.Container{}, err
	}
	out := c.c
	out.Labels = maps.Clone(c.c.Labels)
	return out, nil
}

func hasLabels(have, want map[string]string) bool {
	for k, v := range want {
		if got, ok := have[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// List returns the containers with all the labels, by name.
func (r *Runtime) List(ctx context.Context, labels map[string]string) ([]orchestrator.Container, error) {
	if err := r.enter(ctx, "list containers"); err != nil {
		return nil, err
	}
	defer r.mu.Unlock()
	var out []orchestrator.Container
	for _, name := range slices.Sorted(maps.Keys(r.containers)) {
		c := r.containers[name]
		if hasLabels(c.c.Labels, labels) {
			cc := c.c
			cc.Labels = maps.Clone(c.c.Labels)
			out = append(out, cc)
		}
	}
	return out, nil
}

// Events delivers events until ctx ends.
func (r *Runtime) Events(ctx context.Context, out chan<- orchestrator.Event) error {
	if err := r.enter(ctx, "subscribe to events"); err != nil {
		return err
	}
	ch := make(chan orchestrator.Event, 1024)
	r.subs[ch] = struct{}{}
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.subs, ch)
		r.mu.Unlock()
	}()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("events: %w", ctx.Err())
		case ev := <-ch:
			select {
			case out <- ev:
			case <-ctx.Done():
				return fmt.Errorf("events: %w", ctx.Err())
			}
		}
	}
}

// CreateNetwork records a network.
func (r *Runtime) CreateNetwork(ctx context.Context, n orchestrator.Network) error {
	if !orchestrator.ValidName(n.Name) {
		return fmt.Errorf("create network %q: %w", n.Name, orchestrator.ErrInvalidName)
	}
	if err := r.enter(ctx, "create network "+n.Name); err != nil {
		return err
	}
	defer r.mu.Unlock()
	if _, ok := r.networks[n.Name]; ok {
		return fmt.Errorf("create network %s: %w", n.Name, orchestrator.ErrNameInUse)
	}
	r.nextID++
	n.ID = fmt.Sprintf("%064x", r.nextID)
	n.Labels = maps.Clone(n.Labels)
	r.networks[n.Name] = n
	return nil
}

// RemoveNetwork forgets a network.
func (r *Runtime) RemoveNetwork(ctx context.Context, name string) error {
	if !orchestrator.ValidName(name) {
		return fmt.Errorf("remove network %q: %w", name, orchestrator.ErrInvalidName)
	}
	if err := r.enter(ctx, "remove network "+name); err != nil {
		return err
	}
	defer r.mu.Unlock()
	if _, ok := r.networks[name]; !ok {
		return fmt.Errorf("remove network %s: %w", name, orchestrator.ErrNotFound)
	}
	for _, c := range r.containers {
		if c.spec.Network == name {
			return fmt.Errorf("remove network %s: used by container %s: %w", name, c.c.Name, orchestrator.ErrInUse)
		}
	}
	delete(r.networks, name)
	return nil
}

// ListNetworks returns the networks with all the labels.
func (r *Runtime) ListNetworks(ctx context.Context, labels map[string]string) ([]orchestrator.Network, error) {
	if err := r.enter(ctx, "list networks"); err != nil {
		return nil, err
	}
	defer r.mu.Unlock()
	var out []orchestrator.Network
	for _, name := range slices.Sorted(maps.Keys(r.networks)) {
		if n := r.networks[name]; hasLabels(n.Labels, labels) {
			n.Labels = maps.Clone(n.Labels)
			out = append(out, n)
		}
	}
	return out, nil
}

// Exec interprets a few commands, enough for probes in tests: `true`,
// `false`, `echo ARGS...`, `sh -c 'exit N'` and `sh -c 'echo ARGS'`. Any
// other command exits 127.
func (r *Runtime) Exec(ctx context.Context, name string, cmd []string) (orchestrator.ExecResult, error) {
	if err := r.enter(ctx, "exec in container "+name); err != nil {
		return orchestrator.ExecResult{}, err
	}
	defer r.mu.Unlock()
	c, err := r.lookup("exec in container", name)
	if err != nil {
		return orchestrator.ExecResult{}, err
	}
	if c.c.State != orchestrator.StateRunning {
		return orchestrator.ExecResult{}, fmt.Errorf("exec in container %s: %w", name, orchestrator.ErrNotRunning)
	}
	if len(cmd) == 0 {
		return orchestrator.ExecResult{}, errors.New("exec: empty command")
	}
	if c.sick {
		return orchestrator.ExecResult{ExitCode: 1, Output: []byte("hung\n")}, nil
	}
	if len(cmd) == 3 && (cmd[0] == "sh" || cmd[0] == "/bin/sh") && cmd[1] == "-c" {
		cmd = strings.Fields(cmd[2])
	}
	switch {
	case len(cmd) == 1 && cmd[0] == "true":
		return orchestrator.ExecResult{}, nil
	case len(cmd) == 1 && cmd[0] == "false":
		return orchestrator.ExecResult{ExitCode: 1}, nil
	case cmd[0] == "echo":
		return orchestrator.ExecResult{Output: []byte(strings.Join(cmd[1:], " ") + "\n")}, nil
	case len(cmd) == 2 && cmd[0] == "exit":
		if n, err := strconv.Atoi(cmd[1]); err == nil {
			return orchestrator.ExecResult{ExitCode: n}, nil
		}
	}
	return orchestrator.ExecResult{ExitCode: 127, Output: []byte(cmd[0] + ": not found\n")}, nil
}

// LoadImageNames makes images present without an archive.
func (r *Runtime) LoadImageNames(names ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range names {
		id := imageIDOf("name:" + n)
		r.digests[id] = ""
		r.images[n] = id
	}
}

// PIDAlive reports whether a running container has pid: the twin's PIDs
// are counters, not this host's processes (orchestrator.PIDChecker).
func (r *Runtime) PIDAlive(pid int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.containers {
		if c.c.PID == pid && c.c.State == orchestrator.StateRunning {
			return true
		}
	}
	return false
}
