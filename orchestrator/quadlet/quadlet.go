// Package quadlet renders an app's manifest as Podman Quadlet units: a
// .container unit per container and a .network unit for the app's own
// network, so that an app can also be run by systemd (podman-systemd.unit(5))
// without the archy node. The node itself runs apps through the Podman API;
// these units are for inspection (`archy app render`) and for hosts that
// prefer systemd. Output is deterministic: the same manifest and options give
// the same bytes.
//
// Targets. Quadlet first shipped in Podman 4.4 with .container and .volume
// units only; Podman 4.5 added .network units and the Secret= and Health*
// keys. The default target, 4.5, uses those keys. Target 4.4 renders the same
// containers with PodmanArgs= for secrets and health checks, and creates the
// app's network from an ExecStartPre= line instead of a .network unit. Keys
// that exist in neither (memory, CPU and PID limits, network aliases) go
// through PodmanArgs= on both.
//
// Secrets are never written into a unit: each generated secret is expected
// as a Podman secret named archy-<app>-<secret> (see SecretName), which the
// node creates from its 0600 secret file; the unit only references it.
package quadlet

import (
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/archy-node/archy/registry"
)

// Podman versions a rendering can target.
const (
	Podman44 = "4.4"
	Podman45 = "4.5"
)

// Labels put on everything rendered, and (as orchestrator.Label*) on
// everything the reconciler creates. OwnerLabel marks containers that a
// systemd unit manages, so that the node's reconciler never adopts them.
const (
	AppLabel       = "io.archy.app"
	ContainerLabel = "io.archy.container"
	VersionLabel   = "io.archy.version"
	DigestLabel    = "io.archy.image-digest"
	OwnerLabel     = "io.archy.owner"
	OwnerQuadlet   = "quadlet"
)

// ErrRender is returned (wrapped, with the field named) when a manifest
// cannot be rendered as units.
var ErrRender = errors.New("cannot render")

// Options says where the rendered app lives on the host.
type Options struct {
	// DataDir is the app's data folder on the host (absolute); each volume
	// mounts DataDir/<volume path>. Required when a container has volumes.
	DataDir string
	// BindAddress is the host address ports are published on; default
	// 127.0.0.1.
	BindAddress string
	// Podman is the oldest Podman the units must work with: Podman44 or
	// Podman45 (the default).
	Podman string
}

// Unit is one Quadlet file.
type Unit struct {
	Name    string `json:"name"`
	Content string `json:"content"`
}

// ContainerName is the engine name of an app's container, for the
// reconciler and the rendered units alike.
func ContainerName(app, container string) string { return "archy-" + app + "-" + container }

// NetworkUnit is the name of the app's .network unit (Podman names the
// network systemd-archy-<app>).
func NetworkUnit(app string) string { return "archy-" + app + ".network" }

// NetworkName is the Podman network the units attach an app's containers to.
func NetworkName(app string, target string) string {
	if target == Podman44 {
		return "archy-" + app
	}
	return "systemd-archy-" + app
}

// SecretName is the Podman secret holding an app's generated secret.
func SecretName(app, secret string) string { return "archy-" + app + "-" + secret }

// Render returns the app's units, the .network unit (target 4.5) first and
// then one .container unit per container in manifest order.
func Render(m *registry.Manifest, opts Options) ([]Unit, error) {
	if opts.BindAddress == "" {
		opts.BindAddress = "127.0.0.1"
	}
	switch opts.Podman {
	case "":
		opts.Podman = Podman45
	case Podman44, Podman45:
	default:
		return nil, fmt.Errorf("%w: podman target %q: want %s or %s", ErrRender, opts.Podman, Podman44, Podman45)
	}
	if m.ID == "" {
		return nil, fmt.Errorf("%w: id is empty", ErrRender)
	}
	if len(m.Containers) == 0 {
		return nil, fmt.Errorf("%w: containers: the app has none", ErrRender)
	}
	r := renderer{m: m, opts: opts, secrets: map[string]bool{}, names: map[string]bool{}}
	for _, s := range m.GeneratedSecrets {
		r.secrets[s.Name] = true
	}
	for _, c := range m.Containers {
		r.names[c.Name] = true
	}
	var units []Unit
	if opts.Podman != Podman44 {
		units = append(units, r.network())
	}
	for i := range m.Containers {
		u, err := r.container(i)
		if err != nil {
			return nil, err
		}
		units = append(units, u)
	}
	return units, nil
}

type renderer struct {
	m       *registry.Manifest
	opts    Options
	secrets map[string]bool
	names   map[string]bool
}

func (r *renderer) header(b *unitWriter) {
	b.comment(fmt.Sprintf("Rendered by archy from %s %s (%s). Do not edit: render again.", r.m.ID, r.m.Version, r.m.Schema))
	b.comment("Podman >= " + r.opts.Podman + " Quadlet; see podman-systemd.unit(5).")
}

func (r *renderer) network() Unit {
	var b unitWriter
	r.header(&b)
	b.section("Unit")
	b.kv("Description", escape(fmt.Sprintf("%s: network of the app %s", r.m.Name, r.m.ID)))
	b.section("Network")
	b.kv("Label", pair(AppLabel, r.m.ID))
	b.kv("Label", pair(OwnerLabel, OwnerQuadlet))
	return Unit{Name: NetworkUnit(r.m.ID), Content: b.String()}
}

func (r *renderer) container(i int) (Unit, error) {
	c := &r.m.Containers[i]
	field := fmt.Sprintf("containers[%d]", i)
	if c.Name == "" {
		return Unit{}, fmt.Errorf("%w: %s.name is empty", ErrRender, field)
	}
	if c.Image.Ref == "" {
		return Unit{}, fmt.Errorf("%w: %s.image.ref is empty: a unit needs an image name", ErrRender, field)
	}
	m, opts := r.m, r.opts
	name := ContainerName(m.ID, c.Name)
	var b unitWriter
	r.header(&b)

	b.section("Unit")
	b.kv("Description", escape(fmt.Sprintf("%s %s: container %s", m.Name, m.Version, c.Name)))
	var deps []string
	for j, d := range c.DependsOn {
		if !r.names[d] {
			return Unit{}, fmt.Errorf("%w: %s.depends_on[%d]: no container named %q", ErrRender, field, j, d)
		}
		deps = append(deps, ContainerName(m.ID, d)+".service")
	}
	if len(deps) > 0 {
		b.kv("Requires", strings.Join(deps, " "))
		b.kv("After", strings.Join(deps, " "))
	}

	b.section("Container")
	image := c.Image.Ref
	if c.Image.Digest != "" {
		image += "@" + c.Image.Digest
	}
	b.kv("Image", escape(image))
	b.kv("ContainerName", name)
	b.kv("Label", pair(AppLabel, m.ID))
	b.kv("Label", pair(ContainerLabel, c.Name))
	b.kv("Label", pair(VersionLabel, m.Version))
	if c.Image.Digest != "" {
		b.kv("Label", pair(DigestLabel, c.Image.Digest))
	}
	b.kv("Label", pair(OwnerLabel, OwnerQuadlet))

	if opts.Podman == Podman44 {
		b.kv("Network", NetworkName(m.ID, opts.Podman))
	} else {
		b.kv("Network", NetworkUnit(m.ID))
	}
	var podmanArgs []string
	// Other containers of the stack reach this one by its manifest name.
	podmanArgs = append(podmanArgs, "--network-alias="+c.Name)

	for j, p := range c.Ports {
		pf := fmt.Sprintf("%s.ports[%d]", field, j)
		if p.Host == 0 {
			continue // internal: reachable on the app's network only
		}
		if p.Host < 1 || p.Host > 65535 || p.Container < 1 || p.Container > 65535 {
			return Unit{}, fmt.Errorf("%w: %s: ports must be within 1-65535", ErrRender, pf)
		}
		spec := fmt.Sprintf("%s:%d:%d", bindAddr(opts.BindAddress), p.Host, p.Container)
		switch p.Protocol {
		case "", "tcp":
		case "udp":
			spec += "/udp"
		default:
			return Unit{}, fmt.Errorf("%w: %s.protocol %q: want tcp or udp", ErrRender, pf, p.Protocol)
		}
		b.kv("PublishPort", spec)
	}

	for j, v := range c.Volumes {
		vf := fmt.Sprintf("%s.volumes[%d]", field, j)
		// systemd restarts a unit without the node's check of its data
		// paths at every start: a container mounting d could swap d/sub
		// for a symlink and see the target after a restart. Refuse
		// nesting here, even within one container.
		for _, c2 := range m.Containers {
			for _, w := range c2.Volumes {
				if strings.HasPrefix(v.Path, w.Path+"/") {
					return Unit{}, fmt.Errorf("%w: %s.path %q lies inside volume %q of container %s: units are restarted by systemd without the node's symlink check", ErrRender, vf, v.Path, w.Path, c2.Name)
				}
			}
		}
		src, err := hostPath(opts.DataDir, v.Path)
		if err != nil {
			return Unit{}, fmt.Errorf("%w: %s.path: %v", ErrRender, vf, err)
		}
		if !path.IsAbs(v.Mount) || strings.Contains(v.Mount, ":") {
			return Unit{}, fmt.Errorf("%w: %s.mount %q: want an absolute path without ':'", ErrRender, vf, v.Mount)
		}
		// z: a shared SELinux label, since the containers of one app may
		// mount the same folder; a no-op where SELinux is off.
		o := "z"
		if v.ReadOnly {
			o = "ro,z"
		}
		b.kv("Volume", escape(src+":"+v.Mount+":"+o))
	}

	for j, e := range c.Env {
		ef := fmt.Sprintf("%s.env[%d]", field, j)
		if e.Name == "" || strings.ContainsAny(e.Name, "= \t\n\x00") {
			return Unit{}, fmt.Errorf("%w: %s.name %q is not an environment variable name", ErrRender, ef, e.Name)
		}
		if e.Secret != "" {
			if !r.secrets[e.Secret] {
				return Unit{}, fmt.Errorf("%w: %s.secret: no generated secret named %q", ErrRender, ef, e.Secret)
			}
			ref := SecretName(m.ID, e.Secret) + ",type=env,target=" + e.Name
			if opts.Podman == Podman44 {
				podmanArgs = append(podmanArgs, "--secret="+ref)
			} else {
				b.kv("Secret", ref)
			}
			continue
		}
		b.kv("Environment", quote(escape(e.Name+"="+e.Value)))
	}

	// The node's runtime policy (registry.Capabilities): all capabilities
	// dropped but the allow-listed cap_add, no new privileges; seccomp is
	// Podman's default profile.
	caps, err := registry.Capabilities(c)
	if err != nil {
		return Unit{}, fmt.Errorf("%w: %s: %v", ErrRender, field, err)
	}
	b.kv("DropCapability", "all")
	if len(caps) > 0 {
		b.kv("AddCapability", strings.Join(caps, " "))
	}
	b.kv("NoNewPrivileges", "true")

	if c.User != "" {
		uid, gid, _ := strings.Cut(c.User, ":")
		b.kv("User", escape(uid))
		if gid != "" {
			b.kv("Group", escape(gid))
		}
	}
	if len(c.Command) > 0 {
		words := make([]string, len(c.Command))
		for j, w := range c.Command {
			words[j] = quote(escape(w))
		}
		b.kv("Exec", strings.Join(words, " "))
	}

	if c.Health != nil {
		hk, err := healthKeys(c.Health, field+".health")
		if err != nil {
			return Unit{}, err
		}
		for _, kv := range hk {
			if opts.Podman == Podman44 {
				podmanArgs = append(podmanArgs, "--"+kv.flag+"="+kv.value)
			} else {
				b.kv(kv.key, escape(kv.value))
			}
		}
	}

	if res := c.Resources; res != nil {
		if res.Memory != "" {
			podmanArgs = append(podmanArgs, "--memory="+res.Memory)
		}
		if res.CPUs != 0 {
			podmanArgs = append(podmanArgs, "--cpus="+strconv.FormatFloat(res.CPUs, 'f', -1, 64))
		}
		if res.PIDs != 0 {
			podmanArgs = append(podmanArgs, "--pids-limit="+strconv.Itoa(res.PIDs))
		}
	}
	for _, a := range podmanArgs {
		b.kv("PodmanArgs", quote(escape(a)))
	}

	b.section("Service")
	if opts.Podman == Podman44 {
		// No .network units before 4.5: create the app's network before
		// the container, idempotently.
		b.kv("ExecStartPre", "-/usr/bin/podman network create --ignore "+
			"--label "+pair(AppLabel, m.ID)+" --label "+pair(OwnerLabel, OwnerQuadlet)+" "+NetworkName(m.ID, opts.Podman))
	}
	b.kv("Restart", "always")
	b.section("Install")
	b.kv("WantedBy", "default.target")
	return Unit{Name: name + ".container", Content: b.String()}, nil
}

type healthKV struct{ key, flag, value string }

// healthKeys turns the reconciler's probe into Podman's own health check,
// run inside the container: HTTP and TCP probes use the image's wget and nc
// (busybox has both), an exec probe runs as given.
func healthKeys(h *registry.Health, field string) ([]healthKV, error) {
	dur := func(s string, def time.Duration, name string) (string, error) {
		if s == "" {
			return def.String(), nil
		}
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			return "", fmt.Errorf("%w: %s.%s %q is not a duration", ErrRender, field, name, s)
		}
		return d.String(), nil
	}
	interval, err := dur(h.Interval, registry.DefaultHealthInterval, "interval")
	if err != nil {
		return nil, err
	}
	timeout, err := dur(h.Timeout, registry.DefaultHealthTimeout, "timeout")
	if err != nil {
		return nil, err
	}
	start, err := dur(h.StartPeriod, 0, "start_period")
	if err != nil {
		return nil, err
	}
	retries := h.Retries
	if retries == 0 {
		retries = registry.DefaultHealthRetries
	}
	secs := strconv.Itoa(int((mustDuration(timeout) + time.Second - 1) / time.Second))

	// Podman takes a plain string as "/bin/sh -c STRING" in every version;
	// its JSON-array form is not parsed by Podman 4.3's --health-cmd. The
	// timeout is Podman's to enforce (busybox wget's own -T crashes).
	var cmd string
	probes := 0
	if h.HTTP != nil {
		probes++
		p := h.HTTP.Path
		if p == "" {
			p = "/"
		}
		if !strings.HasPrefix(p, "/") {
			return nil, fmt.Errorf("%w: %s.http.path %q must start with /", ErrRender, field, p)
		}
		cmd = "wget -q -O /dev/null " + shellQuote(fmt.Sprintf("http://127.0.0.1:%d%s", h.HTTP.Port, p))
	}
	if h.TCP != nil {
		probes++
		cmd = fmt.Sprintf("nc -w %s 127.0.0.1 %d </dev/null", secs, h.TCP.Port)
	}
	if len(h.Exec) > 0 {
		probes++
		words := make([]string, len(h.Exec))
		for i, w := range h.Exec {
			words[i] = shellQuote(w)
		}
		cmd = "exec " + strings.Join(words, " ")
	}
	if probes != 1 {
		return nil, fmt.Errorf("%w: %s: want exactly one of http, tcp or exec", ErrRender, field)
	}
	kvs := []healthKV{
		{"HealthCmd", "health-cmd", cmd},
		{"HealthInterval", "health-interval", interval},
		{"HealthTimeout", "health-timeout", timeout},
		{"HealthRetries", "health-retries", strconv.Itoa(retries)},
	}
	if start != "0s" {
		kvs = append(kvs, healthKV{"HealthStartPeriod", "health-start-period", start})
	}
	return kvs, nil
}

func mustDuration(s string) time.Duration {
	d, _ := time.ParseDuration(s)
	return d
}

// hostPath joins an app-relative volume path to the app's data folder,
// refusing anything that could leave it.
func hostPath(dataDir, rel string) (string, error) {
	if dataDir == "" || !filepath.IsAbs(dataDir) {
		return "", fmt.Errorf("the app's data folder must be an absolute path (got %q)", dataDir)
	}
	if rel == "" || path.IsAbs(rel) || strings.ContainsAny(rel, ":\x00\\") {
		return "", fmt.Errorf("%q must be a relative path inside the app's data folder", rel)
	}
	for _, part := range strings.Split(rel, "/") {
		if part == ".." {
			return "", fmt.Errorf("%q must not contain ..", rel)
		}
	}
	return filepath.Join(dataDir, path.Clean(rel)), nil
}

func bindAddr(a string) string {
	if strings.Contains(a, ":") && !strings.HasPrefix(a, "[") {
		return "[" + a + "]"
	}
	return a
}

func pair(k, v string) string { return quote(escape(k + "=" + v)) }

// escape protects systemd's specifiers (%) and variable expansion ($),
// which apply to the podman command line the units turn into.
func escape(s string) string {
	return strings.NewReplacer("%", "%%", "$", "$$").Replace(s)
}

// quote makes s one word of a systemd-style list: bare when it is plain,
// double-quoted with C escapes otherwise.
func quote(s string) string {
	plain := s != ""
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_.,:/=@%+$[]{}", r)) {
			plain = false
			break
		}
	}
	if plain {
		return s
	}
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\t':
			b.WriteString(`\t`)
		case '\r':
			b.WriteString(`\r`)
		default:
			if r < 0x20 || r == 0x7f {
				fmt.Fprintf(&b, `\x%02x`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}

// shellQuote makes s one word for /bin/sh.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.,:/=@+") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// unitWriter builds a systemd-style unit file.
type unitWriter struct {
	strings.Builder
	sections int
}

func (w *unitWriter) comment(s string) { w.WriteString("# " + s + "\n") }

func (w *unitWriter) section(name string) {
	if w.sections > 0 || w.Len() > 0 {
		w.WriteString("\n")
	}
	w.sections++
	w.WriteString("[" + name + "]\n")
}

// kv writes one key; a value is kept on one line (newlines are quoted).
func (w *unitWriter) kv(key, value string) {
	w.WriteString(key + "=" + strings.ReplaceAll(value, "\n", `\n`) + "\n")
}
