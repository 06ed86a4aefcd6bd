package registry

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	stdjson "encoding/json"

	"github.com/archy-node/archy/cas"
	"github.com/archy-node/archy/internal/ociimage"
)

// yamlManifest is goodManifest's app as a developer would write it.
func yamlManifest(t testing.TB) string {
	return `# Notes: a web app with a database
schema: archy.app/v1
id: org.example.notes
name: Notes
version: 1.2.3
publisher: ` + testKey(t, 1).DID() + `
containers:
  - name: web
    image:
      ref: localhost/web:1
      cid: ` + testImage("web").CID + `
      digest: "` + testImage("web").Digest + `"
    command: [httpd, -f, -p, "80"]
    env:
      - {name: DB_PASSWORD, secret: db_password}
      - name: MODE
        value: prod
    ports:
      - container: 80
        host: 8080
    health:
      http: {port: 80, path: /health}
      interval: 2s
    depends_on: [db]
    resources: {memory: 256m, cpus: 0.5}
  - name: db
    image: {cid: ` + testImage("db").CID + `, digest: "` + testImage("db").Digest + `"}
    volumes:
      - path: db
        mount: /var/lib/db
generated_secrets:
  - name: db_password
    length: 32
ui: {container: web, port: 80}
`
}

// jsonManifest is the same app in JSON, keys in another order, indented.
func jsonManifest(t testing.TB) string {
	return `{
  "version": "1.2.3",
  "ui": {"port": 80, "container": "web"},
  "generated_secrets": [{"length": 32, "name": "db_password"}],
  "containers": [
    {
      "resources": {"cpus": 0.5, "memory": "256m"},
      "name": "web",
      "depends_on": ["db"],
      "health": {"interval": "2s", "http": {"path": "/health", "port": 80}},
      "ports": [{"host": 8080, "container": 80}],
      "env": [{"secret": "db_password", "name": "DB_PASSWORD"}, {"value": "prod", "name": "MODE"}],
      "command": ["httpd", "-f", "-p", "80"],
      "image": {"digest": "` + testImage("web").Digest + `", "cid": "` + testImage("web").CID + `", "ref": "localhost/web:1"}
    },
    {"volumes": [{"mount": "/var/lib/db", "path": "db"}], "image": {"digest": "` + testImage("db").Digest + `", "cid": "` + testImage("db").CID + `"}, "name": "db"}
  ],
  "publisher": "` + testKey(t, 1).DID() + `",
  "name": "Notes",
  "id": "org.example.notes",
  "schema": "archy.app/v1"
}
`
}

func writeApp(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoadSameCIDAcrossFormats(t *testing.T) {
	yml := writeApp(t, map[string]string{"manifest.yaml": yamlManifest(t)})
	ymlAlt := writeApp(t, map[string]string{"manifest.yml": strings.ReplaceAll(yamlManifest(t), "\n", "\n\n")})
	jsn := writeApp(t, map[string]string{"manifest.json": jsonManifest(t)})
	compact := writeApp(t, map[string]string{"app.json": strings.Join(strings.Fields(jsonManifest(t)), "")})
	var first *Loaded
	for _, p := range []string{yml, ymlAlt, jsn, filepath.Join(yml, "manifest.yaml"), filepath.Join(compact, "app.json")} {
		l, err := Load(p)
		if err != nil {
			t.Fatalf("load %s: %v", p, err)
		}
		if !l.CID.Equals(cas.Sum(l.Payload)) {
			t.Fatalf("%s: cid %s is not the sum of its payload", p, l.CID)
		}
		if canon, _ := Canonical(l.Manifest); !bytes.Equal(canon, l.Payload) {
			t.Fatalf("%s: payload is not canonical", p)
		}
		if first == nil {
			first = l
			continue
		}
		if !l.CID.Equals(first.CID) {
			t.Errorf("%s: cid %s, want %s (same manifest as %s)\n%s\n%s", p, l.CID, first.CID, first.File, l.Payload, first.Payload)
		}
	}
	if first.Dir != yml {
		t.Errorf("dir %s, want %s", first.Dir, yml)
	}
	// A changed byte of meaning changes the CID.
	other := writeApp(t, map[string]string{"manifest.yaml": strings.Replace(yamlManifest(t), "version: 1.2.3", "version: 1.2.4", 1)})
	l, err := Load(other)
	if err != nil {
		t.Fatal(err)
	}
	if l.CID.Equals(first.CID) {
		t.Fatal("another version has the same cid")
	}
}

func TestLoadParseErrors(t *testing.T) {
	y := yamlManifest(t)
	j := jsonManifest(t)
	tests := []struct {
		name, file, content string
		path, msg           string
	}{
		{"yaml unknown field", "manifest.yaml", strings.Replace(y, "    command:", "    comand:", 1), "containers[0].comand", "unknown field"},
		{"yaml unknown top field", "manifest.yaml", y + "license: MIT\n", "license", "unknown field"},
		{"yaml case-variant field", "manifest.yaml", strings.Replace(y, "id: org", "ID: org", 1), "ID", "did you mean id?"},
		{"yaml dashed field", "manifest.yaml", strings.Replace(y, "depends_on:", "depends-on:", 1), "containers[0].depends-on", "did you mean depends_on?"},
		{"yaml nested unknown", "manifest.yaml", strings.Replace(y, "        mount: /var/lib/db", "        mount: /var/lib/db\n        mode: rw", 1), "containers[1].volumes[0].mode", "unknown field"},
		{"yaml duplicate key", "manifest.yaml", y + "name: Other\n", "name", "key given twice"},
		{"yaml duplicate nested key", "manifest.yaml", strings.Replace(y, "        host: 8080", "        host: 8080\n        host: 8081", 1), "containers[0].ports[0].host", "key given twice"},
		{"yaml wrong type", "manifest.yaml", strings.Replace(y, "host: 8080", "host: eighty", 1), "containers[0].ports[0].host", "must be a whole number"},
		{"yaml number as text", "manifest.yaml", strings.Replace(y, "version: 1.2.3", "version: 1.2", 1), "version", "must be text"},
		{"yaml merge key", "manifest.yaml", y + "x: &a {b: 1}\ny:\n  <<: *a\n", "y.<<", "merge keys"},
		{"yaml custom tag", "manifest.yaml", strings.Replace(y, "name: Notes", "name: !secret Notes", 1), "name", "tag !secret"},
		{"yaml nan", "manifest.yaml", strings.Replace(y, "cpus: 0.5", "cpus: .nan", 1), "containers[0].resources.cpus", "finite"},
		{"yaml huge int", "manifest.yaml", strings.Replace(y, "host: 8080", "host: 99999999999999999999999", 1), "containers[0].ports[0].host", "must be a whole number"},
		{"yaml two documents", "manifest.yaml", y + "---\nid: other\n", "", "more than one YAML document"},
		{"yaml syntax", "manifest.yaml", "id: [unclosed\n", "", "YAML"},
		{"yaml empty", "manifest.yaml", "", "", "empty manifest"},
		{"yaml not a mapping", "manifest.yaml", "- a\n- b\n", "", "must be a mapping"},
		{"json unknown field", "manifest.json", strings.Replace(j, `"name": "Notes"`, `"name": "Notes", "privileged": true`, 1), "privileged", "unknown field"},
		{"json duplicate key", "manifest.json", strings.Replace(j, `"name": "Notes"`, `"name": "Notes", "name": "X"`, 1), "name", "key given twice"},
		{"json case-variant key", "manifest.json", strings.Replace(j, `"id":`, `"Id":`, 1), "Id", "did you mean id?"},
		{"json wrong type", "manifest.json", strings.Replace(j, `"host": 8080`, `"host": "8080"`, 1), "containers[0].ports[0].host", "must be a whole number, not a JSON string"},
		{"json trailing", "manifest.json", j + "{}", "", "line"},
		{"json syntax", "manifest.json", `{"id": }`, "id", "line 1 column"},
		{"validation after parse", "manifest.yaml", strings.Replace(y, "mount: /var/lib/db", "mount: /var/run/docker.sock", 1), "containers[1].volumes[0].mount", "container engine socket"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeApp(t, map[string]string{tt.file: tt.content})
			_, err := Load(dir)
			wantProblem(t, err, tt.path, tt.msg)
			if !strings.Contains(err.Error(), tt.file) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

func TestLoadFileErrors(t *testing.T) {
	y := yamlManifest(t)
	big := y + "description: \"" + strings.Repeat("a", MaxManifestSize) + "\"\n"
	tests := []struct {
		name  string
		files map[string]string
		arg   string
		msg   string
	}{
		{"no manifest", map[string]string{"README": "x"}, "", "holds none of"},
		{"two manifests", map[string]string{"manifest.yaml": y, "manifest.json": jsonManifest(t)}, "", "keep only one"},
		{"missing path", nil, "nope", "no such file"},
		{"too big", map[string]string{"manifest.yaml": big}, "", "cap"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeApp(t, tt.files)
			_, err := Load(filepath.Join(dir, tt.arg))
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("error %v, want …%s…", err, tt.msg)
			}
		})
	}
}

func TestLoadAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 10; i++ {
		fmt.Fprintf(&b, "a%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d]\n", i, i, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1)
	}
	_, err := ParseManifest([]byte(b.String()), "yaml")
	if err == nil || !strings.Contains(err.Error(), "too many nodes") {
		t.Fatalf("alias bomb: %v", err)
	}
}

// ociArchive builds an OCI image layout tar like `podman save --format
// oci-archive` writes, and returns its bytes and image manifest digest.
type ociOpts struct {
	images      int    // image manifests named by index.json (default 1)
	noLayout    bool   // leave out oci-layout
	corrupt     bool   // store a manifest blob that does not hash to its name
	dropBlob    bool   // leave the manifest blob out
	indexType   string // media type of index.json's entry
	indexBefore bool   // write index.json before the blobs
}

func ociArchive(t testing.TB, o ociOpts) ([]byte, string) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name string, data []byte) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	sum := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	if o.images == 0 {
		o.images = 1
	}
	if o.indexType == "" {
		o.indexType = ociimage.MediaTypeManifest
	}
	layer := []byte("layer bytes")
	config := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	var descs []map[string]any
	var blobs [][2]string
	for i := range o.images {
		man, _ := stdjson.Marshal(map[string]any{
			"schemaVersion": 2, "mediaType": ociimage.MediaTypeManifest,
			"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + sum(config), "size": len(config)},
			"layers": []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": "sha256:" + sum(layer), "size": len(layer), "i": i}},
		})
		name := sum(man)
		content := string(man)
		if o.corrupt {
			content += " "
		}
		if !o.dropBlob {
			blobs = append(blobs, [2]string{name, content})
		}
		descs = append(descs, map[string]any{"mediaType": o.indexType, "digest": "sha256:" + name, "size": len(man),
			"annotations": map[string]string{"org.opencontainers.image.ref.name": "localhost/app:1"}})
	}
	index, _ := stdjson.Marshal(map[string]any{"schemaVersion": 2, "manifests": descs})
	if !o.noLayout {
		add("oci-layout", []byte(`{"imageLayoutVersion": "1.0.0"}`))
	}
	if o.indexBefore {
		add("index.json", index)
	}
	add("blobs/sha256/"+sum(config), config)
	add("blobs/sha256/"+sum(layer), layer)
	for _, b := range blobs {
		add("blobs/sha256/"+b[0], []byte(b[1]))
	}
	if !o.indexBefore {
		add("index.json", index)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), "sha256:" + descs[0]["digest"].(string)[len("sha256:"):]
}

func archiveManifest(t testing.TB, image string) string {
	return `schema: archy.app/v1
id: org.example.web
name: Web
version: 1.0.0
publisher: ` + testKey(t, 1).DID() + `
containers:
  - name: web
    image:
      ref: localhost/app:1
` + image
}

func TestLoadArchive(t *testing.T) {
	archive, digest := ociArchive(t, ociOpts{})
	dir := writeApp(t, map[string]string{
		"manifest.yaml":     archiveManifest(t, "      archive: images/web.tar\n"),
		"images/web.tar":    string(archive),
		"images/plain.tar":  "not a tar at all",
		"images/README.txt": "x",
	})
	l, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	im := l.Manifest.Containers[0].Image
	if want := cas.Sum(archive).String(); im.CID != want {
		t.Errorf("image cid %s, want %s (the cid of the whole file)", im.CID, want)
	}
	if im.Digest != digest {
		t.Errorf("image digest %s, want %s", im.Digest, digest)
	}
	if got, want := l.Archives["web"], filepath.Join(dir, "images", "web.tar"); got != want {
		t.Errorf("archive path %q, want %q", got, want)
	}
	if bytes.Contains(l.Payload, []byte("archive")) {
		t.Errorf("payload carries the authoring-only archive: %s", l.Payload)
	}
	if _, err := ParsePayload(l.Payload); err != nil {
		t.Errorf("loaded payload does not parse back: %v", err)
	}

	// Index after or before the blobs: same answer.
	before, digest2 := ociArchive(t, ociOpts{indexBefore: true})
	if s, err := readOCIArchive(bytes.NewReader(before)); err != nil || s.Digest != digest2 || !s.CID.Equals(cas.Sum(before)) {
		t.Errorf("index first: %+v, %v", s, err)
	}

	pin := func(c, d string) string {
		return fmt.Sprintf("      archive: images/web.tar\n      cid: %s\n      digest: \"%s\"\n", c, d)
	}
	other := testImage("other")
	bad := func(o ociOpts) string { b, _ := ociArchive(t, o); return string(b) }
	tests := []struct {
		name  string
		image string
		files map[string]string
		path  string
		msg   string
	}{
		{"matching pins", pin(im.CID, im.Digest), nil, "", ""},
		{"cid mismatch", pin(other.CID, im.Digest), nil, "containers[0].image.cid", "does not match the archive's"},
		{"digest mismatch", pin(im.CID, other.Digest), nil, "containers[0].image.digest", "does not match the archive's"},
		{"missing file", "      archive: images/gone.tar\n", nil, "containers[0].image.archive", "no such file"},
		{"not a tar", "      archive: images/plain.tar\n", nil, "containers[0].image.archive", "invalid OCI image archive"},
		{"a folder", "      archive: images\n", nil, "containers[0].image.archive", "not a regular file"},
		{"climbs out", "      archive: ../web.tar\n", nil, "containers[0].image.archive", "climbs out"},
		{"absolute", "      archive: /etc/passwd\n", nil, "containers[0].image.archive", "host path"},
		{"no oci-layout", "      archive: x.tar\n", map[string]string{"x.tar": bad(ociOpts{noLayout: true})}, "containers[0].image.archive", "no oci-layout"},
		{"two images", "      archive: x.tar\n", map[string]string{"x.tar": bad(ociOpts{images: 2})}, "containers[0].image.archive", "names 2 images"},
		{"image index", "      archive: x.tar\n", map[string]string{"x.tar": bad(ociOpts{indexType: ociimage.MediaTypeIndex})}, "containers[0].image.archive", "multi-platform"},
		{"corrupt manifest blob", "      archive: x.tar\n", map[string]string{"x.tar": bad(ociOpts{corrupt: true})}, "containers[0].image.archive", "does not hash to its name"},
		{"missing manifest blob", "      archive: x.tar\n", map[string]string{"x.tar": bad(ociOpts{dropBlob: true})}, "containers[0].image.archive", "missing from blobs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string]string{"manifest.yaml": archiveManifest(t, tt.image), "images/web.tar": string(archive), "images/plain.tar": "junk"}
			for k, v := range tt.files {
				files[k] = v
			}
			_, err := Load(writeApp(t, files))
			if tt.path == "" && tt.msg == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantProblem(t, err, tt.path, tt.msg)
		})
	}

	t.Run("symlink out of the app folder", func(t *testing.T) {
		outside := writeApp(t, map[string]string{"web.tar": string(archive)})
		dir := writeApp(t, map[string]string{"manifest.yaml": archiveManifest(t, "      archive: web.tar\n")})
		if err := os.Symlink(filepath.Join(outside, "web.tar"), filepath.Join(dir, "web.tar")); err != nil {
			t.Fatal(err)
		}
		_, err := Load(dir)
		wantProblem(t, err, "containers[0].image.archive", "outside the app folder")
	})
}

func TestLoadErrorIsValidationError(t *testing.T) {
	dir := writeApp(t, map[string]string{"manifest.yaml": "schema: archy.app/v1\n"})
	_, err := Load(dir)
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Problems) < 4 {
		t.Fatalf("error %v: want a *ValidationError listing every missing field", err)
	}
}
