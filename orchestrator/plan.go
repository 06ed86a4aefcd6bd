package orchestrator

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/archy-node/archy/orchestrator/quadlet"
	"github.com/archy-node/archy/registry"
)

// Labels archy puts on everything it creates. A container without
// LabelApp is not archy's and is never touched. Those the Quadlet units
// carry too are defined there, once.
const (
	LabelApp         = quadlet.AppLabel
	LabelContainer   = quadlet.ContainerLabel
	LabelVersion     = quadlet.VersionLabel
	LabelSpecHash    = "io.archy.spec-hash"
	LabelManifestCID = "io.archy.manifest-cid"
)

// NetworkName is the engine name of an app's network.
func NetworkName(app string) string { return "archy-" + app }

// DefaultStopTimeout is how long a container gets to stop on SIGTERM.
const DefaultStopTimeout = 10 * time.Second

// Plan is what an app's release becomes in the engine: one network and
// its containers, in start order (depends_on first).
type Plan struct {
	App        string
	Version    string
	CID        string
	Network    string
	Containers []PlannedContainer
	// HostPorts are every host port the app publishes.
	HostPorts []HostPort
	// Warnings are visible in the app's status (e.g. limits not enforced).
	Warnings []string
}

// HostPort is a published port.
type HostPort struct {
	Port      uint16
	Protocol  string
	Container string
}

// PlannedContainer is one container of a Plan.
type PlannedContainer struct {
	Name string // the manifest's name ("web")
	// Spec is the desired spec; Spec.Image is the manifest's ref, but the
	// engine gets the ID of the image Image pins (see createContainer).
	Spec      ContainerSpec
	Image     registry.Image
	Hash      string // LabelSpecHash: the desired spec without secret values
	Health    *registry.Health
	DependsOn []string
	// HostPorts maps a container port to its published host port.
	HostPorts map[int]uint16
	// Data are the data folders to create before the container starts.
	Data []DataDir
}

// DataDir is a folder of the app's data folder and who must own it inside
// the container (-1: the container's root, no change needed).
type DataDir struct {
	Rel      string // relative to the app's data folder
	UID, GID int
}

// planInput is what a plan is made from.
type planInput struct {
	manifest       *registry.Manifest
	cid            string
	secrets        map[string]string
	dataDir        string // absolute: the app's data folder
	resourceLimits bool
}

// makePlan turns a verified manifest into engine specs. It re-checks the
// rootless invariants (the orchestrator never trusts that validation ran).
func makePlan(in planInput) (*Plan, error) {
	m := in.manifest
	if err := checkRootless(m); err != nil {
		return nil, err
	}
	if !validAppID(m.ID) {
		return nil, fmt.Errorf("plan %s: app id unusable in engine names", m.ID)
	}
	order, err := startOrder(m)
	if err != nil {
		return nil, err
	}
	p := &Plan{App: m.ID, Version: m.Version, CID: in.cid, Network: NetworkName(m.ID)}
	limitsDropped := false
	for _, i := range order {
		c := m.Containers[i]
		pc := PlannedContainer{Name: c.Name, Image: c.Image, Health: c.Health, DependsOn: c.DependsOn, HostPorts: map[int]uint16{}}
		s := ContainerSpec{
			Name:        quadlet.ContainerName(m.ID, c.Name),
			Image:       c.Image.Ref,
			Command:     c.Command,
			Env:         map[string]string{},
			Network:     p.Network,
			Aliases:     []string{c.Name},
			User:        c.User,
			Restart:     RestartPolicy{Name: RestartNo},
			StopTimeout: DefaultStopTimeout,
			Labels: map[string]string{
				LabelApp: m.ID, LabelContainer: c.Name, LabelManifestCID: in.cid, LabelVersion: m.Version,
			},
		}
		if s.Image == "" {
			return nil, fmt.Errorf("plan %s: container %s: image has no ref", m.ID, c.Name)
		}
		hashEnv := map[string]string{}
		for _, e := range c.Env {
			if e.Secret != "" {
				v, ok := in.secrets[e.Secret]
				if !ok {
					return nil, fmt.Errorf("plan %s: container %s: env %s: secret %s was not generated", m.ID, c.Name, e.Name, e.Secret)
				}
				s.Env[e.Name] = v
				hashEnv[e.Name] = "secret:" + e.Secret
				continue
			}
			s.Env[e.Name] = e.Value
			hashEnv[e.Name] = e.Value
		}
		for _, pt := range c.Ports {
			if pt.Host == 0 {
				continue
			}
			if pt.Host < 1 || pt.Host > 65535 || pt.Container < 1 || pt.Container > 65535 {
				return nil, fmt.Errorf("plan %s: container %s: port %d:%d out of range", m.ID, c.Name, pt.Host, pt.Container)
			}
			proto := pt.Protocol
			if proto == "" {
				proto = "tcp"
			}
			s.Ports = append(s.Ports, Port{HostIP: "127.0.0.1", HostPort: uint16(pt.Host), ContainerPort: uint16(pt.Container), Protocol: proto})
			pc.HostPorts[pt.Container] = uint16(pt.Host)
			p.HostPorts = append(p.HostPorts, HostPort{Port: uint16(pt.Host), Protocol: proto, Container: c.Name})
		}
		if s.CapAdd, err = registry.Capabilities(&c); err != nil {
			return nil, fmt.Errorf("plan %s: %w", m.ID, err)
		}
		uid, gid := userIDs(c.User)
		for _, v := range c.Volumes {
			rel, err := cleanRel(v.Path)
			if err != nil {
				return nil, fmt.Errorf("plan %s: container %s: volume %q: %w", m.ID, c.Name, v.Path, err)
			}
			s.Mounts = append(s.Mounts, Mount{Source: filepath.Join(in.dataDir, rel), Target: v.Mount, ReadOnly: v.ReadOnly})
			pc.Data = append(pc.Data, DataDir{Rel: rel, UID: uid, GID: gid})
		}
		if r := c.Resources; r != nil {
			var res Resources
			if r.Memory != "" {
				if res.MemoryBytes, err = registry.ParseMemory(r.Memory); err != nil {
					return nil, fmt.Errorf("plan %s: container %s: %w", m.ID, c.Name, err)
				}
			}
			res.NanoCPUs = int64(r.CPUs * 1e9)
			res.PidsLimit = int64(r.PIDs)
			if in.resourceLimits {
				s.Resources = res
			} else if !res.IsZero() {
				limitsDropped = true
			}
		}
		// The hash is over the spec with secret names in place of
		// their values: stable, and it reveals nothing.
		hs := s.Normalized()
		hs.Env = hashEnv
		hs.Labels = maps.Clone(s.Labels)
		b, err := json.Marshal(hs)
		if err != nil {
			return nil, fmt.Errorf("plan %s: hash spec: %w", m.ID, err)
		}
		sum := sha256.Sum256(b)
		pc.Hash = hex.EncodeToString(sum[:16])
		s.Labels[LabelSpecHash] = pc.Hash
		pc.Spec = s
		p.Containers = append(p.Containers, pc)
	}
	if limitsDropped {
		p.Warnings = append(p.Warnings, "resource limits not enforced: the engine cannot apply them here (rootless Podman on cgroup v1); running without limits")
	}
	return p, nil
}

// userIDs returns the numeric uid and gid of a "uid[:gid]" user, or -1
// when the container runs as its image's user (root in archy's images) or
// a named user.
func userIDs(u string) (int, int) {
	if u == "" {
		return -1, -1
	}
	us, gs, hasG := strings.Cut(u, ":")
	uid, err := strconv.Atoi(us)
	if err != nil || uid < 0 {
		return -1, -1
	}
	gid := uid
	if hasG {
		if gid, err = strconv.Atoi(gs); err != nil || gid < 0 {
			gid = uid
		}
	}
	if uid == 0 && gid == 0 {
		return -1, -1
	}
	return uid, gid
}

func cleanRel(p string) (string, error) {
	if p == "" || filepath.IsAbs(p) || strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("must be a relative path")
	}
	c := filepath.Clean(filepath.FromSlash(p))
	if c == "." || c == ".." || strings.HasPrefix(c, ".."+string(filepath.Separator)) {
		return "", fmt.Errorf("must stay inside the app's data folder")
	}
	return c, nil
}

// startOrder returns container indexes with every depends_on first,
// keeping the manifest's order otherwise; a cycle or an unknown name is
// an error.
func startOrder(m *registry.Manifest) ([]int, error) {
	idx := map[string]int{}
	for i, c := range m.Containers {
		if _, dup := idx[c.Name]; dup {
			return nil, fmt.Errorf("plan %s: container %s declared twice", m.ID, c.Name)
		}
		idx[c.Name] = i
	}
	done := make([]bool, len(m.Containers))
	var order []int
	for len(order) < len(m.Containers) {
		progress := false
		for i, c := range m.Containers {
			if done[i] {
				continue
			}
			ready := true
			for _, d := range c.DependsOn {
				j, ok := idx[d]
				if !ok {
					return nil, fmt.Errorf("plan %s: container %s depends on unknown %s", m.ID, c.Name, d)
				}
				if !done[j] {
					ready = false
				}
			}
			if ready {
				done[i] = true
				order = append(order, i)
				progress = true
			}
		}
		if !progress {
			return nil, fmt.Errorf("plan %s: depends_on has a cycle", m.ID)
		}
	}
	return order, nil
}

// checkRootless re-checks the invariants validation enforces: nothing
// privileged reaches the engine even if a manifest skipped validation.
func checkRootless(m *registry.Manifest) error {
	if in, out, ok := registry.NestedAcrossContainers(m); ok {
		return fmt.Errorf("app %s: container %s: volume %q lies inside volume %q of container %s: refused, a container could swap it for a symlink",
			m.ID, m.Containers[in.Container].Name, m.Containers[in.Container].Volumes[in.Volume].Path,
			m.Containers[out.Container].Volumes[out.Volume].Path, m.Containers[out.Container].Name)
	}
	for _, c := range m.Containers {
		bad := ""
		switch {
		case c.Privileged:
			bad = "privileged"
		case c.Network != "":
			bad = "network"
		case c.PID != "":
			bad = "pid"
		case c.IPC != "":
			bad = "ipc"
		case c.UserNS != "":
			bad = "userns"
		case len(c.Devices) > 0:
			bad = "devices"
		case len(c.Sysctls) > 0:
			bad = "sysctls"
		case len(c.SecurityOpt) > 0:
			bad = "security_opt"
		}
		if bad != "" {
			return fmt.Errorf("app %s: container %s: %s is refused: archy runs rootless containers only", m.ID, c.Name, bad)
		}
		if _, err := registry.Capabilities(&c); err != nil {
			return fmt.Errorf("app %s: %w", m.ID, err)
		}
		for _, v := range c.Volumes {
			if _, err := cleanRel(v.Path); err != nil {
				return fmt.Errorf("app %s: container %s: volume %q: %w", m.ID, c.Name, v.Path, err)
			}
		}
	}
	return nil
}

// sortedPorts is for messages.
func sortedPorts(ps []HostPort) []uint16 {
	var out []uint16
	for _, p := range ps {
		out = append(out, p.Port)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// owned reports whether c is one of app's containers that this reconciler
// owns: archy's labels for that app, and not a container a Quadlet unit
// manages (one owner per container: a unit rendered by archy app render
// carries the same app label, and systemd, not the reconciler, owns it).
func owned(c Container, app string) bool {
	return c.Labels[LabelApp] == app && c.Labels[quadlet.OwnerLabel] != quadlet.OwnerQuadlet
}
