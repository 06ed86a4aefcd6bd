package registry

import (
	"fmt"
	"strings"
	"testing"

	cid "github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

func TestValidateGood(t *testing.T) {
	if err := goodManifest(t).Validate(); err != nil {
		t.Fatalf("good manifest: %v", err)
	}
	minimal := &Manifest{Schema: Schema, ID: "ab", Name: "A", Version: "0.0.1", Publisher: testKey(t, 2).DID(),
		Containers: []Container{{Name: "a", Image: testImage("a")}}}
	if err := minimal.Validate(); err != nil {
		t.Fatalf("minimal manifest: %v", err)
	}
	for _, c := range AllowedCapabilities {
		m := goodManifest(t)
		m.Containers[0].CapAdd = []string{c}
		if err := m.Validate(); err != nil {
			t.Errorf("allowed capability %s: %v", c, err)
		}
		if got, err := Capabilities(&m.Containers[0]); err != nil || len(got) != 1 || got[0] != c {
			t.Errorf("Capabilities with cap_add %s: %v %v", c, got, err)
		}
	}
	// Nesting within one container is allowed (the node checks the paths
	// at every start); the same folder in two containers too.
	m := goodManifest(t)
	m.Containers[1].Volumes = append(m.Containers[1].Volumes, Volume{Path: "db/wal", Mount: "/wal"})
	m.Containers[2].Volumes = []Volume{{Path: "web/data", Mount: "/data"}}
	if err := m.Validate(); err != nil {
		t.Fatalf("volumes nested within one container: %v", err)
	}
}

// Capabilities is the one policy the orchestrator and the Quadlet renderer
// apply: it refuses what validation refuses.
func TestCapabilitiesRefuses(t *testing.T) {
	for _, caps := range [][]string{{"SYS_ADMIN"}, {"ALL"}, {"CAP_CHOWN"}, {"chown"}, {"KILL", "KILL"}, {"NET_RAW"}} {
		if got, err := Capabilities(&Container{Name: "c", CapAdd: caps}); err == nil {
			t.Errorf("Capabilities(%v) = %v, want an error", caps, got)
		}
	}
	if got, err := Capabilities(&Container{Name: "c"}); err != nil || got != nil {
		t.Errorf("Capabilities of no cap_add: %v %v", got, err)
	}
}

func TestValidateBad(t *testing.T) {
	sha2CID := cid.NewCidV1(cid.Raw, mustSum(t, []byte("x"), mh.SHA2_256)).String()
	many := func(n int, f func(i int) string) []string {
		s := make([]string, n)
		for i := range s {
			s[i] = f(i)
		}
		return s
	}
	vol := func(p, mount string) func(m *Manifest) {
		return func(m *Manifest) { m.Containers[0].Volumes = []Volume{{Path: p, Mount: mount}} }
	}
	const sock = "container engine socket"
	tests := []struct {
		name   string
		mutate func(m *Manifest)
		path   string
		msg    string
	}{
		// Top level.
		{"schema wrong", func(m *Manifest) { m.Schema = "archy.app/v2" }, "schema", "not supported"},
		{"schema missing", func(m *Manifest) { m.Schema = "" }, "schema", "missing"},
		{"id uppercase", func(m *Manifest) { m.ID = "Org.Example" }, "id", "lowercase"},
		{"id one char", func(m *Manifest) { m.ID = "a" }, "id", "2 to 64"},
		{"id too long", func(m *Manifest) { m.ID = strings.Repeat("a", 65) }, "id", "2 to 64"},
		{"id leading dash", func(m *Manifest) { m.ID = "-abc" }, "id", "single '-' or '.'"},
		{"id double dot", func(m *Manifest) { m.ID = "a..b" }, "id", "single '-' or '.'"},
		{"id trailing dot", func(m *Manifest) { m.ID = "abc." }, "id", "single '-' or '.'"},
		{"id missing", func(m *Manifest) { m.ID = "" }, "id", "missing"},
		{"name empty", func(m *Manifest) { m.Name = " " }, "name", "missing"},
		{"name too long", func(m *Manifest) { m.Name = strings.Repeat("é", 81) }, "name", "81 characters"},
		{"name control", func(m *Manifest) { m.Name = "a\x07b" }, "name", "printable"},
		{"name newline", func(m *Manifest) { m.Name = "a\nb" }, "name", "printable"},
		{"version leading v", func(m *Manifest) { m.Version = "v1.0.0" }, "version", "not a semantic version"},
		{"version two parts", func(m *Manifest) { m.Version = "1.0" }, "version", "not a semantic version"},
		{"version leading zero", func(m *Manifest) { m.Version = "01.0.0" }, "version", "not a semantic version"},
		{"version missing", func(m *Manifest) { m.Version = "" }, "version", "missing"},
		{"publisher not did", func(m *Manifest) { m.Publisher = "alice" }, "publisher", "not a valid Ed25519 did:key"},
		{"publisher bad key", func(m *Manifest) { m.Publisher = "did:key:z6MkBAD" }, "publisher", "not a valid Ed25519 did:key"},
		{"publisher missing", func(m *Manifest) { m.Publisher = "" }, "publisher", "missing"},
		{"description too long", func(m *Manifest) { m.Description = strings.Repeat("a", MaxDescription+1) }, "description", "cap"},
		{"description control", func(m *Manifest) { m.Description = "a\x1bb" }, "description", "printable"},
		{"data description too long", func(m *Manifest) { m.Data.Description = strings.Repeat("a", MaxDescription+1) }, "data.description", "cap"},
		{"channel bad", func(m *Manifest) { m.Channel = "Stable!" }, "channel", "not a channel name"},
		{"invalid utf-8", func(m *Manifest) { m.Containers[1].Command = []string{"a\xffb"} }, "containers[1].command[0]", "not valid UTF-8"},
		{"size cap", func(m *Manifest) {
			for i := range 9 {
				m.Containers[0].Env = append(m.Containers[0].Env, EnvVar{Name: fmt.Sprintf("BIG%d", i), Value: strings.Repeat("x", 30<<10)})
			}
		}, "", "over the 262144-byte cap"},

		// Containers.
		{"no containers", func(m *Manifest) { m.Containers = nil; m.UI = nil }, "containers", "at least one"},
		{"too many containers", func(m *Manifest) {
			for i := range MaxContainers {
				m.Containers = append(m.Containers, Container{Name: fmt.Sprintf("extra%d", i), Image: testImage("x")})
			}
		}, "containers", "over the cap of 16"},
		{"container name uppercase", func(m *Manifest) { m.Containers[2].Name = "Worker" }, "containers[2].name", "DNS label"},
		{"container name too long", func(m *Manifest) { m.Containers[2].Name = strings.Repeat("a", 64) }, "containers[2].name", "DNS label"},
		{"container name missing", func(m *Manifest) { m.Containers[2].Name = "" }, "containers[2].name", "missing"},
		{"container name duplicate", func(m *Manifest) { m.Containers[2].Name = "db" }, "containers[2].name", "used by containers[1]"},

		// Images.
		{"image floating tag", func(m *Manifest) { m.Containers[0].Image = Image{Ref: "docker.io/library/nginx:latest"} }, "containers[0].image", "floating tag: pin it by cid and digest"},
		{"image missing", func(m *Manifest) { m.Containers[0].Image = Image{} }, "containers[0].image", "missing"},
		{"image cid not blake3", func(m *Manifest) { m.Containers[0].Image.CID = sha2CID }, "containers[0].image.cid", "not a BLAKE3 CIDv1"},
		{"image cid garbage", func(m *Manifest) { m.Containers[0].Image.CID = "hello" }, "containers[0].image.cid", "not a BLAKE3 CIDv1"},
		{"image cid missing", func(m *Manifest) { m.Containers[0].Image.CID = "" }, "containers[0].image.cid", "missing"},
		{"image digest short", func(m *Manifest) { m.Containers[0].Image.Digest = "sha256:abc" }, "containers[0].image.digest", "sha256:<64"},
		{"image digest uppercase", func(m *Manifest) { m.Containers[0].Image.Digest = "sha256:" + strings.Repeat("AB", 32) }, "containers[0].image.digest", "sha256:<64"},
		{"image digest missing", func(m *Manifest) { m.Containers[0].Image.Digest = "" }, "containers[0].image.digest", "missing"},
		{"image ref digest mismatch", func(m *Manifest) { m.Containers[0].Image.Ref = "x@sha256:" + strings.Repeat("cd", 32) }, "containers[0].image.ref", "pins digest"},
		{"image ref spaces", func(m *Manifest) { m.Containers[0].Image.Ref = "a b" }, "containers[0].image.ref", "without spaces"},
		{"image archive escapes", func(m *Manifest) { m.Containers[0].Image.Archive = "../image.tar" }, "containers[0].image.archive", "\"..\""},

		// Command.
		{"command too many args", func(m *Manifest) { m.Containers[0].Command = many(65, func(int) string { return "a" }) }, "containers[0].command", "over the cap of 64"},
		{"command arg too long", func(m *Manifest) { m.Containers[0].Command = []string{strings.Repeat("a", 4097)} }, "containers[0].command[0]", "4096-byte cap"},
		{"command NUL", func(m *Manifest) { m.Containers[0].Command = []string{"ok", "a\x00b"} }, "containers[0].command[1]", "NUL"},

		// Env.
		{"env too many", func(m *Manifest) {
			m.Containers[1].Env = nil
			for i := range MaxEnv + 1 {
				m.Containers[1].Env = append(m.Containers[1].Env, EnvVar{Name: fmt.Sprintf("V%d", i), Value: "x"})
			}
		}, "containers[1].env", "over the cap of 128"},
		{"env name digit", func(m *Manifest) { m.Containers[0].Env[1].Name = "1MODE" }, "containers[0].env[1].name", "[A-Za-z_]"},
		{"env name dash", func(m *Manifest) { m.Containers[0].Env[1].Name = "MY-MODE" }, "containers[0].env[1].name", "[A-Za-z_]"},
		{"env duplicate", func(m *Manifest) { m.Containers[0].Env[1].Name = "DB_PASSWORD" }, "containers[0].env[1].name", "set by containers[0].env[0]"},
		{"env value and secret", func(m *Manifest) { m.Containers[0].Env[1].Secret = "db_password" }, "containers[0].env[1]", "not both"},
		{"env neither", func(m *Manifest) { m.Containers[0].Env[1].Value = "" }, "containers[0].env[1]", "exactly one of value or secret"},
		{"env undeclared secret", func(m *Manifest) { m.Containers[0].Env[0].Secret = "api_key" }, "containers[0].env[0].secret", "not declared in generated_secrets"},
		{"env value NUL", func(m *Manifest) { m.Containers[0].Env[1].Value = "a\x00" }, "containers[0].env[1].value", "NUL"},
		{"env value too long", func(m *Manifest) { m.Containers[0].Env[1].Value = strings.Repeat("a", MaxEnvValueBytes+1) }, "containers[0].env[1].value", "cap"},

		// Ports.
		{"ports too many", func(m *Manifest) {
			m.Containers[2].Ports = nil
			for i := range MaxPorts + 1 {
				m.Containers[2].Ports = append(m.Containers[2].Ports, Port{Container: 1000 + i, Host: 20000 + i})
			}
		}, "containers[2].ports", "over the cap of 32"},
		{"port container zero", func(m *Manifest) { m.Containers[1].Ports[0].Container = 0 }, "containers[1].ports[0].container", "1..65535"},
		{"port container too big", func(m *Manifest) { m.Containers[1].Ports[0].Container = 65536 }, "containers[1].ports[0].container", "1..65535"},
		{"port host too big", func(m *Manifest) { m.Containers[1].Ports[0].Host = 70000 }, "containers[1].ports[0].host", "1..65535"},
		{"port host negative", func(m *Manifest) { m.Containers[1].Ports[0].Host = -1 }, "containers[1].ports[0].host", "1..65535"},
		{"port protocol", func(m *Manifest) { m.Containers[1].Ports[0].Protocol = "sctp" }, "containers[1].ports[0].protocol", "tcp or udp"},
		{"port duplicate container port", func(m *Manifest) {
			m.Containers[1].Ports = append(m.Containers[1].Ports, Port{Container: 5432, Host: 25432, Protocol: "tcp"})
		}, "containers[1].ports[1].container", "5432/tcp is declared twice"},
		{"host port clash across containers", func(m *Manifest) { m.Containers[2].Ports = []Port{{Container: 9000, Host: 8080}} }, "containers[2].ports[0].host", "already published by containers[0].ports[0]"},
		{"host port clash in one container", func(m *Manifest) {
			m.Containers[1].Ports = append(m.Containers[1].Ports, Port{Container: 5433, Host: 15432})
		}, "containers[1].ports[1].host", "already published by containers[1].ports[0]"},

		// Volumes.
		{"volumes too many", func(m *Manifest) {
			m.Containers[2].Volumes = nil
			for i := range MaxVolumes + 1 {
				m.Containers[2].Volumes = append(m.Containers[2].Volumes, Volume{Path: fmt.Sprintf("v%d", i), Mount: fmt.Sprintf("/v%d", i)})
			}
		}, "containers[2].volumes", "over the cap of 32"},
		{"volume absolute", vol("/etc", "/data"), "containers[0].volumes[0].path", "host path"},
		{"volume home", vol("~/notes", "/data"), "containers[0].volumes[0].path", "host path"},
		{"volume dotdot", vol("..", "/data"), "containers[0].volumes[0].path", "climbs out"},
		{"volume inner dotdot", vol("a/../../b", "/data"), "containers[0].volumes[0].path", "climbs out"},
		{"volume NUL", vol("a\x00b", "/data"), "containers[0].volumes[0].path", "NUL"},
		{"volume backslash", vol(`a\..\b`, "/data"), "containers[0].volumes[0].path", "backslash"},
		{"volume not clean", vol("./data", "/data"), "containers[0].volumes[0].path", "clean form"},
		{"volume trailing slash", vol("data/", "/data"), "containers[0].volumes[0].path", "clean form"},
		{"volume double slash", vol("a//b", "/data"), "containers[0].volumes[0].path", "clean form"},
		{"volume dot", vol(".", "/data"), "containers[0].volumes[0].path", "name a subfolder"},
		{"volume empty", vol("", "/data"), "containers[0].volumes[0].path", "missing"},
		{"volume colon", vol("data:rw", "/data"), "containers[0].volumes[0].path", "only letters"},
		{"volume docker socket", vol("/var/run/docker.sock", "/data"), "containers[0].volumes[0].path", sock},
		{"volume docker socket run", vol("/run/docker.sock", "/data"), "containers[0].volumes[0].path", sock},
		{"volume podman socket", vol("/run/podman/podman.sock", "/data"), "containers[0].volumes[0].path", sock},
		{"volume rootless podman socket", vol("/run/user/1000/podman/podman.sock", "/data"), "containers[0].volumes[0].path", sock},
		{"volume rootless docker socket", vol("/run/user/1000/docker.sock", "/data"), "containers[0].volumes[0].path", sock},
		{"volume xdg socket", vol("$XDG_RUNTIME_DIR/podman/podman.sock", "/data"), "containers[0].volumes[0].path", sock},
		{"volume xdg braces", vol("${XDG_RUNTIME_DIR}/docker.sock", "/data"), "containers[0].volumes[0].path", sock},
		{"volume xdg folder", vol("$XDG_RUNTIME_DIR", "/data"), "containers[0].volumes[0].path", sock},
		{"volume systemd specifier", vol("%t/podman/podman.sock", "/data"), "containers[0].volumes[0].path", sock},
		{"volume containerd socket", vol("/run/containerd/containerd.sock", "/data"), "containers[0].volumes[0].path", sock},
		{"volume root", vol("/", "/data"), "containers[0].volumes[0].path", sock},
		{"volume run", vol("/run", "/data"), "containers[0].volumes[0].path", sock},
		{"volume var run", vol("/var/run/", "/data"), "containers[0].volumes[0].path", sock},
		{"volume var", vol("/var", "/data"), "containers[0].volumes[0].path", sock},
		{"volume run user", vol("/run/user", "/data"), "containers[0].volumes[0].path", sock},
		{"volume run user uid", vol("/run/user/1000", "/data"), "containers[0].volumes[0].path", sock},
		{"volume run user uid podman", vol("/run/user/1000/podman", "/data"), "containers[0].volumes[0].path", sock},
		{"volume run podman", vol("/run/podman", "/data"), "containers[0].volumes[0].path", sock},
		{"volume docker state", vol("/var/lib/docker", "/data"), "containers[0].volumes[0].path", sock},
		{"volume podman storage", vol("~/.local/share/containers/storage", "/data"), "containers[0].volumes[0].path", sock},
		{"volume socket dotdot spelled", vol("/run/../var/run/docker.sock", "/data"), "containers[0].volumes[0].path", sock},
		{"volume socket backslash", vol(`\var\run\docker.sock`, "/data"), "containers[0].volumes[0].path", sock},
		{"volume relative socket name", vol("run/docker.sock", "/data"), "containers[0].volumes[0].path", sock},
		{"mount relative", vol("data", "data"), "containers[0].volumes[0].mount", "absolute"},
		{"mount root", vol("data", "/"), "containers[0].volumes[0].mount", "whole file system"},
		{"mount missing", vol("data", ""), "containers[0].volumes[0].mount", "missing"},
		{"mount not clean", vol("data", "/data/../etc"), "containers[0].volumes[0].mount", "clean form"},
		{"mount proc", vol("data", "/proc/sys"), "containers[0].volumes[0].mount", "runtime owns"},
		{"mount NUL", vol("data", "/da\x00ta"), "containers[0].volumes[0].mount", "NUL"},
		{"mount docker socket", vol("data", "/var/run/docker.sock"), "containers[0].volumes[0].mount", sock},
		{"mount podman socket", vol("data", "/run/podman/podman.sock"), "containers[0].volumes[0].mount", sock},
		{"mount rootless socket", vol("data", "/run/user/0/podman/podman.sock"), "containers[0].volumes[0].mount", sock},
		{"mount duplicate", func(m *Manifest) { m.Containers[0].Volumes[1].Mount = "/data" }, "containers[0].volumes[1].mount", "mounted by containers[0].volumes[0] too"},

		// Health.
		{"health none", func(m *Manifest) { m.Containers[0].Health = &Health{} }, "containers[0].health", "exactly one of http, tcp or exec (found 0)"},
		{"health two", func(m *Manifest) { m.Containers[0].Health.TCP = &TCPProbe{Port: 80} }, "containers[0].health", "found 2"},
		{"health http port undeclared", func(m *Manifest) { m.Containers[0].Health.HTTP.Port = 8080 }, "containers[0].health.http.port", "not one of container web's ports"},
		{"health http port range", func(m *Manifest) { m.Containers[0].Health.HTTP.Port = 0 }, "containers[0].health.http.port", "1..65535"},
		{"health http path", func(m *Manifest) { m.Containers[0].Health.HTTP.Path = "health" }, "containers[0].health.http.path", "starting with '/'"},
		{"health tcp port range", func(m *Manifest) { m.Containers[1].Health.TCP.Port = 70000 }, "containers[1].health.tcp.port", "1..65535"},
		{"health tcp port undeclared", func(m *Manifest) { m.Containers[1].Health.TCP.Port = 5433 }, "containers[1].health.tcp.port", "not one of container db's ports"},
		{"health exec empty", func(m *Manifest) { m.Containers[2].Health.Exec = []string{} }, "containers[2].health.exec", "missing"},
		{"health exec NUL", func(m *Manifest) { m.Containers[2].Health.Exec = []string{"a\x00"} }, "containers[2].health.exec[0]", "NUL"},
		{"health interval unparsable", func(m *Manifest) { m.Containers[0].Health.Interval = "2" }, "containers[0].health.interval", "not a duration"},
		{"health interval too short", func(m *Manifest) { m.Containers[0].Health.Interval = "1ms" }, "containers[0].health.interval", "out of range"},
		{"health timeout too long", func(m *Manifest) { m.Containers[0].Health.Timeout = "11m" }, "containers[0].health.timeout", "out of range"},
		{"health start period too long", func(m *Manifest) { m.Containers[0].Health.StartPeriod = "2h" }, "containers[0].health.start_period", "out of range"},
		{"health start period negative", func(m *Manifest) { m.Containers[0].Health.StartPeriod = "-1s" }, "containers[0].health.start_period", "out of range"},
		{"health retries too many", func(m *Manifest) { m.Containers[0].Health.Retries = 101 }, "containers[0].health.retries", "0..100"},
		{"health retries negative", func(m *Manifest) { m.Containers[0].Health.Retries = -1 }, "containers[0].health.retries", "0..100"},

		// Stack order.
		{"depends_on unknown", func(m *Manifest) { m.Containers[0].DependsOn = []string{"cache"} }, "containers[0].depends_on[0]", "not a container of this app"},
		{"depends_on self", func(m *Manifest) { m.Containers[1].DependsOn = []string{"db"} }, "containers[1].depends_on[0]", "depends on itself"},
		{"depends_on twice", func(m *Manifest) { m.Containers[2].DependsOn = []string{"db", "db"} }, "containers[2].depends_on[1]", "listed twice"},
		{"depends_on cycle", func(m *Manifest) { m.Containers[1].DependsOn = []string{"worker"} }, "containers[2].depends_on", "dependency cycle: db → worker → db"},
		{"depends_on long cycle", func(m *Manifest) { m.Containers[1].DependsOn = []string{"web"} }, "containers[1].depends_on", "dependency cycle: web → db → web"},

		// Requires.
		{"requires bad id", func(m *Manifest) { m.Requires[0].ID = "Auth" }, "requires[0].id", "lowercase"},
		{"requires self", func(m *Manifest) { m.Requires[0].ID = m.ID }, "requires[0].id", "cannot require itself"},
		{"requires twice", func(m *Manifest) { m.Requires = append(m.Requires, Require{ID: "org.example.auth"}) }, "requires[1].id", "required twice"},
		{"requires bad range", func(m *Manifest) { m.Requires[0].Version = "newest" }, "requires[0].version", "not a semver range"},
		{"requires too many", func(m *Manifest) {
			for i := range MaxRequires {
				m.Requires = append(m.Requires, Require{ID: fmt.Sprintf("org.example.r%d", i)})
			}
		}, "requires", "over the cap of 32"},

		// Generated secrets.
		{"secrets too many", func(m *Manifest) {
			for i := range MaxSecrets {
				m.GeneratedSecrets = append(m.GeneratedSecrets, Secret{Name: fmt.Sprintf("s%d", i), Length: 16})
			}
		}, "generated_secrets", "over the cap of 32"},
		{"secret name uppercase", func(m *Manifest) { m.GeneratedSecrets[1].Name = "Admin" }, "generated_secrets[1].name", "[a-z][a-z0-9_]"},
		{"secret name too long", func(m *Manifest) { m.GeneratedSecrets[1].Name = "a" + strings.Repeat("b", 64) }, "generated_secrets[1].name", "[a-z][a-z0-9_]"},
		{"secret duplicate", func(m *Manifest) { m.GeneratedSecrets[1].Name = "db_password" }, "generated_secrets[1].name", "declared twice"},
		{"secret too short", func(m *Manifest) { m.GeneratedSecrets[1].Length = 15 }, "generated_secrets[1].length", "16..4096"},
		{"secret too long", func(m *Manifest) { m.GeneratedSecrets[1].Length = 4097 }, "generated_secrets[1].length", "16..4096"},
		{"secret charset", func(m *Manifest) { m.GeneratedSecrets[1].Charset = "emoji" }, "generated_secrets[1].charset", "alnum, hex, base64url"},

		// UI.
		{"ui unknown container", func(m *Manifest) { m.UI.Container = "frontend" }, "ui.container", "not a container"},
		{"ui port undeclared", func(m *Manifest) { m.UI.Port = 8080 }, "ui.port", "not one of container web's ports"},
		{"ui path", func(m *Manifest) { m.UI.Path = "app" }, "ui.path", "starting with '/'"},

		// Resources and user.
		{"memory unparsable", func(m *Manifest) { m.Containers[0].Resources.Memory = "lots" }, "containers[0].resources.memory", "not a size"},
		{"memory too small", func(m *Manifest) { m.Containers[0].Resources.Memory = "1m" }, "containers[0].resources.memory", "4MiB..64GiB"},
		{"memory too big", func(m *Manifest) { m.Containers[0].Resources.Memory = "65g" }, "containers[0].resources.memory", "4MiB..64GiB"},
		{"memory overflow", func(m *Manifest) { m.Containers[0].Resources.Memory = "99999999999999999999g" }, "containers[0].resources.memory", "not a size"},
		{"cpus too few", func(m *Manifest) { m.Containers[0].Resources.CPUs = 0.001 }, "containers[0].resources.cpus", "out of range"},
		{"cpus too many", func(m *Manifest) { m.Containers[0].Resources.CPUs = 65 }, "containers[0].resources.cpus", "out of range"},
		{"cpus negative", func(m *Manifest) { m.Containers[0].Resources.CPUs = -1 }, "containers[0].resources.cpus", "out of range"},
		{"pids too many", func(m *Manifest) { m.Containers[0].Resources.PIDs = 40000 }, "containers[0].resources.pids", "1..32768"},
		{"pids negative", func(m *Manifest) { m.Containers[0].Resources.PIDs = -1 }, "containers[0].resources.pids", "1..32768"},
		{"user three parts", func(m *Manifest) { m.Containers[0].User = "1:2:3" }, "containers[0].user", "uid[:gid]"},
		{"user bad name", func(m *Manifest) { m.Containers[0].User = "root!" }, "containers[0].user", "not a user or group name"},
		{"user huge uid", func(m *Manifest) { m.Containers[0].User = "99999999999" }, "containers[0].user", "not a numeric id"},
		{"user empty gid", func(m *Manifest) { m.Containers[0].User = "1000:" }, "containers[0].user", "uid[:gid]"},

		// Rootless invariants.
		{"privileged", func(m *Manifest) { m.Containers[1].Privileged = true }, "containers[1].privileged", "privileged containers are refused"},
		{"cap SYS_ADMIN", func(m *Manifest) { m.Containers[1].CapAdd = []string{"SYS_ADMIN"} }, "containers[1].cap_add[0]", "refused: only CHOWN"},
		{"cap NET_ADMIN", func(m *Manifest) { m.Containers[1].CapAdd = []string{"NET_ADMIN"} }, "containers[1].cap_add[0]", "refused"},
		{"cap SYS_PTRACE", func(m *Manifest) { m.Containers[1].CapAdd = []string{"SYS_PTRACE"} }, "containers[1].cap_add[0]", "refused"},
		{"cap SYS_MODULE", func(m *Manifest) { m.Containers[1].CapAdd = []string{"SYS_MODULE"} }, "containers[1].cap_add[0]", "refused"},
		{"cap NET_RAW", func(m *Manifest) { m.Containers[1].CapAdd = []string{"NET_RAW"} }, "containers[1].cap_add[0]", "refused"},
		{"cap ALL", func(m *Manifest) { m.Containers[1].CapAdd = []string{"CHOWN", "ALL"} }, "containers[1].cap_add[1]", "refused"},
		{"cap prefixed", func(m *Manifest) { m.Containers[1].CapAdd = []string{"CAP_CHOWN"} }, "containers[1].cap_add[0]", "write \"CAP_CHOWN\" as CHOWN"},
		{"cap lowercase", func(m *Manifest) { m.Containers[1].CapAdd = []string{"chown"} }, "containers[1].cap_add[0]", "as CHOWN"},
		{"cap twice", func(m *Manifest) { m.Containers[1].CapAdd = []string{"KILL", "KILL"} }, "containers[1].cap_add[1]", "twice"},
		{"volume nested in another container's", func(m *Manifest) {
			m.Containers[2].Volumes = []Volume{{Path: "db/sub", Mount: "/sub"}}
		}, "containers[2].volumes[0].path", `"db/sub" lies inside "db", a volume of containers[1] (db)`},
		{"network host", func(m *Manifest) { m.Containers[1].Network = "host" }, "containers[1].network", "host's network is refused"},
		{"network other", func(m *Manifest) { m.Containers[1].Network = "bridge" }, "containers[1].network", "not supported"},
		{"network container", func(m *Manifest) { m.Containers[1].Network = "container:web" }, "containers[1].network", "not supported"},
		{"pid host", func(m *Manifest) { m.Containers[1].PID = "host" }, "containers[1].pid", "host's PID namespace is refused"},
		{"pid other", func(m *Manifest) { m.Containers[1].PID = "private" }, "containers[1].pid", "leave it empty"},
		{"ipc host", func(m *Manifest) { m.Containers[1].IPC = "HOST" }, "containers[1].ipc", "host's IPC namespace is refused"},
		{"userns host", func(m *Manifest) { m.Containers[1].UserNS = "host" }, "containers[1].userns", "host's user namespace is refused"},
		{"userns keep-id", func(m *Manifest) { m.Containers[1].UserNS = "keep-id" }, "containers[1].userns", "not supported"},
		{"devices", func(m *Manifest) { m.Containers[1].Devices = []string{"/dev/fuse"} }, "containers[1].devices[0]", "host devices are refused"},
		{"sysctls", func(m *Manifest) { m.Containers[1].Sysctls = map[string]string{"net.ipv4.ip_forward": "1"} }, "containers[1].sysctls.net.ipv4.ip_forward", "sysctls are refused"},
		{"seccomp unconfined", func(m *Manifest) { m.Containers[1].SecurityOpt = []string{"seccomp=unconfined"} }, "containers[1].security_opt[0]", "disables seccomp"},
		{"label disable", func(m *Manifest) { m.Containers[1].SecurityOpt = []string{"label=disable"} }, "containers[1].security_opt[0]", "disables SELinux"},
		{"label spc_t", func(m *Manifest) { m.Containers[1].SecurityOpt = []string{"label=type:spc_t"} }, "containers[1].security_opt[0]", "disables SELinux"},
		{"apparmor unconfined", func(m *Manifest) { m.Containers[1].SecurityOpt = []string{"apparmor=unconfined"} }, "containers[1].security_opt[0]", "disables AppArmor"},
		{"no-new-privileges false", func(m *Manifest) { m.Containers[1].SecurityOpt = []string{"no-new-privileges=false"} }, "containers[1].security_opt[0]", "gain privileges"},
		{"no-new-privileges colon", func(m *Manifest) { m.Containers[1].SecurityOpt = []string{"no-new-privileges:false"} }, "containers[1].security_opt[0]", "gain privileges"},
		{"security opt any", func(m *Manifest) { m.Containers[1].SecurityOpt = []string{"no-new-privileges"} }, "containers[1].security_opt[0]", "sets security options itself"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := goodManifest(t)
			tt.mutate(m)
			wantProblem(t, m.Validate(), tt.path, tt.msg)
		})
	}
}

func TestValidateReportsAllProblems(t *testing.T) {
	m := goodManifest(t)
	m.ID = "BAD"
	m.Containers[0].Privileged = true
	m.Containers[1].Volumes[0].Path = "/etc"
	m.GeneratedSecrets[0].Length = 1
	err := m.Validate()
	for _, p := range []string{"id", "containers[0].privileged", "containers[1].volumes[0].path", "generated_secrets[0].length"} {
		wantProblem(t, err, p, "")
	}
	if n := len(problemsOf(t, err)); n != 4 {
		t.Errorf("%d problems, want 4: %v", n, err)
	}
}

func TestValidateSignedNeedsPins(t *testing.T) {
	m := goodManifest(t)
	m.Containers[0].Image = Image{Archive: "web.tar"}
	if err := m.Validate(); err != nil {
		t.Fatalf("authoring form with an archive: %v", err)
	}
	err := m.validate(true)
	wantProblem(t, err, "containers[0].image", "pin the image by cid and digest")
}

func TestParseMemory(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"4194304", 4 << 20, true},
		{"512m", 512 << 20, true},
		{"512M", 512 << 20, true},
		{"512mi", 512 << 20, true},
		{"512MiB", 512 << 20, true},
		{"2g", 2 << 30, true},
		{"64k", 64 << 10, true},
		{"1.5g", 0, false},
		{"g", 0, false},
		{"-1m", 0, false},
		{"10t", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseMemory(tt.in)
			if (err == nil) != tt.ok || got != tt.want {
				t.Fatalf("ParseMemory(%q) = %d, %v; want %d ok=%v", tt.in, got, err, tt.want, tt.ok)
			}
		})
	}
}

func mustSum(t testing.TB, data []byte, code uint64) mh.Multihash {
	t.Helper()
	h, err := mh.Sum(data, code, -1)
	if err != nil {
		t.Fatal(err)
	}
	return h
}
