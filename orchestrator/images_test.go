package orchestrator_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/archy-node/archy/orchestrator"
	"github.com/archy-node/archy/orchestrator/memruntime"
	"github.com/archy-node/archy/registry"
)

// mapSource is an ImageSource over archive files, as the swarm would hand
// them over, reporting progress in two steps.
type mapSource struct {
	mu    sync.Mutex
	files map[string]string // cid → path
	asked []string
}

func (s *mapSource) FetchArchive(ctx context.Context, cid string, _ int64, progress func(done, total int64)) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.asked = append(s.asked, cid)
	p, ok := s.files[cid]
	if !ok {
		return "", errors.New("no peer holds " + cid)
	}
	progress(50, 100)
	progress(100, 100)
	return p, nil
}

func TestInstallFetchesMissingImages(t *testing.T) {
	e := newEnv(t, memruntime.Config{})
	f := newFixture(t)
	v, arch := f.app("fetched", "1.0.0", []ctr{{name: "web"}, {name: "db"}}, nil)
	src := &mapSource{files: map[string]string{}}
	for _, c := range v.Manifest.Containers {
		src.files[c.Image.CID] = arch[c.Name]
	}
	e.cfg.Images = src
	o := e.orch()
	prog, cancel := o.Subscribe(256)
	defer cancel()
	// The web archive is handed over; db's comes from the source.
	if err := o.Install(context.Background(), v, map[string]string{"web": arch["web"]}); err != nil {
		t.Fatal(err)
	}
	if len(src.asked) != 1 || src.asked[0] != v.Manifest.Containers[1].Image.CID {
		t.Fatalf("source asked for %v, want only db's image", src.asked)
	}
	fetching := 0
	for len(prog) > 0 {
		p := <-prog
		if p.Stage == orchestrator.StageFetch && p.Fraction > 0 && p.Fraction < 1 && len(p.Message) > 8 && p.Message[:8] == "fetching" {
			fetching++
		}
	}
	if fetching != 2 {
		t.Fatalf("%d fetch progress reports, want 2", fetching)
	}
	st, err := o.Status("fetched")
	if err != nil || st.Phase != "running" {
		t.Fatalf("status %+v, %v", st, err)
	}
}

func TestFetchedImageStillVerified(t *testing.T) {
	e := newEnv(t, memruntime.Config{})
	f := newFixture(t)
	v, _ := f.app("lied", "1.0.0", []ctr{{name: "web"}}, nil)
	_, other := f.app("lied", "2.0.0", []ctr{{name: "web"}}, nil)
	// The source hands over another image's archive under this CID.
	e.cfg.Images = &mapSource{files: map[string]string{v.Manifest.Containers[0].Image.CID: other["web"]}}
	o := e.orch()
	err := o.Install(context.Background(), v, nil)
	if !errors.Is(err, orchestrator.ErrImageMismatch) {
		t.Fatalf("install with a lying source: %v", err)
	}
	if ok, _ := e.rt.Runtime.ImageExists(context.Background(), v.Manifest.Containers[0].Image.Ref); ok {
		t.Error("unverified image reached the engine")
	}
}

// A container that keeps running but fails its health probe is restarted
// (data and spec kept), counted, and not restarted again before its
// backoff. It runs in a synctest bubble: the probe and reconcile tickers,
// the backoff and the waits below run on the bubble's fake clock, so the
// 5 s "not yet" is exact and costs no wall-clock time.
func TestUnhealthyContainerRestarted(t *testing.T) {
	synctest.Test(t, testUnhealthyContainerRestarted)
}

func testUnhealthyContainerRestarted(t *testing.T) {
	e := newEnv(t, memruntime.Config{})
	e.cfg.ExecProbeInterval = 100 * time.Millisecond
	e.cfg.Interval = 300 * time.Millisecond
	f := newFixture(t)
	v, arch := f.app("sick", "1.0.0", []ctr{{name: "web", health: []string{"true"}}}, nil)
	o := e.orch()
	if err := o.Install(context.Background(), v, arch); err != nil {
		t.Fatal(err)
	}
	st, _ := o.Status("sick")
	name := st.Containers[0].Engine
	before, err := e.rt.Runtime.Inspect(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.rt.Runtime.Sicken(name); err != nil {
		t.Fatal(err)
	}
	run(t, o)
	eventually(t, 30*time.Second, "the unhealthy container restarted and healthy again", func() bool {
		s, _ := o.Status("sick")
		c, err := e.rt.Runtime.Inspect(context.Background(), name)
		return err == nil && s.Restarts == 1 && s.Healthy && c.PID != before.PID && c.ID == before.ID
	})
	// Sick again at once: the next restart waits for the backoff.
	if err := e.rt.Runtime.Sicken(name); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Second)
	if s, _ := o.Status("sick"); s.Restarts != 1 {
		t.Fatalf("restarted %d times within 5 s, want 1 (backoff)", s.Restarts)
	}
	eventually(t, 30*time.Second, "the second restart after the backoff", func() bool {
		s, _ := o.Status("sick")
		return s.Restarts == 2
	})
}

// Version 1 mounts d; its container leaves d/sub a symlink to a host
// folder (done here from the host, as the container's root would through
// /data). Version 2 mounts d/sub too: its start is refused, and the node
// rolls back to version 1.
func TestUpdateRefusesSymlinkLeftByOldVersion(t *testing.T) {
	e := newEnv(t, memruntime.Config{})
	f := newFixture(t)
	ctx := context.Background()
	v1, a1 := f.app("swap", "1.0.0", []ctr{{name: "web", volume: "d"}}, nil)
	v2, a2 := f.app("swap", "2.0.0", []ctr{{name: "web", volume: "d"}}, func(m *registry.Manifest) {
		m.Containers[0].Volumes = append(m.Containers[0].Volumes, registry.Volume{Path: "d/sub", Mount: "/sub"})
	})
	o := e.orch()
	if err := o.Install(ctx, v1, a1); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(t.TempDir(), filepath.Join(o.DataDir("swap"), "d", "sub")); err != nil {
		t.Fatal(err)
	}
	err := o.Update(ctx, v2, a2)
	if !errors.Is(err, orchestrator.ErrRolledBack) || !errors.Is(err, orchestrator.ErrUnsafeData) || !strings.Contains(err.Error(), "d/sub") {
		t.Fatalf("update onto a symlinked data folder: %v, want ErrRolledBack and ErrUnsafeData naming d/sub", err)
	}
	if s, _ := o.Status("swap"); s.Version != "1.0.0" || s.Phase != "running" {
		t.Fatalf("after the refused update: %+v", s)
	}
}
