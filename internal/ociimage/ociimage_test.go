package ociimage_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/archy-node/archy/internal/ociimage"
)

func rootfs(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin", "tool"), []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("tool", filepath.Join(root, "bin", "sh")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "www"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "www", "index.html"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

// readArchive returns the archive's files by name.
func readArchive(t *testing.T, path string) (map[string][]byte, []string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files := map[string][]byte{}
	var order []string
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files, order
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = b
		order = append(order, h.Name)
	}
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func TestBuildIsDeterministic(t *testing.T) {
	root := rootfs(t)
	ctx := context.Background()
	a := filepath.Join(t.TempDir(), "a.tar")
	b := filepath.Join(t.TempDir(), "b.tar")
	da, err := ociimage.Build(ctx, root, a, "localhost/x:1")
	if err != nil {
		t.Fatal(err)
	}
	// Later mtimes must not change a byte.
	later := time.Now().Add(time.Hour)
	os.Chtimes(filepath.Join(root, "www", "index.html"), later, later)
	db, err := ociimage.Build(ctx, root, b, "localhost/x:1")
	if err != nil {
		t.Fatal(err)
	}
	ba, _ := os.ReadFile(a)
	bb, _ := os.ReadFile(b)
	if da != db || !bytes.Equal(ba, bb) {
		t.Fatalf("two builds differ: %s vs %s", da, db)
	}
	// Content does change it.
	os.WriteFile(filepath.Join(root, "www", "index.html"), []byte("other"), 0o644)
	dc, err := ociimage.Build(ctx, root, b, "localhost/x:1")
	if err != nil || dc == da {
		t.Fatalf("changed content, same digest %s (%v)", dc, err)
	}
}

// The archive is a valid OCI layout: every descriptor points at a blob of
// that digest and size, the config's diff_id is the layer's digest, and the
// layer holds the tree owned by root with fixed mtimes.
func TestBuildLayout(t *testing.T) {
	root := rootfs(t)
	out := filepath.Join(t.TempDir(), "img.tar")
	md, err := ociimage.Build(context.Background(), root, out, "localhost/x:1",
		ociimage.WithConfig(ociimage.Config{Cmd: []string{"/bin/sh"}, Labels: map[string]string{"k": "v"}}))
	if err != nil {
		t.Fatal(err)
	}
	files, order := readArchive(t, out)
	if !slices.Contains(order, "oci-layout") || !slices.Contains(order, "index.json") {
		t.Fatalf("entries %v: want oci-layout and index.json", order)
	}
	blob := func(d string, size int64) []byte {
		t.Helper()
		b, ok := files["blobs/sha256/"+strings.TrimPrefix(d, "sha256:")]
		if !ok || sha(b) != d || int64(len(b)) != size {
			t.Fatalf("blob %s (size %d): present %v, digest %s, size %d", d, size, ok, sha(b), len(b))
		}
		return b
	}
	var idx struct {
		Manifests []struct {
			MediaType   string
			Digest      string
			Size        int64
			Annotations map[string]string
		}
	}
	if err := json.Unmarshal(files["index.json"], &idx); err != nil || len(idx.Manifests) != 1 {
		t.Fatalf("index.json: %v %+v", err, idx)
	}
	m0 := idx.Manifests[0]
	if m0.Digest != md || m0.Annotations[ociimage.AnnotationRefName] != "localhost/x:1" || m0.MediaType != ociimage.MediaTypeManifest {
		t.Fatalf("index entry %+v, want digest %s and the name", m0, md)
	}
	var man struct {
		Config struct {
			Digest string
			Size   int64
		}
		Layers []struct {
			MediaType string
			Digest    string
			Size      int64
		}
	}
	if err := json.Unmarshal(blob(m0.Digest, m0.Size), &man); err != nil || len(man.Layers) != 1 {
		t.Fatalf("manifest: %v %+v", err, man)
	}
	var cfg struct {
		OS     string `json:"os"`
		Config struct {
			Cmd    []string
			Labels map[string]string
		} `json:"config"`
		RootFS struct {
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
	}
	if err := json.Unmarshal(blob(man.Config.Digest, man.Config.Size), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.OS != "linux" || !slices.Equal(cfg.Config.Cmd, []string{"/bin/sh"}) || cfg.Config.Labels["k"] != "v" {
		t.Fatalf("config %+v", cfg)
	}
	layer := blob(man.Layers[0].Digest, man.Layers[0].Size)
	if len(cfg.RootFS.DiffIDs) != 1 || cfg.RootFS.DiffIDs[0] != man.Layers[0].Digest {
		t.Fatalf("diff_ids %v, want the uncompressed layer's digest %s", cfg.RootFS.DiffIDs, man.Layers[0].Digest)
	}
	tr := tar.NewReader(bytes.NewReader(layer))
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Uid != 0 || h.Gid != 0 || !h.ModTime.Equal(ociimage.Epoch) {
			t.Errorf("%s: uid %d gid %d mtime %v", h.Name, h.Uid, h.Gid, h.ModTime)
		}
		if h.Name == "bin/sh" && (h.Typeflag != tar.TypeSymlink || h.Linkname != "tool") {
			t.Errorf("bin/sh: %+v, want a symlink to tool", h)
		}
		if h.Name == "bin/tool" && h.Mode&0o111 == 0 {
			t.Errorf("bin/tool lost its exec bits: %o", h.Mode)
		}
		names = append(names, h.Name)
	}
	want := []string{"bin/", "bin/sh", "bin/tool", "www/", "www/index.html"}
	if !slices.Equal(names, want) {
		t.Fatalf("layer entries %v, want %v", names, want)
	}
	got, err := ociimage.Names(out)
	if err != nil || !slices.Equal(got, []string{"localhost/x:1"}) {
		t.Fatalf("Names: %v %v", got, err)
	}
}

func TestBuildErrors(t *testing.T) {
	ctx := context.Background()
	out := filepath.Join(t.TempDir(), "x.tar")
	if _, err := ociimage.Build(ctx, filepath.Join(t.TempDir(), "missing"), out, "localhost/x:1"); err == nil {
		t.Error("missing rootfs: no error")
	}
	if _, err := ociimage.Build(ctx, rootfs(t), out, ""); err == nil {
		t.Error("empty name: no error")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := ociimage.Build(cctx, rootfs(t), out, "localhost/x:1"); err == nil {
		t.Error("cancelled context: no error")
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("failed builds left %s behind: %v", out, err)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}
