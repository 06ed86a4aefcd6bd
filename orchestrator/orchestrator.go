package orchestrator

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/archy-node/archy/registry"
)

// Config configures an Orchestrator. Zero durations take the documented
// defaults.
type Config struct {
	// Runtime is the container engine (required).
	Runtime Runtime
	// Dir is the node's orchestrator folder (required): state/ (desired
	// state), secrets/ and data/ (the apps' data folders) live in it.
	Dir string
	// Interval is the resync period of the reconcile loop (default 30 s);
	// every engine event triggers a pass too.
	Interval time.Duration
	// Logger receives what the orchestrator does; nil discards it.
	Logger *slog.Logger
	// IDMapper gives data folders to non-root container users (nil: no
	// ownership changes, fine when every container runs as its root).
	IDMapper IDMapper
	// PIDAlive reports whether a process exists on this host (default:
	// the Runtime's own PIDAlive when it has one, as the in-memory twin
	// does, whose PIDs are not this host's; else kill(pid, 0)); a
	// container the engine says runs with a dead PID is recreated, at
	// most once every ZombieRetry.
	PIDAlive func(pid int) bool
	// Images fetches the archive of an image the engine lacks when the
	// caller handed none (the node passes its swarm); nil: every image
	// must be present or given as an archive. What it returns is checked
	// against the manifest's CID and digest like any archive.
	Images ImageSource
	// Per-stage deadlines of operations. Defaults: fetch 2 min, load
	// 5 min, create 2 min, start 2 min, stop 1 min, remove 2 min.
	FetchTimeout, LoadTimeout, CreateTimeout, StartTimeout, StopTimeout, RemoveTimeout time.Duration
	// HealthTimeout caps the wait for a container's health, whatever its
	// manifest says (default 3 min).
	HealthTimeout time.Duration
	// RequireTimeout is how long an operation waits for a required app
	// to be healthy before it ends, leaving the app waiting (default
	// 2 min).
	RequireTimeout time.Duration
	// PassTimeout bounds one reconcile pass (default 2 min).
	PassTimeout time.Duration
	// ExecProbeInterval is the least time between two exec probes of one
	// container in steady state (default 60 s): each exec costs Podman a
	// conmon process for minutes.
	ExecProbeInterval time.Duration
	// Now is the clock (default time.Now); Rand the secrets' source
	// (default crypto/rand).
	Now  func() time.Time
	Rand io.Reader
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.Interval, 30*time.Second)
	def(&c.FetchTimeout, 2*time.Minute)
	def(&c.LoadTimeout, 5*time.Minute)
	def(&c.CreateTimeout, 2*time.Minute)
	def(&c.StartTimeout, 2*time.Minute)
	def(&c.StopTimeout, time.Minute)
	def(&c.RemoveTimeout, 2*time.Minute)
	def(&c.HealthTimeout, 3*time.Minute)
	def(&c.RequireTimeout, 2*time.Minute)
	def(&c.PassTimeout, 2*time.Minute)
	def(&c.ExecProbeInterval, time.Minute)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.PIDAlive == nil {
		c.PIDAlive = pidAlive
		if pc, ok := c.Runtime.(PIDChecker); ok {
			c.PIDAlive = pc.PIDAlive
		}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Rand == nil {
		c.Rand = rand.Reader
	}
	return c
}

// Validate names the bad field.
func (c Config) Validate() error {
	switch {
	case c.Runtime == nil:
		return errors.New("orchestrator config: Runtime is required")
	case c.Dir == "" || !filepath.IsAbs(c.Dir):
		return fmt.Errorf("orchestrator config: Dir %q must be an absolute path", c.Dir)
	}
	return nil
}

// PIDChecker is a Runtime whose containers' PIDs are its own to check:
// the in-memory twin's are counters, not this host's processes, and
// kill(pid, 0) would call them dead (or alive, by chance).
type PIDChecker interface {
	PIDAlive(pid int) bool
}

// ZombieRetry is the least time between two recreations of one container
// for a dead PID: an engine that goes on reporting a dead process (or
// PIDs from another namespace) gets an error on the app, not a recreate
// on every pass and every event the recreate itself raises.
const ZombieRetry = time.Minute

func pidAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// Orchestrator keeps the node's apps as their owner wants them: it
// persists the desired state, runs lifecycle operations, and reconciles
// the engine's actual state with the desired one. It is safe for
// concurrent use.
type Orchestrator struct {
	cfg     Config
	log     *slog.Logger
	rt      Runtime
	store   *store
	secrets *secrets

	opSeq atomic.Uint64
	kickC chan struct{}
	// passes counts finished reconcile passes (tests await it).
	passes atomic.Uint64

	mu      sync.Mutex
	apps    map[string]*app
	subs    map[chan Progress]struct{}
	info    *Info
	passErr string
	// imageIDs caches the engine's ID of each pinned image (name@digest):
	// a digest pins the image's config, hence its ID, for good.
	imageIDs map[string]string
}

// app is one installed app. work serialises engine changes to the app:
// an operation holds it throughout (waiting out a pass in flight), a
// reconcile pass only tries it and skips an app with an operation under
// way. busy lets at most one operation run.
type app struct {
	id   string
	busy atomic.Bool
	work sync.Mutex

	// Guarded by Orchestrator.mu.
	state      *AppState
	plan       *Plan
	planCID    string
	phase      string
	reason     string
	lastErr    string
	progress   *Progress
	health     map[string]*health
	containers map[string]Container
	recreated  int
	restarts   int                  // unhealthy containers restarted
	backoff    map[string]*backoff  // per container: when it may be restarted again
	zombieAt   map[string]time.Time // per container: its last recreate for a dead PID
	retryAt    time.Time
}

// New loads the desired state from cfg.Dir. Call Run to reconcile.
func New(cfg Config) (*Orchestrator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	st, err := newStore(filepath.Join(cfg.Dir, "state"))
	if err != nil {
		return nil, err
	}
	o := &Orchestrator{
		cfg: cfg, log: cfg.Logger, rt: cfg.Runtime, store: st,
		secrets: &secrets{dir: filepath.Join(cfg.Dir, "secrets"), rand: cfg.Rand},
		kickC:   make(chan struct{}, 1),
		apps:    map[string]*app{},
		subs:    map[chan Progress]struct{}{},
	}
	states, err := st.load()
	if err != nil {
		return nil, err
	}
	for _, s := range states {
		a := o.newApp(s.ID)
		a.state = s
		a.phase = "pending"
		o.apps[s.ID] = a
	}
	o.resolvePending()
	return o, nil
}

func (o *Orchestrator) newApp(id string) *app {
	return &app{id: id, health: map[string]*health{}, containers: map[string]Container{}, backoff: map[string]*backoff{}, zombieAt: map[string]time.Time{}}
}

// resolvePending (called by New) settles operations a previous run of the node left
// half-done: an install goes on (the reconciler converges to it), an
// update rolls back to the version that ran before it, an uninstall is
// finished by the next pass.
func (o *Orchestrator) resolvePending() {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, a := range o.apps {
		s := a.state
		if s == nil || s.Pending == nil {
			continue
		}
		switch s.Pending.Op {
		case "uninstall":
			continue // intent removed: the pass finishes it
		case "update":
			if s.Previous != nil {
				o.log.Warn("update interrupted by a node stop: rolling back", "app", s.ID, "to", s.Previous.Version)
				s.Current, s.Previous = s.Previous, nil
				a.lastErr = "the node stopped during an update; rolled back to " + s.Current.Version
			}
		}
		s.Pending = nil
		if err := o.store.save(s); err != nil {
			a.lastErr = err.Error()
		}
		a.plan = nil
	}
}

// Run reconciles until ctx ends: a pass at once, then every Interval and
// after every engine event. It returns nil when ctx ends.
func (o *Orchestrator) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		o.watchEvents(ctx)
	}()
	tick := time.NewTicker(o.cfg.Interval)
	defer tick.Stop()
	soon := time.NewTimer(time.Hour)
	defer soon.Stop()
	for {
		next := o.pass(ctx)
		if !next.IsZero() {
			soon.Reset(max(time.Until(next), 50*time.Millisecond))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-o.kickC:
		case <-soon.C:
		}
	}
}

// Kick asks for a reconcile pass soon.
func (o *Orchestrator) kick() {
	select {
	case o.kickC <- struct{}{}:
	default:
	}
}

// watchEvents triggers a pass on every event of an archy container and
// resubscribes when the stream breaks (the Interval resync covers the
// gap).
func (o *Orchestrator) watchEvents(ctx context.Context) {
	backoff := time.Second
	for ctx.Err() == nil {
		ch := make(chan Event, 64)
		done := make(chan error, 1)
		sctx, cancel := context.WithCancel(ctx)
		go func() { done <- o.rt.Events(sctx, ch) }()
		var err error
	loop:
		for {
			select {
			case ev := <-ch:
				if _, ok := ev.Labels[LabelApp]; ok || strings.HasPrefix(ev.Name, "archy-") {
					o.log.Debug("engine event", "action", ev.Action, "container", ev.Name)
					o.kick()
					backoff = time.Second
				}
			case err = <-done:
				break loop
			}
		}
		cancel()
		if ctx.Err() != nil {
			return
		}
		o.log.Warn("engine event stream broke; resubscribing", "err", err, "in", backoff)
		o.kick()
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

// Passes returns how many reconcile passes have finished.
func (o *Orchestrator) Passes() uint64 { return o.passes.Load() }

// Subscribe returns a channel of every operation's progress; cancel ends
// the subscription. A subscriber that does not keep up with buf reports
// loses the oldest ones (each report carries the whole state, so the last
// one is what matters).
func (o *Orchestrator) Subscribe(buf int) (<-chan Progress, func()) {
	ch := make(chan Progress, max(buf, 1))
	o.mu.Lock()
	o.subs[ch] = struct{}{}
	o.mu.Unlock()
	return ch, func() {
		o.mu.Lock()
		delete(o.subs, ch)
		o.mu.Unlock()
	}
}

func (o *Orchestrator) publish(a *app, p Progress) {
	o.mu.Lock()
	defer o.mu.Unlock()
	cp := p
	a.progress = &cp
	for ch := range o.subs {
		for {
			select {
			case ch <- p:
			default:
				select {
				case <-ch: // drop the oldest
					continue
				default:
				}
			}
			break
		}
	}
}

// AppStatus is what the node shows about an app. It never holds secret
// values.
type AppStatus struct {
	ID      string `json:"id"`
	Version string `json:"version"`
	CID     string `json:"cid"`
	// Publisher is the DID the app is pinned to: only its releases (or
	// those of a DID it names in a rotation statement) update the app.
	Publisher  string            `json:"publisher,omitempty"`
	Intent     Intent            `json:"intent"`
	Phase      string            `json:"phase"` // running, starting, stopped, waiting, failed, removing, installing, updating
	Reason     string            `json:"reason,omitempty"`
	Error      string            `json:"error,omitempty"`
	Healthy    bool              `json:"healthy"`
	Containers []ContainerStatus `json:"containers"`
	Warnings   []string          `json:"warnings,omitempty"`
	Operation  *Progress         `json:"operation,omitempty"`
	// Recreated counts containers recreated (drift, dead PID) since the
	// node started.
	Recreated int `json:"recreated"`
	// Restarts counts containers restarted because they were unhealthy
	// since the node started.
	Restarts int `json:"restarts"`
}

// ContainerStatus is one container of an AppStatus.
type ContainerStatus struct {
	Name      string    `json:"name"`
	Engine    string    `json:"engine_name"`
	ID        string    `json:"id,omitempty"`
	State     State     `json:"state"`
	Health    string    `json:"health"` // healthy, unhealthy, starting, unknown
	StartedAt time.Time `json:"started_at,omitzero"`
}

// Apps returns every app the node has, by id.
func (o *Orchestrator) Apps() []AppStatus {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []AppStatus
	for _, id := range slices.Sorted(maps.Keys(o.apps)) {
		out = append(out, o.statusLocked(o.apps[id]))
	}
	return out
}

// Status returns one app's status.
func (o *Orchestrator) Status(id string) (AppStatus, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	a, ok := o.apps[id]
	if !ok {
		return AppStatus{}, fmt.Errorf("status of %s: %w", id, ErrNotInstalled)
	}
	return o.statusLocked(a), nil
}

func (o *Orchestrator) statusLocked(a *app) AppStatus {
	s := AppStatus{ID: a.id, Phase: a.phase, Reason: a.reason, Error: a.lastErr, Recreated: a.recreated, Restarts: a.restarts, Healthy: true}
	if a.state != nil {
		s.Intent = a.state.Intent
		s.Version = a.state.Current.Version
		s.CID = a.state.Current.CID
		if a.state.Pin != nil {
			s.Publisher = a.state.Pin.Publisher
		}
	}
	if a.progress != nil {
		p := *a.progress
		s.Operation = &p
	}
	if a.plan != nil {
		s.Warnings = slices.Clone(a.plan.Warnings)
		for _, pc := range a.plan.Containers {
			c := a.containers[pc.Name]
			cs := ContainerStatus{Name: pc.Name, Engine: pc.Spec.Name, ID: c.ID, State: c.State, StartedAt: c.StartedAt, Health: "unknown"}
			if cs.State == "" {
				cs.State = "missing"
			}
			if h := a.health[pc.Name]; h != nil {
				cs.Health = h.status()
			}
			if cs.Health != "healthy" {
				s.Healthy = false
			}
			s.Containers = append(s.Containers, cs)
		}
	} else {
		s.Healthy = false
	}
	return s
}

// DisplayedSecrets returns the app's secrets its manifest marks for
// display (an admin password the owner needs); no other secret is ever
// returned.
func (o *Orchestrator) DisplayedSecrets(id string) (map[string]string, error) {
	o.mu.Lock()
	a, ok := o.apps[id]
	var rel *Release
	if ok && a.state != nil {
		rel = a.state.Current
	}
	o.mu.Unlock()
	if rel == nil {
		return nil, fmt.Errorf("secrets of %s: %w", id, ErrNotInstalled)
	}
	m, err := rel.Manifest()
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, d := range m.GeneratedSecrets {
		if !d.Display {
			continue
		}
		v, err := o.secrets.read(id, d.Name)
		if err != nil {
			return nil, fmt.Errorf("secrets of %s: %s: not available", id, d.Name)
		}
		out[d.Name] = v
	}
	return out, nil
}

// SecretsDir returns the folder of an app's secret files.
func (o *Orchestrator) SecretsDir(id string) string { return o.secrets.appDir(id) }

// StateFile returns the path of an app's desired-state file.
func (o *Orchestrator) StateFile(id string) string { return o.store.path(id) }

func (o *Orchestrator) setPhase(a *app, phase, reason string) {
	o.mu.Lock()
	a.phase, a.reason = phase, reason
	o.mu.Unlock()
}

func (o *Orchestrator) setErr(a *app, err error) {
	o.mu.Lock()
	if err == nil {
		a.lastErr = ""
	} else {
		a.lastErr = err.Error()
	}
	o.mu.Unlock()
}

func (o *Orchestrator) engineInfo(ctx context.Context) (Info, error) {
	o.mu.Lock()
	if o.info != nil {
		i := *o.info
		o.mu.Unlock()
		return i, nil
	}
	o.mu.Unlock()
	i, err := o.rt.Info(ctx)
	if err != nil {
		return Info{}, err
	}
	o.mu.Lock()
	o.info = &i
	o.mu.Unlock()
	return i, nil
}

// ImageCIDs returns the image CIDs pinned by every release the node keeps
// (each app's current one, and the previous one an update can roll back
// to), so the node knows which fetched images it may let go.
func (o *Orchestrator) ImageCIDs() map[string]bool {
	o.mu.Lock()
	var rels []*Release
	for _, a := range o.apps {
		if a.state != nil {
			rels = append(rels, a.state.Current, a.state.Previous)
		}
	}
	o.mu.Unlock()
	out := map[string]bool{}
	for _, r := range rels {
		if r == nil {
			continue
		}
		// Parsed afresh: Manifest caches, and r is shared with operations.
		m, err := registry.ParsePayload(r.Payload)
		if err != nil {
			continue
		}
		for _, c := range m.Containers {
			out[c.Image.CID] = true
		}
	}
	return out
}
