package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/Masterminds/semver/v3"

	"github.com/archy-node/archy/registry"
)

// releaseOf keeps a verified manifest as a Release.
func releaseOf(v *registry.Verified, archives map[string]string) (*Release, error) {
	if v == nil || v.Manifest == nil {
		return nil, errors.New("no verified manifest")
	}
	r := &Release{Version: v.Manifest.Version, CID: v.CID.String(), Payload: v.Payload, Archives: archives, manifest: v.Manifest}
	if v.Envelope != nil {
		env, err := v.Envelope.Marshal()
		if err != nil {
			return nil, fmt.Errorf("keep envelope of %s: %w", v.Manifest.ID, err)
		}
		r.Envelope = env
	}
	return r, nil
}

// lockOp takes the app's operation lock (or fails with ErrBusy), then its
// work lock (waiting out an in-flight reconcile pass of the app).
func (o *Orchestrator) lockOp(a *app) (func(), error) {
	if !a.busy.CompareAndSwap(false, true) {
		return nil, fmt.Errorf("app %s: %w", a.id, ErrBusy)
	}
	a.work.Lock()
	return func() {
		a.work.Unlock()
		a.busy.Store(false)
		o.kick()
	}, nil
}

// lockApp finds an installed app and takes its one operation slot; verb
// names the operation in errors.
func (o *Orchestrator) lockApp(id, verb string) (*app, func(), error) {
	a, err := o.getApp(id)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", verb, err)
	}
	unlock, err := o.lockOp(a)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", verb, err)
	}
	return a, unlock, nil
}

func (o *Orchestrator) getApp(id string) (*app, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	a, ok := o.apps[id]
	if !ok {
		return nil, fmt.Errorf("app %s: %w", id, ErrNotInstalled)
	}
	return a, nil
}

// Install installs a verified manifest, its images loaded from local OCI
// archives (container name → path), and brings it up health-gated. An
// app already installed at that CID is started. Ports are checked before
// anything is loaded. A failed install leaves nothing behind but the
// app's data and secrets (kept for a retry), unless it only waits for a
// required app: then it stays installed, waiting, and the reconciler
// starts it once the requirement is healthy.
//
// The app is pinned to the release's publisher DID. A release of an
// installed id from another DID is refused (ErrPublisherMismatch), and so
// is one whose id has data and secrets kept from an uninstall by another
// publisher: they are never handed to another publisher's containers.
func (o *Orchestrator) Install(ctx context.Context, v *registry.Verified, archives map[string]string, opts ...Option) error {
	opt := optionsOf(opts)
	rel, err := releaseOf(v, archives)
	if err != nil {
		return fmt.Errorf("install: %w", err)
	}
	m := v.Manifest
	if !validAppID(m.ID) {
		return fmt.Errorf("install: app id %q cannot name engine objects", m.ID)
	}
	o.mu.Lock()
	a, exists := o.apps[m.ID]
	if !exists {
		a = o.newApp(m.ID)
		a.phase = "installing"
		o.apps[m.ID] = a
	}
	o.mu.Unlock()
	unlock, err := o.lockOp(a)
	if err != nil {
		return fmt.Errorf("install: %w", err)
	}
	defer unlock()
	o.mu.Lock()
	st := a.state
	o.mu.Unlock()
	if st != nil {
		switch {
		case st.Intent == IntentRemoved:
			return fmt.Errorf("install %s: an uninstall is still finishing: %w", m.ID, ErrBusy)
		case st.Pin != nil && m.Publisher != st.Pin.Publisher:
			return fmt.Errorf("install %s %s: it is signed by %s, but the installed %s is pinned to %s: %w",
				m.ID, m.Version, m.Publisher, m.ID, st.Pin.Publisher, ErrPublisherMismatch)
		case st.Current.CID != rel.CID:
			return fmt.Errorf("install %s %s: version %s is installed (update it instead): %w", m.ID, m.Version, st.Current.Version, ErrAlreadyInstalled)
		}
		return o.startLocked(ctx, a, "install")
	}
	pin, err := o.authorizeNew(rel, opt)
	if err != nil {
		o.dropIfNew(a)
		return fmt.Errorf("install %s %s: %w", m.ID, m.Version, err)
	}
	op := o.newOp(a, "install")
	err = o.install(ctx, op, a, rel, pin)
	if err != nil && !errors.Is(err, ErrWaiting) {
		// Undo: no half-installed app, no ghost.
		o.mu.Lock()
		installed := a.state != nil
		o.mu.Unlock()
		if installed {
			op.cleaningUp()
			op.report(StageRemove, op.last.Fraction, "undoing the failed install")
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.cfg.RemoveTimeout)
			if uerr := o.teardown(rctx, a, false); uerr != nil {
				err = errors.Join(err, fmt.Errorf("undo install: %w", uerr))
			} else if uerr := o.forget(a); uerr != nil {
				err = errors.Join(err, uerr)
			}
			cancel()
		} else {
			o.dropIfNew(a)
		}
	}
	o.setErr(a, err)
	return op.finish(err)
}

func (o *Orchestrator) dropIfNew(a *app) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if a.state == nil && o.apps[a.id] == a {
		delete(o.apps, a.id)
	}
}

func (o *Orchestrator) forget(a *app) error {
	if err := o.store.remove(a.id); err != nil {
		return err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	a.state = nil
	if o.apps[a.id] == a {
		delete(o.apps, a.id)
	}
	return nil
}

func (o *Orchestrator) install(ctx context.Context, op *operation, a *app, rel *Release, pin *Pin) error {
	m, _ := rel.Manifest()
	if err := o.fetch(ctx, op, rel, nil, 0, 0.1); err != nil {
		return err
	}
	if err := o.load(ctx, op, rel, 0.1, 0.35); err != nil {
		return err
	}
	// Before any secret or data folder exists: they go with the pin.
	if err := o.store.savePin(m.ID, rel.Version, pin); err != nil {
		return err
	}
	st := &AppState{ID: m.ID, Intent: IntentRunning, Current: rel, Pending: &Pending{Op: "install", Started: o.cfg.Now()}, Pin: pin}
	if err := o.store.save(st); err != nil {
		return err
	}
	o.mu.Lock()
	a.state = st
	a.plan = nil
	o.mu.Unlock()
	op.report(StageSecrets, 0.35, "materialising secrets")
	plan, err := o.planFor(ctx, a, rel)
	if err != nil {
		return err
	}
	if err := o.waitRequires(ctx, op, a, m); err != nil {
		return o.clearPending(a, err)
	}
	if err := o.bringUp(ctx, op, a, plan, 0.4, 1); err != nil {
		return err
	}
	return o.clearPending(a, nil)
}

func (o *Orchestrator) clearPending(a *app, err error) error {
	o.mu.Lock()
	st := a.state
	o.mu.Unlock()
	if st == nil {
		return err
	}
	st.Pending = nil
	if serr := o.store.save(st); serr != nil {
		return errors.Join(err, serr)
	}
	if err == nil {
		o.setPhase(a, "running", "")
	}
	return err
}

// hostPortsOf lists a manifest's published ports.
func hostPortsOf(m *registry.Manifest) []HostPort {
	var out []HostPort
	for _, c := range m.Containers {
		for _, p := range c.Ports {
			if p.Host > 0 && p.Host < 65536 {
				proto := p.Protocol
				if proto == "" {
					proto = "tcp"
				}
				out = append(out, HostPort{Port: uint16(p.Host), Protocol: proto, Container: c.Name})
			}
		}
	}
	return out
}

// refDigest names an image by its pinned digest.
func refDigest(ref, digest string) string {
	if strings.Contains(ref, "@") {
		return ref
	}
	name := ref
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		name = ref[:i]
	}
	return name + "@" + digest
}

// fetch checks the ports the release needs (except those in keep, which
// the app itself holds) and verifies each image archive against the
// manifest's CID and digest before anything reaches the engine.
func (o *Orchestrator) fetch(ctx context.Context, op *operation, rel *Release, keep []HostPort, from, to float64) error {
	m, err := rel.Manifest()
	if err != nil {
		return err
	}
	sctx, cancel := op.stage(ctx, StageFetch, from, o.cfg.FetchTimeout, "checking ports")
	defer cancel()
	var need []HostPort
	for _, p := range hostPortsOf(m) {
		if !slices.ContainsFunc(keep, func(k HostPort) bool { return k.Port == p.Port && k.Protocol == p.Protocol }) {
			need = append(need, p)
		}
	}
	if err := checkPorts(need); err != nil {
		return err
	}
	for i, c := range m.Containers {
		if err := sctx.Err(); err != nil {
			return fmt.Errorf("verify images: %w", err)
		}
		op.report(StageFetch, from+(to-from)*float64(i)/float64(len(m.Containers)), "verifying image of "+c.Name)
		if c.Image.CID == "" || c.Image.Digest == "" {
			return fmt.Errorf("container %s: image not pinned by cid and digest: %w", c.Name, ErrImageMismatch)
		}
		if ok, err := o.rt.ImageExists(sctx, refDigest(c.Image.Ref, c.Image.Digest)); err != nil {
			return err
		} else if ok {
			continue
		}
		path := rel.Archives[c.Name]
		if path == "" && o.cfg.Images != nil {
			lo := from + (to-from)*float64(i)/float64(len(m.Containers))
			hi := from + (to-from)*float64(i+1)/float64(len(m.Containers))
			var err error
			path, err = o.cfg.Images.FetchArchive(sctx, c.Image.CID, c.Image.Size, func(done, total int64) {
				if total > 0 {
					op.report(StageFetch, lo+(hi-lo)*float64(done)/float64(total),
						fmt.Sprintf("fetching image of %s: %d of %d bytes", c.Name, done, total))
				}
			})
			if err != nil {
				return fmt.Errorf("container %s: fetch image %s: %w", c.Name, c.Image.CID, err)
			}
			if rel.Archives == nil {
				rel.Archives = map[string]string{}
			}
			rel.Archives[c.Name] = path
		}
		if path == "" {
			return fmt.Errorf("container %s: no image archive given and image %s is not present", c.Name, c.Image.Ref)
		}
		sum, err := registry.ReadOCIArchive(path)
		if err != nil {
			return fmt.Errorf("container %s: read image archive: %w", c.Name, err)
		}
		if sum.CID.String() != c.Image.CID {
			return fmt.Errorf("container %s: archive has CID %s, manifest pins %s: %w", c.Name, sum.CID, c.Image.CID, ErrImageMismatch)
		}
		if sum.Digest != c.Image.Digest {
			return fmt.Errorf("container %s: archive holds image %s, manifest pins %s: %w", c.Name, sum.Digest, c.Image.Digest, ErrImageMismatch)
		}
	}
	return nil
}

// load loads the images that are not present and checks that the engine
// has each under its pinned digest.
func (o *Orchestrator) load(ctx context.Context, op *operation, rel *Release, from, to float64) error {
	m, _ := rel.Manifest()
	for i, c := range m.Containers {
		f := from + (to-from)*float64(i)/float64(len(m.Containers))
		sctx, cancel := op.stage(ctx, StageLoad, f, o.cfg.LoadTimeout, "loading image of "+c.Name)
		err := o.loadOne(sctx, rel, c)
		cancel()
		if err != nil {
			return err
		}
	}
	op.report(StageLoad, to, "images loaded")
	return nil
}

func (o *Orchestrator) loadOne(ctx context.Context, rel *Release, c registry.Container) error {
	pinned := refDigest(c.Image.Ref, c.Image.Digest)
	ok, err := o.rt.ImageExists(ctx, pinned)
	if err != nil || ok {
		return err
	}
	m, _ := rel.Manifest()
	if err := o.checkImageName(m.ID, c, rel.Archives[c.Name]); err != nil {
		return err
	}
	if _, err := o.rt.LoadImage(ctx, rel.Archives[c.Name]); err != nil {
		return fmt.Errorf("container %s: %w", c.Name, err)
	}
	if ok, err = o.rt.ImageExists(ctx, pinned); err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("container %s: the loaded image is not %s: %w", c.Name, pinned, ErrImageMismatch)
	}
	return nil
}

// planFor returns the app's plan for rel, materialising its secrets.
func (o *Orchestrator) planFor(ctx context.Context, a *app, rel *Release) (*Plan, error) {
	o.mu.Lock()
	if a.plan != nil && a.planCID == rel.CID {
		p := a.plan
		o.mu.Unlock()
		return p, nil
	}
	o.mu.Unlock()
	m, err := rel.Manifest()
	if err != nil {
		return nil, err
	}
	info, err := o.engineInfo(ctx)
	if err != nil {
		return nil, err
	}
	sec, err := o.secrets.ensure(m.ID, m.GeneratedSecrets)
	if err != nil {
		return nil, err
	}
	p, err := makePlan(planInput{manifest: m, cid: rel.CID, secrets: sec, dataDir: o.DataDir(m.ID), resourceLimits: info.ResourceLimits})
	if err != nil {
		return nil, err
	}
	o.mu.Lock()
	a.plan, a.planCID = p, rel.CID
	o.mu.Unlock()
	return p, nil
}

// requirementReason says which required app is not healthy, or "".
func (o *Orchestrator) requirementReason(m *registry.Manifest) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, r := range m.Requires {
		ra, ok := o.apps[r.ID]
		if !ok || ra.state == nil || ra.state.Intent != IntentRunning {
			return "waiting for " + r.ID + " to be healthy (it is not installed and running)"
		}
		if r.Version != "" {
			c, err := semver.NewConstraint(r.Version)
			v, verr := semver.NewVersion(ra.state.Current.Version)
			if err != nil || verr != nil || !c.Check(v) {
				return "waiting for " + r.ID + " " + r.Version + " (version " + ra.state.Current.Version + " is installed)"
			}
		}
		if s := o.statusLocked(ra); !s.Healthy {
			return "waiting for " + r.ID + " to be healthy"
		}
	}
	return ""
}

// waitRequires waits, visibly, for every required app to be healthy.
func (o *Orchestrator) waitRequires(ctx context.Context, op *operation, a *app, m *registry.Manifest) error {
	if len(m.Requires) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, o.cfg.RequireTimeout)
	defer cancel()
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		why := o.requirementReason(m)
		if why == "" {
			return nil
		}
		o.setPhase(a, "waiting", why)
		op.report(op.last.Stage, op.last.Fraction, why)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", why, ErrWaiting)
		case <-t.C:
		}
	}
}

// ensureNetwork creates the app's network if it is missing.
func (o *Orchestrator) ensureNetwork(ctx context.Context, p *Plan) error {
	err := o.rt.CreateNetwork(ctx, Network{Name: p.Network, Labels: map[string]string{LabelApp: p.App}})
	if err != nil && !errors.Is(err, ErrNameInUse) {
		return err
	}
	return nil
}

// bringUp creates, starts and health-gates the plan's containers in
// order; a container archy already runs with the desired spec is kept.
func (o *Orchestrator) bringUp(ctx context.Context, op *operation, a *app, p *Plan, from, to float64) error {
	o.setPhase(a, "starting", "")
	sctx, cancel := op.stage(ctx, StageCreate, from, o.cfg.CreateTimeout, "creating network "+p.Network)
	err := o.ensureNetwork(sctx, p)
	cancel()
	if err != nil {
		return err
	}
	n := float64(len(p.Containers))
	for i, pc := range p.Containers {
		base := from + (to-from)*float64(i)/n
		span := (to - from) / n
		sctx, cancel := op.stage(ctx, StageCreate, base, o.cfg.CreateTimeout, "creating "+pc.Name)
		fresh, err := o.ensureContainer(sctx, a, pc)
		cancel()
		if err != nil {
			return err
		}
		sctx, cancel = op.stage(ctx, StageStart, base+span*0.2, o.cfg.StartTimeout, "starting "+pc.Name)
		recreated, err := o.startContainer(sctx, a, pc)
		cancel()
		if err != nil {
			return err
		}
		if fresh || recreated {
			o.resetHealth(a, pc.Name)
		}
		op.report(StageHealth, base+span*0.4, "waiting for "+pc.Name+" to be healthy")
		if err := o.waitHealthy(ctx, a, pc); err != nil {
			return err
		}
		o.refreshContainer(ctx, a, pc)
	}
	return nil
}

// startContainer starts a container; one the engine will not start (a
// stop still finishing after an engine stall, a broken state) is stopped
// and started again, and as a last resort recreated. It reports whether
// it recreated the container.
func (o *Orchestrator) startContainer(ctx context.Context, a *app, pc PlannedContainer) (bool, error) {
	err := o.startChecked(ctx, a, pc)
	if err == nil || errors.Is(err, ErrTimeout) || errors.Is(err, ErrUnsafeData) || ctx.Err() != nil {
		return false, err
	}
	o.log.Warn("start failed; stopping and starting again", "app", a.id, "container", pc.Spec.Name, "err", err)
	if c, ierr := o.rt.Inspect(ctx, pc.Spec.Name); ierr == nil && c.Running() && !errors.Is(err, ErrImageMismatch) {
		return false, nil
	}
	if !errors.Is(err, ErrImageMismatch) {
		if serr := o.rt.Stop(ctx, pc.Spec.Name, DefaultStopTimeout); serr == nil {
			if err = o.startChecked(ctx, a, pc); err == nil {
				return false, nil
			}
		}
	}
	if err := o.rt.Remove(ctx, pc.Spec.Name); err != nil && !errors.Is(err, ErrNotFound) {
		return false, err
	}
	if err := o.createContainer(ctx, a, pc); err != nil {
		return false, err
	}
	o.mu.Lock()
	a.recreated++
	o.mu.Unlock()
	return true, o.startChecked(ctx, a, pc)
}

func (o *Orchestrator) refreshContainer(ctx context.Context, a *app, pc PlannedContainer) {
	if c, err := o.rt.Inspect(ctx, pc.Spec.Name); err == nil {
		o.mu.Lock()
		a.containers[pc.Name] = c
		o.mu.Unlock()
	}
}

// ensureContainer makes the container exist with the desired spec. It
// reports whether it created one. A name held by a container archy did
// not create is an error, and that container is left alone.
func (o *Orchestrator) ensureContainer(ctx context.Context, a *app, pc PlannedContainer) (bool, error) {
	c, err := o.rt.Inspect(ctx, pc.Spec.Name)
	switch {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		return false, err
	case !owned(c, a.id):
		return false, fmt.Errorf("container %s (%s): %w; rename or remove it", pc.Spec.Name, shortID(c.ID), ErrNameTaken)
	case c.Labels[LabelSpecHash] == pc.Hash:
		return false, nil
	default:
		if err := o.rt.Remove(ctx, pc.Spec.Name); err != nil && !errors.Is(err, ErrNotFound) {
			return false, err
		}
	}
	if err := o.createContainer(ctx, a, pc); err != nil {
		return false, err
	}
	return true, nil
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// teardown stops and removes every container of the app (all carrying
// its label, whatever version made them) and its network, then checks
// that the engine has none left.
func (o *Orchestrator) teardown(ctx context.Context, a *app, keepNetwork bool) error {
	list, err := o.rt.List(ctx, map[string]string{LabelApp: a.id})
	if err != nil {
		return err
	}
	// Dependents first: reverse plan order when known.
	o.mu.Lock()
	var order []string
	if a.plan != nil {
		for _, pc := range slices.Backward(a.plan.Containers) {
			order = append(order, pc.Spec.Name)
		}
	}
	o.mu.Unlock()
	slices.SortStableFunc(list, func(x, y Container) int {
		ix, iy := slices.Index(order, x.Name), slices.Index(order, y.Name)
		if ix < 0 {
			ix = len(order)
		}
		if iy < 0 {
			iy = len(order)
		}
		return ix - iy
	})
	var errs []error
	for _, c := range list {
		if !owned(c, a.id) {
			continue
		}
		if c.Running() {
			sctx, cancel := context.WithTimeout(ctx, o.cfg.StopTimeout)
			if err := o.rt.Stop(sctx, c.Name, DefaultStopTimeout); err != nil && !errors.Is(err, ErrNotFound) {
				errs = append(errs, err)
			}
			cancel()
		}
		if err := o.rt.Remove(ctx, c.Name); err != nil && !errors.Is(err, ErrNotFound) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if !keepNetwork {
		if err := o.rt.RemoveNetwork(ctx, NetworkName(a.id)); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	list, err = o.rt.List(ctx, map[string]string{LabelApp: a.id})
	if err != nil {
		return fmt.Errorf("verify removal: %w", err)
	}
	left := slices.DeleteFunc(list, func(c Container) bool { return !owned(c, a.id) })
	if len(left) > 0 {
		return fmt.Errorf("verify removal: %d containers of %s are still there (%s)", len(left), a.id, left[0].Name)
	}
	o.mu.Lock()
	a.containers = map[string]Container{}
	a.health = map[string]*health{}
	o.mu.Unlock()
	return nil
}

// Start sets the owner's intent to running and brings the app up.
func (o *Orchestrator) Start(ctx context.Context, id string) error {
	a, unlock, err := o.lockApp(id, "start")
	if err != nil {
		return err
	}
	defer unlock()
	return o.startLocked(ctx, a, "start")
}

func (o *Orchestrator) setIntent(a *app, in Intent, pending string) (*AppState, error) {
	o.mu.Lock()
	st := a.state
	o.mu.Unlock()
	if st == nil || st.Intent == IntentRemoved {
		return nil, fmt.Errorf("app %s: %w", a.id, ErrNotInstalled)
	}
	o.mu.Lock() // Apps and Status read the state under o.mu
	st.Intent = in
	st.Pending = nil
	if pending != "" {
		st.Pending = &Pending{Op: pending, Started: o.cfg.Now()}
	}
	o.mu.Unlock()
	return st, o.store.save(st)
}

func (o *Orchestrator) startLocked(ctx context.Context, a *app, kind string) error {
	op := o.newOp(a, kind)
	st, err := o.setIntent(a, IntentRunning, kind)
	if err != nil {
		return op.finish(err)
	}
	op.report(StageSecrets, 0.3, "")
	plan, err := o.planFor(ctx, a, st.Current)
	if err == nil {
		m, _ := st.Current.Manifest()
		err = o.waitRequires(ctx, op, a, m)
	}
	if err == nil {
		err = o.bringUp(ctx, op, a, plan, 0.4, 1)
	}
	err = o.clearPending(a, err)
	o.setErr(a, err)
	return op.finish(err)
}

// Stop sets the owner's intent to stopped and stops the app's containers
// (dependents first). They stay stopped across reconciles and restarts.
func (o *Orchestrator) Stop(ctx context.Context, id string) error {
	a, unlock, err := o.lockApp(id, "stop")
	if err != nil {
		return err
	}
	defer unlock()
	op := o.newOp(a, "stop")
	if _, err := o.setIntent(a, IntentStopped, ""); err != nil {
		return op.finish(err)
	}
	err = o.stopAll(ctx, op, a)
	if err == nil {
		o.setPhase(a, "stopped", "")
	}
	o.setErr(a, err)
	return op.finish(err)
}

func (o *Orchestrator) stopAll(ctx context.Context, op *operation, a *app) error {
	o.mu.Lock()
	rel := a.state.Current
	o.mu.Unlock()
	plan, err := o.planFor(ctx, a, rel)
	if err != nil {
		return err
	}
	n := float64(len(plan.Containers))
	for i, pc := range slices.Backward(plan.Containers) {
		sctx, cancel := op.stage(ctx, StageStop, float64(len(plan.Containers)-1-i)/n, o.cfg.StopTimeout, "stopping "+pc.Name)
		err := o.rt.Stop(sctx, pc.Spec.Name, DefaultStopTimeout)
		cancel()
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		o.refreshContainer(ctx, a, pc)
	}
	return nil
}

// Restart stops and starts the app, health-gated.
func (o *Orchestrator) Restart(ctx context.Context, id string) error {
	a, unlock, err := o.lockApp(id, "restart")
	if err != nil {
		return err
	}
	defer unlock()
	op := o.newOp(a, "restart")
	if err := o.stopAll(ctx, op, a); err != nil {
		o.setErr(a, err)
		return op.finish(err)
	}
	op.finish(nil)
	return o.startLocked(ctx, a, "restart")
}

// Update replaces the running version with a newer verified manifest.
// The old version's images and config are kept until the new one is
// healthy; if it is not within its health deadline, the old version is
// brought back and Update returns an error wrapping ErrRolledBack. Data
// and secrets are kept either way.
//
// Only a release from the DID the app is pinned to is an update, or from
// the DID a rotation statement signed by it names (WithRotations; the pin
// then moves): anything else is refused with ErrPublisherMismatch before
// the app is touched. The version must go up unless AllowDowngrade is
// given (ErrDowngrade).
func (o *Orchestrator) Update(ctx context.Context, v *registry.Verified, archives map[string]string, opts ...Option) error {
	opt := optionsOf(opts)
	rel, err := releaseOf(v, archives)
	if err != nil {
		return fmt.Errorf("update: %w", err)
	}
	a, err := o.getApp(v.Manifest.ID)
	if err != nil {
		return fmt.Errorf("update: %w", err)
	}
	unlock, err := o.lockOp(a)
	if err != nil {
		return fmt.Errorf("update: %w", err)
	}
	defer unlock()
	o.mu.Lock()
	st := a.state
	o.mu.Unlock()
	var pin *Pin
	if st != nil && st.Intent != IntentRemoved && st.Current.CID != rel.CID {
		cur := st.Pin
		if cur == nil {
			return fmt.Errorf("update %s: the installed app has no publisher pin", a.id)
		}
		if pin, err = o.authorize(a.id, cur, st.Current.Version, false, rel, opt); err != nil {
			return fmt.Errorf("update %s: %w", a.id, err)
		}
	}
	op := o.newOp(a, "update")
	err = o.update(ctx, op, a, rel, pin)
	o.setErr(a, err)
	return op.finish(err)
}

// update replaces a's release by rel, which authorize accepted with pin.
func (o *Orchestrator) update(ctx context.Context, op *operation, a *app, rel *Release, pin *Pin) error {
	o.mu.Lock()
	st := a.state
	o.mu.Unlock()
	if st == nil || st.Intent == IntentRemoved {
		return fmt.Errorf("app %s: %w", a.id, ErrNotInstalled)
	}
	if st.Current.CID == rel.CID {
		return nil
	}
	if pin == nil { // fail closed: never an update without an authorized pin
		return fmt.Errorf("app %s: release %s was not authorized: %w", a.id, rel.CID, ErrPublisherMismatch)
	}
	old := st.Current
	oldM, err := old.Manifest()
	if err != nil {
		return err
	}
	if err := o.fetch(ctx, op, rel, hostPortsOf(oldM), 0, 0.1); err != nil {
		return err
	}
	if err := o.load(ctx, op, rel, 0.1, 0.3); err != nil {
		return err
	}
	// The pin moves (by a rotation) when the release is accepted, and
	// stays moved should it roll back: the old DID signed the move.
	if err := o.store.savePin(a.id, rel.Version, pin); err != nil {
		return err
	}
	older, oldPin := st.Previous, st.Pin
	o.mu.Lock()
	st.Previous, st.Current = old, rel
	st.Intent = IntentRunning
	st.Pending = &Pending{Op: "update", Started: o.cfg.Now()}
	st.Pin = pin
	o.mu.Unlock()
	if err := o.store.save(st); err != nil {
		o.mu.Lock()
		st.Current, st.Previous, st.Pin = old, older, oldPin
		o.mu.Unlock()
		return err
	}
	op.report(StageSecrets, 0.3, "materialising secrets")
	plan, err := o.planFor(ctx, a, rel)
	if err == nil {
		m, _ := rel.Manifest()
		err = o.waitRequires(ctx, op, a, m)
	}
	if err == nil {
		op.report(StageStop, 0.35, "stopping "+old.Version)
		err = o.teardown(ctx, a, true)
	}
	if err == nil {
		err = o.bringUp(ctx, op, a, plan, 0.4, 0.85)
	}
	if err == nil {
		if err := o.clearPending(a, nil); err != nil {
			return err
		}
		if older != nil {
			o.removeImages(ctx, older, rel, old)
		}
		return nil
	}
	// Roll back: the old config and images are still here.
	cause := err
	op.report(StageRollback, 0.85, "rolling back to "+old.Version)
	o.log.Warn("update failed; rolling back", "app", a.id, "from", rel.Version, "to", old.Version, "err", cause)
	rctx := context.WithoutCancel(ctx)
	o.mu.Lock()
	st.Current, st.Previous, st.Pending = old, older, nil
	o.mu.Unlock()
	if err := o.store.save(st); err != nil {
		return errors.Join(cause, err)
	}
	oldPlan, err := o.planFor(rctx, a, old)
	if err == nil {
		err = o.teardown(rctx, a, true)
	}
	if err == nil {
		err = o.bringUp(rctx, op, a, oldPlan, 0.9, 0.99)
	}
	if err != nil {
		return fmt.Errorf("%w to %s: %w; and the rollback failed: %w", ErrRolledBack, old.Version, cause, err)
	}
	o.setPhase(a, "running", "")
	o.removeImages(rctx, rel, old, older)
	return fmt.Errorf("%s %s: %w; %w to %s", a.id, rel.Version, cause, ErrRolledBack, old.Version)
}

// removeImages removes rel's images that none of keep use; best effort.
func (o *Orchestrator) removeImages(ctx context.Context, rel *Release, keep ...*Release) {
	m, err := rel.Manifest()
	if err != nil {
		return
	}
	used := map[string]bool{}
	for _, k := range keep {
		if k == nil {
			continue
		}
		if km, err := k.Manifest(); err == nil {
			for _, c := range km.Containers {
				used[c.Image.Ref] = true
			}
		}
	}
	for _, c := range m.Containers {
		if used[c.Image.Ref] {
			continue
		}
		if err := o.rt.RemoveImage(ctx, c.Image.Ref); err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrInUse) {
			o.log.Warn("remove image", "app", m.ID, "image", c.Image.Ref, "err", err)
		}
	}
}

// Uninstall removes the app's containers, network, images and state. Its
// data and secrets are kept for a reinstall unless purge. The app stays
// listed (phase removing) until its containers are verified gone; a
// failure leaves it so, and the reconciler finishes the job.
func (o *Orchestrator) Uninstall(ctx context.Context, id string, purge bool) error {
	a, unlock, err := o.lockApp(id, "uninstall")
	if err != nil {
		return err
	}
	defer unlock()
	op := o.newOp(a, "uninstall")
	o.mu.Lock()
	st := a.state
	o.mu.Unlock()
	if st == nil {
		return op.finish(fmt.Errorf("app %s: %w", id, ErrNotInstalled))
	}
	o.mu.Lock()
	st.Intent = IntentRemoved
	st.Pending = &Pending{Op: "uninstall", Started: o.cfg.Now(), Purge: purge || (st.Pending != nil && st.Pending.Purge)}
	o.mu.Unlock()
	if err := o.store.save(st); err != nil {
		return op.finish(err)
	}
	o.setPhase(a, "removing", "")
	err = o.finishUninstall(ctx, op, a)
	o.setErr(a, err)
	return op.finish(err)
}

func (o *Orchestrator) finishUninstall(ctx context.Context, op *operation, a *app) error {
	o.mu.Lock()
	st := a.state
	o.mu.Unlock()
	report := func(s Stage, f float64, msg string) {
		if op != nil {
			op.report(s, f, msg)
		}
	}
	report(StageStop, 0.1, "removing containers")
	sctx, cancel := context.WithTimeout(ctx, o.cfg.RemoveTimeout)
	defer cancel()
	if err := o.teardown(sctx, a, false); err != nil {
		return err
	}
	report(StageRemove, 0.7, "removing images")
	o.removeImages(sctx, st.Current)
	if st.Previous != nil {
		o.removeImages(sctx, st.Previous)
	}
	if st.Pending != nil && st.Pending.Purge {
		report(StageRemove, 0.8, "purging data and secrets")
		if err := o.secrets.purge(a.id); err != nil {
			return err
		}
		if err := o.purgeData(sctx, a.id); err != nil {
			return err
		}
		if err := o.store.dropPin(a.id); err != nil {
			return err
		}
	} else if st.Pin != nil {
		// The kept data and secrets stay with their publisher.
		if err := o.store.savePin(a.id, st.Current.Version, st.Pin); err != nil {
			return err
		}
	}
	return o.forget(a)
}
