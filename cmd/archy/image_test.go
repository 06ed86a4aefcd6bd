package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/archy-node/archy/internal/ociimage"
)

func TestImagePushCLI(t *testing.T) {
	rootfs := filepath.Join(t.TempDir(), "rootfs")
	if err := os.MkdirAll(filepath.Join(rootfs, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "etc", "motd"), []byte("hi"), 0o644); err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "img.tar")
	if _, err := ociimage.Build(context.Background(), rootfs, archive, "localhost/archy/cli:1"); err != nil {
		t.Fatal(err)
	}
	junk := filepath.Join(t.TempDir(), "junk.tar")
	if err := os.WriteFile(junk, []byte(strings.Repeat("not a tar ", 100)), 0o644); err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	common := []string{"--data-dir", data, "--listen", "/ip4/127.0.0.1/tcp/0"}
	for _, tc := range []struct {
		name string
		args []string
		want string // in stdout, or in the error when fail
		fail bool
	}{
		{"push an archive", []string{"image", "push", archive, "--json"}, `"localhost/archy/cli:1"`, false},
		{"push junk", []string{"image", "push", junk}, "invalid OCI image archive", true},
		{"pull a bad cid", []string{"image", "pull", "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"}, "BLAKE3", true},
		{"no-load without out", []string{"image", "pull", "bafkr4ihuqc5gq2azkbwbrzllpvses2qn4lwk7pe6jpbppjrqvmq2koa2ge", "--no-load"}, "--out", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := execArchy(t, append(tc.args, common...)...)
			if tc.fail {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("err = %v, want one naming %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var res imageResult
			if err := json.Unmarshal([]byte(out), &res); err != nil || !strings.HasPrefix(res.CID, "bafyb4i") || !strings.Contains(out, tc.want) {
				t.Fatalf("output %s (%v), want a bafyb4i CID and %s", out, err, tc.want)
			}
		})
	}
}
