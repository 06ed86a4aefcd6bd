package podman

import (
	"errors"
	"testing"
	"time"

	"github.com/containers/podman/v5/libpod/define"

	"github.com/archy-node/archy/orchestrator"
)

// What Podman reports for a container that took the whole spec.
func applied() (orchestrator.ContainerSpec, *define.InspectContainerData) {
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
	}
	s = s.Normalized()
	d := &define.InspectContainerData{
		Name: "archy-x", ImageName: "localhost/x:1",
		Config: &define.InspectContainerConfig{
			Labels: map[string]string{"io.archy.app": "x", "other": "y"}, Env: []string{"PATH=/bin", "A=1"},
			Entrypoint: []string{"/bin/sh", "-c"}, Cmd: []string{"httpd", "-f"}, User: "1000:1000", StopTimeout: 5,
		},
		HostConfig: &define.InspectContainerHostConfig{
			PortBindings:  map[string][]define.InspectHostPort{"80/tcp": {{HostIP: "127.0.0.1", HostPort: "8080"}}},
			RestartPolicy: &define.InspectRestartPolicy{Name: "on-failure", MaximumRetryCount: 2},
			Memory:        1 << 20, CpuPeriod: 100000, CpuQuota: 50000, PidsLimit: 10,
		},
		Mounts: []define.InspectMount{{Source: "/d", Destination: "/data", RW: true}},
		NetworkSettings: &define.InspectNetworkSettings{Networks: map[string]*define.InspectAdditionalNetwork{
			"archy-net": {InspectBasicNetworkConfig: define.InspectBasicNetworkConfig{}, Aliases: []string{"web", "abc123"}},
		}},
	}
	return s, d
}

// Podman 4.3 drops create-spec fields it does not know and rootless cgroup
// v1 drops limits: each dropped field must be caught and named.
func TestCompareCatchesEveryDroppedField(t *testing.T) {
	s, d := applied()
	if err := compare(s, d); err != nil {
		t.Fatalf("fully applied spec: %v", err)
	}
	for field, drop := range map[string]func(*define.InspectContainerData){
		"labels[io.archy.app]": func(d *define.InspectContainerData) { delete(d.Config.Labels, "io.archy.app") },
		"env[A]":               func(d *define.InspectContainerData) { d.Config.Env = d.Config.Env[:1] },
		"command":              func(d *define.InspectContainerData) { d.Config.Cmd = nil },
		"entrypoint":           func(d *define.InspectContainerData) { d.Config.Entrypoint = nil },
		"user":                 func(d *define.InspectContainerData) { d.Config.User = "" },
		"ports[80/tcp]":        func(d *define.InspectContainerData) { d.HostConfig.PortBindings["80/tcp"][0].HostIP = "" },
		"mounts[/data]":        func(d *define.InspectContainerData) { d.Mounts[0].RW = false },
		"network":              func(d *define.InspectContainerData) { d.NetworkSettings.Networks = nil },
		"aliases":              func(d *define.InspectContainerData) { d.NetworkSettings.Networks["archy-net"].Aliases = nil },
		"restart":              func(d *define.InspectContainerData) { d.HostConfig.RestartPolicy = nil },
		"restart.max_retries":  func(d *define.InspectContainerData) { d.HostConfig.RestartPolicy.MaximumRetryCount = 0 },
		"stop_timeout":         func(d *define.InspectContainerData) { d.Config.StopTimeout = 10 },
		"resources.memory":     func(d *define.InspectContainerData) { d.HostConfig.Memory = 0 },
		"resources.cpus":       func(d *define.InspectContainerData) { d.HostConfig.CpuQuota = 0 },
		"resources.pids":       func(d *define.InspectContainerData) { d.HostConfig.PidsLimit = 0 },
		"image":                func(d *define.InspectContainerData) { d.ImageName = "localhost/other:1" },
	} {
		t.Run(field, func(t *testing.T) {
			s, d := applied()
			drop(d)
			err := compare(s, d)
			var se *orchestrator.SpecError
			if !errors.Is(err, orchestrator.ErrSpecNotApplied) || !errors.As(err, &se) || se.Field != field {
				t.Fatalf("dropped %s: %v, want a SpecError naming it", field, err)
			}
		})
	}
}
