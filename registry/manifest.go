// Package registry owns what apps are: the archy.app/v1 manifest schema, its
// validation, its canonical bytes and CID, signing and verifying manifests,
// the signed catalog of a curated registry, and the node's store of
// verified manifests.
package registry

import "time"

// Schema is the only manifest schema this version reads and writes.
const Schema = "archy.app/v1"

// ManifestPayloadType is the DSSE payload type of a signed manifest.
const ManifestPayloadType = "application/vnd.archy.manifest.v1+json"

// Manifest is an app as its publisher declares it. Field names are the
// contract in PRODUCT.md; JSON names are the canonical (signed) form and the
// YAML authoring form alike.
type Manifest struct {
	Schema      string `json:"schema"`
	ID          string `json:"id"`
	Name        string `json:"name"`
	Version     string `json:"version"`
	Publisher   string `json:"publisher"`
	Description string `json:"description,omitempty"`
	// Channel is the release channel ("stable" when empty).
	Channel          string      `json:"channel,omitempty"`
	Containers       []Container `json:"containers"`
	Requires         []Require   `json:"requires,omitempty"`
	GeneratedSecrets []Secret    `json:"generated_secrets,omitempty"`
	UI               *UI         `json:"ui,omitempty"`
	Data             *Data       `json:"data,omitempty"`
}

// Container is one container of the app's stack.
type Container struct {
	Name      string     `json:"name"`
	Image     Image      `json:"image"`
	Command   []string   `json:"command,omitempty"`
	Env       []EnvVar   `json:"env,omitempty"`
	Ports     []Port     `json:"ports,omitempty"`
	Volumes   []Volume   `json:"volumes,omitempty"`
	Health    *Health    `json:"health,omitempty"`
	DependsOn []string   `json:"depends_on,omitempty"`
	Resources *Resources `json:"resources,omitempty"`
	// User is "uid[:gid]" inside the container; the app's data folder is
	// owned so that this user can write it.
	User string `json:"user,omitempty"`

	// The fields below exist so that validation can refuse them by name
	// with a clear message (the rootless invariants); any value other than
	// the zero value or an allow-listed one is an error.
	Privileged  bool              `json:"privileged,omitempty"`
	CapAdd      []string          `json:"cap_add,omitempty"`
	Network     string            `json:"network,omitempty"` // "" (the app's own network) only; "host" refused
	PID         string            `json:"pid,omitempty"`     // "host" refused
	IPC         string            `json:"ipc,omitempty"`     // "host" refused
	UserNS      string            `json:"userns,omitempty"`  // "host" refused
	Devices     []string          `json:"devices,omitempty"`
	Sysctls     map[string]string `json:"sysctls,omitempty"`
	SecurityOpt []string          `json:"security_opt,omitempty"`
}

// MaxImageSize is the largest image archive a manifest may pin (64 GiB).
const MaxImageSize = 64 << 30

// Image pins a container image by content address. Ref is a human name
// (the tag Podman shows); it is never enough on its own.
type Image struct {
	Ref string `json:"ref,omitempty"`
	// CID is the BLAKE3 CID of the image's OCI archive in the swarm.
	CID string `json:"cid,omitempty"`
	// Digest is the image's own OCI manifest digest ("sha256:…").
	Digest string `json:"digest,omitempty"`
	// Size is the length in bytes of the OCI archive CID names, signed
	// with it: a node fetching the archive from the swarm refuses a DAG
	// declaring any other size and never fetches more. Required to fetch
	// from the swarm; computed from Archive like CID.
	Size int64 `json:"size,omitempty"`
	// Archive is an authoring-only path, relative to the app folder, of an
	// OCI archive; CID and Digest are computed from it when the manifest
	// is loaded, and it never appears in the signed form.
	Archive string `json:"archive,omitempty"`
}

// EnvVar is one environment variable: a literal Value, or the value of
// one of the app's generated secrets.
type EnvVar struct {
	Name   string `json:"name"`
	Value  string `json:"value,omitempty"`
	Secret string `json:"secret,omitempty"`
}

// Port declares a container port and, when Host is set, publishes it on
// the host (127.0.0.1 unless the owner says otherwise). Without Host the
// port is reachable only by the app's other containers.
type Port struct {
	Container int    `json:"container"`
	Host      int    `json:"host,omitempty"`
	Protocol  string `json:"protocol,omitempty"` // tcp (default) or udp
}

// Volume mounts a folder of the app's own data folder into the container.
type Volume struct {
	// Path is relative to the app's data folder: no absolute paths, no "..".
	Path     string `json:"path"`
	Mount    string `json:"mount"`
	ReadOnly bool   `json:"read_only,omitempty"`
}

// Health is a probe run by the node's reconciler: exactly one of HTTP, TCP
// or Exec. Fields left empty take the DefaultHealth values.
type Health struct {
	HTTP        *HTTPProbe `json:"http,omitempty"`
	TCP         *TCPProbe  `json:"tcp,omitempty"`
	Exec        []string   `json:"exec,omitempty"`
	Interval    string     `json:"interval,omitempty"`     // Go duration, default DefaultHealthInterval
	Timeout     string     `json:"timeout,omitempty"`      // default DefaultHealthTimeout
	Retries     int        `json:"retries,omitempty"`      // failures before unhealthy, default DefaultHealthRetries
	StartPeriod string     `json:"start_period,omitempty"` // grace before failures count, default 0
}

// The health settings of a probe whose manifest leaves them out; the
// reconciler and the Quadlet renderer both apply these.
const (
	DefaultHealthInterval = 2 * time.Second
	DefaultHealthTimeout  = 2 * time.Second
	DefaultHealthRetries  = 3
)

// HTTPProbe is healthy when GET Path on the container port answers 2xx/3xx.
type HTTPProbe struct {
	Port int    `json:"port"`
	Path string `json:"path,omitempty"`
}

// TCPProbe is healthy when the container port accepts a connection.
type TCPProbe struct {
	Port int `json:"port"`
}

// Resources caps a container. Memory is bytes with an optional k/m/g
// suffix (binary), CPUs a decimal count of cores.
type Resources struct {
	Memory string  `json:"memory,omitempty"`
	CPUs   float64 `json:"cpus,omitempty"`
	PIDs   int     `json:"pids,omitempty"`
}

// Require names another app this one needs running and healthy.
type Require struct {
	ID      string `json:"id"`
	Version string `json:"version,omitempty"` // semver range, e.g. ">=1.2.0 <2.0.0"
}

// Secret is a value the node generates once per install and keeps across
// reinstalls.
type Secret struct {
	Name   string `json:"name"`
	Length int    `json:"length"`
	// Charset is alnum (default), hex or base64url.
	Charset string `json:"charset,omitempty"`
	// Display marks a credential the owner must see (an admin password);
	// only these are ever shown by the API.
	Display bool `json:"display,omitempty"`
}

// UI is where the app's web page answers.
type UI struct {
	Container string `json:"container"`
	Port      int    `json:"port"` // a container port published by that container
	Path      string `json:"path,omitempty"`
}

// Data describes the app's data folder.
type Data struct {
	Description string `json:"description,omitempty"`
	// Backup marks data worth backing up (informational).
	Backup bool `json:"backup,omitempty"`
}
