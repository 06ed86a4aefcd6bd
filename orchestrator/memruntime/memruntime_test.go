package memruntime_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/archy-node/archy/orchestrator"
	"github.com/archy-node/archy/orchestrator/memruntime"
	"github.com/archy-node/archy/orchestrator/runtimetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func harness(rt *memruntime.Runtime) runtimetest.Harness {
	return runtimetest.Harness{
		Runtime: rt,
		Crash: func(t *testing.T, c orchestrator.Container) {
			if err := rt.Crash(c.Name, 137); err != nil {
				t.Fatal(err)
			}
		},
	}
}

func TestConformance(t *testing.T) {
	runtimetest.Run(t, harness(memruntime.New(memruntime.Config{})))
}

func TestConformanceWithoutResourceLimits(t *testing.T) {
	runtimetest.Run(t, harness(memruntime.New(memruntime.Config{NoResourceLimits: true})))
}

// A hung engine turns every call into ErrTimeout after CallTimeout, and
// works again after Resume.
func TestHangTimesOut(t *testing.T) {
	rt := memruntime.New(memruntime.Config{CallTimeout: 50 * time.Millisecond})
	rt.Hang()
	start := time.Now()
	_, err := rt.List(context.Background(), nil)
	if !errors.Is(err, orchestrator.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("list on a hung engine: %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("took %s", d)
	}
	rt.Resume()
	if _, err := rt.List(context.Background(), nil); err != nil {
		t.Fatalf("after resume: %v", err)
	}
}

// The twin applies restart policies when a container crashes.
func TestCrashRestartPolicy(t *testing.T) {
	ctx := context.Background()
	rt := memruntime.New(memruntime.Config{})
	rt.LoadImageNames("img")
	for _, tc := range []struct {
		policy  orchestrator.RestartPolicy
		code    int
		running bool
	}{
		{orchestrator.RestartPolicy{}, 137, false},
		{orchestrator.RestartPolicy{Name: orchestrator.RestartAlways}, 0, true},
		{orchestrator.RestartPolicy{Name: orchestrator.RestartOnFailure}, 0, false},
		{orchestrator.RestartPolicy{Name: orchestrator.RestartOnFailure}, 1, true},
	} {
		name := "c-" + tc.policy.Name + "-" + string(rune('0'+tc.code%10))
		if _, err := rt.CreateContainer(ctx, orchestrator.ContainerSpec{Name: name, Image: "img", Restart: tc.policy}); err != nil {
			t.Fatal(err)
		}
		if err := rt.Start(ctx, name); err != nil {
			t.Fatal(err)
		}
		if err := rt.Crash(name, tc.code); err != nil {
			t.Fatal(err)
		}
		c, err := rt.Inspect(ctx, name)
		if err != nil || c.Running() != tc.running {
			t.Errorf("%s after exit %d: %+v %v, want running=%v", tc.policy.Name, tc.code, c, err, tc.running)
		}
	}
}
