package p2p

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/archy-node/archy/cas"
	"github.com/archy-node/archy/internal/ociimage"
)

func sampleImage(t *testing.T, ref string, payload []byte) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "rootfs")
	if err := os.MkdirAll(filepath.Join(root, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin", "payload"), payload, 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "image.tar")
	if _, err := ociimage.Build(context.Background(), root, out, ref); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestImageRoundTrip(t *testing.T) {
	_, payload := randomFile(t, 2<<20)
	archive := sampleImage(t, "localhost/archy/sample:1", payload)
	a, b := newNode(t, nil), newNode(t, nil)
	root, img, err := a.PushImage(t.Context(), archive)
	if err != nil {
		t.Fatal(err)
	}
	if len(img.Names) != 1 || img.Names[0] != "localhost/archy/sample:1" {
		t.Fatalf("pushed image names %v", img.Names)
	}
	connect(t, b, a)
	out := filepath.Join(t.TempDir(), "pulled.tar")
	got, err := b.PullImage(t.Context(), root, -1, out)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(archive)
	checkFile(t, out, want)
	if strings.Join(got.Manifests, ",") != strings.Join(img.Manifests, ",") {
		t.Fatalf("pulled manifests %v, pushed %v", got.Manifests, img.Manifests)
	}
	// A third node knows only the archive's sum, as a manifest pins it.
	c := newNode(t, nil)
	connect(t, c, a)
	sum := cas.Sum(want)
	out2 := filepath.Join(t.TempDir(), "by-sum.tar")
	if _, err := c.PullImage(t.Context(), sum, int64(len(want)), out2); err != nil {
		t.Fatal(err)
	}
	checkFile(t, out2, want)
	if r, ok := c.Root(sum); !ok || !r.Equals(root) {
		t.Fatalf("pulled by sum as %s (%v), want %s", r, ok, root)
	}
}

// A blob that is not an OCI archive cannot be pushed as an image, and
// pulling it as one leaves no file behind.
func TestImageRejectsNonOCI(t *testing.T) {
	a, b := newNode(t, nil), newNode(t, nil)
	in, _ := randomFile(t, 100<<10)
	if _, _, err := a.PushImage(t.Context(), in); err == nil {
		t.Fatal("pushed random bytes as an image")
	}
	root, err := a.AddFile(t.Context(), in)
	if err != nil {
		t.Fatal(err)
	}
	connect(t, b, a)
	dir := t.TempDir()
	if _, err := b.PullImage(t.Context(), root, 100<<10, filepath.Join(dir, "x.tar")); err == nil {
		t.Fatal("pulled random bytes as an image")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("pull of a bad image left %s", ents[0].Name())
	}
}
