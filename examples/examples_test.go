package examples

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/Masterminds/semver/v3"

	"github.com/archy-node/archy/cas"
	"github.com/archy-node/archy/did"
	"github.com/archy-node/archy/registry"
)

// TestSampleApps loads every release of every sample app strictly, validates
// it, addresses it, and checks the promises README.md makes about them.
func TestSampleApps(t *testing.T) {
	apps, err := Apps(AppsDir())
	if err != nil {
		t.Fatal(err)
	}
	if len(apps) < 6 {
		t.Fatalf("%d sample apps, want at least 6", len(apps))
	}
	publisher := examplePublisher(t)
	hostPorts := map[int]string{}
	for _, app := range apps {
		t.Run(app.ID, func(t *testing.T) {
			if len(app.Releases) != len(Kinds) {
				t.Fatalf("%d releases, want current, update and broken", len(app.Releases))
			}
			var prev *semver.Version
			for _, rel := range app.Releases {
				m := rel.Manifest
				t.Run(rel.Kind, func(t *testing.T) {
					if m.Schema != registry.Schema || m.ID != app.ID || m.Publisher != publisher {
						t.Errorf("schema %q id %q publisher %q: want %s, the folder name and the example key", m.Schema, m.ID, m.Publisher, registry.Schema)
					}
					if err := m.Validate(); err != nil {
						t.Errorf("validate: %v", err)
					}
					payload, err := registry.Canonical(m)
					if err != nil {
						t.Fatal(err)
					}
					back, err := registry.ParsePayload(payload)
					if err != nil {
						t.Fatalf("canonical bytes do not parse strictly: %v", err)
					}
					again, err := registry.Canonical(back)
					if err != nil || string(again) != string(payload) {
						t.Errorf("canonical bytes do not round-trip (%v)", err)
					}
					if c := cas.Sum(payload); !strings.HasPrefix(c.String(), "bafkr4i") {
						t.Errorf("manifest CID %s is not a raw BLAKE3 CIDv1", c)
					}
					v, err := semver.StrictNewVersion(m.Version)
					if err != nil {
						t.Fatalf("version %q: %v", m.Version, err)
					}
					if prev != nil && !v.GreaterThan(prev) {
						t.Errorf("version %s is not newer than the release before it (%s)", v, prev)
					}
					prev = v
					checkContainers(t, app, rel, hostPorts)
				})
			}
		})
	}
}

func checkContainers(t *testing.T, app App, rel Release, hostPorts map[int]string) {
	m := rel.Manifest
	secrets := map[string]bool{}
	for _, s := range m.GeneratedSecrets {
		secrets[s.Name] = true
	}
	for _, c := range m.Containers {
		wantRef := fmt.Sprintf("localhost/archy-example/%s-%s:%s", m.ID, c.Name, m.Version)
		if c.Image.Ref != wantRef || c.Image.Archive != "images/"+c.Name+".oci.tar" {
			t.Errorf("container %s: image %+v, want ref %s and archive images/%s.oci.tar", c.Name, c.Image, wantRef, c.Name)
		}
		if len(c.Command) == 0 {
			t.Errorf("container %s: no command (the sample images have no entrypoint)", c.Name)
		}
		if _, err := os.Stat(filepath.Join(app.Dir, "src", c.Name)); err != nil {
			t.Errorf("container %s: no source folder: %v", c.Name, err)
		}
		for _, e := range c.Env {
			if e.Secret != "" && !secrets[e.Secret] {
				t.Errorf("container %s: env %s uses undeclared secret %q", c.Name, e.Name, e.Secret)
			}
		}
		for _, p := range c.Ports {
			if p.Host == 0 {
				continue // internal to the app's network
			}
			if p.Host < 18080 || p.Host > 18099 {
				t.Errorf("container %s: host port %d outside the examples' range 18080-18099", c.Name, p.Host)
			}
			owner := m.ID + "/" + c.Name
			if had, ok := hostPorts[p.Host]; ok && had != owner {
				t.Errorf("host port %d used by %s and %s", p.Host, had, owner)
			}
			hostPorts[p.Host] = owner
		}
	}
}

func examplePublisher(t *testing.T) string {
	t.Helper()
	// The key is committed without its 0600 mode (git keeps no modes); read
	// a private copy.
	data, err := os.ReadFile(KeyFile())
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := did.LoadKey(path)
	if err != nil {
		t.Fatal(err)
	}
	return k.DID()
}

// TestSampleFeatures checks that the set covers what later tests rely on.
func TestSampleFeatures(t *testing.T) {
	apps, err := Apps(AppsDir())
	if err != nil {
		t.Fatal(err)
	}
	features := map[string]func(m *registry.Manifest) bool{
		"a single web app with a UI and an HTTP health check": func(m *registry.Manifest) bool {
			return len(m.Containers) == 1 && m.UI != nil && m.Containers[0].Health != nil && m.Containers[0].Health.HTTP != nil
		},
		"a stack sharing a generated secret": func(m *registry.Manifest) bool {
			users := 0
			for _, c := range m.Containers {
				for _, e := range c.Env {
					if e.Secret != "" {
						users++
						break
					}
				}
			}
			return len(m.Containers) >= 2 && users >= 2 && len(m.Containers[1].DependsOn) > 0
		},
		"an app requiring another with a semver range": func(m *registry.Manifest) bool {
			for _, r := range m.Requires {
				if _, err := semver.NewConstraint(r.Version); err == nil && r.Version != "" {
					return true
				}
			}
			return false
		},
		"a slow health check with a start period": func(m *registry.Manifest) bool {
			for _, c := range m.Containers {
				if c.Health != nil && c.Health.StartPeriod != "" && c.Health.StartPeriod != "0s" && len(m.Containers) == 1 {
					return true
				}
			}
			return false
		},
		"a data volume": func(m *registry.Manifest) bool {
			return len(m.Containers) == 1 && len(m.Containers[0].Volumes) > 0 && m.Data != nil
		},
		"a displayed credential": func(m *registry.Manifest) bool {
			for _, s := range m.GeneratedSecrets {
				if s.Display {
					return true
				}
			}
			return false
		},
	}
	for name, has := range features {
		t.Run(name, func(t *testing.T) {
			for _, app := range apps {
				if has(app.Release(Current).Manifest) {
					return
				}
			}
			t.Errorf("no sample app has %s", name)
		})
	}
}

func TestLoadManifestStrict(t *testing.T) {
	good, err := os.ReadFile(filepath.Join(AppsDir(), "hello", "manifest.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, text string
		ok         bool
	}{
		{"sample", string(good), true},
		{"unknown key", string(good) + "colour: blue\n", false},
		{"duplicate key", string(good) + "name: Again\n", false},
		{"case variant", strings.Replace(string(good), "\nname:", "\nName:", 1), false},
		{"not yaml", "{", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "manifest.yaml")
			if err := os.WriteFile(path, []byte(tt.text), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := LoadManifest(path)
			if (err == nil) != tt.ok {
				t.Errorf("LoadManifest: %v, want ok=%v", err, tt.ok)
			}
		})
	}
}
