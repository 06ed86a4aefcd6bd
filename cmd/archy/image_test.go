package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/archy-node/archy/cas"
	"github.com/archy-node/archy/internal/ociimage"
	"github.com/archy-node/archy/internal/podmantest"
	"github.com/archy-node/archy/orchestrator/memruntime"
	"github.com/archy-node/archy/orchestrator/podman"
)

// image push hands an archive to the running node; image pull asks the
// node to fetch it, check it and load it into its engine (the twin
// here), as an operation with progress; -o writes the verified archive.
func TestImagePushPullThroughNode(t *testing.T) {
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
	archiveBytes, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	junk := filepath.Join(t.TempDir(), "junk.tar")
	if err := os.WriteFile(junk, []byte(strings.Repeat("not a tar ", 100)), 0o644); err != nil {
		t.Fatal(err)
	}
	rt := memruntime.New(memruntime.Config{CallTimeout: time.Minute})
	data := twinNode(t, rt, 10*time.Second)
	off := startCLINode(t) // apps off: nothing to load into

	out, _, err := execArchy(t, "image", "push", archive, "--json", "--data", data)
	if err != nil {
		t.Fatal(err)
	}
	var pushed imageResult
	if err := json.Unmarshal([]byte(lastLine(out)), &pushed); err != nil || !strings.HasPrefix(pushed.CID, "bafyb4i") ||
		pushed.Sum != cas.Sum(archiveBytes).String() || !slices.Contains(pushed.Names, "localhost/archy/cli:1") {
		t.Fatalf("push printed %s (%v)", out, err)
	}
	if _, _, err := execArchy(t, "image", "push", junk, "--data", data); err == nil || !strings.Contains(err.Error(), "invalid OCI image archive") {
		t.Fatalf("push junk: %v", err)
	}

	// Pull by root: loaded into the node's engine, names on stdout.
	out, stderr, err := execArchy(t, "image", "pull", pushed.CID, "--data", data)
	if err != nil {
		t.Fatalf("pull: %v\n%s", err, stderr)
	}
	if out != "localhost/archy/cli:1\n" || !strings.Contains(stderr, "verify 100% checking the OCI archive") || !strings.Contains(stderr, "load 100% loading into Podman") {
		t.Fatalf("pull: stdout %q stderr %q", out, stderr)
	}
	// Pull by sum, kept at -o without loading: the same bytes.
	kept := filepath.Join(t.TempDir(), "kept.tar")
	out, _, err = execArchy(t, "image", "pull", pushed.Sum, "--no-load", "-o", kept, "--json", "--data", data)
	if err != nil {
		t.Fatal(err)
	}
	var pulled imageResult
	if err := json.Unmarshal([]byte(lastLine(out)), &pulled); err != nil || pulled.CID != pushed.CID || pulled.Loaded != nil || pulled.Path != kept {
		t.Fatalf("pull --json: %s (%v)", lastLine(out), err)
	}
	if b, err := os.ReadFile(kept); err != nil || !bytes.Equal(b, archiveBytes) {
		t.Fatalf("pull -o wrote %d bytes (%v), want the pushed archive", len(b), err)
	}

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"a bad cid", []string{"image", "pull", "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy", "--data", data}, "BLAKE3"},
		{"no-load without out", []string{"image", "pull", pushed.Sum, "--no-load", "--data", data}, "--out"},
		{"load with apps off", []string{"image", "pull", pushed.Sum, "--data", off}, "apps are off"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := execArchy(t, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one naming %q", err, tc.want)
			}
		})
	}
}

// image push IMAGE exports the image from Podman and hands the archive to
// the running node; the temp archive does not stay behind.
func TestImagePushFromPodman(t *testing.T) {
	sock := podmantest.Socket(t)
	var tag [4]byte
	_, _ = rand.Read(tag[:])
	ref := "localhost/archy-test/pushname:" + hex.EncodeToString(tag[:])
	archive := podmantest.BusyboxImage(t, ref, "pushed")
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	rt, err := podman.New(ctx, podman.Config{Socket: sock})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rt.LoadImage(ctx, archive); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = rt.RemoveImage(ctx, ref)
	})
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	data := startCLINode(t)
	out, stderr, err := execArchy(t, "image", "push", ref, "--podman-socket", sock, "--data", data, "--json")
	if err != nil {
		t.Fatalf("push %s: %v\n%s", ref, err, stderr)
	}
	var res imageResult
	if err := json.Unmarshal([]byte(lastLine(out)), &res); err != nil || !strings.HasPrefix(res.CID, "bafyb4i") || !slices.Contains(res.Names, ref) {
		t.Fatalf("push printed %s (%v)", out, err)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Fatalf("push left %d files in the temp folder", len(left))
	}
}
