package registry

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/archy-node/archy/cas"
	"github.com/archy-node/archy/did"
)

// testKey is a deterministic did:key for tests.
func testKey(t testing.TB, b byte) *did.Key {
	t.Helper()
	k, err := did.FromSeed(bytes.Repeat([]byte{b}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func testImage(name string) Image {
	return Image{
		Ref:    "localhost/" + name + ":1",
		CID:    cas.Sum([]byte("image " + name)).String(),
		Digest: "sha256:" + strings.Repeat("ab", 32),
	}
}

// goodManifest is a three-container stack that uses every field.
func goodManifest(t testing.TB) *Manifest {
	return &Manifest{
		Schema:      Schema,
		ID:          "org.example.notes",
		Name:        "Notes",
		Version:     "1.2.3-rc.1+build.5",
		Publisher:   testKey(t, 1).DID(),
		Description: "A notes app.\nWith two lines.",
		Channel:     "stable",
		Containers: []Container{
			{
				Name:    "web",
				Image:   testImage("web"),
				Command: []string{"httpd", "-f", "-p", "80"},
				Env: []EnvVar{
					{Name: "DB_PASSWORD", Secret: "db_password"},
					{Name: "MODE", Value: "prod"},
				},
				Ports:     []Port{{Container: 80, Host: 8080}, {Container: 53, Host: 5353, Protocol: "udp"}, {Container: 53, Host: 5353, Protocol: "tcp"}},
				Volumes:   []Volume{{Path: "web/data", Mount: "/data"}, {Path: "web/conf", Mount: "/etc/web", ReadOnly: true}},
				Health:    &Health{HTTP: &HTTPProbe{Port: 80, Path: "/health"}, Interval: "2s", Timeout: "1s", Retries: 3, StartPeriod: "30s"},
				DependsOn: []string{"db"},
				Resources: &Resources{Memory: "256m", CPUs: 0.5, PIDs: 100},
				User:      "1000:1000",
				CapAdd:    []string{"NET_BIND_SERVICE"},
			},
			{
				Name:    "db",
				Image:   testImage("db"),
				Ports:   []Port{{Container: 5432, Host: 15432}},
				Volumes: []Volume{{Path: "db", Mount: "/var/lib/db"}},
				Health:  &Health{TCP: &TCPProbe{Port: 5432}},
				User:    "postgres",
			},
			{
				Name:      "worker",
				Image:     testImage("worker"),
				DependsOn: []string{"db", "web"},
				Health:    &Health{Exec: []string{"/bin/true"}},
				Env:       []EnvVar{{Name: "DB_PASSWORD", Secret: "db_password"}},
			},
		},
		Requires:         []Require{{ID: "org.example.auth", Version: ">=1.2.0 <2.0.0"}},
		GeneratedSecrets: []Secret{{Name: "db_password", Length: 32, Charset: "alnum"}, {Name: "admin", Length: 16, Display: true}},
		UI:               &UI{Container: "web", Port: 80, Path: "/"},
		Data:             &Data{Description: "notes and attachments", Backup: true},
	}
}

// problemsOf returns the problems of a *ValidationError in err.
func problemsOf(t testing.TB, err error) []Problem {
	t.Helper()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v (%T) is not a *ValidationError", err, err)
	}
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("error %v does not match ErrInvalid", err)
	}
	return ve.Problems
}

// wantProblem fails unless err names path exactly, with msg in its text.
func wantProblem(t testing.TB, err error, path, msg string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %s: %s", path, msg)
	}
	for _, p := range problemsOf(t, err) {
		if p.Path == path && strings.Contains(p.Msg, msg) {
			if !strings.Contains(err.Error(), p.String()) {
				t.Fatalf("error text %q does not name %q", err, p)
			}
			return
		}
	}
	t.Fatalf("error %q lacks %s: …%s…", err, path, msg)
}
