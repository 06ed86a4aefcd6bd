// Package orchestrator runs verified apps on rootless Podman and keeps them
// running: the container runtime interface it needs (Runtime, implemented
// over the Podman API socket by orchestrator/podman and in memory by
// orchestrator/memruntime, both held to orchestrator/runtimetest), and, on
// top of it, the reconciler and the app lifecycle.
package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/archy-node/archy/registry"
)

// ImageSource fetches image archives by the CID a manifest pins them by
// (the BLAKE3 of the archive's bytes): the node's swarm. The orchestrator
// verifies every archive it returns before the engine sees it.
type ImageSource interface {
	// FetchArchive writes the archive whose bytes hash to cid, size bytes
	// long as the manifest pins it (0 when it pins none), to a file and
	// returns its path, calling progress (if not nil) with the bytes held
	// and the archive's size as it goes.
	FetchArchive(ctx context.Context, cid string, size int64, progress func(done, total int64)) (string, error)
}

// Runtime is what the reconciler needs from a container engine. Every method
// is bounded by a deadline of its own (see podman.Config) besides ctx, so a
// hung engine turns into an error wrapping ErrTimeout, never a blocked
// caller.
//
// Containers are addressed by exact name (see ValidName): an engine's lookup
// by "name or ID" never falls back to an ID prefix for such names.
type Runtime interface {
	// Info pings the engine and reports its version and abilities.
	Info(ctx context.Context) (Info, error)
	// LoadImage loads an OCI image archive from a local file and returns
	// the image names it carried.
	LoadImage(ctx context.Context, archivePath string) ([]string, error)
	// SaveImage writes the image ref as an OCI archive (the layout of
	// `podman save --format oci-archive`) to path, whole or not at all
	// (temp file, fsync, rename); ErrNotFound if there is no such image.
	SaveImage(ctx context.Context, ref, path string) error
	// ImageExists reports whether an image with that name or ID is present.
	ImageExists(ctx context.Context, ref string) (bool, error)
	// ImageID returns the ID (64 hex digits) of the image ref names (a
	// name, "name@sha256:…" or an ID); ErrNotFound if there is none.
	ImageID(ctx context.Context, ref string) (string, error)
	// RemoveImage removes an image by name: ErrNotFound if there is none,
	// ErrInUse if a container uses it.
	RemoveImage(ctx context.Context, ref string) error

	// CreateContainer creates (does not start) a container and returns its
	// ID. It fails with a *SpecError (ErrSpecNotApplied) and leaves nothing
	// behind when the engine did not apply every field of the spec, and
	// with ErrNameInUse when the name is taken.
	CreateContainer(ctx context.Context, spec ContainerSpec) (string, error)
	// Start starts a created or stopped container. Starting a running one
	// is not an error.
	Start(ctx context.Context, name string) error
	// Stop stops a container, killing it after timeout. Stopping a stopped
	// one is not an error.
	Stop(ctx context.Context, name string, timeout time.Duration) error
	// Remove removes a container, killing it first if it runs. It returns
	// ErrNotFound when there is no such container.
	Remove(ctx context.Context, name string) error
	// Inspect returns the container with exactly that name, or ErrNotFound.
	Inspect(ctx context.Context, name string) (Container, error)
	// List returns every container (running or not) carrying all the given
	// labels (an empty value matches only an empty label value).
	List(ctx context.Context, labels map[string]string) ([]Container, error)
	// Events streams container events to out until ctx ends or the stream
	// breaks, and returns why it stopped (never nil). It does not close out.
	Events(ctx context.Context, out chan<- Event) error

	// CreateNetwork creates a bridge network; ErrNameInUse if it exists.
	CreateNetwork(ctx context.Context, n Network) error
	// RemoveNetwork removes a network; ErrNotFound if there is none,
	// ErrInUse if a container is attached to it.
	RemoveNetwork(ctx context.Context, name string) error
	// ListNetworks returns the networks carrying all the given labels.
	ListNetworks(ctx context.Context, labels map[string]string) ([]Network, error)

	// Exec runs cmd in a running container (an exec health probe) and
	// returns its exit code and combined output (truncated to
	// MaxExecOutput bytes). A command that runs and fails is not an error.
	Exec(ctx context.Context, name string, cmd []string) (ExecResult, error)
}

// Errors returned by every Runtime.
var (
	// ErrNotFound is returned when a container, image or network does not exist.
	ErrNotFound = errors.New("not found")
	// ErrNameInUse is returned when creating a container or network whose
	// name is taken.
	ErrNameInUse = errors.New("name already in use")
	// ErrInUse is returned when removing an image or network that a
	// container still uses.
	ErrInUse = errors.New("in use")
	// ErrInvalidName is returned for a container or network name that is
	// not a ValidName.
	ErrInvalidName = errors.New("invalid name")
	// ErrSpecNotApplied is returned (inside a *SpecError) when the engine
	// accepted a spec but did not apply all of it: old Podman versions
	// silently drop fields they do not know, and rootless cgroup v1 hosts
	// drop resource limits.
	ErrSpecNotApplied = errors.New("container spec not applied")
	// ErrTimeout is returned when the engine did not answer within the
	// call's own deadline: a hung or overloaded Podman. The context's
	// context.DeadlineExceeded is wrapped too.
	ErrTimeout = errors.New("container engine did not answer in time")
	// ErrNotRunning is returned by Exec on a container that is not running.
	ErrNotRunning = errors.New("container not running")
	// ErrEngineTooOld is returned at connect when the engine's API version
	// is below what archy supports.
	ErrEngineTooOld = errors.New("container engine too old")
)

// SpecError tells which field of a ContainerSpec the engine did not apply.
type SpecError struct {
	Field     string // e.g. "labels[io.archy.app]", "resources.memory"
	Want, Got string
}

func (e *SpecError) Error() string {
	return fmt.Sprintf("%s: %s: want %q, engine has %q", ErrSpecNotApplied, e.Field, e.Want, e.Got)
}

// Unwrap makes errors.Is(err, ErrSpecNotApplied) hold.
func (e *SpecError) Unwrap() error { return ErrSpecNotApplied }

// MaxExecOutput bounds the output Exec keeps.
const MaxExecOutput = 64 << 10

// Info describes the engine.
type Info struct {
	Version    string // engine version, e.g. "4.3.1"
	APIVersion string // API version the server speaks
	Rootless   bool
	// ResourceLimits is false where the engine cannot enforce memory, CPU
	// and PID limits (rootless on cgroup v1): a spec asking for them then
	// fails with ErrSpecNotApplied.
	ResourceLimits bool
}

// ContainerSpec is archy's own, small container spec: only what a manifest
// can ask for. Nothing privileged can be expressed in it: every Runtime
// drops all capabilities but CapAdd (registry.AllowedCapabilities only),
// sets no-new-privileges and keeps the engine's default seccomp profile.
type ContainerSpec struct {
	Name       string
	Image      string
	Entrypoint []string // nil: the image's
	Command    []string // nil: the image's
	Env        map[string]string
	Labels     map[string]string
	Ports      []Port
	Mounts     []Mount
	// Network is a network made with CreateNetwork; "" is the engine's
	// default (slirp4netns when rootless).
	Network string
	// Aliases are extra DNS names on Network (the stack's service name).
	Aliases []string
	// User is "uid[:gid]" or a name inside the image; "" is the image's.
	User string
	// CapAdd are the capabilities the container keeps (names without
	// "CAP_", from registry.AllowedCapabilities); all others are dropped.
	CapAdd      []string
	Resources   Resources
	Restart     RestartPolicy
	StopTimeout time.Duration // 0: the engine's default (10 s)
}

// Port publishes a container port on the host.
type Port struct {
	HostIP        string // "" means 127.0.0.1
	HostPort      uint16
	ContainerPort uint16
	Protocol      string // "tcp" (default) or "udp"
}

// Mount bind-mounts a host folder into the container.
type Mount struct {
	Source   string // absolute host path
	Target   string // absolute path in the container
	ReadOnly bool
}

// Resources are limits; zero means none.
type Resources struct {
	MemoryBytes int64
	NanoCPUs    int64 // 1e9 = one CPU
	PidsLimit   int64
}

// IsZero reports whether no limit is set.
func (r Resources) IsZero() bool { return r == Resources{} }

// RestartPolicy names, as Podman spells them.
const (
	RestartNo            = "no"
	RestartOnFailure     = "on-failure"
	RestartAlways        = "always"
	RestartUnlessStopped = "unless-stopped"
)

// RestartPolicy says what the engine does when the container exits.
type RestartPolicy struct {
	Name       string // one of the Restart* constants; "" is RestartNo
	MaxRetries uint   // on-failure only
}

// State is a container's state, as Podman names it.
type State string

// Container states.
const (
	StateCreated State = "created"
	StateRunning State = "running"
	StatePaused  State = "paused"
	StateStopped State = "stopped"
	StateExited  State = "exited"
	StateUnknown State = "unknown"
)

// Container is what the runtime reports about a container.
type Container struct {
	ID    string
	Name  string
	Image string
	// ImageID is the ID of the image the container was made from.
	ImageID    string
	State      State
	PID        int // 0 unless running
	StartedAt  time.Time
	FinishedAt time.Time
	ExitCode   int
	Labels     map[string]string
}

// Running reports whether the engine says the container runs.
func (c Container) Running() bool { return c.State == StateRunning }

// Event is one container event.
type Event struct {
	Time   time.Time
	Action string // "create", "start", "died", "stop", "remove", ...
	ID     string
	Name   string
	Labels map[string]string
	// ExitCode is set on "died" events only (Podman 4.3 puts 0 on every
	// other event).
	ExitCode *int
}

// Network is a bridge network for a stack.
type Network struct {
	Name   string
	ID     string // set by the runtime
	Labels map[string]string
}

// ExecResult is what a command run by Exec did.
type ExecResult struct {
	ExitCode int
	Output   []byte
}

var validName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`)
var hexOnly = regexp.MustCompile(`^[0-9a-f]+$`)

// ValidName reports whether name may name a container or network: Podman's
// own rule, at most 128 characters, and not all lower-case hex, so that an
// engine lookup by "name or ID" can never match another container's ID
// prefix.
func ValidName(name string) bool {
	return validName.MatchString(name) && !hexOnly.MatchString(name)
}

// CheckSpec checks what every Runtime refuses before it reaches the engine.
func CheckSpec(s ContainerSpec) error {
	if !ValidName(s.Name) {
		return fmt.Errorf("container %q: %w", s.Name, ErrInvalidName)
	}
	if s.Image == "" {
		return fmt.Errorf("container %s: no image", s.Name)
	}
	for _, p := range s.Ports {
		if p.HostPort == 0 || p.ContainerPort == 0 {
			return fmt.Errorf("container %s: port %d:%d: ports must be set", s.Name, p.HostPort, p.ContainerPort)
		}
		if p.Protocol != "" && p.Protocol != "tcp" && p.Protocol != "udp" {
			return fmt.Errorf("container %s: port %d: protocol %q is not tcp or udp", s.Name, p.HostPort, p.Protocol)
		}
	}
	for _, m := range s.Mounts {
		if len(m.Source) == 0 || m.Source[0] != '/' || len(m.Target) == 0 || m.Target[0] != '/' {
			return fmt.Errorf("container %s: mount %q -> %q: paths must be absolute", s.Name, m.Source, m.Target)
		}
	}
	for _, c := range s.CapAdd {
		if !slices.Contains(registry.AllowedCapabilities, c) {
			return fmt.Errorf("container %s: capability %q is not one a container may keep", s.Name, c)
		}
	}
	switch s.Restart.Name {
	case "", RestartNo, RestartOnFailure, RestartAlways, RestartUnlessStopped:
	default:
		return fmt.Errorf("container %s: unknown restart policy %q", s.Name, s.Restart.Name)
	}
	if s.Network != "" && !ValidName(s.Network) {
		return fmt.Errorf("container %s: network %q: %w", s.Name, s.Network, ErrInvalidName)
	}
	return nil
}

// Normalized returns the spec with the defaults every Runtime applies
// filled in: host IP 127.0.0.1, protocol tcp, restart policy "no".
func (s ContainerSpec) Normalized() ContainerSpec {
	ports := make([]Port, len(s.Ports))
	for i, p := range s.Ports {
		if p.HostIP == "" {
			p.HostIP = "127.0.0.1"
		}
		if p.Protocol == "" {
			p.Protocol = "tcp"
		}
		ports[i] = p
	}
	s.Ports = ports
	if s.Restart.Name == "" {
		s.Restart.Name = RestartNo
	}
	return s
}

var imageIDRe = regexp.MustCompile(`^[0-9a-f]{64}$`)

// IsImageID reports whether ref is a full image ID (64 hex digits, no
// "sha256:"), the form ContainerSpec.Image takes when a container is made
// from the verified image rather than a tag.
func IsImageID(ref string) bool { return imageIDRe.MatchString(ref) }
