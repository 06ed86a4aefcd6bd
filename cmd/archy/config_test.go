package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNodeConfigSources(t *testing.T) {
	dir := t.TempDir()
	file := "upload-rate: 4mb\nrelay:\n  - ws://127.0.0.1:9/\n  - ws://127.0.0.1:10/\napi: 127.0.0.1:1111\nmdns: true\n"
	if err := os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ARCHY_API", "127.0.0.1:2222")
	t.Setenv("ARCHY_MDNS", "false")
	stdout, stderr, err := execArchy(t, "node", "config", "--data", dir, "--mdns", "--json")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	var got []struct {
		Name   string `json:"name"`
		Value  any    `json:"value"`
		Source string `json:"source"`
	}
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("%v: %s", err, stdout)
	}
	by := map[string]string{}
	for _, s := range got {
		b, _ := json.Marshal(s.Value)
		by[s.Name] = string(b) + " " + s.Source
	}
	fileSrc := "file " + filepath.Join(dir, "config.yaml")
	for name, want := range map[string]string{
		"mdns":          `"true" flag`, // the flag beats the environment and the file
		"api":           `"127.0.0.1:2222" env`,
		"upload-rate":   `"4MiB" ` + fileSrc,
		"relay":         `["ws://127.0.0.1:9/","ws://127.0.0.1:10/"] ` + fileSrc,
		"relay-listen":  `"127.0.0.1:7447" default`,
		"no-super-seed": `"false" default`,
	} {
		if by[name] != want {
			t.Errorf("%s: got %s, want %s", name, by[name], want)
		}
	}
}

func TestNodeConfigErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		env        [2]string
		args       []string
		want       string
	}{
		{"unknown key", "api: 127.0.0.1:1\nuplod-rate: 4MiB\n", [2]string{}, nil, `line 2: unknown setting "uplod-rate"`},
		{"bad value", "upload-rate: lots\n", [2]string{}, nil, `upload-rate: "lots"`},
		{"twice", "api: a:1\napi: b:2\n", [2]string{}, nil, "api"},
		{"not a mapping", "- api\n", [2]string{}, nil, "want a mapping"},
		{"nested", "relay:\n  a: b\n", [2]string{}, nil, "relay: want a value or a list"},
		{"bad env", "", [2]string{"ARCHY_MDNS", "maybe"}, nil, `ARCHY_MDNS="maybe"`},
		{"missing --config", "", [2]string{}, []string{"--config", "/nonexistent/archy.yaml"}, "/nonexistent/archy.yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(tc.file), 0o600); err != nil {
				t.Fatal(err)
			}
			if tc.env[0] != "" {
				t.Setenv(tc.env[0], tc.env[1])
			}
			for _, cmd := range [][]string{{"node", "config"}, {"node", "run"}} {
				args := append(append(cmd, "--data", dir, "--api", "127.0.0.1:0", "--relay-listen", "127.0.0.1:0",
					"--listen", "/ip4/127.0.0.1/tcp/0", "--podman-socket", "off"), tc.args...)
				_, stderr, err := execArchy(t, args...)
				if err == nil {
					t.Fatalf("%s accepted it", strings.Join(cmd, " "))
				}
				if !strings.Contains(stderr, tc.want) {
					t.Errorf("%s: error lacks %q:\n%s", strings.Join(cmd, " "), tc.want, stderr)
				}
			}
		})
	}
}
