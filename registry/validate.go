package registry

import (
	"errors"
	"fmt"
	"path"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/Masterminds/semver/v3"

	"github.com/archy-node/archy/cas"
	"github.com/archy-node/archy/did"
)

// Bounds of a manifest. They keep a manifest small enough to gossip and
// to reason about; raising one is a schema change.
const (
	MaxContainers     = 16
	MaxCommandArgs    = 64
	MaxArgBytes       = 4096
	MaxEnv            = 128
	MaxEnvValueBytes  = 32 << 10
	MaxPorts          = 32
	MaxVolumes        = 32
	MaxRequires       = 32
	MaxSecrets        = 32
	MinSecretLength   = 16
	MaxSecretLength   = 4096
	MaxHealthRetries  = 100
	MaxDescription    = 4096
	MinMemory         = 4 << 20
	MaxMemory         = 64 << 30
	MinCPUs           = 0.01
	MaxCPUs           = 64
	MaxPIDs           = 32768
	MinProbeDuration  = 100 * time.Millisecond
	MaxProbeDuration  = 10 * time.Minute
	MaxStartPeriod    = time.Hour
	maxNameRunes      = 80
	maxIDLen          = 64
	maxPathLen        = 1024
	maxRefLen         = 255
	maxConstraintLen  = 256
	maxUserPartLength = 32
)

// SecretCharsets are the alphabets a generated secret may use.
var SecretCharsets = []string{"alnum", "hex", "base64url"}

// ErrInvalid is matched (errors.Is) by every *ValidationError: returned
// when a manifest breaks a rule of the schema or a rootless invariant.
var ErrInvalid = errors.New("invalid manifest")

// Problem is one broken rule: Path names the field as
// `containers[1].volumes[0].path` ("" for the manifest as a whole).
type Problem struct {
	Path string `json:"path"`
	Msg  string `json:"message"`
}

func (p Problem) String() string {
	if p.Path == "" {
		return p.Msg
	}
	return p.Path + ": " + p.Msg
}

// ValidationError lists every problem of a manifest at once.
type ValidationError struct {
	// File is the manifest file, when the manifest was loaded from one.
	File     string
	Problems []Problem
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File + ": ")
	}
	b.WriteString("invalid manifest: ")
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(p.String())
	}
	return b.String()
}

// Is makes errors.Is(err, ErrInvalid) hold.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

// problems collects Problems; add formats the message.
type problems []Problem

func (ps *problems) add(p, format string, a ...any) {
	*ps = append(*ps, Problem{Path: p, Msg: fmt.Sprintf(format, a...)})
}

func (ps problems) err() error {
	if len(ps) == 0 {
		return nil
	}
	return &ValidationError{Problems: ps}
}

var (
	idRe        = regexp.MustCompile(`^[a-z0-9]+(?:[.-][a-z0-9]+)*$`)
	channelRe   = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)
	dnsLabelRe  = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$`)
	envNameRe   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	secretRe    = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)
	digestRe    = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	pathPartRe  = regexp.MustCompile(`^[A-Za-z0-9._+@-]+$`)
	userNameRe  = regexp.MustCompile(`^[a-z_][a-z0-9_-]*$`)
	memoryRe    = regexp.MustCompile(`^([0-9]{1,20})([kKmMgG][iI]?)?[bB]?$`)
	envFieldLen = 256
)

// Validate checks every rule of the archy.app/v1 schema and the rootless
// invariants, and returns all the problems at once as a *ValidationError
// (nil when the manifest is valid). The rules are listed in the tests and
// in the foundation issue's note.
func (m *Manifest) Validate() error { return m.validate(false) }

// validate is Validate; signed holds a manifest to its signed form, where
// an image is pinned by cid and digest alone (archive is authoring-only
// and never signed).
func (m *Manifest) validate(signed bool) error {
	var ps problems
	m.validateTop(&ps)
	secrets := m.validateSecrets(&ps)
	names := m.validateContainerNames(&ps)
	hostPorts := map[string]string{}
	for i := range m.Containers {
		c := &m.Containers[i]
		validateContainer(&ps, fmt.Sprintf("containers[%d]", i), c, secrets, hostPorts, signed)
	}
	if in, out, ok := NestedAcrossContainers(m); ok {
		ps.add(fmt.Sprintf("containers[%d].volumes[%d].path", in.Container, in.Volume),
			"%q lies inside %q, a volume of containers[%d] (%s), which could swap it for a symlink: nest volumes only within one container",
			clip(m.Containers[in.Container].Volumes[in.Volume].Path), clip(m.Containers[out.Container].Volumes[out.Volume].Path),
			out.Container, m.Containers[out.Container].Name)
	}
	m.validateDependencies(&ps, names)
	m.validateRequires(&ps)
	m.validateUI(&ps, names)
	walkStrings(&ps, reflect.ValueOf(m).Elem(), "")
	if len(ps) == 0 {
		if b, err := Canonical(m); err != nil {
			ps.add("", "cannot be encoded: %v", err)
		} else if len(b) > MaxManifestSize {
			ps.add("", "canonical form is %d bytes, over the %d-byte cap", len(b), MaxManifestSize)
		}
	}
	return ps.err()
}

func (m *Manifest) validateTop(ps *problems) {
	if m.Schema != Schema {
		if m.Schema == "" {
			ps.add("schema", "missing: set schema: %s", Schema)
		} else {
			ps.add("schema", "%q is not supported: this node reads %s", m.Schema, Schema)
		}
	}
	if msg := checkID(m.ID); msg != "" {
		ps.add("id", "%s", msg)
	}
	switch n := utf8.RuneCountInString(m.Name); {
	case strings.TrimSpace(m.Name) == "":
		ps.add("name", "missing: give the app a human name")
	case n > maxNameRunes:
		ps.add("name", "%d characters, over the %d-character cap", n, maxNameRunes)
	case !printable(m.Name, false):
		ps.add("name", "must be printable text on one line")
	}
	if m.Version == "" {
		ps.add("version", "missing: a semantic version such as 1.0.0")
	} else if _, err := semver.StrictNewVersion(m.Version); err != nil || len(m.Version) > 128 {
		ps.add("version", "%q is not a semantic version (MAJOR.MINOR.PATCH, no leading v)", clip(m.Version))
	}
	if m.Publisher == "" {
		ps.add("publisher", "missing: the did:key of the key that signs the manifest (archy did new)")
	} else if _, err := did.Parse(m.Publisher); err != nil {
		ps.add("publisher", "not a valid Ed25519 did:key: %v", err)
	}
	if len(m.Description) > MaxDescription {
		ps.add("description", "%d bytes, over the %d-byte cap", len(m.Description), MaxDescription)
	} else if !printable(m.Description, true) {
		ps.add("description", "must be printable text")
	}
	if m.Channel != "" && !channelRe.MatchString(m.Channel) {
		ps.add("channel", "%q is not a channel name (stable, beta, edge, or lowercase letters, digits and '-', up to 32)", clip(m.Channel))
	}
	if m.Data != nil && len(m.Data.Description) > MaxDescription {
		ps.add("data.description", "%d bytes, over the %d-byte cap", len(m.Data.Description), MaxDescription)
	}
}

func checkID(id string) string {
	switch {
	case id == "":
		return "missing: a lowercase app id such as org.example.notes"
	case len(id) < 2 || len(id) > maxIDLen:
		return fmt.Sprintf("%q must be 2 to %d characters", clip(id), maxIDLen)
	case !idRe.MatchString(id):
		return fmt.Sprintf("%q must be lowercase letters and digits, with single '-' or '.' between them", clip(id))
	}
	return ""
}

func (m *Manifest) validateSecrets(ps *problems) map[string]bool {
	secrets := map[string]bool{}
	if len(m.GeneratedSecrets) > MaxSecrets {
		ps.add("generated_secrets", "%d secrets, over the cap of %d", len(m.GeneratedSecrets), MaxSecrets)
	}
	for i, s := range m.GeneratedSecrets {
		p := fmt.Sprintf("generated_secrets[%d]", i)
		switch {
		case !secretRe.MatchString(s.Name):
			ps.add(p+".name", "%q must match [a-z][a-z0-9_]{0,63}", clip(s.Name))
		case secrets[s.Name]:
			ps.add(p+".name", "%q is declared twice", s.Name)
		}
		secrets[s.Name] = true
		if s.Length < MinSecretLength || s.Length > MaxSecretLength {
			ps.add(p+".length", "%d is out of range %d..%d", s.Length, MinSecretLength, MaxSecretLength)
		}
		if s.Charset != "" && !slices.Contains(SecretCharsets, s.Charset) {
			ps.add(p+".charset", "%q is not one of %s", clip(s.Charset), strings.Join(SecretCharsets, ", "))
		}
	}
	return secrets
}

// validateContainerNames checks the count and the names, and returns the
// index of each valid name.
func (m *Manifest) validateContainerNames(ps *problems) map[string]int {
	names := map[string]int{}
	if len(m.Containers) == 0 {
		ps.add("containers", "at least one container is needed")
	}
	if len(m.Containers) > MaxContainers {
		ps.add("containers", "%d containers, over the cap of %d", len(m.Containers), MaxContainers)
	}
	for i, c := range m.Containers {
		p := fmt.Sprintf("containers[%d].name", i)
		switch _, dup := names[c.Name]; {
		case c.Name == "":
			ps.add(p, "missing")
		case !dnsLabelRe.MatchString(c.Name):
			ps.add(p, "%q must be a DNS label: lowercase letters, digits and inner '-', up to 63", clip(c.Name))
		case dup:
			ps.add(p, "%q is used by containers[%d] too", c.Name, names[c.Name])
		default:
			names[c.Name] = i
		}
	}
	return names
}

func validateContainer(ps *problems, p string, c *Container, secrets map[string]bool, hostPorts map[string]string, signed bool) {
	im := c.Image
	if signed {
		im.Archive = ""
	}
	validateImage(ps, p+".image", &im)
	validateArgs(ps, p+".command", c.Command, false)
	validateEnv(ps, p+".env", c.Env, secrets)
	containerPorts := validatePorts(ps, p+".ports", c.Ports, hostPorts)
	validateVolumes(ps, p+".volumes", c.Volumes)
	if c.Health != nil {
		validateHealth(ps, p+".health", c.Health, c.Name, containerPorts)
	}
	if c.Resources != nil {
		validateResources(ps, p+".resources", c.Resources)
	}
	if c.User != "" {
		if msg := checkUser(c.User); msg != "" {
			ps.add(p+".user", "%s", msg)
		}
	}
	validateRootless(ps, p, c)
}

func validateImage(ps *problems, p string, im *Image) {
	if im.Ref != "" && (len(im.Ref) > maxRefLen || strings.ContainsFunc(im.Ref, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) })) {
		ps.add(p+".ref", "must be an image name of at most %d printable characters without spaces", maxRefLen)
	}
	if im.Archive != "" {
		if msg := checkRelPath(im.Archive); msg != "" {
			ps.add(p+".archive", "%s", msg)
		}
	}
	if im.CID == "" && im.Digest == "" && im.Archive == "" {
		if im.Ref != "" {
			ps.add(p, "%q is a floating tag: pin it by cid and digest (or give archive: the OCI archive to compute them from)", clip(im.Ref))
		} else {
			ps.add(p, "missing: pin the image by cid and digest (or give archive: the OCI archive to compute them from)")
		}
		return
	}
	if im.CID == "" {
		if im.Archive == "" {
			ps.add(p+".cid", "missing: the BLAKE3 CID of the image's OCI archive (archy app cid, or give archive:)")
		}
	} else if _, err := cas.Parse(im.CID); err != nil {
		ps.add(p+".cid", "%q is not a BLAKE3 CIDv1: %v", clip(im.CID), err)
	}
	if im.Digest == "" {
		if im.Archive == "" {
			ps.add(p+".digest", "missing: the image's manifest digest (sha256:<64 hex>)")
		}
	} else if !digestRe.MatchString(im.Digest) {
		ps.add(p+".digest", "%q is not sha256:<64 lowercase hex>", clip(im.Digest))
	}
	if im.Size < 0 || im.Size > MaxImageSize {
		ps.add(p+".size", "%d is not an archive size (1 to %d bytes)", im.Size, int64(MaxImageSize))
	}
	if i := strings.LastIndex(im.Ref, "@"); i >= 0 && im.Digest != "" && im.Ref[i+1:] != im.Digest {
		ps.add(p+".ref", "pins digest %s but image.digest is %s", clip(im.Ref[i+1:]), clip(im.Digest))
	}
}

func validateArgs(ps *problems, p string, args []string, required bool) {
	if required && len(args) == 0 {
		ps.add(p, "missing: the command to run")
	}
	if len(args) > MaxCommandArgs {
		ps.add(p, "%d arguments, over the cap of %d", len(args), MaxCommandArgs)
	}
	for i, a := range args {
		switch {
		case len(a) > MaxArgBytes:
			ps.add(fmt.Sprintf("%s[%d]", p, i), "%d bytes, over the %d-byte cap", len(a), MaxArgBytes)
		case strings.IndexByte(a, 0) >= 0:
			ps.add(fmt.Sprintf("%s[%d]", p, i), "contains a NUL byte")
		}
	}
}

func validateEnv(ps *problems, p string, env []EnvVar, secrets map[string]bool) {
	if len(env) > MaxEnv {
		ps.add(p, "%d entries, over the cap of %d", len(env), MaxEnv)
	}
	seen := map[string]int{}
	for i, e := range env {
		ep := fmt.Sprintf("%s[%d]", p, i)
		switch j, dup := seen[e.Name]; {
		case !envNameRe.MatchString(e.Name) || len(e.Name) > envFieldLen:
			ps.add(ep+".name", "%q must match [A-Za-z_][A-Za-z0-9_]*", clip(e.Name))
		case dup:
			ps.add(ep+".name", "%q is set by %s[%d] too", e.Name, p, j)
		default:
			seen[e.Name] = i
		}
		switch {
		case e.Value == "" && e.Secret == "":
			ps.add(ep, "set exactly one of value or secret")
		case e.Value != "" && e.Secret != "":
			ps.add(ep, "set exactly one of value or secret, not both")
		case e.Secret != "" && !secrets[e.Secret]:
			ps.add(ep+".secret", "%q is not declared in generated_secrets", clip(e.Secret))
		}
		if len(e.Value) > MaxEnvValueBytes {
			ps.add(ep+".value", "%d bytes, over the %d-byte cap", len(e.Value), MaxEnvValueBytes)
		} else if strings.IndexByte(e.Value, 0) >= 0 {
			ps.add(ep+".value", "contains a NUL byte")
		}
	}
}

// validatePorts checks a container's ports and records its host ports in
// hostPorts ("8080/tcp" → field path) to find clashes across the app. It
// returns the container's valid container ports.
func validatePorts(ps *problems, p string, ports []Port, hostPorts map[string]string) map[int]bool {
	if len(ports) > MaxPorts {
		ps.add(p, "%d ports, over the cap of %d", len(ports), MaxPorts)
	}
	own := map[int]bool{}
	seen := map[string]int{}
	for i, pt := range ports {
		pp := fmt.Sprintf("%s[%d]", p, i)
		proto := pt.Protocol
		if proto == "" {
			proto = "tcp"
		}
		if proto != "tcp" && proto != "udp" {
			ps.add(pp+".protocol", "%q must be tcp or udp", clip(pt.Protocol))
		}
		okC := pt.Container >= 1 && pt.Container <= 65535
		if !okC {
			ps.add(pp+".container", "%d is not a port (1..65535)", pt.Container)
		} else {
			k := fmt.Sprintf("%d/%s", pt.Container, proto)
			if j, dup := seen[k]; dup {
				ps.add(pp+".container", "%s is declared twice in this container (%s[%d])", k, p, j)
			} else {
				seen[k] = i
			}
			own[pt.Container] = true
		}
		if pt.Host == 0 {
			// Not published: reachable only from the app's own network.
		} else if pt.Host < 1 || pt.Host > 65535 {
			ps.add(pp+".host", "%d is not a port (1..65535, or 0/absent to keep it inside the app)", pt.Host)
		} else {
			k := fmt.Sprintf("%d/%s", pt.Host, proto)
			if other, dup := hostPorts[k]; dup {
				ps.add(pp+".host", "host port %s is already published by %s", k, other)
			} else {
				hostPorts[k] = pp
			}
		}
	}
	return own
}

func validateVolumes(ps *problems, p string, vols []Volume) {
	if len(vols) > MaxVolumes {
		ps.add(p, "%d volumes, over the cap of %d", len(vols), MaxVolumes)
	}
	mounts := map[string]int{}
	for i, v := range vols {
		vp := fmt.Sprintf("%s[%d]", p, i)
		if engineSocket(v.Path) {
			ps.add(vp+".path", "%q is, holds or lies in a container engine socket or state folder (Docker/Podman): refused, apps never reach the engine", clip(v.Path))
		} else if msg := checkRelPath(v.Path); msg != "" {
			ps.add(vp+".path", "%s", msg)
		}
		if msg := checkMount(v.Mount); msg != "" {
			ps.add(vp+".mount", "%s", msg)
		} else if j, dup := mounts[v.Mount]; dup {
			ps.add(vp+".mount", "%s is mounted by %s[%d] too", v.Mount, p, j)
		} else {
			mounts[v.Mount] = i
		}
	}
}

// checkRelPath checks a path inside the app's folder: relative, in
// cleaned form, no "..", and plain characters only (no NUL, backslash,
// ':' or ',' that would change a -v or Quadlet Volume= line).
func checkRelPath(s string) string {
	switch {
	case s == "":
		return "missing: a folder relative to the app's data folder, such as data or db/pg"
	case len(s) > maxPathLen:
		return fmt.Sprintf("%d bytes, over the %d-byte cap", len(s), maxPathLen)
	case strings.IndexByte(s, 0) >= 0:
		return "contains a NUL byte"
	case strings.Contains(s, `\`):
		return fmt.Sprintf("%q contains a backslash: use '/' and plain names", clip(s))
	case strings.HasPrefix(s, "/") || strings.HasPrefix(s, "~") || strings.HasPrefix(s, "$") || strings.HasPrefix(s, "%"):
		return fmt.Sprintf("%q is a host path: only paths relative to the app's data folder are allowed", clip(s))
	case slices.Contains(strings.Split(s, "/"), ".."):
		return fmt.Sprintf("%q climbs out with \"..\": only paths inside the app's data folder are allowed", clip(s))
	case s == ".":
		return "\".\" is the whole app folder: name a subfolder"
	case path.Clean(s) != s:
		return fmt.Sprintf("%q is not in clean form: write %q", clip(s), path.Clean(s))
	}
	for _, part := range strings.Split(s, "/") {
		if !pathPartRe.MatchString(part) {
			return fmt.Sprintf("%q: %q may hold only letters, digits and . _ + @ -", clip(s), clip(part))
		}
	}
	return ""
}

// reservedMounts are container paths the runtime owns.
var reservedMounts = []string{"/proc", "/sys", "/dev"}

func checkMount(s string) string {
	switch {
	case s == "":
		return "missing: the absolute path inside the container"
	case len(s) > maxPathLen:
		return fmt.Sprintf("%d bytes, over the %d-byte cap", len(s), maxPathLen)
	case strings.IndexByte(s, 0) >= 0:
		return "contains a NUL byte"
	case engineSocketTarget(s):
		return fmt.Sprintf("%q is a container engine socket path: refused, apps never see or impersonate the engine", clip(s))
	case !strings.HasPrefix(s, "/"):
		return fmt.Sprintf("%q must be an absolute path inside the container", clip(s))
	case s == "/":
		return "\"/\" would hide the container's whole file system"
	case path.Clean(s) != s:
		return fmt.Sprintf("%q is not in clean form: write %q", clip(s), path.Clean(s))
	}
	for _, r := range reservedMounts {
		if s == r || strings.HasPrefix(s, r+"/") {
			return fmt.Sprintf("%q is under %s, which the container runtime owns", clip(s), r)
		}
	}
	for _, part := range strings.Split(s[1:], "/") {
		if !pathPartRe.MatchString(part) {
			return fmt.Sprintf("%q: %q may hold only letters, digits and . _ + @ -", clip(s), clip(part))
		}
	}
	return ""
}

// engineSockets are the sockets (and state folders) of container engines,
// rootful and rootless; "#" stands for any one path element (a uid, a
// home folder). A volume may not name one, anything under one, or any
// folder that holds one.
var engineSockets = []string{
	"/run/docker.sock",
	"/var/run/docker.sock",
	"/run/podman/podman.sock",
	"/var/run/podman/podman.sock",
	"/run/user/#/podman/podman.sock",
	"/run/user/#/docker.sock",
	"/var/run/user/#/podman/podman.sock",
	"/var/run/user/#/docker.sock",
	"/run/containerd/containerd.sock",
	"/var/run/containerd/containerd.sock",
	"/run/crio/crio.sock",
	"/var/run/crio/crio.sock",
	"/var/lib/docker",
	"/var/lib/containers",
	"/home/#/.local/share/containers",
	"/root/.local/share/containers",
}

// normaliseHostPath turns the spellings an author may try for a host path
// ($XDG_RUNTIME_DIR, ${XDG_RUNTIME_DIR}, systemd's %t, ~, backslashes)
// into one absolute, cleaned path, or "" when s is not a host path.
func normaliseHostPath(s string) string {
	s = strings.ReplaceAll(s, `\`, "/")
	for _, pre := range []string{"${XDG_RUNTIME_DIR}", "$XDG_RUNTIME_DIR", "%t"} {
		if strings.HasPrefix(s, pre) {
			s = "/run/user/#" + s[len(pre):]
		}
	}
	for _, pre := range []string{"${HOME}", "$HOME", "%h", "~"} {
		if strings.HasPrefix(s, pre) {
			s = "/home/#" + s[len(pre):]
		}
	}
	if !strings.HasPrefix(s, "/") {
		return ""
	}
	return path.Clean(s)
}

// engineSocket reports whether a volume's host path names a container
// engine socket, something under one, or a folder holding one ("/",
// "/run", "/run/user/1000"...).
func engineSocket(s string) bool {
	p := normaliseHostPath(s)
	if p == "" {
		return socketName(s)
	}
	if socketName(p) {
		return true
	}
	for _, sock := range engineSockets {
		if pathMatch(p, sock) || pathMatch(sock, p) {
			return true
		}
	}
	return false
}

// engineSocketTarget reports whether a mount target inside the container
// is an engine socket path (or under one): an app must not be handed
// something that looks like the engine.
func engineSocketTarget(s string) bool {
	p := normaliseHostPath(s)
	if p == "" {
		return socketName(s)
	}
	if socketName(p) {
		return true
	}
	for _, sock := range engineSockets {
		if strings.HasSuffix(sock, ".sock") && pathMatch(p, sock) {
			return true
		}
	}
	return false
}

// socketName reports whether a path's last element is an engine socket's
// file name.
func socketName(s string) bool {
	base := strings.ToLower(path.Base(strings.ReplaceAll(s, `\`, "/")))
	for _, n := range []string{"docker.sock", "podman.sock", "containerd.sock", "crio.sock", "dockershim.sock"} {
		if base == n {
			return true
		}
	}
	return false
}

// pathMatch reports whether the pattern's elements are a prefix of p's
// (so p is the pattern or under it); "#" in either matches any element.
func pathMatch(p, pattern string) bool {
	pe := strings.Split(strings.Trim(p, "/"), "/")
	qe := strings.Split(strings.Trim(pattern, "/"), "/")
	if pattern == "/" {
		return true
	}
	if p == "/" {
		return false
	}
	if len(qe) > len(pe) {
		return false
	}
	for i, q := range qe {
		if q != pe[i] && q != "#" && pe[i] != "#" {
			return false
		}
	}
	return true
}

func validateHealth(ps *problems, p string, h *Health, container string, ports map[int]bool) {
	n := 0
	if h.HTTP != nil {
		n++
		checkProbePort(ps, p+".http.port", h.HTTP.Port, container, ports)
		if h.HTTP.Path != "" && (!strings.HasPrefix(h.HTTP.Path, "/") || len(h.HTTP.Path) > maxPathLen ||
			strings.ContainsFunc(h.HTTP.Path, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) })) {
			ps.add(p+".http.path", "%q must be a URL path starting with '/', without spaces", clip(h.HTTP.Path))
		}
	}
	if h.TCP != nil {
		n++
		checkProbePort(ps, p+".tcp.port", h.TCP.Port, container, ports)
	}
	if h.Exec != nil {
		n++
		validateArgs(ps, p+".exec", h.Exec, true)
	}
	if n != 1 {
		ps.add(p, "set exactly one of http, tcp or exec (found %d)", n)
	}
	checkDuration(ps, p+".interval", h.Interval, MinProbeDuration, MaxProbeDuration)
	checkDuration(ps, p+".timeout", h.Timeout, MinProbeDuration, MaxProbeDuration)
	checkDuration(ps, p+".start_period", h.StartPeriod, 0, MaxStartPeriod)
	if h.Retries < 0 || h.Retries > MaxHealthRetries {
		ps.add(p+".retries", "%d is out of range 0..%d", h.Retries, MaxHealthRetries)
	}
}

func checkProbePort(ps *problems, p string, port int, container string, ports map[int]bool) {
	switch {
	case port < 1 || port > 65535:
		ps.add(p, "%d is not a port (1..65535)", port)
	case !ports[port]:
		ps.add(p, "%d is not one of container %s's ports (declare it under ports)", port, container)
	}
}

func checkDuration(ps *problems, p, s string, lo, hi time.Duration) {
	if s == "" {
		return
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		ps.add(p, "%q is not a duration such as 2s or 1m30s", clip(s))
		return
	}
	if d < lo || d > hi {
		ps.add(p, "%s is out of range %s..%s", d, lo, hi)
	}
}

func validateResources(ps *problems, p string, r *Resources) {
	if r.Memory != "" {
		n, err := ParseMemory(r.Memory)
		switch {
		case err != nil:
			ps.add(p+".memory", "%q is not a size such as 512m or 2g (binary units)", clip(r.Memory))
		case n < MinMemory || n > MaxMemory:
			ps.add(p+".memory", "%s is out of range 4MiB..64GiB", r.Memory)
		}
	}
	if r.CPUs != 0 && (r.CPUs < MinCPUs || r.CPUs > MaxCPUs) {
		ps.add(p+".cpus", "%g is out of range %g..%d", r.CPUs, MinCPUs, MaxCPUs)
	}
	if r.PIDs != 0 && (r.PIDs < 1 || r.PIDs > MaxPIDs) {
		ps.add(p+".pids", "%d is out of range 1..%d", r.PIDs, MaxPIDs)
	}
}

// ParseMemory parses a memory size: a byte count with an optional k, m or
// g suffix (binary, as Podman reads them; "ki", "mi", "gi" and a trailing
// "b" are accepted too).
func ParseMemory(s string) (int64, error) {
	sub := memoryRe.FindStringSubmatch(s)
	if sub == nil {
		return 0, fmt.Errorf("parse memory %q: not a size", clip(s))
	}
	n, err := strconv.ParseInt(sub[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse memory %q: %w", clip(s), err)
	}
	shift := 0
	if sub[2] != "" {
		shift = map[byte]int{'k': 10, 'm': 20, 'g': 30}[byte(unicode.ToLower(rune(sub[2][0])))]
	}
	if n > (1<<62)>>shift {
		return 0, fmt.Errorf("parse memory %q: too large", clip(s))
	}
	return n << shift, nil
}

func checkUser(s string) string {
	parts := strings.Split(s, ":")
	if len(parts) > 2 {
		return fmt.Sprintf("%q must be uid[:gid] or name[:group]", clip(s))
	}
	for _, part := range parts {
		if part == "" || len(part) > maxUserPartLength {
			return fmt.Sprintf("%q must be uid[:gid] or name[:group]", clip(s))
		}
		if part[0] >= '0' && part[0] <= '9' {
			if n, err := strconv.ParseUint(part, 10, 32); err != nil || n > 1<<32-2 {
				return fmt.Sprintf("%q: %q is not a numeric id", clip(s), clip(part))
			}
		} else if !userNameRe.MatchString(part) {
			return fmt.Sprintf("%q: %q is not a user or group name", clip(s), clip(part))
		}
	}
	return ""
}

// validateRootless refuses everything that would let a container reach
// past its rootless sandbox. security_opt is refused outright: the node
// sets the security options itself (no-new-privileges, default seccomp
// and SELinux/AppArmor profiles), and every option an app could add only
// weakens them.
func validateRootless(ps *problems, p string, c *Container) {
	if c.Privileged {
		ps.add(p+".privileged", "privileged containers are refused: archy runs rootless Podman only")
	}
	seen := map[string]bool{}
	for i, capName := range c.CapAdd {
		cp := fmt.Sprintf("%s.cap_add[%d]", p, i)
		norm := strings.TrimPrefix(strings.ToUpper(capName), "CAP_")
		switch {
		case slices.Contains(AllowedCapabilities, capName):
			if seen[capName] {
				ps.add(cp, "%s is listed twice", capName)
			}
			seen[capName] = true
		case slices.Contains(AllowedCapabilities, norm):
			ps.add(cp, "write %q as %s", clip(capName), norm)
		default:
			ps.add(cp, "%q is refused: only %s may be added", clip(capName), strings.Join(AllowedCapabilities, ", "))
		}
	}
	for _, ns := range []struct{ field, v, what string }{
		{"network", c.Network, "network"},
		{"pid", c.PID, "PID namespace"},
		{"ipc", c.IPC, "IPC namespace"},
		{"userns", c.UserNS, "user namespace"},
	} {
		switch {
		case ns.v == "":
		case strings.EqualFold(ns.v, "host") || strings.HasPrefix(strings.ToLower(ns.v), "host:"):
			ps.add(p+"."+ns.field, "the host's %s is refused: apps stay in their own (rootless invariant)", ns.what)
		default:
			ps.add(p+"."+ns.field, "%q is not supported: the node gives each app its own %s; leave it empty", clip(ns.v), ns.what)
		}
	}
	for i, d := range c.Devices {
		ps.add(fmt.Sprintf("%s.devices[%d]", p, i), "%q: host devices are refused (rootless invariant)", clip(d))
	}
	if len(c.Sysctls) > 0 {
		keys := make([]string, 0, len(c.Sysctls))
		for k := range c.Sysctls {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			ps.add(p+".sysctls."+clip(k), "sysctls are refused: the node sets the kernel parameters of containers")
		}
	}
	for i, o := range c.SecurityOpt {
		ps.add(fmt.Sprintf("%s.security_opt[%d]", p, i), "%q is refused: %s", clip(o), securityOptReason(o))
	}
}

func securityOptReason(o string) string {
	l := strings.ToLower(strings.ReplaceAll(o, ":", "="))
	switch {
	case strings.HasPrefix(l, "seccomp=unconfined"):
		return "it disables seccomp"
	case strings.HasPrefix(l, "label=disable"), strings.HasPrefix(l, "label=type=spc_t"):
		return "it disables SELinux confinement"
	case strings.HasPrefix(l, "apparmor=unconfined"):
		return "it disables AppArmor"
	case strings.HasPrefix(l, "no-new-privileges=false"):
		return "it lets processes gain privileges"
	case strings.HasPrefix(l, "systempaths=unconfined"), strings.HasPrefix(l, "unmask"):
		return "it unmasks kernel file systems"
	}
	return "the node sets security options itself; apps cannot change them"
}

func (m *Manifest) validateDependencies(ps *problems, names map[string]int) {
	for i, c := range m.Containers {
		seen := map[string]bool{}
		for j, d := range c.DependsOn {
			p := fmt.Sprintf("containers[%d].depends_on[%d]", i, j)
			_, exists := names[d]
			switch {
			case d == c.Name:
				ps.add(p, "container %s depends on itself", clip(d))
			case !exists:
				ps.add(p, "%q is not a container of this app", clip(d))
			case seen[d]:
				ps.add(p, "%q is listed twice", d)
			}
			seen[d] = true
		}
	}
	// Cycles: depth-first search over valid edges, reporting each cycle once
	// at the container where it was found.
	const (
		white = iota
		grey
		black
	)
	color := make([]int, len(m.Containers))
	var stack []int
	var visit func(i int)
	visit = func(i int) {
		color[i] = grey
		stack = append(stack, i)
		for _, d := range m.Containers[i].DependsOn {
			j, ok := names[d]
			if !ok || j == i {
				continue
			}
			switch color[j] {
			case grey:
				k := slices.Index(stack, j)
				cycle := make([]string, 0, len(stack)-k+1)
				for _, s := range stack[k:] {
					cycle = append(cycle, m.Containers[s].Name)
				}
				cycle = append(cycle, m.Containers[j].Name)
				ps.add(fmt.Sprintf("containers[%d].depends_on", i), "dependency cycle: %s", strings.Join(cycle, " → "))
			case white:
				visit(j)
			}
		}
		stack = stack[:len(stack)-1]
		color[i] = black
	}
	for i := range m.Containers {
		if color[i] == white {
			visit(i)
		}
	}
}

func (m *Manifest) validateRequires(ps *problems) {
	if len(m.Requires) > MaxRequires {
		ps.add("requires", "%d entries, over the cap of %d", len(m.Requires), MaxRequires)
	}
	seen := map[string]bool{}
	for i, r := range m.Requires {
		p := fmt.Sprintf("requires[%d]", i)
		if msg := checkID(r.ID); msg != "" {
			ps.add(p+".id", "%s", msg)
		} else if r.ID == m.ID {
			ps.add(p+".id", "an app cannot require itself")
		} else if seen[r.ID] {
			ps.add(p+".id", "%q is required twice", r.ID)
		}
		seen[r.ID] = true
		if r.Version != "" {
			if _, err := semver.NewConstraint(r.Version); err != nil || len(r.Version) > maxConstraintLen {
				ps.add(p+".version", "%q is not a semver range such as \">=1.2.0 <2.0.0\" or \"^1.4\"", clip(r.Version))
			}
		}
	}
}

func (m *Manifest) validateUI(ps *problems, names map[string]int) {
	if m.UI == nil {
		return
	}
	i, ok := names[m.UI.Container]
	if !ok {
		ps.add("ui.container", "%q is not a container of this app", clip(m.UI.Container))
	} else {
		found := false
		for _, pt := range m.Containers[i].Ports {
			found = found || pt.Container == m.UI.Port
		}
		if !found {
			ps.add("ui.port", "%d is not one of container %s's ports (declare it under ports)", m.UI.Port, m.UI.Container)
		}
	}
	if m.UI.Path != "" && (!strings.HasPrefix(m.UI.Path, "/") || len(m.UI.Path) > maxPathLen ||
		strings.ContainsFunc(m.UI.Path, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) })) {
		ps.add("ui.path", "%q must be a URL path starting with '/', without spaces", clip(m.UI.Path))
	}
}

// walkStrings refuses invalid UTF-8 in any string of the manifest: the
// canonical form would silently replace it.
func walkStrings(ps *problems, v reflect.Value, p string) {
	switch v.Kind() {
	case reflect.String:
		if !utf8.ValidString(v.String()) {
			ps.add(p, "is not valid UTF-8")
		}
	case reflect.Pointer:
		if !v.IsNil() {
			walkStrings(ps, v.Elem(), p)
		}
	case reflect.Slice:
		for i := range v.Len() {
			walkStrings(ps, v.Index(i), fmt.Sprintf("%s[%d]", p, i))
		}
	case reflect.Map:
		iter := v.MapRange()
		for iter.Next() {
			k := iter.Key().String()
			if !utf8.ValidString(k) {
				ps.add(p, "has a key that is not valid UTF-8")
			}
			walkStrings(ps, iter.Value(), p+"."+strings.ToValidUTF8(k, "?"))
		}
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
			fp := name
			if p != "" {
				fp = p + "." + name
			}
			walkStrings(ps, v.Field(i), fp)
		}
	}
}

// printable reports whether s is printable text; multiline allows
// newlines and tabs.
func printable(s string, multiline bool) bool {
	for _, r := range s {
		if multiline && (r == '\n' || r == '\t') {
			continue
		}
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// clip keeps user input short and printable in messages.
func clip(s string) string {
	s = strings.ToValidUTF8(s, "?")
	if len(s) > 80 {
		s = s[:77] + "..."
		s = strings.ToValidUTF8(s, "")
	}
	return s
}
