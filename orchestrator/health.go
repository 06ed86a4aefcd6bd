package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/archy-node/archy/registry"
)

// Health probes are run by the orchestrator itself (no systemd timers on
// these nodes). A probe on a port the container publishes goes from the
// host to 127.0.0.1:<host port> (HTTP GET or TCP connect). A probe on a
// port that is only reachable inside the app's network (guestbook's db)
// runs in the container through the engine's exec: `wget -q -O /dev/null`
// for HTTP and `nc -w SECS 127.0.0.1 PORT </dev/null` (via sh) for TCP, so
// images need busybox-like tools for internal-only probes. Exec probes
// are costly on Podman 4.3 (each leaves a conmon for 5 minutes), so in
// steady state they run at most every ExecProbeInterval.

// healthParams are a manifest's health settings with defaults filled.
type healthParams struct {
	interval, timeout, startPeriod time.Duration
	retries                        int
}

func paramsOf(h *registry.Health) healthParams {
	p := healthParams{interval: registry.DefaultHealthInterval, timeout: registry.DefaultHealthTimeout, retries: registry.DefaultHealthRetries}
	if h == nil {
		return p
	}
	parse := func(s string, d *time.Duration) {
		if v, err := time.ParseDuration(s); err == nil && v > 0 {
			*d = v
		}
	}
	parse(h.Interval, &p.interval)
	parse(h.Timeout, &p.timeout)
	parse(h.StartPeriod, &p.startPeriod)
	if h.Retries > 0 {
		p.retries = h.Retries
	}
	return p
}

// deadline is how long a fresh container may take to become healthy: its
// start period, then retries failed probes.
func (p healthParams) deadline() time.Duration {
	return p.startPeriod + time.Duration(p.retries)*(p.interval+p.timeout)
}

// health is a container's probe record.
type health struct {
	ok       bool
	probed   bool
	fails    int
	lastAt   time.Time
	lastErr  string
	retries  int
	starting bool
	since    time.Time // when it was (re)started, or first probed
}

// Unhealthy containers are restarted, with a growing pause between
// restarts of one container so a broken one does not spin.
const (
	restartBackoffMin = 10 * time.Second
	restartBackoffMax = 5 * time.Minute
	// restartForgetAfter: healthy this long after a restart, a container
	// starts again from the shortest pause.
	restartForgetAfter = 10 * time.Minute
)

// backoff is when a container may be restarted again.
type backoff struct {
	n    int
	last time.Time
	next time.Time
}

// unhealthyRestartDueLocked reports whether pc should be restarted now: it has
// failed its probe retries times in a row after being healthy, or it has
// not become healthy within its start deadline, and its backoff has
// passed. o.mu held.
func (o *Orchestrator) unhealthyRestartDueLocked(a *app, pc PlannedContainer) bool {
	h := a.health[pc.Name]
	if h == nil || !h.probed || h.ok {
		return false
	}
	now := o.cfg.Now()
	failed := !h.starting && h.fails >= h.retries
	neverUp := h.starting && !h.since.IsZero() && now.Sub(h.since) > paramsOf(pc.Health).deadline()
	if !failed && !neverUp {
		return false
	}
	b := a.backoff[pc.Name]
	return b == nil || !now.Before(b.next)
}

// restartUnhealthy stops and starts pc (its data and spec stay), counts
// it, and pushes its next allowed restart further out.
func (o *Orchestrator) restartUnhealthy(ctx context.Context, a *app, pc PlannedContainer) error {
	o.mu.Lock()
	last := ""
	if h := a.health[pc.Name]; h != nil {
		last = h.lastErr
	}
	b := a.backoff[pc.Name]
	if b == nil {
		b = &backoff{}
		a.backoff[pc.Name] = b
	}
	now := o.cfg.Now()
	b.n++
	b.last = now
	b.next = now.Add(min(restartBackoffMin<<min(b.n-1, 10), restartBackoffMax))
	a.restarts++
	n := b.n
	o.mu.Unlock()
	o.log.Warn("reconcile: container unhealthy; restarting", "app", a.id, "container", pc.Spec.Name, "last_probe", last, "restart", n)
	sctx, cancel := context.WithTimeout(ctx, o.cfg.StopTimeout)
	err := o.rt.Stop(sctx, pc.Spec.Name, DefaultStopTimeout)
	cancel()
	if err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("restart unhealthy %s: %w", pc.Spec.Name, err)
	}
	if err := o.startChecked(ctx, a, pc); err != nil {
		return fmt.Errorf("restart unhealthy %s: %w", pc.Spec.Name, err)
	}
	o.resetHealth(a, pc.Name)
	o.refreshContainer(ctx, a, pc)
	return nil
}

func (h *health) status() string {
	switch {
	case h.probed && h.ok:
		return "healthy"
	case h.fails >= h.retries && !h.starting:
		return "unhealthy"
	case h.starting || !h.probed:
		return "starting"
	}
	return "unknown"
}

var probeClient = &http.Client{
	Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse // a 3xx counts as healthy
	},
}

// probe runs a container's health check once. A container without one
// is healthy when it runs.
func (o *Orchestrator) probe(ctx context.Context, pc PlannedContainer) error {
	h := pc.Health
	if h == nil {
		c, err := o.rt.Inspect(ctx, pc.Spec.Name)
		if err != nil {
			return err
		}
		if !c.Running() {
			return fmt.Errorf("%s is %s", pc.Name, c.State)
		}
		return nil
	}
	p := paramsOf(h)
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	switch {
	case h.HTTP != nil:
		path := h.HTTP.Path
		if path == "" {
			path = "/"
		}
		if hp, ok := pc.HostPorts[h.HTTP.Port]; ok {
			url := "http://127.0.0.1:" + strconv.Itoa(int(hp)) + path
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				return err
			}
			resp, err := probeClient.Do(req)
			if err != nil {
				return fmt.Errorf("GET %s: %w", path, err)
			}
			io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			if resp.StatusCode < 200 || resp.StatusCode > 399 {
				return fmt.Errorf("GET %s: status %d", path, resp.StatusCode)
			}
			return nil
		}
		return o.execProbe(ctx, pc, []string{"wget", "-q", "-O", "/dev/null", "http://127.0.0.1:" + strconv.Itoa(h.HTTP.Port) + path})
	case h.TCP != nil:
		if hp, ok := pc.HostPorts[h.TCP.Port]; ok {
			var d net.Dialer
			c, err := d.DialContext(ctx, "tcp", "127.0.0.1:"+strconv.Itoa(int(hp)))
			if err != nil {
				return fmt.Errorf("connect to port %d: %w", h.TCP.Port, err)
			}
			c.Close()
			return nil
		}
		secs := max(int(p.timeout/time.Second), 1)
		return o.execProbe(ctx, pc, []string{"/bin/sh", "-c", fmt.Sprintf("nc -w %d 127.0.0.1 %d </dev/null", secs, h.TCP.Port)})
	case len(h.Exec) > 0:
		return o.execProbe(ctx, pc, h.Exec)
	}
	return nil
}

func (o *Orchestrator) execProbe(ctx context.Context, pc PlannedContainer, cmd []string) error {
	r, err := o.rt.Exec(ctx, pc.Spec.Name, cmd)
	if err != nil {
		return err
	}
	if r.ExitCode != 0 {
		return fmt.Errorf("probe exited with %d", r.ExitCode)
	}
	return nil
}

func usesExec(pc PlannedContainer) bool {
	h := pc.Health
	switch {
	case h == nil:
		return false
	case h.HTTP != nil:
		_, ok := pc.HostPorts[h.HTTP.Port]
		return !ok
	case h.TCP != nil:
		_, ok := pc.HostPorts[h.TCP.Port]
		return !ok
	}
	return len(h.Exec) > 0
}

// waitHealthy probes a freshly started container until it passes, fails
// for good (its start period and retries spent, or it exited), or ctx
// ends. Probes run every half second (exec probes every second) until
// the first success: a start should not wait a whole interval.
func (o *Orchestrator) waitHealthy(ctx context.Context, a *app, pc PlannedContainer) error {
	p := paramsOf(pc.Health)
	limit := min(p.deadline(), o.cfg.HealthTimeout)
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	every := 500 * time.Millisecond
	if usesExec(pc) {
		every = time.Second
	}
	every = min(every, p.interval)
	t := time.NewTicker(every)
	defer t.Stop()
	var last error
	for {
		err := o.probe(ctx, pc)
		o.recordHealth(a, pc, err, true)
		if err == nil {
			return nil
		}
		last = err
		c, ierr := o.rt.Inspect(ctx, pc.Spec.Name)
		if ierr == nil && !c.Running() && c.State != StateCreated {
			return fmt.Errorf("%s %s with code %d: %w", pc.Name, c.State, c.ExitCode, ErrExited)
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("%s not healthy after %s (last probe: %v): %w", pc.Name, limit, last, ErrUnhealthy)
			}
			return ctx.Err()
		case <-t.C:
		}
	}
}

// recordHealth notes a probe result.
func (o *Orchestrator) recordHealth(a *app, pc PlannedContainer, err error, starting bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	h := a.health[pc.Name]
	if h == nil {
		h = &health{}
		a.health[pc.Name] = h
	}
	h.retries = paramsOf(pc.Health).retries
	h.probed, h.lastAt = true, o.cfg.Now()
	if h.since.IsZero() {
		h.since = h.lastAt
	}
	if err == nil {
		h.ok, h.fails, h.lastErr, h.starting = true, 0, "", false
		if b := a.backoff[pc.Name]; b != nil && h.lastAt.Sub(b.last) > restartForgetAfter {
			delete(a.backoff, pc.Name)
		}
		return
	}
	h.ok, h.lastErr, h.starting = false, err.Error(), starting
	h.fails++
}

// resetHealth marks a container as just started.
func (o *Orchestrator) resetHealth(a *app, name string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	a.health[name] = &health{starting: true, retries: registry.DefaultHealthRetries, since: o.cfg.Now()}
}

func (o *Orchestrator) healthy(a *app, name string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	h := a.health[name]
	return h != nil && h.probed && h.ok
}
