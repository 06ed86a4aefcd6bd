// Package podman is the orchestrator.Runtime over the Podman API socket,
// a small net/http client of Podman's libpod REST API (api.go), tested
// against Podman 4.3 rootless. Every call is bounded by a deadline from
// Config, so a hung Podman service becomes an error wrapping
// orchestrator.ErrTimeout.
package podman

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

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
	cfg  Config
	log  *slog.Logger
	c    *client
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
	c, err := newClient(cfg.Socket)
	if err != nil {
		return nil, fmt.Errorf("connect to podman: %w", err)
	}
	p := &Podman{cfg: cfg, log: cfg.Logger, c: c}
	var hdr string
	op := "connect to podman at " + cfg.Socket
	err = p.call(ctx, op, cfg.ConnectTimeout, func(ctx context.Context) error {
		// The unversioned ping: the service's version is not known yet.
		resp, err := c.do(ctx, http.MethodGet, c.base+"/libpod/_ping", nil, nil, 0, "")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		hdr = resp.Header.Get("Libpod-API-Version")
		return decode(resp.Body, nil)
	})
	if err != nil {
		return nil, err
	}
	v, err := parseVersion(hdr)
	if err != nil {
		return nil, fmt.Errorf("%s: Libpod-API-Version header: %w", op, err)
	}
	minV, _ := parseVersion(MinAPIVersion)
	if versionLess(v, minV) {
		return nil, fmt.Errorf("connect to podman at %s: API %s, need %s: %w", cfg.Socket, versionString(v), MinAPIVersion, orchestrator.ErrEngineTooOld)
	}
	c.version = versionString(v)
	var hi struct {
		Host struct {
			CgroupsVersion string `json:"cgroupVersion"`
			Security       struct {
				Rootless bool `json:"rootless"`
			} `json:"security"`
		} `json:"host"`
		Version struct {
			Version string
		} `json:"version"`
	}
	err = p.call(ctx, "podman info", cfg.ConnectTimeout, func(ctx context.Context) error {
		return c.call(ctx, http.MethodGet, c.path("/info"), nil, nil, &hi)
	})
	if err != nil {
		return nil, err
	}
	p.info = orchestrator.Info{
		APIVersion: c.version,
		Rootless:   hi.Host.Security.Rootless,
		// cgroup v1 cannot delegate to an unprivileged user.
		ResourceLimits: !hi.Host.Security.Rootless || hi.Host.CgroupsVersion == "v2",
		Version:        hi.Version.Version,
	}
	p.log.Debug("connected to podman", "socket", cfg.Socket, "version", p.info.Version, "api", p.info.APIVersion,
		"rootless", p.info.Rootless, "cgroups", hi.Host.CgroupsVersion)
	return p, nil
}

// call runs f with a context bounded by d and by ctx, and wraps its error
// with op, mapping Podman's answers to the orchestrator's errors.
func (p *Podman) call(ctx context.Context, op string, d time.Duration, f func(context.Context) error) error {
	cctx, cancel := context.WithTimeout(ctx, d)
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
	var ae *apiError
	if errors.As(err, &ae) {
		code = ae.Code
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
		return p.c.call(ctx, http.MethodGet, p.c.path("/_ping"), nil, nil, nil)
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
		resp, err := p.c.do(ctx, http.MethodPost, p.c.path("/images/load"), nil, io.NopCloser(f), st.Size(), "application/x-tar")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var r struct{ Names []string }
		err = decode(resp.Body, &r)
		names = r.Names
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
			q := url.Values{"format": {"oci-archive"}, "references": {ref}}
			resp, err := p.c.do(ctx, http.MethodGet, p.c.path("/images/export"), q, nil, 0, "")
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			_, err = io.Copy(f, resp.Body)
			return err
		})
	})
}

// ImageExists asks whether the image is present.
func (p *Podman) ImageExists(ctx context.Context, ref string) (bool, error) {
	var ok bool
	err := p.call(ctx, "image exists "+ref, p.cfg.ReadTimeout, func(ctx context.Context) error {
		resp, err := p.c.do(ctx, http.MethodGet, p.c.path("/images/%s/exists", ref), nil, nil, 0, "")
		var ae *apiError
		if errors.As(err, &ae) && ae.Code == http.StatusNotFound {
			return nil
		}
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		ok = true
		return decode(resp.Body, nil)
	})
	return ok, err
}

// ImageID inspects the image and returns its ID.
func (p *Podman) ImageID(ctx context.Context, ref string) (string, error) {
	var id string
	err := p.call(ctx, "inspect image "+ref, p.cfg.ReadTimeout, func(ctx context.Context) error {
		var d struct {
			ID string `json:"Id"`
		}
		err := p.c.call(ctx, http.MethodGet, p.c.path("/images/%s/json", ref), nil, nil, &d)
		id = d.ID
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
		var r struct{ Errors []string }
		err := p.c.call(ctx, http.MethodDelete, p.c.path("/images/remove"), url.Values{"images": {ref}}, nil, &r)
		if err != nil {
			return err
		}
		errs := make([]error, 0, len(r.Errors))
		for _, e := range r.Errors {
			errs = append(errs, errors.New(e))
		}
		return errors.Join(errs...)
	})
}

func toSpecgen(s orchestrator.ContainerSpec) *specGenerator {
	g := &specGenerator{
		Image: s.Image, Name: s.Name, Entrypoint: s.Entrypoint, Command: s.Command, Env: s.Env, Labels: s.Labels,
		HealthLogDestination: "local", HealthMaxLogCount: 5, HealthMaxLogSize: 500,
	}
	for _, pm := range s.Ports {
		g.PortMappings = append(g.PortMappings, portMapping{
			HostIP: pm.HostIP, HostPort: pm.HostPort, ContainerPort: pm.ContainerPort, Protocol: pm.Protocol, Range: 1,
		})
	}
	for _, m := range s.Mounts {
		opt := "rw"
		if m.ReadOnly {
			opt = "ro"
		}
		g.Mounts = append(g.Mounts, mount{Type: "bind", Source: m.Source, Destination: m.Target, Options: []string{"rbind", opt}})
	}
	if s.Network != "" {
		g.NetNS = namespace{NSMode: "bridge"}
		g.Networks = map[string]perNetworkOptions{s.Network: {Aliases: s.Aliases}}
	}
	g.User = s.User
	// The node's policy (registry.Capabilities): every capability dropped
	// but the allow-listed ones the manifest keeps, no new privileges;
	// seccomp is left to Podman's default profile.
	g.CapDrop = []string{"ALL"}
	for _, c := range s.CapAdd {
		g.CapAdd = append(g.CapAdd, "CAP_"+c)
	}
	noNewPrivs := true
	g.NoNewPrivileges = &noNewPrivs
	if !s.Resources.IsZero() {
		r := &resources{}
		if m := s.Resources.MemoryBytes; m > 0 {
			r.Memory = &struct {
				Limit *int64 `json:"limit,omitempty"`
			}{Limit: &m}
		}
		if n := s.Resources.NanoCPUs; n > 0 {
			period := uint64(100000)
			quota := n * int64(period) / 1e9
			r.CPU = &struct {
				Quota  *int64  `json:"quota,omitempty"`
				Period *uint64 `json:"period,omitempty"`
			}{Quota: &quota, Period: &period}
		}
		if n := s.Resources.PidsLimit; n > 0 {
			r.Pids = &struct {
				Limit int64 `json:"limit"`
			}{Limit: n}
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
		var r struct {
			ID       string `json:"Id"`
			Warnings []string
		}
		err := p.c.call(ctx, http.MethodPost, p.c.path("/containers/create"), nil, toSpecgen(s), &r)
		id = r.ID
		for _, w := range r.Warnings {
			p.log.Warn("podman create warning", "container", s.Name, "warning", w)
		}
		return err
	})
	if err != nil {
		return "", err
	}
	data := &inspectData{}
	err = p.call(ctx, "inspect new container "+s.Name, p.cfg.ReadTimeout, func(ctx context.Context) error {
		return p.c.call(ctx, http.MethodGet, p.c.path("/containers/%s/json", id), nil, nil, data)
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
func compare(s orchestrator.ContainerSpec, d *inspectData) error {
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
		return p.c.call(ctx, http.MethodPost, p.c.path("/containers/%s/start", name), nil, nil, nil)
	})
}

// Stop stops the container; the call may take timeout + StopMargin.
func (p *Podman) Stop(ctx context.Context, name string, timeout time.Duration) error {
	if err := checkName("stop container", name); err != nil {
		return err
	}
	secs := uint(timeout.Round(time.Second) / time.Second)
	return p.call(ctx, "stop container "+name, timeout+p.cfg.StopMargin, func(ctx context.Context) error {
		q := url.Values{"timeout": {strconv.FormatUint(uint64(secs), 10)}}
		return p.c.call(ctx, http.MethodPost, p.c.path("/containers/%s/stop", name), q, nil, nil)
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
		var rs []report
		q := url.Values{"force": {"true"}, "timeout": {"0"}}
		if err := p.c.call(ctx, http.MethodDelete, p.c.path("/containers/%s", nameOrID), q, nil, &rs); err != nil {
			return err
		}
		return reportErr(rs)
	})
}

// Inspect returns the container named exactly name.
func (p *Podman) Inspect(ctx context.Context, name string) (orchestrator.Container, error) {
	if err := checkName("inspect container", name); err != nil {
		return orchestrator.Container{}, err
	}
	d := &inspectData{}
	err := p.call(ctx, "inspect container "+name, p.cfg.ReadTimeout, func(ctx context.Context) error {
		return p.c.call(ctx, http.MethodGet, p.c.path("/containers/%s/json", name), nil, nil, d)
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
	q := filters("label", filter)
	if q == nil {
		q = url.Values{}
	}
	q.Set("all", "true")
	var list []listedContainer
	err := p.call(ctx, "list containers", p.cfg.ReadTimeout, func(ctx context.Context) error {
		return p.c.call(ctx, http.MethodGet, p.c.path("/containers/json"), q, nil, &list)
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
			if got, ok := c.Labels[k]; !ok || got != v {
				match = false
			}
		}
		if !match || len(c.Names) == 0 {
			continue
		}
		oc := orchestrator.Container{ID: c.ID, Name: c.Names[0], Image: c.Image, ImageID: c.ImageID, State: orchestrator.State(c.State), PID: c.Pid, ExitCode: int(c.ExitCode), Labels: c.Labels}
		if c.StartedAt > 0 {
			oc.StartedAt = time.Unix(c.StartedAt, 0)
		}
		if c.ExitedAt > 0 {
			oc.FinishedAt = time.Unix(c.ExitedAt, 0)
		}
		out = append(out, oc)
	}
	return out, nil
}

// Events streams container events until ctx ends or the stream breaks.
func (p *Podman) Events(ctx context.Context, out chan<- orchestrator.Event) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Set-up (until the answer's headers) is bounded by ReadTimeout; the
	// stream itself by ctx only.
	timer := time.AfterFunc(p.cfg.ReadTimeout, cancel)
	q := filters("type", []string{"container"})
	q.Set("stream", "true")
	resp, err := p.c.do(sctx, http.MethodGet, p.c.path("/events"), q, nil, 0, "")
	if !timer.Stop() {
		if err == nil {
			resp.Body.Close()
		}
		if ctx.Err() != nil {
			return fmt.Errorf("subscribe to podman events: %w", ctx.Err())
		}
		return fmt.Errorf("subscribe to podman events: no answer in %s: %w: %w", p.cfg.ReadTimeout, orchestrator.ErrTimeout, context.DeadlineExceeded)
	}
	if err != nil {
		return p.wrap(ctx, sctx, "subscribe to podman events", p.cfg.ReadTimeout, err)
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var e event
		if err := dec.Decode(&e); err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("podman events: %w", ctx.Err())
			}
			return fmt.Errorf("podman events: stream ended: %w", err)
		}
		select {
		case out <- toEvent(e):
		case <-ctx.Done():
			return fmt.Errorf("podman events: %w", ctx.Err())
		}
	}
}

// CreateNetwork creates a bridge network with DNS.
func (p *Podman) CreateNetwork(ctx context.Context, n orchestrator.Network) error {
	if err := checkName("create network", n.Name); err != nil {
		return err
	}
	return p.call(ctx, "create network "+n.Name, p.cfg.WriteTimeout, func(ctx context.Context) error {
		return p.c.call(ctx, http.MethodPost, p.c.path("/networks/create"), nil,
			networkCreate{Name: n.Name, Driver: "bridge", DNSEnabled: true, Labels: n.Labels}, nil)
	})
}

// RemoveNetwork removes a network.
func (p *Podman) RemoveNetwork(ctx context.Context, name string) error {
	if err := checkName("remove network", name); err != nil {
		return err
	}
	return p.call(ctx, "remove network "+name, p.cfg.WriteTimeout, func(ctx context.Context) error {
		var rs []report
		if err := p.c.call(ctx, http.MethodDelete, p.c.path("/networks/%s", name), nil, nil, &rs); err != nil {
			return err
		}
		return reportErr(rs)
	})
}

// ListNetworks lists the networks carrying all the labels.
func (p *Podman) ListNetworks(ctx context.Context, labels map[string]string) ([]orchestrator.Network, error) {
	var filter []string
	for k, v := range labels {
		filter = append(filter, k+"="+v)
	}
	var out []orchestrator.Network
	err := p.call(ctx, "list networks", p.cfg.ReadTimeout, func(ctx context.Context) error {
		var l []listedNetwork
		err := p.c.call(ctx, http.MethodGet, p.c.path("/networks/json"), filters("label", filter), nil, &l)
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

// Exec runs cmd in the container and waits for it: the output stream ends
// when the process has exited, and the exec session then tells its exit
// code.
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
		var created struct {
			ID string `json:"Id"`
		}
		ec := map[string]any{"AttachStdout": true, "AttachStderr": true, "Cmd": cmd}
		if err := p.c.call(ctx, http.MethodPost, p.c.path("/containers/%s/exec", name), nil, ec, &created); err != nil {
			return err
		}
		id := created.ID
		const start = `{"Detach":false,"Tty":false}`
		resp, err := p.c.do(ctx, http.MethodPost, p.c.path("/exec/%s/start", id), nil, strings.NewReader(start), int64(len(start)), "application/json")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		res.Output, err = demux(resp.Body, orchestrator.MaxExecOutput)
		if err != nil {
			return fmt.Errorf("read output: %w", err)
		}
		// The server closes the stream once the process has exited and
		// its exit code is recorded.
		var s struct {
			Running  bool
			ExitCode int
		}
		if err := p.c.call(ctx, http.MethodGet, p.c.path("/exec/%s/json", id), nil, nil, &s); err != nil {
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
func toEvent(e event) orchestrator.Event {
	ev := orchestrator.Event{Action: e.Action, ID: e.Actor.ID, Labels: map[string]string{}}
	if ev.Action == "" {
		ev.Action = e.Status
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
