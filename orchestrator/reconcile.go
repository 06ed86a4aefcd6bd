package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"
)

// retryDelay is how soon a pass comes back to an app that waits for
// something (a dependency's health, a required app).
const retryDelay = 2 * time.Second

// Pass runs one reconcile pass now (tests and benchmarks; Run calls it on
// its own).
func (o *Orchestrator) Pass(ctx context.Context) { o.pass(ctx) }

// pass compares every app's desired state with the engine's containers
// and acts on the difference. Apps with an operation under way are
// skipped (the operation converges them). It returns when it wants to run
// again before the next tick (zero: no need).
func (o *Orchestrator) pass(ctx context.Context) time.Time {
	defer o.passes.Add(1)
	ctx, cancel := context.WithTimeout(ctx, o.cfg.PassTimeout)
	defer cancel()
	o.mu.Lock()
	apps := make([]*app, 0, len(o.apps))
	for _, id := range slices.Sorted(maps.Keys(o.apps)) {
		apps = append(apps, o.apps[id])
	}
	o.mu.Unlock()
	if len(apps) == 0 {
		return time.Time{}
	}
	all, err := o.rt.List(ctx, nil)
	if err != nil {
		// A hung or broken engine: visible on every app, and the loop
		// goes on.
		o.mu.Lock()
		o.passErr = err.Error()
		for _, a := range apps {
			if !a.busy.Load() {
				a.lastErr = "container engine: " + err.Error()
			}
		}
		o.mu.Unlock()
		o.log.Warn("reconcile: list containers", "err", err)
		return o.cfg.Now().Add(retryDelay)
	}
	byName := make(map[string]Container, len(all))
	for _, c := range all {
		byName[c.Name] = c
	}
	var next time.Time
	for _, a := range apps {
		if ctx.Err() != nil {
			break
		}
		if a.busy.Load() || !a.work.TryLock() {
			continue
		}
		err := o.reconcileApp(ctx, a, byName)
		a.work.Unlock()
		o.mu.Lock()
		if err != nil {
			a.lastErr = err.Error()
			o.log.Warn("reconcile", "app", a.id, "err", err)
		}
		if !a.retryAt.IsZero() && (next.IsZero() || a.retryAt.Before(next)) {
			next = a.retryAt
		}
		o.mu.Unlock()
	}
	o.mu.Lock()
	o.passErr = ""
	o.mu.Unlock()
	return next
}

func (o *Orchestrator) reconcileApp(ctx context.Context, a *app, byName map[string]Container) error {
	o.mu.Lock()
	st := a.state
	a.retryAt = time.Time{}
	o.mu.Unlock()
	if st == nil {
		return nil
	}
	if st.Intent == IntentRemoved {
		o.setPhase(a, "removing", "")
		if err := o.finishUninstall(ctx, nil, a); err != nil {
			o.retry(a)
			return fmt.Errorf("finish uninstall: %w", err)
		}
		return nil
	}
	plan, err := o.planFor(ctx, a, st.Current)
	if err != nil {
		o.setPhase(a, "failed", "")
		return err
	}
	// Record what the engine has; refuse names that are not ours.
	o.mu.Lock()
	for _, pc := range plan.Containers {
		if c, ok := byName[pc.Spec.Name]; ok {
			a.containers[pc.Name] = c
		} else {
			delete(a.containers, pc.Name)
		}
	}
	o.mu.Unlock()
	for _, pc := range plan.Containers {
		if c, ok := byName[pc.Spec.Name]; ok && !owned(c, a.id) {
			o.setPhase(a, "failed", "")
			return fmt.Errorf("container %s (%s): %w; archy leaves it alone", pc.Spec.Name, shortID(c.ID), ErrNameTaken)
		}
	}
	if st.Intent == IntentStopped {
		for _, pc := range slices.Backward(plan.Containers) {
			if c, ok := byName[pc.Spec.Name]; ok && c.Running() {
				if err := o.rt.Stop(ctx, pc.Spec.Name, DefaultStopTimeout); err != nil && !errors.Is(err, ErrNotFound) {
					return err
				}
				o.refreshContainer(ctx, a, pc)
			}
		}
		o.setPhase(a, "stopped", "")
		o.setErr(a, nil)
		return nil
	}
	m, _ := st.Current.Manifest()
	if why := o.requirementReason(m); why != "" {
		missing := false
		for _, pc := range plan.Containers {
			if c, ok := byName[pc.Spec.Name]; !ok || !c.Running() {
				missing = true
			}
		}
		if missing {
			o.setPhase(a, "waiting", why)
			o.retry(a)
			return nil
		}
	}
	if _, ok := byName[plan.Containers[0].Spec.Name]; !ok {
		if err := o.ensureNetwork(ctx, plan); err != nil {
			return err
		}
	}
	for _, pc := range plan.Containers {
		for _, d := range pc.DependsOn {
			if !o.healthy(a, d) {
				o.setPhase(a, "starting", "waiting for "+d+" to be healthy")
				o.retry(a)
				return nil
			}
		}
		if err := o.reconcileContainer(ctx, a, pc, byName); err != nil {
			o.setPhase(a, "failed", "")
			o.retry(a)
			return fmt.Errorf("container %s: %w", pc.Name, err)
		}
	}
	phase := "running"
	s, _ := o.Status(a.id)
	if !s.Healthy {
		phase = "starting"
		o.retry(a)
	} else {
		o.nextProbe(a, plan)
	}
	o.setPhase(a, phase, "")
	o.setErr(a, nil)
	return nil
}

// nextProbe has the loop come back when the app's next health probe is
// due, so a running app is probed at its manifest's interval (exec probes
// at most every ExecProbeInterval), not only on the resync period.
func (o *Orchestrator) nextProbe(a *app, plan *Plan) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, pc := range plan.Containers {
		h := a.health[pc.Name]
		if pc.Health == nil || h == nil || !h.probed {
			continue
		}
		every := paramsOf(pc.Health).interval
		if usesExec(pc) && h.ok {
			every = max(every, o.cfg.ExecProbeInterval)
		}
		due := h.lastAt.Add(max(every, time.Second))
		if a.retryAt.IsZero() || due.Before(a.retryAt) {
			a.retryAt = due
		}
	}
}

func (o *Orchestrator) retry(a *app) {
	o.mu.Lock()
	a.retryAt = o.cfg.Now().Add(retryDelay)
	o.mu.Unlock()
}

// reconcileContainer makes one container match its plan: created if
// missing, recreated once if its spec hash drifted or the engine reports
// it running with a dead PID, started if it is not running, and probed
// when its health is due.
func (o *Orchestrator) reconcileContainer(ctx context.Context, a *app, pc PlannedContainer, byName map[string]Container) error {
	c, ok := byName[pc.Spec.Name]
	recreate := false
	switch {
	case !ok:
		o.log.Info("reconcile: creating missing container", "app", a.id, "container", pc.Spec.Name)
	case c.Labels[LabelSpecHash] != pc.Hash:
		o.log.Info("reconcile: spec drifted; recreating", "app", a.id, "container", pc.Spec.Name, "have", c.Labels[LabelSpecHash], "want", pc.Hash)
		recreate = true
	case c.Running() && o.wrongImage(ctx, pc, c):
		o.log.Warn("reconcile: container runs another image than the pinned one; recreating", "app", a.id, "container", pc.Spec.Name, "image", shortID(c.ImageID))
		recreate = true
	case c.Running() && !o.cfg.PIDAlive(c.PID):
		o.mu.Lock()
		last := a.zombieAt[pc.Name]
		now := o.cfg.Now()
		again := !last.IsZero() && now.Sub(last) < ZombieRetry
		if !again {
			a.zombieAt[pc.Name] = now
		}
		o.mu.Unlock()
		if again {
			return fmt.Errorf("the engine says it runs as pid %d, which is not a process on this host, again %s after it was recreated for that; next recreate in %s",
				c.PID, now.Sub(last).Round(time.Second), (ZombieRetry - now.Sub(last)).Round(time.Second))
		}
		o.log.Warn("reconcile: engine says running but the process is gone; recreating", "app", a.id, "container", pc.Spec.Name, "pid", c.PID)
		recreate = true
	case c.Running():
		return o.probeIfDue(ctx, a, pc)
	default:
		o.log.Info("reconcile: starting", "app", a.id, "container", pc.Spec.Name, "state", c.State, "exit", c.ExitCode)
		if err := o.startChecked(ctx, a, pc); err == nil {
			o.resetHealth(a, pc.Name)
			o.refreshContainer(ctx, a, pc)
			return o.probeIfDue(ctx, a, pc)
		} else if errors.Is(err, ErrTimeout) || errors.Is(err, ErrUnsafeData) || ctx.Err() != nil {
			return err
		} else {
			o.log.Warn("reconcile: start failed; recreating", "app", a.id, "container", pc.Spec.Name, "err", err)
			recreate = true
		}
	}
	if recreate {
		if err := o.rt.Remove(ctx, pc.Spec.Name); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		o.mu.Lock()
		a.recreated++
		o.mu.Unlock()
	}
	if err := o.createContainer(ctx, a, pc); err != nil {
		return err
	}
	if err := o.startChecked(ctx, a, pc); err != nil {
		return err
	}
	o.resetHealth(a, pc.Name)
	o.refreshContainer(ctx, a, pc)
	return o.probeIfDue(ctx, a, pc)
}

// probeIfDue probes a running container when its interval (for exec
// probes, ExecProbeInterval once healthy) has passed.
func (o *Orchestrator) probeIfDue(ctx context.Context, a *app, pc PlannedContainer) error {
	p := paramsOf(pc.Health)
	o.mu.Lock()
	h := a.health[pc.Name]
	due := true
	starting := h == nil || h.starting
	if h != nil && h.probed {
		every := p.interval
		if usesExec(pc) && h.ok {
			every = max(every, o.cfg.ExecProbeInterval)
		}
		elapsed := o.cfg.Now().Sub(h.lastAt)
		// A pass that runs anyway (another container's probe fell due, an
		// engine event) also probes a healthy container's HTTP or TCP
		// check once it is half due: the probes of all running containers
		// then fall into one pass per interval, instead of one pass (and
		// one container list from the engine) per container; an idle node
		// with the six sample apps made three passes a second. Exec probes
		// (an exec in the engine each) and failing checks, whose retries
		// count, keep their exact pace.
		due = elapsed >= every || h.ok && !usesExec(pc) && elapsed >= every/2
	}
	o.mu.Unlock()
	if !due {
		return nil
	}
	err := o.probe(ctx, pc)
	o.recordHealth(a, pc, err, starting)
	if errors.Is(err, ErrTimeout) {
		return err
	}
	o.mu.Lock()
	restart := o.unhealthyRestartDueLocked(a, pc)
	o.mu.Unlock()
	if restart {
		return o.restartUnhealthy(ctx, a, pc)
	}
	return nil
}
