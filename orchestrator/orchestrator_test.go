package orchestrator_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/archy-node/archy/orchestrator"
	"github.com/archy-node/archy/orchestrator/memruntime"
	"github.com/archy-node/archy/orchestrator/quadlet"
	"github.com/archy-node/archy/registry"
)

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func withSecrets(m *registry.Manifest) {
	m.GeneratedSecrets = []registry.Secret{{Name: "db_password", Length: 24}, {Name: "admin", Length: 16, Display: true}}
}

func TestInstallStackInOrderWithProgress(t *testing.T) {
	e := newEnv(t, memruntime.Config{NoResourceLimits: true})
	f := newFixture(t)
	port := freePort(t)
	v, arch := f.app("stack", "1.0.0", []ctr{
		{name: "web", health: []string{"true"}, hostPort: port, depends: []string{"db"}, secretEnv: "db_password"},
		{name: "db", health: []string{"true"}, secretEnv: "db_password", volume: "db"},
	}, func(m *registry.Manifest) {
		withSecrets(m)
		m.Containers[0].Resources = &registry.Resources{Memory: "32m"}
	})
	o := e.orch()
	events := make(chan orchestrator.Event, 64)
	ectx, ecancel := context.WithCancel(context.Background())
	edone := make(chan error, 1)
	go func() { edone <- e.rt.Events(ectx, events) }()
	defer func() { ecancel(); <-edone }()
	prog, cancel := o.Subscribe(256)
	defer cancel()

	if err := o.Install(context.Background(), v, arch); err != nil {
		t.Fatal(err)
	}
	// Creation order: db before web.
	var created []string
	for len(created) < 2 {
		select {
		case ev := <-events:
			if ev.Action == "create" {
				created = append(created, ev.Name)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("created %v", created)
		}
	}
	if want := []string{"archy-stack-db", "archy-stack-web"}; !slices.Equal(created, want) {
		t.Fatalf("created %v, want %v", created, want)
	}
	// Progress: monotonic, through every stage, ending in success.
	var stages []orchestrator.Stage
	last := -1.0
	var final orchestrator.Progress
	for final.Done == false {
		p := <-prog
		if p.Fraction < last {
			t.Fatalf("progress went back: %v after %v", p.Fraction, last)
		}
		last = p.Fraction
		if len(stages) == 0 || stages[len(stages)-1] != p.Stage {
			stages = append(stages, p.Stage)
		}
		final = p
	}
	if final.Err != "" || final.Fraction != 1 {
		t.Fatalf("final progress %+v", final)
	}
	for _, s := range []orchestrator.Stage{orchestrator.StageFetch, orchestrator.StageLoad, orchestrator.StageSecrets, orchestrator.StageCreate, orchestrator.StageStart, orchestrator.StageHealth} {
		if !slices.Contains(stages, s) {
			t.Errorf("stage %s missing from %v", s, stages)
		}
	}
	st, err := o.Status("stack")
	if err != nil {
		t.Fatal(err)
	}
	if st.Phase != "running" || !st.Healthy || len(st.Containers) != 2 {
		t.Fatalf("status %+v", st)
	}
	if len(st.Warnings) == 0 || !strings.Contains(st.Warnings[0], "resource limits") {
		t.Errorf("no visible warning about dropped limits: %v", st.Warnings)
	}
	c, err := e.rt.Inspect(context.Background(), "archy-stack-web")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{orchestrator.LabelApp, orchestrator.LabelSpecHash, orchestrator.LabelManifestCID, orchestrator.LabelContainer} {
		if c.Labels[l] == "" {
			t.Errorf("label %s missing: %v", l, c.Labels)
		}
	}
	if c.Labels[orchestrator.LabelManifestCID] != v.CID.String() {
		t.Errorf("manifest cid label %s, want %s", c.Labels[orchestrator.LabelManifestCID], v.CID)
	}
	nets, err := e.rt.ListNetworks(context.Background(), map[string]string{orchestrator.LabelApp: "stack"})
	if err != nil || len(nets) != 1 || nets[0].Name != "archy-stack" {
		t.Fatalf("networks %v %v", nets, err)
	}
	if fi, err := os.Stat(filepath.Join(o.DataDir("stack"), "db")); err != nil || !fi.IsDir() {
		t.Fatalf("data folder: %v", err)
	}
}

func TestSecretsStableAcrossReinstallAndPurged(t *testing.T) {
	e := newEnv(t, memruntime.Config{})
	f := newFixture(t)
	v, arch := f.app("sec", "1.0.0", []ctr{{name: "web", health: []string{"true"}, secretEnv: "db_password"}}, withSecrets)
	o := e.orch()
	ctx := context.Background()
	if err := o.Install(ctx, v, arch); err != nil {
		t.Fatal(err)
	}
	read := func() map[string][]byte {
		out := map[string][]byte{}
		for _, n := range []string{"db_password", "admin"} {
			p := filepath.Join(o.SecretsDir("sec"), n)
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Fatalf("%s has mode %v", n, fi.Mode())
			}
			b, _ := os.ReadFile(p)
			out[n] = b
		}
		return out
	}
	first := read()
	if len(first["db_password"]) != 24 {
		t.Fatalf("secret length %d", len(first["db_password"]))
	}
	shown, err := o.DisplayedSecrets("sec")
	if err != nil {
		t.Fatal(err)
	}
	if len(shown) != 1 || shown["admin"] != string(first["admin"]) {
		t.Fatalf("displayed secrets %v, want only admin", shown)
	}
	o.Pass(ctx)
	if err := o.Uninstall(ctx, "sec", false); err != nil {
		t.Fatal(err)
	}
	if err := o.Install(ctx, v, arch); err != nil {
		t.Fatal(err)
	}
	// A new orchestrator (node restart) too.
	o2 := e.orch()
	o2.Pass(ctx)
	second := read()
	for k := range first {
		if string(first[k]) != string(second[k]) {
			t.Fatalf("secret %s changed across reinstall", k)
		}
	}
	if err := o2.Uninstall(ctx, "sec", true); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{o2.SecretsDir("sec"), o2.DataDir("sec"), o2.StateFile("sec")} {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left after purge: %v", p, err)
		}
	}
	if len(o2.Apps()) != 0 {
		t.Fatalf("ghost after purge: %+v", o2.Apps())
	}
}

func TestPortTakenBeforeAnythingLoads(t *testing.T) {
	e := newEnv(t, memruntime.Config{})
	f := newFixture(t)
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	v, arch := f.app("porty", "1.0.0", []ctr{{name: "web", hostPort: port}}, nil)
	o := e.orch()
	err = o.Install(context.Background(), v, arch)
	var pe *orchestrator.PortError
	if !errors.Is(err, orchestrator.ErrPortTaken) || !errors.As(err, &pe) || int(pe.Port) != port {
		t.Fatalf("install on a taken port: %v", err)
	}
	if !strings.Contains(err.Error(), "port "+itoa(port)) || !strings.Contains(pe.Holder, "pid ") {
		t.Errorf("error does not name the port and holder: %v (holder %q)", err, pe.Holder)
	}
	if ok, _ := e.rt.Runtime.ImageExists(context.Background(), v.Manifest.Containers[0].Image.Ref); ok {
		t.Error("image loaded although the port was taken")
	}
	if len(o.Apps()) != 0 {
		t.Errorf("failed install listed: %+v", o.Apps())
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestImageMismatchRefused(t *testing.T) {
	e := newEnv(t, memruntime.Config{})
	f := newFixture(t)
	v, arch := f.app("mism", "1.0.0", []ctr{{name: "web"}}, nil)
	other, otherArch := f.app("mism", "2.0.0", []ctr{{name: "web"}}, nil)
	_ = other
	arch["web"] = otherArch["web"] // the wrong archive
	o := e.orch()
	err := o.Install(context.Background(), v, arch)
	if !errors.Is(err, orchestrator.ErrImageMismatch) {
		t.Fatalf("install with a wrong archive: %v", err)
	}
	if ok, _ := e.rt.Runtime.ImageExists(context.Background(), other.Manifest.Containers[0].Image.Ref); ok {
		t.Error("unverified image reached the engine")
	}
}

func TestKilledContainerRecoveredByEvent(t *testing.T) {
	e := newEnv(t, memruntime.Config{})
	f := newFixture(t)
	v, arch := f.app("crashy", "1.0.0", []ctr{{name: "web", health: []string{"true"}}}, nil)
	o := e.orch()
	ctx := context.Background()
	if err := o.Install(ctx, v, arch); err != nil {
		t.Fatal(err)
	}
	run(t, o)
	eventually(t, 2*time.Second, "first pass", func() bool { return o.Passes() > 0 })
	before, _ := e.rt.Inspect(ctx, "archy-crashy-web")
	if err := e.rt.Crash("archy-crashy-web", 137); err != nil {
		t.Fatal(err)
	}
	took := eventually(t, 5*time.Second, "restart after kill", func() bool {
		c, err := e.rt.Inspect(ctx, "archy-crashy-web")
		return err == nil && c.Running() && c.PID != before.PID
	})
	after, _ := e.rt.Inspect(ctx, "archy-crashy-web")
	if after.ID != before.ID {
		t.Errorf("killed container was recreated (%s → %s), want restarted", before.ID, after.ID)
	}
	t.Logf("killed container running again after %s", took)
}

func TestAdoptionDriftAndZombie(t *testing.T) {
	e := newEnv(t, memruntime.Config{})
	f := newFixture(t)
	v, arch := f.app("adopt", "1.0.0", []ctr{{name: "web", health: []string{"true"}}}, nil)
	ctx := context.Background()
	o := e.orch()
	if err := o.Install(ctx, v, arch); err != nil {
		t.Fatal(err)
	}
	before, _ := e.rt.Inspect(ctx, "archy-adopt-web")

	t.Run("adoption", func(t *testing.T) {
		o2 := e.orch()
		o2.Pass(ctx)
		o2.Pass(ctx)
		after, _ := e.rt.Inspect(ctx, "archy-adopt-web")
		if after.ID != before.ID || !after.StartedAt.Equal(before.StartedAt) {
			t.Fatalf("not adopted: %s@%s → %s@%s", before.ID, before.StartedAt, after.ID, after.StartedAt)
		}
		if s, _ := o2.Status("adopt"); s.Recreated != 0 || s.Phase != "running" {
			t.Fatalf("status after adoption %+v", s)
		}
	})
	t.Run("drift", func(t *testing.T) {
		// Replace the container by one with another spec hash.
		if err := e.rt.Remove(ctx, "archy-adopt-web"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.rt.CreateContainer(ctx, orchestrator.ContainerSpec{Name: "archy-adopt-web", Image: v.Manifest.Containers[0].Image.Ref,
			Labels: map[string]string{orchestrator.LabelApp: "adopt", orchestrator.LabelSpecHash: "stale"}}); err != nil {
			t.Fatal(err)
		}
		o3 := e.orch()
		for range 3 {
			o3.Pass(ctx)
		}
		c, _ := e.rt.Inspect(ctx, "archy-adopt-web")
		if c.Labels[orchestrator.LabelSpecHash] == "stale" || !c.Running() {
			t.Fatalf("drift not repaired: %+v", c)
		}
		if s, _ := o3.Status("adopt"); s.Recreated != 1 {
			t.Fatalf("recreated %d times, want once", s.Recreated)
		}
	})
	t.Run("wrong image", func(t *testing.T) {
		// A running container with the right labels and hash but another
		// image (made by tag after the tag moved) is recreated from the
		// pinned image.
		pinned, err := e.rt.ImageID(ctx, v.Manifest.Containers[0].Image.Ref+"@"+v.Manifest.Containers[0].Image.Digest)
		if err != nil {
			t.Fatal(err)
		}
		good, _ := e.rt.Inspect(ctx, "archy-adopt-web")
		if good.ImageID != pinned {
			t.Fatalf("container holds image %s, want the pinned %s", good.ImageID, pinned)
		}
		e.rt.LoadImageNames("localhost/archytest/evil:1")
		if err := e.rt.Remove(ctx, "archy-adopt-web"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.rt.CreateContainer(ctx, orchestrator.ContainerSpec{Name: "archy-adopt-web", Image: "localhost/archytest/evil:1", Labels: good.Labels}); err != nil {
			t.Fatal(err)
		}
		if err := e.rt.Start(ctx, "archy-adopt-web"); err != nil {
			t.Fatal(err)
		}
		o5 := e.orch()
		o5.Pass(ctx)
		c, _ := e.rt.Inspect(ctx, "archy-adopt-web")
		if c.ImageID != pinned || !c.Running() {
			t.Fatalf("container running another image not recreated from the pinned one: %+v", c)
		}
	})
	t.Run("zombie", func(t *testing.T) {
		z, _ := e.rt.Inspect(ctx, "archy-adopt-web")
		cfg := e.cfg
		cfg.PIDAlive = func(pid int) bool { return pid != z.PID }
		o4, err := orchestrator.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		o4.Pass(ctx)
		c, _ := e.rt.Inspect(ctx, "archy-adopt-web")
		if c.ID == z.ID || !c.Running() {
			t.Fatalf("container with a dead PID not recreated: %+v", c)
		}
	})
}

// TestDeadPIDRecreatedOncePerRetry: an engine that goes on reporting a
// container running with a process that is not on this host (PIDs from
// another namespace, a twin's counters) gets the container recreated
// once per ZombieRetry and an error on the app, not a recreate on every
// pass: the simulator's 48 nodes each recreated their container
// thousands of times a second and spent most of the machine's CPU on it.
func TestDeadPIDRecreatedOncePerRetry(t *testing.T) {
	e := newEnv(t, memruntime.Config{})
	now := time.Now()
	e.cfg.Now = func() time.Time { return now }
	e.cfg.PIDAlive = func(int) bool { return false }
	f := newFixture(t)
	v, arch := f.app("zomb", "1.0.0", []ctr{{name: "web"}}, nil)
	ctx := context.Background()
	o := e.orch()
	if err := o.Install(ctx, v, arch); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		o.Pass(ctx)
	}
	st, err := o.Status("zomb")
	if err != nil {
		t.Fatal(err)
	}
	if st.Recreated != 1 || !strings.Contains(st.Error, "not a process on this host") {
		t.Fatalf("after 20 passes: recreated %d times, error %q; want once, and an error that names the dead PID", st.Recreated, st.Error)
	}
	now = now.Add(orchestrator.ZombieRetry)
	o.Pass(ctx)
	if st, _ = o.Status("zomb"); st.Recreated != 2 {
		t.Fatalf("a retry period later: recreated %d times, want 2", st.Recreated)
	}
}

// TestTwinPIDsAreItsOwn: with no PIDAlive given, the orchestrator asks a
// runtime that knows its PIDs (the in-memory twin): its counters are not
// processes of this host, and a kill(pid, 0) of them recreated running
// containers.
func TestTwinPIDsAreItsOwn(t *testing.T) {
	e := newEnv(t, memruntime.Config{})
	e.cfg.PIDAlive = nil
	f := newFixture(t)
	v, arch := f.app("twin", "1.0.0", []ctr{{name: "web"}}, nil)
	ctx := context.Background()
	o := e.orch()
	if err := o.Install(ctx, v, arch); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		o.Pass(ctx)
	}
	if st, _ := o.Status("twin"); st.Recreated != 0 || st.Error != "" {
		t.Fatalf("running twin container: recreated %d times, error %q", st.Recreated, st.Error)
	}
	if err := e.rt.Stop(ctx, "archy-twin-web", time.Second); err != nil {
		t.Fatal(err)
	}
	c, _ := e.rt.Inspect(ctx, "archy-twin-web")
	if e.rt.PIDAlive(c.PID) {
		t.Fatalf("stopped container's pid %d alive", c.PID)
	}
}

func TestForeignNameNeverTouched(t *testing.T) {
	for name, labels := range map[string]map[string]string{
		"no labels": nil,
		// A Quadlet unit (archy app render) owns its container even though
		// it carries the app's label: one owner per container.
		"quadlet unit's": {orchestrator.LabelApp: "foreign", quadlet.OwnerLabel: quadlet.OwnerQuadlet},
	} {
		t.Run(name, func(t *testing.T) { testForeignName(t, labels) })
	}
}

func testForeignName(t *testing.T, labels map[string]string) {
	e := newEnv(t, memruntime.Config{})
	f := newFixture(t)
	v, arch := f.app("foreign", "1.0.0", []ctr{{name: "web"}}, nil)
	ctx := context.Background()
	e.rt.LoadImageNames("localhost/someone/else:1")
	id, err := e.rt.CreateContainer(ctx, orchestrator.ContainerSpec{Name: "archy-foreign-web", Image: "localhost/someone/else:1", Labels: labels})
	if err != nil {
		t.Fatal(err)
	}
	o := e.orch()
	err = o.Install(ctx, v, arch)
	if !errors.Is(err, orchestrator.ErrNameTaken) {
		t.Fatalf("install over a foreign name: %v", err)
	}
	c, err := e.rt.Inspect(ctx, "archy-foreign-web")
	if err != nil || c.ID != id {
		t.Fatalf("foreign container touched: %v %+v", err, c)
	}
	if len(o.Apps()) != 0 {
		t.Fatalf("failed install listed: %+v", o.Apps())
	}
}

func TestUpdateAndRollback(t *testing.T) {
	e := newEnv(t, memruntime.Config{})
	f := newFixture(t)
	ctx := context.Background()
	v1, a1 := f.app("upd", "1.0.0", []ctr{{name: "web", health: []string{"true"}, volume: "d"}}, nil)
	v2, a2 := f.app("upd", "1.1.0", []ctr{{name: "web", health: []string{"true"}, volume: "d"}}, nil)
	v3, a3 := f.app("upd", "1.2.0", []ctr{{name: "web", health: []string{"false"}, volume: "d"}}, nil)
	o := e.orch()
	if err := o.Install(ctx, v1, a1); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(o.DataDir("upd"), "d", "keep")
	if err := os.WriteFile(marker, []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := o.Update(ctx, v2, a2); err != nil {
		t.Fatal(err)
	}
	if s, _ := o.Status("upd"); s.Version != "1.1.0" || !s.Healthy {
		t.Fatalf("after update: %+v", s)
	}
	start := time.Now()
	err := o.Update(ctx, v3, a3)
	if !errors.Is(err, orchestrator.ErrRolledBack) || !errors.Is(err, orchestrator.ErrUnhealthy) {
		t.Fatalf("update to a broken version: %v", err)
	}
	t.Logf("rollback after %s: %v", time.Since(start).Round(time.Millisecond), err)
	s, _ := o.Status("upd")
	if s.Version != "1.1.0" || !s.Healthy || s.Phase != "running" {
		t.Fatalf("after rollback: %+v", s)
	}
	c, _ := e.rt.Inspect(ctx, "archy-upd-web")
	if c.Labels[orchestrator.LabelVersion] != "1.1.0" || !c.Running() {
		t.Fatalf("container after rollback: %+v", c)
	}
	if ok, _ := e.rt.Runtime.ImageExists(ctx, v3.Manifest.Containers[0].Image.Ref); ok {
		t.Error("the failed version's image was kept")
	}
	if ok, _ := e.rt.Runtime.ImageExists(ctx, v1.Manifest.Containers[0].Image.Ref); !ok {
		t.Error("the previous version's image (the way back) was removed")
	}
	if b, err := os.ReadFile(marker); err != nil || string(b) != "data" {
		t.Fatalf("data changed by update/rollback: %q %v", b, err)
	}
}

func TestRequiresWaitsVisibly(t *testing.T) {
	e := newEnv(t, memruntime.Config{})
	f := newFixture(t)
	ctx := context.Background()
	base, ab := f.app("base", "1.0.0", []ctr{{name: "web", health: []string{"true"}}}, nil)
	dep, ad := f.app("dep", "1.0.0", []ctr{{name: "web", health: []string{"true"}}}, func(m *registry.Manifest) {
		m.Requires = []registry.Require{{ID: "base", Version: ">=1.0.0 <2.0.0"}}
	})
	o := e.orch()
	err := o.Install(ctx, dep, ad)
	if !errors.Is(err, orchestrator.ErrWaiting) {
		t.Fatalf("install before its requirement: %v", err)
	}
	s, _ := o.Status("dep")
	if s.Phase != "waiting" || !strings.Contains(s.Reason, "waiting for base to be healthy") {
		t.Fatalf("status while waiting: %+v", s)
	}
	run(t, o)
	if err := o.Install(ctx, base, ab); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "dep running once base is healthy", func() bool {
		s, _ := o.Status("dep")
		return s.Phase == "running" && s.Healthy
	})
}

func TestHungEngineFailsVisiblyAndRecovers(t *testing.T) {
	e := newEnv(t, memruntime.Config{CallTimeout: 300 * time.Millisecond})
	f := newFixture(t)
	ctx := context.Background()
	v, arch := f.app("hung", "1.0.0", []ctr{{name: "web", health: []string{"true"}}}, nil)
	o := e.orch()
	run(t, o)
	e.rt.Hang()
	resumed := false
	defer func() {
		if !resumed {
			e.rt.Resume()
		}
	}()
	prog, cancel := o.Subscribe(64)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- o.Install(ctx, v, arch) }()
	// The node answers while the engine hangs.
	start := time.Now()
	_ = o.Apps()
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Fatalf("status took %s while the engine hangs", d)
	}
	err := <-errc
	if !errors.Is(err, orchestrator.ErrTimeout) {
		t.Fatalf("install on a hung engine: %v", err)
	}
	var last orchestrator.Progress
	for !last.Done {
		last = <-prog
	}
	if last.Reason != orchestrator.ReasonEngineTimeout {
		t.Fatalf("final progress %+v, want reason %s", last, orchestrator.ReasonEngineTimeout)
	}
	e.rt.Resume()
	resumed = true
	if err := o.Install(ctx, v, arch); err != nil {
		t.Fatalf("install after resume: %v", err)
	}
}

func TestInterruptedUpdateRollsBackOnStart(t *testing.T) {
	e := newEnv(t, memruntime.Config{})
	f := newFixture(t)
	ctx := context.Background()
	v1, a1 := f.app("intr", "1.0.0", []ctr{{name: "web", health: []string{"true"}}}, nil)
	v2, _ := f.app("intr", "1.1.0", []ctr{{name: "web", health: []string{"true"}}}, nil)
	o := e.orch()
	if err := o.Install(ctx, v1, a1); err != nil {
		t.Fatal(err)
	}
	// Forge the state a node dying mid-update leaves: v2 current, v1
	// previous, the update pending.
	var st orchestrator.AppState
	b, _ := os.ReadFile(o.StateFile("intr"))
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	old := st.Current
	st.Previous = old
	st.Current = &orchestrator.Release{Version: "1.1.0", CID: v2.CID.String(), Payload: v2.Payload}
	st.Pending = &orchestrator.Pending{Op: "update", Started: time.Now()}
	b, _ = json.Marshal(st)
	if err := os.WriteFile(o.StateFile("intr"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	o2 := e.orch()
	run(t, o2)
	eventually(t, 5*time.Second, "one pass", func() bool { return o2.Passes() > 0 })
	s, _ := o2.Status("intr")
	if s.Version != "1.0.0" || s.Phase != "running" {
		t.Fatalf("after restart mid-update: %+v", s)
	}
}

func TestCanarySecretNeverShown(t *testing.T) {
	e := newEnv(t, memruntime.Config{})
	f := newFixture(t)
	ctx := context.Background()
	v, arch := f.app("canary", "1.0.0", []ctr{{name: "web", health: []string{"false"}, secretEnv: "db_password"}}, func(m *registry.Manifest) {
		m.GeneratedSecrets = []registry.Secret{{Name: "db_password", Length: 40}}
	})
	o := e.orch()
	prog, cancel := o.Subscribe(1024)
	defer cancel()
	var events []orchestrator.Progress
	// An install that fails (health) and then one that works, with a
	// drift in between: plenty of logs and errors.
	_ = o.Install(ctx, v, arch)
	v2, a2 := f.app("canary", "1.0.1", []ctr{{name: "web", health: []string{"true"}, secretEnv: "db_password"}}, func(m *registry.Manifest) {
		m.GeneratedSecrets = []registry.Secret{{Name: "db_password", Length: 40}}
	})
	if err := o.Install(ctx, v2, a2); err != nil {
		t.Fatal(err)
	}
	secret, err := os.ReadFile(filepath.Join(o.SecretsDir("canary"), "db_password"))
	if err != nil || len(secret) != 40 {
		t.Fatalf("secret: %v", err)
	}
	c, _ := e.rt.Inspect(ctx, "archy-canary-web")
	_ = e.rt.Remove(ctx, c.Name)
	o.Pass(ctx)
	for len(prog) > 0 {
		events = append(events, <-prog)
	}
	status, _ := json.Marshal(o.Apps())
	evs, _ := json.Marshal(events)
	shown, _ := o.DisplayedSecrets("canary")
	for what, s := range map[string]string{"logs": e.logs.String(), "events": string(evs), "status": string(status), "displayed": strings.Join(mapValues(shown), ",")} {
		if strings.Contains(s, string(secret)) {
			t.Errorf("the secret appears in %s", what)
		}
	}
	if !strings.Contains(e.logs.String(), "archy-canary-web") {
		t.Error("logs are empty: the check proves nothing")
	}
}

func mapValues(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// A failed install is undone (its containers removed): the error names the
// stage that failed, not the removal that ran after it.
func TestFailedInstallNamesFailedStage(t *testing.T) {
	e := newEnv(t, memruntime.Config{})
	e.cfg.HealthTimeout = 2 * time.Second
	f := newFixture(t)
	v, arch := f.app("sick", "1.0.0", []ctr{{name: "web", health: []string{"false"}}}, nil)
	o := e.orch()
	err := o.Install(context.Background(), v, arch)
	if err == nil {
		t.Fatal("install of an app that never becomes healthy succeeded")
	}
	if !strings.Contains(err.Error(), "install sick: health: ") || strings.Contains(err.Error(), ": remove: ") {
		t.Fatalf("error does not name the failed stage: %v", err)
	}
	if len(o.Apps()) != 0 {
		t.Fatalf("failed install listed: %+v", o.Apps())
	}
}
