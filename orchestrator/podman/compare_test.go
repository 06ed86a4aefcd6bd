package podman

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/archy-node/archy/orchestrator"
)

// What Podman 4.3 reports (GET /containers/{name}/json, trimmed) for a
// container that took the whole spec.
const appliedJSON = `{
 "Id": "0f1e", "Name": "archy-x", "Image": "", "ImageName": "localhost/x:1",
 "State": {"Status": "created", "Pid": 0, "ExitCode": 0, "StartedAt": "0001-01-01T00:00:00Z", "FinishedAt": "0001-01-01T00:00:00Z"},
 "Config": {
  "Labels": {"io.archy.app": "x", "other": "y"}, "Env": ["PATH=/bin", "A=1"],
  "Entrypoint": "/bin/sh -c", "Cmd": ["httpd", "-f"], "User": "1000:1000", "StopTimeout": 5
 },
 "HostConfig": {
  "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]},
  "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 2},
  "Memory": 1048576, "NanoCpus": 0, "CpuPeriod": 100000, "CpuQuota": 50000, "PidsLimit": 10,
  "SecurityOpt": ["no-new-privileges"]
 },
 "EffectiveCaps": ["CAP_CHOWN", "CAP_NET_BIND_SERVICE"],
 "BoundingCaps": ["CAP_CHOWN", "CAP_NET_BIND_SERVICE"],
 "Mounts": [{"Type": "bind", "Source": "/d", "Destination": "/data", "RW": true}],
 "NetworkSettings": {"Networks": {"archy-net": {"Aliases": ["web", "abc123"]}}}
}`

// applied returns a spec and what Podman reports for it.
func applied(t *testing.T) (orchestrator.ContainerSpec, *inspectData) {
	t.Helper()
	s := orchestrator.ContainerSpec{
		Name: "archy-x", Image: "localhost/x:1",
		Entrypoint: []string{"/bin/sh", "-c"}, Command: []string{"httpd", "-f"},
		Env: map[string]string{"A": "1"}, Labels: map[string]string{"io.archy.app": "x"},
		Ports:   []orchestrator.Port{{HostPort: 8080, ContainerPort: 80}},
		Mounts:  []orchestrator.Mount{{Source: "/d", Target: "/data"}},
		Network: "archy-net", Aliases: []string{"web"}, User: "1000:1000",
		Resources:   orchestrator.Resources{MemoryBytes: 1 << 20, NanoCPUs: 5e8, PidsLimit: 10},
		Restart:     orchestrator.RestartPolicy{Name: orchestrator.RestartOnFailure, MaxRetries: 2},
		StopTimeout: 5 * time.Second,
		CapAdd:      []string{"NET_BIND_SERVICE", "CHOWN"},
	}
	s = s.Normalized()
	d := &inspectData{}
	if err := json.Unmarshal([]byte(appliedJSON), d); err != nil {
		t.Fatal(err)
	}
	return s, d
}

// Podman 4.3 drops create-spec fields it does not know and rootless cgroup
// v1 drops limits: each dropped field must be caught and named.
func TestCompareCatchesEveryDroppedField(t *testing.T) {
	s, d := applied(t)
	if err := compare(s, d); err != nil {
		t.Fatalf("fully applied spec: %v", err)
	}
	for field, drop := range map[string]func(*inspectData){
		"labels[io.archy.app]": func(d *inspectData) { delete(d.Config.Labels, "io.archy.app") },
		"env[A]":               func(d *inspectData) { d.Config.Env = d.Config.Env[:1] },
		"command":              func(d *inspectData) { d.Config.Cmd = nil },
		"entrypoint":           func(d *inspectData) { d.Config.Entrypoint = nil },
		"user":                 func(d *inspectData) { d.Config.User = "" },
		"ports[80/tcp]":        func(d *inspectData) { d.HostConfig.PortBindings["80/tcp"][0].HostIP = "" },
		"mounts[/data]":        func(d *inspectData) { d.Mounts[0].RW = false },
		"network":              func(d *inspectData) { d.NetworkSettings.Networks = nil },
		"aliases":              func(d *inspectData) { d.NetworkSettings.Networks["archy-net"].Aliases = nil },
		"restart":              func(d *inspectData) { d.HostConfig.RestartPolicy = nil },
		"restart.max_retries":  func(d *inspectData) { d.HostConfig.RestartPolicy.MaximumRetryCount = 0 },
		"stop_timeout":         func(d *inspectData) { d.Config.StopTimeout = 10 },
		"resources.memory":     func(d *inspectData) { d.HostConfig.Memory = 0 },
		"resources.cpus":       func(d *inspectData) { d.HostConfig.CpuQuota = 0 },
		"resources.pids":       func(d *inspectData) { d.HostConfig.PidsLimit = 0 },
		"image":                func(d *inspectData) { d.ImageName = "localhost/other:1" },
		"capabilities":         func(d *inspectData) { d.BoundingCaps = append(d.BoundingCaps, "CAP_SYS_ADMIN") },
		"security_opt":         func(d *inspectData) { d.HostConfig.SecurityOpt = nil },
	} {
		t.Run(field, func(t *testing.T) {
			s, d := applied(t)
			drop(d)
			err := compare(s, d)
			var se *orchestrator.SpecError
			if !errors.Is(err, orchestrator.ErrSpecNotApplied) || !errors.As(err, &se) || se.Field != field {
				t.Fatalf("dropped %s: %v, want a SpecError naming it", field, err)
			}
		})
	}
}

// A container made from an image ID must hold exactly that image, and its
// seccomp profile must be Podman's default.
func TestCompareImageIDAndSeccomp(t *testing.T) {
	id := "5933988ae51a335d3887d449d971fcfc37d87f5215c53799117f2a34b6465b54"
	s, d := applied(t)
	s.Image, d.Image = id, id
	if err := compare(s, d); err != nil {
		t.Fatalf("same image ID: %v", err)
	}
	d.Image = "ce7ec91359c33e4402a270ed1c35c0cd3502f4ee70d5c961274a81c34d55e0ad"
	if err := compare(s, d); !errors.Is(err, orchestrator.ErrSpecNotApplied) || !strings.Contains(err.Error(), "image") {
		t.Fatalf("other image ID: %v", err)
	}
	s, d = applied(t)
	d.HostConfig.SecurityOpt = append(d.HostConfig.SecurityOpt, "seccomp=unconfined")
	if err := compare(s, d); !errors.Is(err, orchestrator.ErrSpecNotApplied) {
		t.Fatalf("seccomp unconfined: %v", err)
	}
}
