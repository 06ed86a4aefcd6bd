package orchestrator_test

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/archy-node/archy/orchestrator"
	"github.com/archy-node/archy/orchestrator/memruntime"
	"github.com/archy-node/archy/registry"
)

// TestProbesShareOnePass: healthy apps installed at different moments,
// each with an HTTP check every second, are probed in one reconcile pass
// per second between them, not one pass per app (each pass lists every
// container in the engine).
func TestProbesShareOnePass(t *testing.T) {
	e := newEnv(t, memruntime.Config{NoResourceLimits: true})
	f := newFixture(t)
	o := e.orch()
	prog, unsubscribe := o.Subscribe(256)
	defer unsubscribe()
	const apps = 4
	for i := range apps {
		id := "pace" + strconv.Itoa(i)
		port := freePort(t)
		v, arch := f.app(id, "1.0.0", []ctr{{name: "web", hostPort: port}}, func(m *registry.Manifest) {
			m.Containers[0].Health = &registry.Health{HTTP: &registry.HTTPProbe{Port: 8080, Path: "/"}, Interval: "1s"}
		})
		// The app's "container" is a server this test starts once the
		// install has checked that the port is free.
		done := make(chan error, 1)
		go func() { done <- o.Install(context.Background(), v, arch) }()
	wait:
		for {
			select {
			case p := <-prog:
				if p.App == id && p.Stage == orchestrator.StageLoad {
					break wait
				}
			case err := <-done:
				t.Fatalf("install %s ended before loading: %v", id, err)
			case <-time.After(30 * time.Second):
				t.Fatalf("install %s did not reach the load stage in 30 s", id)
			}
		}
		ln, err := net.Listen("tcp4", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		if err := <-done; err != nil {
			t.Fatalf("install %s: %v", id, err)
		}
		time.Sleep(250 * time.Millisecond) // stagger the apps' probes
	}
	unsubscribe()
	run(t, o)
	time.Sleep(3 * time.Second) // the loop settles
	before := o.Passes()
	time.Sleep(4 * time.Second)
	passes := o.Passes() - before
	// One pass per second, with some slack for a loaded machine; a pass
	// per app's probe makes 16.
	if passes > 8 {
		t.Fatalf("%d reconcile passes in 4 s for %d apps probed every second", passes, apps)
	}
	for _, s := range o.Apps() {
		if !s.Healthy {
			t.Fatalf("app %s is not healthy: %s %s", s.ID, s.Phase, s.Error)
		}
	}
	t.Logf("%d passes in 4 s", passes)
}
