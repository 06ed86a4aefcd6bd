package oci

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/archy-node/archy/internal/ociimage"
)

// sample builds a real archive with internal/ociimage from a small rootfs.
func sample(t *testing.T) []byte {
	t.Helper()
	root := filepath.Join(t.TempDir(), "rootfs")
	if err := os.MkdirAll(filepath.Join(root, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin", "hello"), bytes.Repeat([]byte("hello archy\n"), 1000), 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "image.tar")
	if _, err := ociimage.Build(context.Background(), root, out, "localhost/archy/hello:1"); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// rewrite copies an archive, letting edit change or drop (nil) entries.
func rewrite(t *testing.T, data []byte, edit func(name string, b []byte) []byte) []byte {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(data))
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		if hdr.Typeflag == tar.TypeReg {
			if b = edit(hdr.Name, b); b == nil {
				continue
			}
			hdr.Size = int64(len(b))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		_, _ = tw.Write(b)
	}
	_ = tw.Close()
	return out.Bytes()
}

func TestVerify(t *testing.T) {
	good := sample(t)
	isLayer := func(name string, b []byte) bool {
		return strings.HasPrefix(name, blobPrefix) && !bytes.HasPrefix(b, []byte("{"))
	}
	for _, tc := range []struct {
		name string
		data []byte
		want string // "" for valid
	}{
		{"valid", good, ""},
		{"layer byte flipped", rewrite(t, good, func(n string, b []byte) []byte {
			if isLayer(n, b) {
				b[len(b)/2] ^= 1
			}
			return b
		}), "has digest"},
		{"layer missing", rewrite(t, good, func(n string, b []byte) []byte {
			if isLayer(n, b) {
				return nil
			}
			return b
		}), "layer"},
		{"no index", rewrite(t, good, func(n string, b []byte) []byte {
			if n == indexFile {
				return nil
			}
			return b
		}), "no index.json"},
		{"not a tar", bytes.Repeat([]byte("x"), 2000), "invalid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img, err := Verify(bytes.NewReader(tc.data))
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if len(img.Names) != 1 || img.Names[0] != "localhost/archy/hello:1" || len(img.Manifests) != 1 || img.Blobs < 3 {
					t.Fatalf("image %+v", img)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Verify = %v, want an ErrInvalid naming %q", err, tc.want)
			}
		})
	}
}
