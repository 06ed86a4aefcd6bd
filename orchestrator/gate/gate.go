// Package gate is the app lifecycle gate behind `archy app test`: it runs
// sample (or any) apps through the whole lifecycle on a real container
// engine, with a real orchestrator, and reports every step: install,
// reachable, stop, start, restart, update, update to a failing version
// (automatic rollback), uninstall keeping data, reinstall (data and
// secrets intact), node restart (every container adopted), and uninstall
// with purge (nothing left).
package gate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/archy-node/archy/did"
	"github.com/archy-node/archy/orchestrator"
	"github.com/archy-node/archy/registry"
)

// Release kinds, as folders of an app folder (see examples/README.md).
const (
	KindCurrent = ""
	KindUpdate  = "update"
	KindBroken  = "broken"
)

// Config configures a gate run.
type Config struct {
	// Runtime is the engine (required).
	Runtime orchestrator.Runtime
	// AppsDir holds one folder per app, each with update/ and broken/.
	AppsDir string
	// Apps are the app ids to test (all in AppsDir when empty).
	Apps []string
	// Iterations is how many times each app goes through the gate (1).
	Iterations int
	// Key signs the manifests (the example publisher key). A manifest
	// whose publisher is another DID is re-attributed to Key: the gate
	// tests the lifecycle, not the publisher's identity.
	Key *did.Key
	// WorkDir is where each orchestrator keeps its state and data.
	WorkDir string
	// IDMapper is passed to the orchestrators.
	IDMapper orchestrator.IDMapper
	// Logger gets the orchestrators' logs.
	Logger *slog.Logger
	// Progress, when set, gets a line per step as it ends.
	Progress io.Writer
}

// Step is one checked step.
type Step struct {
	App       string
	Iteration int
	Name      string
	OK        bool
	Took      time.Duration
	Detail    string
}

// Report is a whole run.
type Report struct {
	Steps []Step
}

// Failed counts failed steps.
func (r *Report) Failed() int {
	n := 0
	for _, s := range r.Steps {
		if !s.OK {
			n++
		}
	}
	return n
}

// WriteTable prints the steps as a table.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "APP\tITER\tSTEP\tRESULT\tTIME\tDETAIL")
	for _, s := range r.Steps {
		res := "ok"
		if !s.OK {
			res = "FAIL"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", s.App, s.Iteration, s.Name, res, s.Took.Round(10*time.Millisecond), s.Detail)
	}
	return tw.Flush()
}

// release is one signed, verified release of an app.
type release struct {
	v        *registry.Verified
	archives map[string]string
	ui       string // URL of the UI
}

func (c Config) loadRelease(id, kind string) (*release, error) {
	dir := filepath.Join(c.AppsDir, id, kind)
	l, err := registry.Load(dir)
	if err != nil {
		return nil, err
	}
	l.Manifest.Publisher = c.Key.DID()
	env, _, err := registry.Sign(l.Manifest, c.Key)
	if err != nil {
		return nil, err
	}
	raw, err := env.Marshal()
	if err != nil {
		return nil, err
	}
	v, err := registry.VerifyEnvelope(raw)
	if err != nil {
		return nil, err
	}
	r := &release{v: v, archives: l.Archives}
	if ui := v.Manifest.UI; ui != nil {
		for _, ct := range v.Manifest.Containers {
			if ct.Name != ui.Container {
				continue
			}
			for _, p := range ct.Ports {
				if p.Container == ui.Port && p.Host > 0 {
					path := ui.Path
					if path == "" {
						path = "/"
					}
					r.ui = "http://127.0.0.1:" + strconv.Itoa(p.Host) + path
				}
			}
		}
	}
	return r, nil
}

// Run runs the gate. It returns an error only when it cannot start;
// failed steps are in the report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.Runtime == nil || cfg.Key == nil || cfg.AppsDir == "" || cfg.WorkDir == "" {
		return nil, errors.New("gate: Runtime, Key, AppsDir and WorkDir are required")
	}
	if cfg.Iterations <= 0 {
		cfg.Iterations = 1
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ids := cfg.Apps
	if len(ids) == 0 {
		entries, err := os.ReadDir(cfg.AppsDir)
		if err != nil {
			return nil, fmt.Errorf("gate: list apps: %w", err)
		}
		for _, e := range entries {
			if e.IsDir() {
				ids = append(ids, e.Name())
			}
		}
		sort.Strings(ids)
	}
	rep := &Report{}
	for it := 1; it <= cfg.Iterations; it++ {
		for _, id := range ids {
			if ctx.Err() != nil {
				return rep, ctx.Err()
			}
			g := &run{cfg: cfg, rep: rep, app: id, iter: it}
			g.all(ctx)
		}
	}
	return rep, nil
}

type run struct {
	cfg  Config
	rep  *Report
	app  string
	iter int

	dir  string
	o    *orchestrator.Orchestrator
	stop func()
}

func (g *run) record(name string, start time.Time, err error, detail string) bool {
	s := Step{App: g.app, Iteration: g.iter, Name: name, OK: err == nil, Took: time.Since(start), Detail: detail}
	if err != nil {
		s.Detail = err.Error()
	}
	g.rep.Steps = append(g.rep.Steps, s)
	if g.cfg.Progress != nil {
		res := "ok"
		if err != nil {
			res = "FAIL: " + err.Error()
		}
		fmt.Fprintf(g.cfg.Progress, "gate %s #%d %s: %s (%s)\n", g.app, g.iter, name, res, s.Took.Round(10*time.Millisecond))
	}
	return err == nil
}

// step runs f as a named step; a failed step ends the app's run (later
// steps depend on it), except for the final clean-up.
func (g *run) step(name string, f func() (string, error)) bool {
	start := time.Now()
	detail, err := f()
	return g.record(name, start, err, detail)
}

func (g *run) startNode(ctx context.Context) error {
	o, err := orchestrator.New(orchestrator.Config{
		Runtime: g.cfg.Runtime, Dir: g.dir, Logger: g.cfg.Logger.With("app", g.app), IDMapper: g.cfg.IDMapper,
	})
	if err != nil {
		return err
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- o.Run(rctx) }()
	g.o = o
	g.stop = func() {
		cancel()
		<-done
	}
	return nil
}

func (g *run) all(ctx context.Context) {
	g.dir = filepath.Join(g.cfg.WorkDir, fmt.Sprintf("%s-%d", g.app, g.iter))
	var cur, upd, broken *release
	var reqs []*release
	ok := g.step("load", func() (string, error) {
		var err error
		if cur, err = g.cfg.loadRelease(g.app, KindCurrent); err != nil {
			return "", err
		}
		if upd, err = g.cfg.loadRelease(g.app, KindUpdate); err != nil {
			return "", err
		}
		if broken, err = g.cfg.loadRelease(g.app, KindBroken); err != nil {
			return "", err
		}
		for _, r := range cur.v.Manifest.Requires {
			rr, err := g.cfg.loadRelease(r.ID, KindCurrent)
			if err != nil {
				return "", fmt.Errorf("required app %s: %w", r.ID, err)
			}
			reqs = append(reqs, rr)
		}
		return fmt.Sprintf("%s %s, %s, %s", g.app, cur.v.Manifest.Version, upd.v.Manifest.Version, broken.v.Manifest.Version), g.startNode(ctx)
	})
	if !ok {
		return
	}
	defer func() {
		if g.stop != nil {
			g.stop()
		}
	}()
	defer g.cleanup(ctx, reqs)
	for _, r := range reqs {
		if !g.step("install requirement "+r.v.Manifest.ID, func() (string, error) {
			return "", g.o.Install(ctx, r.v, r.archives)
		}) {
			return
		}
	}
	steps := []struct {
		name string
		f    func() (string, error)
	}{
		{"install", func() (string, error) { return "", g.o.Install(ctx, cur.v, cur.archives) }},
		{"reachable", func() (string, error) { return g.reachable(ctx, cur) }},
		{"stop", func() (string, error) {
			if err := g.o.Stop(ctx, g.app); err != nil {
				return "", err
			}
			return g.unreachable(ctx, cur)
		}},
		{"start", func() (string, error) {
			if err := g.o.Start(ctx, g.app); err != nil {
				return "", err
			}
			return g.reachable(ctx, cur)
		}},
		{"restart", func() (string, error) {
			if err := g.o.Restart(ctx, g.app); err != nil {
				return "", err
			}
			return g.reachable(ctx, cur)
		}},
		{"update", func() (string, error) {
			if err := g.o.Update(ctx, upd.v, upd.archives); err != nil {
				return "", err
			}
			return g.reachable(ctx, upd)
		}},
		{"update to broken rolls back", func() (string, error) {
			err := g.o.Update(ctx, broken.v, broken.archives)
			if !errors.Is(err, orchestrator.ErrRolledBack) {
				return "", fmt.Errorf("update to %s: %v, want an automatic rollback", broken.v.Manifest.Version, err)
			}
			d, rerr := g.reachable(ctx, upd)
			return "rolled back: " + d, rerr
		}},
	}
	for _, s := range steps {
		if !g.step(s.name, s.f) {
			return
		}
	}
	var before snapshot
	if !g.step("uninstall keeping data", func() (string, error) {
		var err error
		if before, err = g.snapshot(); err != nil {
			return "", err
		}
		if err := g.o.Uninstall(ctx, g.app, false); err != nil {
			return "", err
		}
		if err := g.noTrace(ctx, false); err != nil {
			return "", err
		}
		after, err := g.snapshot()
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%d data files, %d secrets kept", before.files, before.secrets), before.diff(after)
	}) {
		return
	}
	if !g.step("reinstall keeps data and secrets", func() (string, error) {
		if err := g.o.Install(ctx, upd.v, upd.archives); err != nil {
			return "", err
		}
		d, err := g.reachable(ctx, upd)
		if err != nil {
			return "", err
		}
		after, err := g.snapshot()
		if err != nil {
			return "", err
		}
		return d, before.diff(after)
	}) {
		return
	}
	if !g.step("node restart adopts", func() (string, error) {
		s, err := g.o.Status(g.app)
		if err != nil {
			return "", err
		}
		before, err := g.inspectAll(ctx, s)
		if err != nil {
			return "", err
		}
		g.stop()
		g.stop = nil
		if err := g.startNode(ctx); err != nil {
			return "", err
		}
		deadline := time.Now().Add(30 * time.Second)
		var s2 orchestrator.AppStatus
		for {
			s2, err = g.o.Status(g.app)
			if err == nil && g.o.Passes() > 0 && s2.Phase == "running" && s2.Healthy {
				break
			}
			if time.Now().After(deadline) {
				return "", fmt.Errorf("not running and healthy 30 s after the restart: %+v", s2)
			}
			time.Sleep(100 * time.Millisecond)
		}
		after, err := g.inspectAll(ctx, s2)
		if err != nil {
			return "", err
		}
		for i, c := range before {
			n := after[i]
			if n.ID != c.ID || !n.StartedAt.Equal(c.StartedAt) {
				return "", fmt.Errorf("container %s recreated or restarted: %s@%s → %s@%s", c.Name, short(c.ID), c.StartedAt, short(n.ID), n.StartedAt)
			}
		}
		if s2.Recreated != 0 {
			return "", fmt.Errorf("%d containers recreated", s2.Recreated)
		}
		return fmt.Sprintf("%d containers adopted (same ID and StartedAt)", len(before)), nil
	}) {
		return
	}
	g.step("uninstall with purge", func() (string, error) {
		if err := g.o.Uninstall(ctx, g.app, true); err != nil {
			return "", err
		}
		return "nothing left", g.noTrace(ctx, true)
	})
}

// cleanup removes whatever a failed run left, and the requirements.
func (g *run) cleanup(ctx context.Context, reqs []*release) {
	ids := []string{g.app}
	for _, r := range reqs {
		ids = append(ids, r.v.Manifest.ID)
	}
	var errs []error
	for _, id := range ids {
		if _, err := g.o.Status(id); err == nil {
			if err := g.o.Uninstall(ctx, id, true); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if len(reqs) > 0 || len(errs) > 0 {
		g.record("clean-up", time.Now(), errors.Join(errs...), strings.Join(ids, ", "))
	}
}

// inspectAll asks the engine about each container of the status.
func (g *run) inspectAll(ctx context.Context, s orchestrator.AppStatus) ([]orchestrator.Container, error) {
	var out []orchestrator.Container
	for _, c := range s.Containers {
		ic, err := g.cfg.Runtime.Inspect(ctx, c.Engine)
		if err != nil {
			return nil, err
		}
		out = append(out, ic)
	}
	return out, nil
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

var client = &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// reachable waits (up to 20 s) for the UI to answer 200 with the
// release's version on the page.
func (g *run) reachable(ctx context.Context, r *release) (string, error) {
	if r.ui == "" {
		s, err := g.o.Status(g.app)
		if err != nil || !s.Healthy {
			return "", fmt.Errorf("no UI, and the app is not healthy: %v", err)
		}
		return "healthy (no UI)", nil
	}
	want := "version " + r.v.Manifest.Version
	deadline := time.Now().Add(20 * time.Second)
	var last error
	for time.Now().Before(deadline) && ctx.Err() == nil {
		resp, err := client.Get(r.ui)
		if err == nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			switch {
			case resp.StatusCode != http.StatusOK:
				err = fmt.Errorf("GET %s: %s", r.ui, resp.Status)
			case !strings.Contains(string(b), want):
				err = fmt.Errorf("GET %s: page does not say %q", r.ui, want)
			default:
				return r.ui + " says " + want, nil
			}
		}
		last = err
		time.Sleep(200 * time.Millisecond)
	}
	return "", fmt.Errorf("UI not reachable: %v", last)
}

func (g *run) unreachable(ctx context.Context, r *release) (string, error) {
	if r.ui == "" {
		return "stopped", nil
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		resp, err := client.Get(r.ui)
		if err != nil {
			return "UI no longer answers", nil
		}
		resp.Body.Close()
		time.Sleep(200 * time.Millisecond)
	}
	return "", fmt.Errorf("UI %s still answers after stop", r.ui)
}

// noTrace checks that the app left no container, network, state or
// listing; with purge, no secrets and no data either.
func (g *run) noTrace(ctx context.Context, purge bool) error {
	var errs []error
	list, err := g.cfg.Runtime.List(ctx, map[string]string{orchestrator.LabelApp: g.app})
	if err != nil {
		return err
	}
	for _, c := range list {
		errs = append(errs, fmt.Errorf("ghost container %s (%s)", c.Name, c.State))
	}
	nets, err := g.cfg.Runtime.ListNetworks(ctx, map[string]string{orchestrator.LabelApp: g.app})
	if err != nil {
		return err
	}
	for _, n := range nets {
		errs = append(errs, fmt.Errorf("ghost network %s", n.Name))
	}
	if _, err := g.o.Status(g.app); err == nil {
		errs = append(errs, errors.New("ghost: the app is still listed"))
	}
	paths := []string{g.o.StateFile(g.app)}
	if purge {
		paths = append(paths, g.o.SecretsDir(g.app), g.o.DataDir(g.app))
	}
	for _, p := range paths {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("%s left behind", p))
		}
	}
	return errors.Join(errs...)
}

// snapshot is the content of an app's data and secrets.
type snapshot struct {
	sums           map[string]string
	files, secrets int
}

func (g *run) snapshot() (snapshot, error) {
	s := snapshot{sums: map[string]string{}}
	for _, base := range []struct {
		tag, dir string
		n        *int
	}{{"data", g.o.DataDir(g.app), &s.files}, {"secret", g.o.SecretsDir(g.app), &s.secrets}} {
		err := filepath.WalkDir(base.dir, func(p string, d fs.DirEntry, err error) error {
			if errors.Is(err, fs.ErrNotExist) && p == base.dir {
				return nil
			}
			if err != nil {
				return err
			}
			if !d.Type().IsRegular() {
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			rel, _ := filepath.Rel(base.dir, p)
			s.sums[base.tag+":"+rel] = hex.EncodeToString(sum[:])
			*base.n++
			return nil
		})
		if err != nil {
			return s, fmt.Errorf("read %s: %w", base.tag, err)
		}
	}
	return s, nil
}

// diff names what changed (never the content: it holds secrets).
func (s snapshot) diff(o snapshot) error {
	var bad []string
	for k, v := range s.sums {
		if o.sums[k] != v {
			bad = append(bad, k)
		}
	}
	if len(bad) > 0 {
		slices.Sort(bad)
		return fmt.Errorf("data or secrets changed: %s", strings.Join(bad, ", "))
	}
	return nil
}
