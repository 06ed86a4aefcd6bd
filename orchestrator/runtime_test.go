package orchestrator

import (
	"errors"
	"testing"
)

func TestValidName(t *testing.T) {
	for name, want := range map[string]bool{
		"archy-web-1": true, "x": true, "a": false, "App_2.x": true,
		"": false, "-x": false, "a b": false, "../x": false, "a/b": false,
		"deadbeef": false, "0123": false, // all hex: could be an ID prefix
		"deadbeefg": true,
	} {
		if got := ValidName(name); got != want {
			t.Errorf("ValidName(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestCheckSpec(t *testing.T) {
	ok := ContainerSpec{Name: "archy-x", Image: "localhost/x:1"}
	for _, tc := range []struct {
		name string
		edit func(*ContainerSpec)
		bad  bool
	}{
		{"valid", func(*ContainerSpec) {}, false},
		{"bad name", func(s *ContainerSpec) { s.Name = "abc" }, true},
		{"no image", func(s *ContainerSpec) { s.Image = "" }, true},
		{"port zero", func(s *ContainerSpec) { s.Ports = []Port{{HostPort: 0, ContainerPort: 80}} }, true},
		{"port protocol", func(s *ContainerSpec) { s.Ports = []Port{{HostPort: 1, ContainerPort: 80, Protocol: "sctp"}} }, true},
		{"relative mount", func(s *ContainerSpec) { s.Mounts = []Mount{{Source: "data", Target: "/data"}} }, true},
		{"restart policy", func(s *ContainerSpec) { s.Restart.Name = "sometimes" }, true},
		{"network name", func(s *ContainerSpec) { s.Network = "a b" }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := ok
			tc.edit(&s)
			err := CheckSpec(s)
			if (err != nil) != tc.bad {
				t.Fatalf("CheckSpec: %v, want error %v", err, tc.bad)
			}
			if tc.name == "bad name" && !errors.Is(err, ErrInvalidName) {
				t.Fatalf("bad name: %v, want ErrInvalidName", err)
			}
		})
	}
}

func TestNormalized(t *testing.T) {
	s := ContainerSpec{Ports: []Port{{HostPort: 8080, ContainerPort: 80}}}
	n := s.Normalized()
	if p := n.Ports[0]; p.HostIP != "127.0.0.1" || p.Protocol != "tcp" || n.Restart.Name != RestartNo {
		t.Fatalf("normalized %+v", n)
	}
	if s.Ports[0].HostIP != "" {
		t.Fatal("Normalized changed its receiver's ports")
	}
}

func TestSpecErrorIs(t *testing.T) {
	var err error = &SpecError{Field: "labels[x]", Want: "1", Got: ""}
	if !errors.Is(err, ErrSpecNotApplied) {
		t.Fatal("SpecError is not ErrSpecNotApplied")
	}
}
