package podman

import (
	"encoding/json"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/archy-node/archy/orchestrator"
)

// The create request is, field for field, what the Podman v5.6.2 bindings
// (specgen.SpecGenerator) sent for the same spec: testdata/specgen*.json
// were written by the bindings' own JSON encoding before they were
// replaced. A field dropped or misspelt here would reach Podman as its
// default: a capability kept, a limit gone.
func TestSpecgenMatchesBindings(t *testing.T) {
	full := orchestrator.ContainerSpec{
		Name: "archy-x", Image: "localhost/x:1",
		Entrypoint: []string{"/bin/sh", "-c"}, Command: []string{"httpd", "-f"},
		Env: map[string]string{"A": "1"}, Labels: map[string]string{"io.archy.app": "x"},
		Ports:   []orchestrator.Port{{HostPort: 8080, ContainerPort: 80}},
		Mounts:  []orchestrator.Mount{{Source: "/d", Target: "/data"}, {Source: "/e", Target: "/e", ReadOnly: true}},
		Network: "archy-net", Aliases: []string{"web"}, User: "1000:1000",
		Resources:   orchestrator.Resources{MemoryBytes: 1 << 20, NanoCPUs: 5e8, PidsLimit: 10},
		Restart:     orchestrator.RestartPolicy{Name: orchestrator.RestartOnFailure, MaxRetries: 2},
		StopTimeout: 5 * time.Second,
		CapAdd:      []string{"NET_BIND_SERVICE", "CHOWN"},
	}
	for file, s := range map[string]orchestrator.ContainerSpec{
		"testdata/specgen.json":     full,
		"testdata/specgen-min.json": {Name: "n", Image: "i"},
	} {
		want, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		got, err := json.Marshal(toSpecgen(s.Normalized()))
		if err != nil {
			t.Fatal(err)
		}
		var w, g any
		if err := json.Unmarshal(want, &w); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(got, &g); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(w, g) {
			t.Errorf("%s: create request\n%s\nwant (the bindings')\n%s", file, got, want)
		}
	}
}

// Podman 4.3 reports the entrypoint as one string, Podman 5 as a list.
func TestEntrypointBothShapes(t *testing.T) {
	for in, want := range map[string][]string{
		`{"Entrypoint": "/bin/sh -c"}`:       {"/bin/sh", "-c"},
		`{"Entrypoint": ["/bin/sh", "-c"]}`:  {"/bin/sh", "-c"},
		`{"Entrypoint": null}`:               {},
		`{"Entrypoint": ["a b"], "Cmd": []}`: {"a b"},
	} {
		var c inspectConfig
		if err := json.Unmarshal([]byte(in), &c); err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if !reflect.DeepEqual([]string(c.Entrypoint), want) {
			t.Errorf("%s: entrypoint %q, want %q", in, c.Entrypoint, want)
		}
	}
}

func TestParseVersion(t *testing.T) {
	for in, want := range map[string][3]int{"4.3.1": {4, 3, 1}, "v5.0": {5, 0, 0}, "5.6.2-dev": {5, 6, 2}} {
		got, err := parseVersion(in)
		if err != nil || got != want {
			t.Errorf("parseVersion(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "x", "4.3.1.1", "4.-1"} {
		if _, err := parseVersion(in); err == nil {
			t.Errorf("parseVersion(%q): no error", in)
		}
	}
	if !versionLess([3]int{4, 2, 9}, [3]int{4, 3, 0}) || versionLess([3]int{4, 3, 0}, [3]int{4, 3, 0}) {
		t.Error("versionLess")
	}
}

// Socket URLs are read as Podman's own clients read them.
func TestNewClientSocketURL(t *testing.T) {
	for in, base := range map[string]string{
		"unix:///run/user/1000/podman/podman.sock": "http://d",
		"unix://run/podman/podman.sock":            "http://d",
		"tcp://127.0.0.1:8888":                     "http://127.0.0.1:8888",
		"tcp://127.0.0.1:8888/prefix/":             "http://127.0.0.1:8888/prefix",
	} {
		c, err := newClient(in)
		if err != nil || c.base != base {
			t.Errorf("newClient(%q): base %v, %v; want %s", in, c, err, base)
		}
	}
	for _, in := range []string{"ssh://host/run/podman.sock", "unix://", "unix:relative", "/run/podman.sock"} {
		if _, err := newClient(in); err == nil {
			t.Errorf("newClient(%q): no error", in)
		}
	}
}
