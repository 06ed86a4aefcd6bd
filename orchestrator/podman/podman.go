// Package podman is the orchestrator.Runtime over the Podman API socket,
// through the Podman v5 Go bindings, tested against Podman 4.3 rootless.
// Every call is bounded by a deadline from Config, so a hung Podman
// service becomes an error wrapping orchestrator.ErrTimeout.
//
// Build with the tags in the Makefile (remote
// exclude_graphdriver_btrfs exclude_graphdriver_devicemapper
// containers_image_openpgp).
package podman

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/blang/semver/v4"
	nettypes "github.com/containers/common/libnetwork/types"
	"github.com/containers/podman/v5/libpod/define"
	"github.com/containers/podman/v5/pkg/api/handlers"
	"github.com/containers/podman/v5/pkg/bindings"
	"github.com/containers/podman/v5/pkg/bindings/containers"
	"github.com/containers/podman/v5/pkg/bindings/images"
	"github.com/containers/podman/v5/pkg/bindings/network"
	"github.com/containers/podman/v5/pkg/bindings/system"
	entities "github.com/containers/podman/v5/pkg/domain/entities/types"
	"github.com/containers/podman/v5/pkg/errorhandling"
	"github.com/containers/podman/v5/pkg/specgen"
	dockercontainer "github.com/docker/docker/api/types/container"
	spec "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/archy-node/archy/internal/atomicfile"
	"github.com/archy-node/archy/orchestrator"
)

// MinAPIVersion is the oldest Podman API archy talks to (Debian 12's).
const MinAPIVersion = "4.3.0"

// Config says where the Podman service is and how long each call may take.
// Zero durations take the documented defaults.
type Config struct {
	// Socket is the service URL, e.g. unix:///run/user/1000/podman/podman.sock.
	Socket string
	// ConnectTimeout bounds New: a ping and Podman's host report, which
	// takes it seconds to gather (it runs conmon and runc). Default 30 s.
	ConnectTimeout time.Duration
	// ReadTimeout bounds reads: ping, inspect, list, exists, event stream
	// set-up. Default 10 s.
	ReadTimeout time.Duration
	// WriteTimeout bounds create, start, remove, exec set-up and network
	// changes. Default 60 s (a rootless start sets up slirp4netns).
	WriteTimeout time.Duration
	// StopMargin is added to a Stop's own timeout. Default 15 s.
	StopMargin time.Duration
	// LoadBase and LoadMinRate bound an image load at LoadBase + size /
	// LoadMinRate. Defaults 60 s and 4 MiB/s (vfs storage is slow).
	LoadBase    time.Duration
	LoadMinRate int64 // bytes per second
	// SaveTimeout bounds an image export (default 10 min).
	SaveTimeout time.Duration
	// ExecTimeout bounds an Exec when ctx has no earlier deadline.
	// Default 30 s.
	ExecTimeout time.Duration
	// Logger receives debug lines; nil discards them.
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.ConnectTimeout, 30*time.Second)
	def(&c.ReadTimeout, 10*time.Second)
	def(&c.WriteTimeout, 60*time.Second)
	def(&c.StopMargin, 15*time.Second)
	def(&c.LoadBase, 60*time.Second)
	def(&c.SaveTimeout, 10*time.Minute)
	def(&c.ExecTimeout, 30*time.Second)
	if c.LoadMinRate <= 0 {
		c.LoadMinRate = 4 << 20
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Podman is a Runtime over one Podman API socket. It is safe for
// concurrent use.
type Podman struct {
	cfg Config
	log *slog.Logger
	// conn only carries the bindings' connection values (the HTTP client
	// and the server's API version): the bindings take them from a
	// context. It is never cancelled and never used for deadlines; each
	// call merges it with the caller's ctx (see call).
	conn context.Context
	info orchestrator.Info
}

var _ orchestrator.Runtime = (*Podman)(nil)

// New connects to the service, checks that its API version is at least
// MinAPIVersion, and learns whether it is rootless and can enforce
// resource limits.
func New(ctx context.Context, cfg Config) (*Podman, error) {
	cfg = cfg.withDefaults()
	if cfg.Socket == "" {
		return nil, errors.New("connect to podman: no socket configured")
	}
	p := &Podman{cfg: cfg, log: cfg.Logger}
	cctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
	defer cancel()
	// The bindings ping with the context they get and return it with
	// their values added; what they return is kept for those values only
	// (valueless hides the caller's values and cancel machinery from it).
	conn, err := bindings.NewConnection(valueless{cctx}, cfg.Socket)
	if err != nil {
		return nil, p.wrap(ctx, cctx, "connect to podman at "+cfg.Socket, cfg.ConnectTimeout, err)
	}
	p.conn = conn
	v := bindings.ServiceVersion(conn)
	if v.LT(semver.MustParse(MinAPIVersion)) {
		return nil, fmt.Errorf("connect to podman at %s: API %s, need %s: %w", cfg.Socket, v, MinAPIVersion, orchestrator.ErrEngineTooOld)
	}
	var hi *define.Info
	err = p.call(ctx, "podman info", cfg.ConnectTimeout, func(ctx context.Context) (err error) {
		hi, err = system.Info(ctx, nil)
		return err
	})
	if err != nil {
		return nil, err
	}
	p.info = orchestrator.Info{
		APIVersion: v.String(),
		Rootless:   hi.Host.Security.Rootless,
		// cgroup v1 cannot delegate to an unprivileged user.
		ResourceLimits: !hi.Host.Security.Rootless || hi.Host.CgroupsVersion == "v2",
	}
	if hi.Version.Version != "" {
		p.info.Version = hi.Version.Version
	}
	p.log.Debug("connected to podman", "socket", cfg.Socket, "version", p.info.Version, "api", p.info.APIVersion,
		"rootless", p.info.Rootless, "cgroups", hi.Host.CgroupsVersion)
	return p, nil
}

// valueless is a context with ctx's deadline and cancellation and no values.
type valueless struct{ context.Context }

func (valueless) Value(any) any { return nil }

// valuesCtx has the caller's deadline and cancellation and the bindings'
// connection values.
type valuesCtx struct {
	context.Context
	values context.Context
}

func (c valuesCtx) Value(k any) any {
	if v := c.values.Value(k); v != nil {
		return v
	}
	return c.Context.Value(k)
}

// call runs f with a context bounded by d and by ctx, and wraps its error
// with op, mapping Podman's answers to the orchestrator's errors.
func (p *Podman) call(ctx context.Context, op string, d time.Duration, f func(context.Context) error) error {
	cctx, cancel := context.WithTimeout(valuesCtx{ctx, p.conn}, d)
	defer cancel()
	start := time.Now()
	err := f(cctx)
	p.log.Debug("podman call", "op", op, "took", time.Since(start), "err", err)
	if err == nil {
		return nil
	}
	return p.wrap(ctx, cctx, op, d, err)
}

func (p *Podman) wrap(ctx, cctx context.Context, op string, d time.Duration, err error) error {
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("%s: %w", op, ctx.Err())
	case errors.Is(cctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("%s: no answer in %s: %w: %w", op, d, orchestrator.ErrTimeout, context.DeadlineExceeded)
	}
	code := 0
	var em *errorhandling.ErrorModel
	if errors.As(err, &em) {
		code = em.Code()
	}
	msg := err.Error()
	switch {
	case code == http.StatusNotFound || strings.Contains(msg, "no such") || strings.Contains(msg, "not known"):
		return fmt.Errorf("%s: %s: %w", op, msg, orchestrator.ErrNotFound)
	case strings.Contains(msg, "already in use") || strings.Contains(msg, "already exists"):
		return fmt.Errorf("%s: %s: %w", op, msg, orchestrator.ErrNameInUse)
	case strings.Contains(msg, "in use") || strings.Contains(msg, "being used"):
		return fmt.Errorf("%s: %s: %w", op, msg, orchestrator.ErrInUse)
	case code == http.StatusConflict && strings.Contains(msg, "not running"):
		return fmt.Errorf("%s: %s: %w", op, msg, orchestrator.ErrNotRunning)
	}
	return fmt.Errorf("%s: %w", op, err)
}

func checkName(op, name string) error {
	if !orchestrator.ValidName(name) {
		return fmt.Errorf("%s %q: %w", op, name, orchestrator.ErrInvalidName)
	}
	return nil
}

// Info pings the service (GET /_ping, which answers at once, unlike
// /version, which gathers a host report) and returns what New learned.
func (p *Podman) Info(ctx context.Context) (orchestrator.Info, error) {
	err := p.call(ctx, "ping podman", p.cfg.ReadTimeout, func(ctx context.Context) error {
		conn, err := bindings.GetClient(ctx)
		if err != nil {
			return err
		}
		resp, err := conn.DoRequest(ctx, nil, http.MethodGet, "/_ping", nil, nil)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		return resp.Process(nil)
	})
	if err != nil {
		return orchestrator.Info{}, err
	}
	return p.info, nil
}

// LoadImage streams an OCI archive to the service.
func (p *Podman) LoadImage(ctx context.Context, archivePath string) ([]string, error) {
	f, err := os.Open(archivePath)
	if err != nil {
		return nil, fmt.Errorf("load image: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("load image: %w", err)
	}
	d := p.cfg.LoadBase + time.Duration(float64(st.Size())/float64(p.cfg.LoadMinRate)*float64(time.Second))
	var names []string
	op := fmt.Sprintf("load image %s (%d bytes)", archivePath, st.Size())
	err = p.call(ctx, op, d, func(ctx context.Context) error {
		// The bindings retry a failed request with the same reader; give
		// them one that cannot be half-consumed twice.
		r, err := images.Load(ctx, io.NopCloser(f))
		if err == nil {
			names = r.Names
		}
		return err
	})
	return names, err
}

// SaveImage exports ref as an OCI archive to path through a temp file
// beside it.
func (p *Podman) SaveImage(ctx context.Context, ref, path string) error {
	return atomicfile.WriteWith(path, 0o600, func(f *os.File) error {
		return p.call(ctx, "save image "+ref, p.cfg.SaveTimeout, func(ctx context.Context) error {
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				return err
			}
			if err := f.Truncate(0); err != nil {
				return err
			}
			format := "oci-archive"
			return images.Export(ctx, []string{ref}, f, &images.ExportOptions{Format: &format})
		})
	})
}

// ImageExists asks whether the image is present.
func (p *Podman) ImageExists(ctx context.Context, ref string) (bool, error) {
	var ok bool
	err := p.call(ctx, "image exists "+ref, p.cfg.ReadTimeout, func(ctx context.Context) (err error) {
		ok, err = images.Exists(ctx, ref, nil)
		return err
	})
	return ok, err
}

// ImageID inspects the image and returns its ID.
func (p *Podman) ImageID(ctx context.Context, ref string) (string, error) {
	var id string
	err := p.call(ctx, "inspect image "+ref, p.cfg.ReadTimeout, func(ctx context.Context) error {
		d, err := images.GetImage(ctx, ref, nil)
		if err == nil {
			id = d.ID
		}
		return err
	})
	if err == nil && !orchestrator.IsImageID(id) {
		return "", fmt.Errorf("inspect image %s: podman reports ID %q", ref, id)
	}
	return id, err
}

// RemoveImage removes an image that no container uses.
func (p *Podman) RemoveImage(ctx context.Context, ref string) error {
	return p.call(ctx, "remove image "+ref, p.cfg.WriteTimeout, func(ctx context.Context) error {
		_, errs := images.Remove(ctx, []string{ref}, nil)
		return errors.Join(errs...)
	})
}

func toSpecgen(s orchestrator.ContainerSpec) *specgen.SpecGenerator {
	g := specgen.NewSpecGenerator(s.Image, false)
	g.Name = s.Name
	g.Entrypoint = s.Entrypoint
	g.Command = s.Command
	g.Env = s.Env
	g.Labels = s.Labels
	for _, pm := range s.Ports {
		g.PortMappings = append(g.PortMappings, nettypes.PortMapping{
			HostIP: pm.HostIP, HostPort: pm.HostPort, ContainerPort: pm.ContainerPort, Protocol: pm.Protocol, Range: 1,
		})
	}
	for _, m := range s.Mounts {
		opt := "rw"
		if m.ReadOnly {
			opt = "ro"
		}
		g.Mounts = append(g.Mounts, spec.Mount{Type: "bind", Source: m.Source, Destination: m.Target, Options: []string{"rbind", opt}})
	}
	if s.Network != "" {
		g.NetNS = specgen.Namespace{NSMode: specgen.Bridge}
		g.Networks = map[string]nettypes.PerNetworkOptions{s.Network: {Aliases: s.Aliases}}
	}
	g.User = s.User
	// The node's policy (registry.Capabilities): every capability dropped
	// but the allow-listed ones the manifest keeps, no new privileges;
	// seccomp is left to Podman's default profile.
	g.CapDrop = []string{"ALL"}
	g.CapAdd = nil
	for _, c := range s.CapAdd {
		g.CapAdd = append(g.CapAdd, "CAP_"+c)
	}
	noNewPrivs := true
	g.NoNewPrivileges = &noNewPrivs
	if !s.Resources.IsZero() {
		r := &spec.LinuxResources{}
		if m := s.Resources.MemoryBytes; m > 0 {
			r.Memory = &spec.LinuxMemory{Limit: &m}
		}
		if n := s.Resources.NanoCPUs; n > 0 {
			period := uint64(100000)
			quota := n * int64(period) / 1e9
			r.CPU = &spec.LinuxCPU{Period: &period, Quota: &quota}
		}
		if n := s.Resources.PidsLimit; n > 0 {
			r.Pids = &spec.LinuxPids{Limit: n}
		}
		g.ResourceLimits = r
	}
	g.RestartPolicy = s.Restart.Name
	if s.Restart.Name == orchestrator.RestartOnFailure && s.Restart.MaxRetries > 0 {
		n := s.Restart.MaxRetries
		g.RestartRetries = &n
	}
	if s.StopTimeout > 0 {
		t := uint(s.StopTimeout.Round(time.Second) / time.Second)
		g.StopTimeout = &t
	}
	return g
}

// CreateContainer creates the container, then inspects it and removes it
// again if Podman did not apply every field of the spec.
func (p *Podman) CreateContainer(ctx context.Context, s orchestrator.ContainerSpec) (string, error) {
	if err := orchestrator.CheckSpec(s); err != nil {
		return "", fmt.Errorf("create container: %w", err)
	}
	s = s.Normalized()
	op := "create container " + s.Name
	var id string
	err := p.call(ctx, op, p.cfg.WriteTimeout, func(ctx context.Context) error {
		r, err := containers.CreateWithSpec(ctx, toSpecgen(s), nil)
		id = r.ID
		for _, w := range r.Warnings {
			p.log.Warn("podman create warning", "container", s.Name, "warning", w)
		}
		return err
	})
	if err != nil {
		return "", err
	}
	var data *define.InspectContainerData
	err = p.call(ctx, "inspect new container "+s.Name, p.cfg.ReadTimeout, func(ctx context.Context) (err error) {
		data, err = containers.Inspect(ctx, id, nil)
		return err
	})
	if err == nil {
		err = compare(s, data)
	}
	if err != nil {
		if rmErr := p.remove(ctx, id); rmErr != nil {
			err = errors.Join(err, fmt.Errorf("remove half-created container %s: %w", s.Name, rmErr))
		}
		return "", fmt.Errorf("%s: %w", op, err)
	}
	return id, nil
}

// compare checks that Podman applied every field of s.
func compare(s orchestrator.ContainerSpec, d *define.InspectContainerData) error {
	mismatch := func(field, want, got string) error {
		return &orchestrator.SpecError{Field: field, Want: want, Got: got}
	}
	if d.Name != s.Name {
		return mismatch("name", s.Name, d.Name)
	}
	if d.Config == nil || d.HostConfig == nil {
		return mismatch("config", "present", "missing")
	}
	if orchestrator.IsImageID(s.Image) {
		// Made from the verified image itself: a tag moved by another
		// load cannot stand in for it.
		if d.Image != s.Image {
			return mismatch("image", s.Image, d.Image)
		}
	} else if d.ImageName != s.Image && d.Config.Image != s.Image {
		return mismatch("image", s.Image, d.ImageName)
	}
	for k, v := range s.Labels {
		if got, ok := d.Config.Labels[k]; !ok || got != v {
			return mismatch("labels["+k+"]", v, got)
		}
	}
	for k, v := range s.Env {
		if !slices.Contains(d.Config.Env, k+"="+v) {
			return mismatch("env["+k+"]", "set", "unset or different")
		}
	}
	if s.Command != nil && !slices.Equal(d.Config.Cmd, s.Command) {
		return mismatch("command", strings.Join(s.Command, " "), strings.Join(d.Config.Cmd, " "))
	}
	// Podman 4.3 reports the entrypoint as one space-joined string.
	if s.Entrypoint != nil && strings.Join(d.Config.Entrypoint, " ") != strings.Join(s.Entrypoint, " ") {
		return mismatch("entrypoint", strings.Join(s.Entrypoint, " "), strings.Join(d.Config.Entrypoint, " "))
	}
	want := make([]string, 0, len(s.CapAdd))
	for _, c := range s.CapAdd {
		want = append(want, "CAP_"+c)
	}
	slices.Sort(want)
	got := slices.Sorted(slices.Values(d.BoundingCaps))
	if !slices.Equal(got, want) {
		return mismatch("capabilities", strings.Join(want, ","), strings.Join(got, ","))
	}
	if !slices.Contains(d.HostConfig.SecurityOpt, "no-new-privileges") {
		return mismatch("security_opt", "no-new-privileges", strings.Join(d.HostConfig.SecurityOpt, ","))
	}
	for _, o := range d.HostConfig.SecurityOpt {
		if strings.HasPrefix(o, "seccomp=") {
			return mismatch("security_opt", "default seccomp", o)
		}
	}
	if s.User != "" && d.Config.User != s.User {
		return mismatch("user", s.User, d.Config.User)
	}
	for _, pm := range s.Ports {
		key := fmt.Sprintf("%d/%s", pm.ContainerPort, pm.Protocol)
		want := strconv.Itoa(int(pm.HostPort))
		ok := false
		for _, b := range d.HostConfig.PortBindings[key] {
			if b.HostPort == want && b.HostIP == pm.HostIP {
				ok = true
			}
		}
		if !ok {
			return mismatch("ports["+key+"]", pm.HostIP+":"+want, fmt.Sprint(d.HostConfig.PortBindings[key]))
		}
	}
	for _, m := range s.Mounts {
		ok := false
		for _, dm := range d.Mounts {
			if dm.Destination == m.Target && dm.Source == m.Source && dm.RW == !m.ReadOnly {
				ok = true
			}
		}
		if !ok {
			return mismatch("mounts["+m.Target+"]", m.Source, "missing or different")
		}
	}
	if s.Network != "" {
		if d.NetworkSettings == nil || d.NetworkSettings.Networks[s.Network] == nil {
			return mismatch("network", s.Network, "not attached")
		}
		n := d.NetworkSettings.Networks[s.Network]
		for _, a := range s.Aliases {
			if !slices.Contains(n.Aliases, a) {
				return mismatch("aliases", a, strings.Join(n.Aliases, ","))
			}
		}
	}
	rp := ""
	if d.HostConfig.RestartPolicy != nil {
		rp = d.HostConfig.RestartPolicy.Name
	}
	if rp == "" {
		rp = orchestrator.RestartNo
	}
	if rp != s.Restart.Name {
		return mismatch("restart", s.Restart.Name, rp)
	}
	if s.Restart.Name == orchestrator.RestartOnFailure && s.Restart.MaxRetries > 0 &&
		uint(d.HostConfig.RestartPolicy.MaximumRetryCount) != s.Restart.MaxRetries {
		return mismatch("restart.max_retries", fmt.Sprint(s.Restart.MaxRetries), fmt.Sprint(d.HostConfig.RestartPolicy.MaximumRetryCount))
	}
	if s.StopTimeout > 0 {
		want := uint(s.StopTimeout.Round(time.Second) / time.Second)
		if d.Config.StopTimeout != want {
			return mismatch("stop_timeout", fmt.Sprint(want), fmt.Sprint(d.Config.StopTimeout))
		}
	}
	r := s.Resources
	if r.MemoryBytes > 0 && d.HostConfig.Memory != r.MemoryBytes {
		return mismatch("resources.memory", fmt.Sprint(r.MemoryBytes), fmt.Sprint(d.HostConfig.Memory))
	}
	if r.NanoCPUs > 0 {
		got := d.HostConfig.NanoCpus
		if got == 0 && d.HostConfig.CpuPeriod > 0 {
			got = d.HostConfig.CpuQuota * 1e9 / int64(d.HostConfig.CpuPeriod)
		}
		if got != r.NanoCPUs {
			return mismatch("resources.cpus", fmt.Sprint(r.NanoCPUs), fmt.Sprint(got))
		}
	}
	if r.PidsLimit > 0 && d.HostConfig.PidsLimit != r.PidsLimit {
		return mismatch("resources.pids", fmt.Sprint(r.PidsLimit), fmt.Sprint(d.HostConfig.PidsLimit))
	}
	return nil
}

// Start starts the container.
func (p *Podman) Start(ctx context.Context, name string) error {
	if err := checkName("start container", name); err != nil {
		return err
	}
	return p.call(ctx, "start container "+name, p.cfg.WriteTimeout, func(ctx context.Context) error {
		return containers.Start(ctx, name, nil)
	})
}

// Stop stops the container; the call may take timeout + StopMargin.
func (p *Podman) Stop(ctx context.Context, name string, timeout time.Duration) error {
	if err := checkName("stop container", name); err != nil {
		return err
	}
	secs := uint(timeout.Round(time.Second) / time.Second)
	return p.call(ctx, "stop container "+name, timeout+p.cfg.StopMargin, func(ctx context.Context) error {
		return containers.Stop(ctx, name, new(containers.StopOptions).WithTimeout(secs))
	})
}

// Remove force-removes the container (its anonymous volumes too; bind
// mounts are never touched).
func (p *Podman) Remove(ctx context.Context, name string) error {
	if err := checkName("remove container", name); err != nil {
		return err
	}
	return p.remove(ctx, name)
}

func (p *Podman) remove(ctx context.Context, nameOrID string) error {
	return p.call(ctx, "remove container "+nameOrID, p.cfg.WriteTimeout+p.cfg.StopMargin, func(ctx context.Context) error {
		reports, err := containers.Remove(ctx, nameOrID, new(containers.RemoveOptions).WithForce(true).WithTimeout(0))
		if err != nil {
			return err
		}
		for _, r := range reports {
			if r.Err != nil {
				return r.Err
			}
		}
		return nil
	})
}

// Inspect returns the container named exactly name.
func (p *Podman) Inspect(ctx context.Context, name string) (orchestrator.Container, error) {
	if err := checkName("inspect container", name); err != nil {
		return orchestrator.Container{}, err
	}
	var d *define.InspectContainerData
	err := p.call(ctx, "inspect container "+name, p.cfg.ReadTimeout, func(ctx context.Context) (err error) {
		d, err = containers.Inspect(ctx, name, nil)
		return err
	})
	if err != nil {
		return orchestrator.Container{}, err
	}
	if d.Name != name {
		return orchestrator.Container{}, fmt.Errorf("inspect container %s: found %s instead: %w", name, d.Name, orchestrator.ErrNotFound)
	}
	c := orchestrator.Container{ID: d.ID, Name: d.Name, Image: d.ImageName, ImageID: d.Image, State: orchestrator.StateUnknown}
	if d.Config != nil {
		c.Labels = d.Config.Labels
	}
	if d.State != nil {
		c.State = orchestrator.State(d.State.Status)
		c.PID = d.State.Pid
		c.StartedAt = d.State.StartedAt
		c.FinishedAt = d.State.FinishedAt
		c.ExitCode = int(d.State.ExitCode)
	}
	return c, nil
}

// List returns the containers carrying all the labels.
func (p *Podman) List(ctx context.Context, labels map[string]string) ([]orchestrator.Container, error) {
	var filter []string
	for k, v := range labels {
		filter = append(filter, k+"="+v)
	}
	opts := new(containers.ListOptions).WithAll(true)
	if len(filter) > 0 {
		opts = opts.WithFilters(map[string][]string{"label": filter})
	}
	var list []listed
	err := p.call(ctx, "list containers", p.cfg.ReadTimeout, func(ctx context.Context) error {
		l, err := containers.List(ctx, opts)
		for _, c := range l {
			list = append(list, listed{c.ID, c.Names, c.Image, c.ImageID, c.State, c.Pid, c.StartedAt, c.ExitedAt, int(c.ExitCode), c.Labels})
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]orchestrator.Container, 0, len(list))
	for _, c := range list {
		// Label filters are exact server-side, but check on the client
		// too: an engine that ignored the filter must not hand us others.
		match := true
		for k, v := range labels {
			if got, ok := c.labels[k]; !ok || got != v {
				match = false
			}
		}
		if !match || len(c.names) == 0 {
			continue
		}
		oc := orchestrator.Container{ID: c.id, Name: c.names[0], Image: c.image, ImageID: c.imageID, State: orchestrator.State(c.state), PID: c.pid, ExitCode: c.exitCode, Labels: c.labels}
		if c.startedAt > 0 {
			oc.StartedAt = time.Unix(c.startedAt, 0)
		}
		if c.exitedAt > 0 {
			oc.FinishedAt = time.Unix(c.exitedAt, 0)
		}
		out = append(out, oc)
	}
	return out, nil
}

type listed struct {
	id        string
	names     []string
	image     string
	imageID   string
	state     string
	pid       int
	startedAt int64
	exitedAt  int64
	exitCode  int
	labels    map[string]string
}

// Events streams container events until ctx ends or the stream breaks.
func (p *Podman) Events(ctx context.Context, out chan<- orchestrator.Event) error {
	sctx, cancel := context.WithCancel(valuesCtx{ctx, p.conn})
	defer cancel()
	raw := make(chan entities.Event, 64)
	// Set-up is bounded by ReadTimeout; the stream itself by ctx only.
	timer := time.AfterFunc(p.cfg.ReadTimeout, cancel)
	err := system.Events(sctx, raw, nil, new(system.EventsOptions).WithStream(true).WithFilters(map[string][]string{"type": {"container"}}))
	if !timer.Stop() {
		if err == nil {
			cancel()
			for range raw {
			}
		}
		return fmt.Errorf("subscribe to podman events: no answer in %s: %w: %w", p.cfg.ReadTimeout, orchestrator.ErrTimeout, context.DeadlineExceeded)
	}
	if err != nil {
		return p.wrap(ctx, sctx, "subscribe to podman events", p.cfg.ReadTimeout, err)
	}
	// The bindings' reader goroutine closes raw once the body is closed;
	// drain it so it never blocks on a send.
	defer func() {
		cancel()
		for range raw {
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("podman events: %w", ctx.Err())
		case e, ok := <-raw:
			if !ok {
				return errors.New("podman events: stream ended")
			}
			ev := toEvent(e)
			select {
			case out <- ev:
			case <-ctx.Done():
				return fmt.Errorf("podman events: %w", ctx.Err())
			}
		}
	}
}

// CreateNetwork creates a bridge network with DNS.
func (p *Podman) CreateNetwork(ctx context.Context, n orchestrator.Network) error {
	if err := checkName("create network", n.Name); err != nil {
		return err
	}
	return p.call(ctx, "create network "+n.Name, p.cfg.WriteTimeout, func(ctx context.Context) error {
		_, err := network.Create(ctx, &nettypes.Network{Name: n.Name, Driver: "bridge", DNSEnabled: true, Labels: n.Labels})
		return err
	})
}

// RemoveNetwork removes a network.
func (p *Podman) RemoveNetwork(ctx context.Context, name string) error {
	if err := checkName("remove network", name); err != nil {
		return err
	}
	return p.call(ctx, "remove network "+name, p.cfg.WriteTimeout, func(ctx context.Context) error {
		reports, err := network.Remove(ctx, name, nil)
		if err != nil {
			return err
		}
		for _, r := range reports {
			if r.Err != nil {
				return r.Err
			}
		}
		return nil
	})
}

// ListNetworks lists the networks carrying all the labels.
func (p *Podman) ListNetworks(ctx context.Context, labels map[string]string) ([]orchestrator.Network, error) {
	var filter []string
	for k, v := range labels {
		filter = append(filter, k+"="+v)
	}
	opts := new(network.ListOptions)
	if len(filter) > 0 {
		opts = opts.WithFilters(map[string][]string{"label": filter})
	}
	var out []orchestrator.Network
	err := p.call(ctx, "list networks", p.cfg.ReadTimeout, func(ctx context.Context) error {
		l, err := network.List(ctx, opts)
		for _, n := range l {
			match := true
			for k, v := range labels {
				if got, ok := n.Labels[k]; !ok || got != v {
					match = false
				}
			}
			if match {
				out = append(out, orchestrator.Network{Name: n.Name, ID: n.ID, Labels: n.Labels})
			}
		}
		return err
	})
	return out, err
}

// Exec runs cmd in the container and waits for it. It does not use the
// bindings' ExecStartAndAttach, which swaps the shared client's transport
// and reads the hijacked socket without a deadline.
func (p *Podman) Exec(ctx context.Context, name string, cmd []string) (orchestrator.ExecResult, error) {
	if err := checkName("exec in container", name); err != nil {
		return orchestrator.ExecResult{}, err
	}
	if len(cmd) == 0 {
		return orchestrator.ExecResult{}, fmt.Errorf("exec in container %s: empty command", name)
	}
	op := fmt.Sprintf("exec %q in container %s", cmd[0], name)
	var res orchestrator.ExecResult
	err := p.call(ctx, op, p.cfg.ExecTimeout, func(ctx context.Context) error {
		id, err := containers.ExecCreate(ctx, name, &handlers.ExecCreateConfig{ExecOptions: dockercontainer.ExecOptions{
			AttachStdout: true, AttachStderr: true, Cmd: cmd,
		}})
		if err != nil {
			return err
		}
		conn, err := bindings.GetClient(ctx)
		if err != nil {
			return err
		}
		resp, err := conn.DoRequest(ctx, strings.NewReader(`{"Detach":false,"Tty":false}`), http.MethodPost, "/exec/%s/start", nil, nil, id)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if !resp.IsSuccess() {
			return resp.Process(nil)
		}
		res.Output, err = demux(resp.Body, orchestrator.MaxExecOutput)
		if err != nil {
			return fmt.Errorf("read output: %w", err)
		}
		// The server closes the stream once the process has exited and
		// its exit code is recorded.
		s, err := containers.ExecInspect(ctx, id, nil)
		if err != nil {
			return err
		}
		if s.Running {
			return errors.New("exec session still running after its stream closed")
		}
		res.ExitCode = s.ExitCode
		return nil
	})
	if err != nil && !errors.Is(err, orchestrator.ErrNotRunning) && strings.Contains(err.Error(), "can only create exec sessions on running containers") {
		err = fmt.Errorf("%w: %w", err, orchestrator.ErrNotRunning)
	}
	return res, err
}

// demux reads Docker's multiplexed stream (8-byte frame headers) and keeps
// at most limit bytes of stdout and stderr together.
func demux(r io.Reader, limit int) ([]byte, error) {
	var out []byte
	hdr := make([]byte, 8)
	for {
		if _, err := io.ReadFull(r, hdr); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return out, nil
			}
			return out, err
		}
		n := int64(hdr[4])<<24 | int64(hdr[5])<<16 | int64(hdr[6])<<8 | int64(hdr[7])
		keep := min(n, int64(limit-len(out)))
		if keep > 0 {
			buf := make([]byte, keep)
			if _, err := io.ReadFull(r, buf); err != nil {
				return out, err
			}
			out = append(out, buf...)
		}
		if _, err := io.CopyN(io.Discard, r, n-keep); err != nil {
			return out, err
		}
	}
}

// toEvent converts a Podman event. Podman puts the container's labels among
// the actor's attributes, next to its own keys.
func toEvent(e entities.Event) orchestrator.Event {
	ev := orchestrator.Event{Action: string(e.Action), ID: e.Actor.ID, Labels: map[string]string{}}
	if ev.Action == "" {
		ev.Action = e.Status //nolint:staticcheck // Podman 4.3 fills Status
	}
	if e.TimeNano != 0 {
		ev.Time = time.Unix(0, e.TimeNano)
	} else {
		ev.Time = time.Unix(e.Time, 0)
	}
	for k, v := range e.Actor.Attributes {
		switch k {
		case "name":
			ev.Name = v
		case "image", "containerExitCode", "podId", "health_status":
			if k == "containerExitCode" && ev.Action == "died" {
				if n, err := strconv.Atoi(v); err == nil {
					ev.ExitCode = &n
				}
			}
		default:
			ev.Labels[k] = v
		}
	}
	return ev
}
