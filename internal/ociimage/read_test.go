package ociimage_test

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
func sampleArchive(t *testing.T) []byte {
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
	good := sampleArchive(t)
	isLayer := func(name string, b []byte) bool {
		return strings.HasPrefix(name, "blobs/sha256/") && !bytes.HasPrefix(b, []byte("{"))
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
		}), "does not hash to its name"},
		{"layer missing", rewrite(t, good, func(n string, b []byte) []byte {
			if isLayer(n, b) {
				return nil
			}
			return b
		}), "layer"},
		{"no index", rewrite(t, good, func(n string, b []byte) []byte {
			if n == "index.json" {
				return nil
			}
			return b
		}), "no index.json"},
		{"not a tar", bytes.Repeat([]byte("x"), 2000), "invalid OCI image archive"},
		{"nested index", rewrite(t, good, func(n string, b []byte) []byte {
			if n == "index.json" {
				return bytes.Replace(b, []byte(ociimage.MediaTypeManifest), []byte(ociimage.MediaTypeIndex), 1)
			}
			return b
		}), "multi-platform"},
		{"layout version", rewrite(t, good, func(n string, b []byte) []byte {
			if n == "oci-layout" {
				return []byte(`{"imageLayoutVersion":"9.9.9"}`)
			}
			return b
		}), "oci-layout"},
		{"index twice", appendEntry(t, good, "./index.json", []byte(`{"schemaVersion":2,"manifests":[]}`)), "twice"},
		{"blob name", appendEntry(t, good, "blobs/sha256/ABC", []byte("x")), "blob name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img, err := ociimage.Verify(bytes.NewReader(tc.data))
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if len(img.Names) != 1 || img.Names[0] != "localhost/archy/hello:1" || len(img.Manifests) != 1 || img.Blobs < 3 {
					t.Fatalf("image %+v", img)
				}
				return
			}
			if err == nil || !errors.Is(err, ociimage.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Verify = %v, want an ErrInvalid naming %q", err, tc.want)
			}
		})
	}
}

// appendEntry adds a regular file to the end of an archive.
func appendEntry(t *testing.T, data []byte, name string, body []byte) []byte {
	t.Helper()
	out := rewrite(t, data, func(_ string, b []byte) []byte { return b })
	out = out[:len(out)-1024] // the two zero blocks that end a tar
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(body))}); err != nil {
		t.Fatal(err)
	}
	_, _ = tw.Write(body)
	_ = tw.Close()
	return append(out, buf.Bytes()...)
}

// Verify reads r to its last byte, so a caller hashing r as it is read
// (registry's CID) hashes the whole file, end padding included.
func TestVerifyReadsToTheEnd(t *testing.T) {
	good := append(sampleArchive(t), make([]byte, 4096)...)
	var n countingWriter
	if _, err := ociimage.Verify(io.TeeReader(bytes.NewReader(good), &n)); err != nil {
		t.Fatal(err)
	}
	if int(n) != len(good) {
		t.Fatalf("Verify read %d of %d bytes", n, len(good))
	}
}

type countingWriter int

func (c *countingWriter) Write(p []byte) (int, error) {
	*c += countingWriter(len(p))
	return len(p), nil
}
