package quadlet

import (
	"bufio"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/archy-node/archy/examples"
	"github.com/archy-node/archy/registry"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func sampleApps(t *testing.T) []examples.App {
	t.Helper()
	apps, err := examples.Apps(examples.AppsDir())
	if err != nil {
		t.Fatal(err)
	}
	if len(apps) < 6 {
		t.Fatalf("found %d sample apps, want at least 6", len(apps))
	}
	return apps
}

func dataDir(app string) string { return "/srv/archy/apps/" + app + "/data" }

// TestGolden renders every sample app's current release for both targets and
// compares with testdata/podman-<target>/<app>/<unit>.
func TestGolden(t *testing.T) {
	for _, target := range []string{Podman44, Podman45} {
		for _, app := range sampleApps(t) {
			t.Run(target+"/"+app.ID, func(t *testing.T) {
				m := app.Release(examples.Current).Manifest
				units, err := Render(m, Options{DataDir: dataDir(app.ID), Podman: target})
				if err != nil {
					t.Fatal(err)
				}
				dir := filepath.Join("testdata", "podman-"+target, app.ID)
				if *update {
					if err := os.RemoveAll(dir); err != nil {
						t.Fatal(err)
					}
					if err := os.MkdirAll(dir, 0o755); err != nil {
						t.Fatal(err)
					}
					for _, u := range units {
						if err := os.WriteFile(filepath.Join(dir, u.Name), []byte(u.Content), 0o644); err != nil {
							t.Fatal(err)
						}
					}
				}
				entries, err := os.ReadDir(dir)
				if err != nil {
					t.Fatalf("%v (run go test ./orchestrator/quadlet -update)", err)
				}
				if len(entries) != len(units) {
					t.Errorf("rendered %d units, %s holds %d", len(units), dir, len(entries))
				}
				for _, u := range units {
					want, err := os.ReadFile(filepath.Join(dir, u.Name))
					if err != nil {
						t.Errorf("unit %s: %v", u.Name, err)
						continue
					}
					if u.Content != string(want) {
						t.Errorf("unit %s differs from %s/%s:\n--- got\n%s\n--- want\n%s", u.Name, dir, u.Name, u.Content, want)
					}
				}
			})
		}
	}
}

var (
	keyLine     = regexp.MustCompile(`^[A-Z][A-Za-z0-9]*=`)
	sectionLine = regexp.MustCompile(`^\[(Unit|Container|Network|Service|Install)\]$`)
	// Keys each target may use in [Container] (podman-systemd.unit(5)).
	containerKeys = map[string][]string{
		Podman44: {"Image", "ContainerName", "Label", "Network", "PublishPort", "Volume", "Environment", "User", "Group", "Exec", "PodmanArgs",
			"DropCapability", "AddCapability", "NoNewPrivileges"},
		Podman45: {"Image", "ContainerName", "Label", "Network", "PublishPort", "Volume", "Environment", "User", "Group", "Exec", "PodmanArgs",
			"DropCapability", "AddCapability", "NoNewPrivileges",
			"Secret", "HealthCmd", "HealthInterval", "HealthTimeout", "HealthRetries", "HealthStartPeriod"},
	}
)

// TestUnitSyntax checks every release of every sample app renders to
// well-formed units that use only keys their target knows, name their
// dependencies, and reference secrets without holding a value.
func TestUnitSyntax(t *testing.T) {
	for _, target := range []string{Podman44, Podman45} {
		for _, app := range sampleApps(t) {
			for _, rel := range app.Releases {
				t.Run(target+"/"+app.ID+"/"+rel.Kind, func(t *testing.T) {
					m := rel.Manifest
					units, err := Render(m, Options{DataDir: dataDir(app.ID), Podman: target})
					if err != nil {
						t.Fatal(err)
					}
					secretEnv := map[string]bool{}
					for _, c := range m.Containers {
						for _, e := range c.Env {
							if e.Secret != "" {
								secretEnv[e.Name] = true
							}
						}
					}
					wantUnits := len(m.Containers)
					if target == Podman45 {
						wantUnits++
					}
					if len(units) != wantUnits {
						t.Fatalf("rendered %d units, want %d", len(units), wantUnits)
					}
					for _, u := range units {
						checkUnit(t, target, u, secretEnv)
					}
				})
			}
		}
	}
}

func checkUnit(t *testing.T, target string, u Unit, secretEnv map[string]bool) {
	t.Helper()
	section := ""
	seen := map[string]int{}
	sc := bufio.NewScanner(strings.NewReader(u.Content))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case sectionLine.MatchString(line):
			section = strings.Trim(line, "[]")
		case keyLine.MatchString(line):
			if section == "" {
				t.Errorf("%s:%d: key outside a section: %q", u.Name, n, line)
			}
			key, value, _ := strings.Cut(line, "=")
			seen[section+"."+key]++
			if section == "Container" && !contains(containerKeys[target], key) {
				t.Errorf("%s:%d: key %s is not a [Container] key of Podman %s", u.Name, n, key, target)
			}
			if key == "Environment" {
				name, _, _ := strings.Cut(strings.TrimPrefix(value, `"`), "=")
				if secretEnv[name] {
					t.Errorf("%s:%d: secret variable %s is set inline", u.Name, n, name)
				}
			}
		default:
			t.Errorf("%s:%d: not a unit line: %q", u.Name, n, line)
		}
	}
	switch {
	case strings.HasSuffix(u.Name, ".container"):
		for _, k := range []string{"Container.Image", "Container.ContainerName", "Container.Network", "Service.Restart", "Install.WantedBy"} {
			if seen[k] != 1 {
				t.Errorf("%s: %s appears %d times, want once", u.Name, k, seen[k])
			}
		}
	case strings.HasSuffix(u.Name, ".network"):
		if target == Podman44 {
			t.Errorf("%s: Podman 4.4 has no .network units", u.Name)
		}
		if seen["Network.Label"] == 0 {
			t.Errorf("%s: network without labels", u.Name)
		}
	default:
		t.Errorf("unexpected unit %s", u.Name)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestRenderDeterministic(t *testing.T) {
	for _, app := range sampleApps(t) {
		t.Run(app.ID, func(t *testing.T) {
			m := app.Release(examples.Current).Manifest
			a, err := Render(m, Options{DataDir: dataDir(app.ID)})
			if err != nil {
				t.Fatal(err)
			}
			b, err := Render(m, Options{DataDir: dataDir(app.ID)})
			if err != nil {
				t.Fatal(err)
			}
			if len(a) != len(b) {
				t.Fatalf("%d units, then %d", len(a), len(b))
			}
			for i := range a {
				if a[i] != b[i] {
					t.Errorf("unit %s differs between two renders", a[i].Name)
				}
			}
		})
	}
}

// base is a valid two-container app the error cases break one field of.
func base() *registry.Manifest {
	return &registry.Manifest{
		Schema: registry.Schema, ID: "demo", Name: "Demo", Version: "1.0.0",
		Containers: []registry.Container{
			{Name: "db", Image: registry.Image{Ref: "localhost/demo-db:1"}},
			{
				Name: "web", Image: registry.Image{Ref: "localhost/demo-web:1", Digest: "sha256:" + strings.Repeat("ab", 32)},
				Command:   []string{"/bin/sh", "-c", `echo "$HOME" 100%`},
				Env:       []registry.EnvVar{{Name: "PASSWORD", Secret: "pw"}, {Name: "GREETING", Value: "hi there"}},
				Ports:     []registry.Port{{Container: 53, Host: 18053, Protocol: "udp"}},
				Volumes:   []registry.Volume{{Path: "conf/app", Mount: "/etc/app", ReadOnly: true}},
				Health:    &registry.Health{TCP: &registry.TCPProbe{Port: 80}, StartPeriod: "1m"},
				DependsOn: []string{"db"},
				User:      "1000:1000",
				CapAdd:    []string{"NET_BIND_SERVICE", "CHOWN"},
			},
		},
		GeneratedSecrets: []registry.Secret{{Name: "pw", Length: 16}},
	}
}

func TestRenderFields(t *testing.T) {
	units, err := Render(base(), Options{DataDir: "/data/demo", BindAddress: "::1"})
	if err != nil {
		t.Fatal(err)
	}
	web := units[2].Content
	tests := []struct{ name, want string }{
		{"image pinned by digest", "Image=localhost/demo-web:1@sha256:" + strings.Repeat("ab", 32) + "\n"},
		{"digest label", "Label=io.archy.image-digest=sha256:"},
		{"owner label", "Label=io.archy.owner=quadlet\n"},
		{"dependency", "Requires=archy-demo-db.service\nAfter=archy-demo-db.service\n"},
		{"udp port on IPv6 loopback", "PublishPort=[::1]:18053:53/udp\n"},
		{"read-only volume inside the data folder", "Volume=/data/demo/conf/app:/etc/app:ro,z\n"},
		{"secret by reference", "Secret=archy-demo-pw,type=env,target=PASSWORD\n"},
		{"quoted environment", "Environment=\"GREETING=hi there\"\n"},
		{"user and group", "User=1000\nGroup=1000\n"},
		{"exec quoted and escaped", `Exec=/bin/sh -c "echo \"$$HOME\" 100%%"` + "\n"},
		{"tcp health", "HealthCmd=nc -w 2 127.0.0.1 80 </dev/null\n"},
		{"health defaults", "HealthInterval=2s\nHealthTimeout=2s\nHealthRetries=3\nHealthStartPeriod=1m0s\n"},
		{"network alias", "PodmanArgs=--network-alias=web\n"},
		{"network unit", "Network=archy-demo.network\n"},
		{"capabilities dropped", "DropCapability=all\nAddCapability=NET_BIND_SERVICE CHOWN\nNoNewPrivileges=true\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(web, tt.want) {
				t.Errorf("unit lacks %q:\n%s", tt.want, web)
			}
		})
	}
	if units[0].Name != "archy-demo.network" || units[1].Name != "archy-demo-db.container" || units[2].Name != "archy-demo-web.container" {
		t.Errorf("unit names %s %s %s", units[0].Name, units[1].Name, units[2].Name)
	}
}

func TestRenderPodman44(t *testing.T) {
	units, err := Render(base(), Options{DataDir: "/data/demo", Podman: Podman44})
	if err != nil {
		t.Fatal(err)
	}
	if len(units) != 2 {
		t.Fatalf("got %d units, want 2 (no .network unit on 4.4)", len(units))
	}
	web := units[1].Content
	for _, want := range []string{
		"Network=archy-demo\n",
		"PodmanArgs=--secret=archy-demo-pw,type=env,target=PASSWORD\n",
		`PodmanArgs="--health-cmd=nc -w 2 127.0.0.1 80 </dev/null"` + "\n",
		"PodmanArgs=--health-start-period=1m0s\n",
		"ExecStartPre=-/usr/bin/podman network create --ignore --label io.archy.app=demo --label io.archy.owner=quadlet archy-demo\n",
	} {
		if !strings.Contains(web, want) {
			t.Errorf("unit lacks %q:\n%s", want, web)
		}
	}
	if strings.Contains(web, "Secret=") || strings.Contains(web, "HealthCmd=") {
		t.Errorf("4.4 unit uses 4.5 keys:\n%s", web)
	}
}

func TestRenderErrors(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(m *registry.Manifest, o *Options)
		field string
	}{
		{"unknown target", func(m *registry.Manifest, o *Options) { o.Podman = "4.3" }, "podman target"},
		{"no containers", func(m *registry.Manifest, o *Options) { m.Containers = nil }, "containers"},
		{"no image ref", func(m *registry.Manifest, o *Options) { m.Containers[0].Image.Ref = "" }, "containers[0].image.ref"},
		{"unknown dependency", func(m *registry.Manifest, o *Options) { m.Containers[1].DependsOn = []string{"cache"} }, "containers[1].depends_on[0]"},
		{"unknown secret", func(m *registry.Manifest, o *Options) { m.GeneratedSecrets = nil }, "containers[1].env[0].secret"},
		{"bad env name", func(m *registry.Manifest, o *Options) { m.Containers[1].Env[1].Name = "A=B" }, "containers[1].env[1].name"},
		{"port out of range", func(m *registry.Manifest, o *Options) { m.Containers[1].Ports[0].Host = 70000 }, "containers[1].ports[0]"},
		{"bad protocol", func(m *registry.Manifest, o *Options) { m.Containers[1].Ports[0].Protocol = "sctp" }, "containers[1].ports[0].protocol"},
		{"volume escapes", func(m *registry.Manifest, o *Options) { m.Containers[1].Volumes[0].Path = "../other" }, "containers[1].volumes[0].path"},
		{"absolute volume", func(m *registry.Manifest, o *Options) { m.Containers[1].Volumes[0].Path = "/etc" }, "containers[1].volumes[0].path"},
		{"relative data dir", func(m *registry.Manifest, o *Options) { o.DataDir = "data" }, "containers[1].volumes[0].path"},
		{"relative mount", func(m *registry.Manifest, o *Options) { m.Containers[1].Volumes[0].Mount = "etc" }, "containers[1].volumes[0].mount"},
		{"two probes", func(m *registry.Manifest, o *Options) {
			m.Containers[1].Health.HTTP = &registry.HTTPProbe{Port: 80}
		}, "containers[1].health"},
		{"bad interval", func(m *registry.Manifest, o *Options) { m.Containers[1].Health.Interval = "often" }, "containers[1].health.interval"},
		{"capability not allowed", func(m *registry.Manifest, o *Options) { m.Containers[1].CapAdd = []string{"SYS_ADMIN"} }, "containers[1]: container web: cap_add"},
		{"nested volume", func(m *registry.Manifest, o *Options) {
			m.Containers[1].Volumes = append(m.Containers[1].Volumes, registry.Volume{Path: m.Containers[1].Volumes[0].Path + "/sub", Mount: "/sub"})
		}, "containers[1].volumes[1].path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, o := base(), Options{DataDir: "/data/demo"}
			tt.edit(m, &o)
			_, err := Render(m, o)
			if !errors.Is(err, ErrRender) {
				t.Fatalf("got %v, want ErrRender", err)
			}
			if !strings.Contains(err.Error(), tt.field) {
				t.Errorf("error %q does not name %s", err, tt.field)
			}
		})
	}
}

func TestHealthCommands(t *testing.T) {
	tests := []struct {
		name string
		h    registry.Health
		want string
	}{
		{"http with path", registry.Health{HTTP: &registry.HTTPProbe{Port: 8080, Path: "/healthz"}}, "wget -q -O /dev/null http://127.0.0.1:8080/healthz"},
		{"http default path", registry.Health{HTTP: &registry.HTTPProbe{Port: 80}}, "wget -q -O /dev/null http://127.0.0.1:80/"},
		{"http path needing quotes", registry.Health{HTTP: &registry.HTTPProbe{Port: 80, Path: "/a b?x=1&y"}}, "wget -q -O /dev/null 'http://127.0.0.1:80/a b?x=1&y'"},
		{"tcp rounds the timeout up", registry.Health{TCP: &registry.TCPProbe{Port: 5432}, Timeout: "1500ms"}, "nc -w 2 127.0.0.1 5432 </dev/null"},
		{"exec", registry.Health{Exec: []string{"test", "-f", "/tmp/it's ready"}}, `exec test -f '/tmp/it'\''s ready'`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kvs, err := healthKeys(&tt.h, "health")
			if err != nil {
				t.Fatal(err)
			}
			if kvs[0].key != "HealthCmd" || kvs[0].value != tt.want {
				t.Errorf("got %s=%s, want HealthCmd=%s", kvs[0].key, kvs[0].value, tt.want)
			}
		})
	}
}

func TestQuote(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"a=b", "a=b"},
		{"two words", `"two words"`},
		{`say "hi"`, `"say \"hi\""`},
		{`back\slash`, `"back\\slash"`},
		{"line\nbreak", `"line\nbreak"`},
		{"bell\x07", `"bell\x07"`},
		{"", `""`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := quote(tt.in); got != tt.want {
				t.Errorf("quote(%q) = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
}
