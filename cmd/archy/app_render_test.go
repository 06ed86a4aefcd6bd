package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/archy-node/archy/node"
	"github.com/archy-node/archy/orchestrator"
)

func TestAppRender(t *testing.T) {
	hello := filepath.Join("..", "..", "examples", "apps", "hello")
	outDir := t.TempDir()
	tests := []struct {
		name    string
		args    []string
		wantErr string
		check   func(t *testing.T, stdout string)
	}{
		{"units on stdout", []string{"app", "render", hello, "--app-data", "/srv/hello"}, "", func(t *testing.T, out string) {
			for _, want := range []string{"### archy-hello.network\n", "### archy-hello-web.container\n", "PublishPort=127.0.0.1:18080:8080\n"} {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q", want)
				}
			}
		}},
		{"json", []string{"app", "render", filepath.Join(hello, "manifest.yaml"), "--json", "--data-dir", "/srv/hello"}, "", func(t *testing.T, out string) {
			var got renderOutput
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatal(err)
			}
			if got.App != "hello" || got.DataDir != "/srv/hello" || len(got.Units) != 2 || got.Units[1].Name != "archy-hello-web.container" {
				t.Errorf("unexpected output %+v", got)
			}
		}},
		{"data folder of a node on --data", []string{"app", "render", hello, "--json", "--data", "/srv/node"}, "", func(t *testing.T, out string) {
			var got renderOutput
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatal(err)
			}
			// Where the node's orchestrator keeps hello's data.
			if want := orchestrator.AppDataDir(node.AppsDir("/srv/node"), "hello"); got.DataDir != want || want != "/srv/node/apps/data/hello" {
				t.Errorf("data folder %q, want %q", got.DataDir, want)
			}
		}},
		{"out folder", []string{"app", "render", hello, "--out", outDir, "--podman", "4.4"}, "", func(t *testing.T, out string) {
			data, err := os.ReadFile(filepath.Join(outDir, "archy-hello-web.container"))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(data), "PodmanArgs=--health-interval=2s") {
				t.Errorf("4.4 unit lacks its health flags:\n%s", data)
			}
			if strings.TrimSpace(out) != filepath.Join(outDir, "archy-hello-web.container") {
				t.Errorf("printed %q", out)
			}
		}},
		{"missing app", []string{"app", "render", filepath.Join(t.TempDir(), "nope")}, "no such file", nil},
		{"folder without manifest", []string{"app", "render", t.TempDir()}, "holds none of", nil},
		{"bad target", []string{"app", "render", hello, "--podman", "3.0"}, `podman target "3.0"`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), tt.args, &stdout, &stderr)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, stdout.String())
		})
	}
}
