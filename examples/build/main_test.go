package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/archy-node/archy/examples"
)

// TestBuildDeterministic builds one sample app twice from a copy of its
// folder and checks the archives are identical, tagged as the manifest says,
// and hold busybox, the version file and the app's scripts.
func TestBuildDeterministic(t *testing.T) {
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("no /bin/busybox (install busybox-static)")
	}
	apps := t.TempDir()
	if err := exec.Command("cp", "-r", filepath.Join(examples.AppsDir(), "hello"), apps).Run(); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(filepath.Join(apps, "hello", "images"))
	var archives [2][]byte
	for i := range archives {
		built, err := Build(context.Background(), apps, "/bin/busybox", []string{"hello"})
		if err != nil {
			t.Fatal(err)
		}
		if len(built) != 3 {
			t.Fatalf("built %d images, want 3 (current, update, broken)", len(built))
		}
		if archives[i], err = os.ReadFile(built[0].Archive); err != nil {
			t.Fatal(err)
		}
		if built[0].Ref != "localhost/archy-example/hello-web:1.0.0" {
			t.Errorf("ref %s", built[0].Ref)
		}
	}
	if !bytes.Equal(archives[0], archives[1]) {
		t.Fatal("two builds of the same app differ")
	}
	files := untar(t, archives[0])
	var index struct {
		Manifests []struct {
			Digest      string            `json:"digest"`
			Annotations map[string]string `json:"annotations"`
		} `json:"manifests"`
	}
	if err := json.Unmarshal(files["index.json"], &index); err != nil || len(index.Manifests) != 1 {
		t.Fatalf("index.json: %v %s", err, files["index.json"])
	}
	if ref := index.Manifests[0].Annotations["org.opencontainers.image.ref.name"]; ref != "localhost/archy-example/hello-web:1.0.0" {
		t.Errorf("ref annotation %q", ref)
	}
	for name, data := range files {
		if len(name) == len("blobs/sha256/")+64 && name[:13] == "blobs/sha256/" {
			sum := sha256.Sum256(data)
			if hex.EncodeToString(sum[:]) != name[13:] {
				t.Errorf("blob %s does not match its digest", name)
			}
		}
	}
	var manifest struct {
		Layers []struct{ Digest string } `json:"layers"`
	}
	if err := json.Unmarshal(files["blobs/sha256/"+index.Manifests[0].Digest[7:]], &manifest); err != nil || len(manifest.Layers) != 1 {
		t.Fatalf("manifest: %v", err)
	}
	layer := untar(t, files["blobs/sha256/"+manifest.Layers[0].Digest[7:]])
	tests := []struct{ path, want string }{
		{"etc/app-version", "1.0.0\n"},
		{"etc/app-id", "hello\n"},
		{"app/www/healthz", "ok\n"},
	}
	for _, tt := range tests {
		if got := string(layer[tt.path]); got != tt.want {
			t.Errorf("%s = %q, want %q", tt.path, got, tt.want)
		}
	}
	for _, p := range []string{"bin/busybox", "app/start.sh"} {
		if len(layer[p]) == 0 {
			t.Errorf("layer lacks %s", p)
		}
	}
}

// untar returns the regular files of a tar archive by name.
func untar(t *testing.T, data []byte) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files[hdr.Name] = b
		}
	}
}
