package registry

import (
	"bytes"
	"fmt"
	"testing"
)

// The archive's size is pinned beside its CID: computed from an archive,
// checked against one given, carried in the signed payload.
func TestImageSizePinned(t *testing.T) {
	archive, _ := ociArchive(t, ociOpts{})
	dir := writeApp(t, map[string]string{
		"manifest.yaml":  archiveManifest(t, "      archive: images/web.tar\n"),
		"images/web.tar": string(archive),
	})
	l, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Manifest.Containers[0].Image.Size; got != int64(len(archive)) {
		t.Fatalf("image size %d, want the archive's %d bytes", got, len(archive))
	}
	if want := fmt.Sprintf(`"size":%d`, len(archive)); !bytes.Contains(l.Payload, []byte(want)) {
		t.Fatalf("signed payload lacks %s: %s", want, l.Payload)
	}
	m, err := ParsePayload(l.Payload)
	if err != nil {
		t.Fatal(err)
	}
	if m.Containers[0].Image.Size != int64(len(archive)) {
		t.Fatalf("parsed size %d", m.Containers[0].Image.Size)
	}

	dir = writeApp(t, map[string]string{
		"manifest.yaml":  archiveManifest(t, fmt.Sprintf("      archive: images/web.tar\n      size: %d\n", len(archive)+1)),
		"images/web.tar": string(archive),
	})
	_, err = Load(dir)
	wantProblem(t, err, "containers[0].image.size", "does not match the archive")
}

func TestImageSizeValidated(t *testing.T) {
	for _, size := range []int64{-1, MaxImageSize + 1} {
		m := goodManifest(t)
		m.Containers[0].Image.Size = size
		wantProblem(t, m.Validate(), "containers[0].image.size", "not an archive size")
	}
	m := goodManifest(t)
	m.Containers[0].Image.Size = 12345
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
}
