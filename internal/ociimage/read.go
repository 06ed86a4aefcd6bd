package ociimage

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
)

// MediaTypeDockerManifest is the Docker v2 image manifest, which Podman
// may name in an OCI archive's index.
const MediaTypeDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"

// Bounds on what Verify reads.
const (
	maxJSON    = 4 << 20  // index.json, a manifest or a config
	maxKept    = 64 << 20 // small blobs kept in memory to parse
	maxEntries = 1 << 16
	blobPrefix = "blobs/sha256/"
	layoutFile = "oci-layout"
	indexFile  = "index.json"
	layoutV1   = "1.0.0"
)

// ErrInvalid is wrapped by every error about an archive's content.
var ErrInvalid = errors.New("invalid OCI image archive")

// Image describes a verified archive.
type Image struct {
	// Names are the image names the index carries (ref.name annotations).
	Names []string `json:"names,omitempty"`
	// Manifests are the digests ("sha256:…") of the image manifests, in
	// index order: the digests Podman reports for the loaded images.
	Manifests []string `json:"manifests"`
	// Blobs is how many blobs the archive holds; Bytes their total size.
	Blobs int   `json:"blobs"`
	Bytes int64 `json:"bytes"`
}

// VerifyFile checks the archive at path (see Verify).
func VerifyFile(path string) (Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return Image{}, fmt.Errorf("verify image archive: %w", err)
	}
	defer f.Close()
	img, err := Verify(f)
	if err != nil {
		return Image{}, fmt.Errorf("verify image archive %s: %w", path, err)
	}
	return img, nil
}

// Verify reads an archive to the last byte of r (so that a caller hashing
// r as it is read hashes the whole file) and checks it: an oci-layout file,
// one index.json, every blob hashing to its name, and every manifest the
// index names, with its config and layers, present at the size its
// descriptor gives. Nested indexes (multi-platform images) are refused.
func Verify(r io.Reader) (Image, error) {
	tr := tar.NewReader(r)
	blobs := map[string]int64{} // digest → size
	smalls := map[string][]byte{}
	var idxData []byte
	var kept int64 // bytes of small blobs kept to parse as manifests
	layout := false
	for n := 0; ; n++ {
		if n >= maxEntries {
			return Image{}, fmt.Errorf("%w: more than %d entries", ErrInvalid, maxEntries)
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Image{}, fmt.Errorf("%w: read tar: %v", ErrInvalid, err)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		name := strings.TrimPrefix(path.Clean("/"+hdr.Name), "/")
		switch {
		case name == layoutFile:
			var l struct {
				Version string `json:"imageLayoutVersion"`
			}
			data, err := readSmall(tr, hdr.Size)
			if err != nil || json.Unmarshal(data, &l) != nil || l.Version != layoutV1 {
				return Image{}, fmt.Errorf("%w: bad oci-layout file", ErrInvalid)
			}
			layout = true
		case name == indexFile:
			if idxData != nil {
				return Image{}, fmt.Errorf("%w: index.json appears twice", ErrInvalid)
			}
			if idxData, err = readSmall(tr, hdr.Size); err != nil {
				return Image{}, fmt.Errorf("%w: index.json: %v", ErrInvalid, err)
			}
		case strings.HasPrefix(name, blobPrefix):
			d, data, err := readBlob(tr, name, hdr.Size, kept)
			if err != nil {
				return Image{}, err
			}
			blobs[d] = hdr.Size
			if data != nil {
				kept += hdr.Size
				smalls[d] = data
			}
		}
	}
	if _, err := io.Copy(io.Discard, r); err != nil { // the tar's end padding
		return Image{}, fmt.Errorf("read image archive: %w", err)
	}
	if !layout {
		return Image{}, fmt.Errorf("%w: no oci-layout file (save it with podman save --format oci-archive)", ErrInvalid)
	}
	if idxData == nil {
		return Image{}, fmt.Errorf("%w: no index.json", ErrInvalid)
	}
	return checkIndex(idxData, blobs, smalls)
}

// readBlob hashes a blob against its name and keeps it if it is small
// enough to be a manifest and kept (the bytes kept so far) allows.
func readBlob(r io.Reader, name string, size, kept int64) (string, []byte, error) {
	hexd := strings.TrimPrefix(name, blobPrefix)
	if _, err := hex.DecodeString(hexd); err != nil || len(hexd) != 64 || strings.ToLower(hexd) != hexd {
		return "", nil, fmt.Errorf("%w: blob name %q", ErrInvalid, name)
	}
	h := sha256.New()
	var keep []byte
	var w io.Writer = h
	if size <= maxJSON && kept+size <= maxKept {
		keep = make([]byte, 0, size)
		w = io.MultiWriter(h, sliceWriter{&keep})
	}
	if _, err := io.Copy(w, r); err != nil {
		return "", nil, fmt.Errorf("%w: blob %s: %v", ErrInvalid, hexd, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != hexd {
		return "", nil, fmt.Errorf("%w: blob %s does not hash to its name (its digest is sha256:%s)", ErrInvalid, hexd, got)
	}
	return "sha256:" + hexd, keep, nil
}

// checkIndex checks that every manifest index.json names is present, and
// its config and layers.
func checkIndex(idxData []byte, blobs map[string]int64, smalls map[string][]byte) (Image, error) {
	var idx index
	if err := json.Unmarshal(idxData, &idx); err != nil || idx.SchemaVersion != 2 {
		return Image{}, fmt.Errorf("%w: index.json is not an OCI index", ErrInvalid)
	}
	if len(idx.Manifests) == 0 {
		return Image{}, fmt.Errorf("%w: index.json lists no manifest", ErrInvalid)
	}
	img := Image{Blobs: len(blobs)}
	for _, size := range blobs {
		img.Bytes += size
	}
	present := func(d Descriptor, what string) error {
		size, ok := blobs[d.Digest]
		if !ok {
			return fmt.Errorf("%w: %s %s is missing from blobs/", ErrInvalid, what, clip(d.Digest))
		}
		if size != d.Size {
			return fmt.Errorf("%w: %s %s is %d bytes, its descriptor says %d", ErrInvalid, what, d.Digest, size, d.Size)
		}
		return nil
	}
	for _, md := range idx.Manifests {
		switch md.MediaType {
		case MediaTypeManifest, MediaTypeDockerManifest:
		case MediaTypeIndex:
			return Image{}, fmt.Errorf("%w: index.json names a multi-platform image index: save one platform's image", ErrInvalid)
		default:
			return Image{}, fmt.Errorf("%w: index entry %s has media type %q", ErrInvalid, clip(md.Digest), clip(md.MediaType))
		}
		if err := present(md, "image manifest"); err != nil {
			return Image{}, err
		}
		var m manifest
		if err := json.Unmarshal(smalls[md.Digest], &m); err != nil || m.SchemaVersion != 2 {
			return Image{}, fmt.Errorf("%w: manifest %s does not parse", ErrInvalid, md.Digest)
		}
		if err := present(m.Config, "config"); err != nil {
			return Image{}, err
		}
		for _, l := range m.Layers {
			if err := present(l, "layer"); err != nil {
				return Image{}, err
			}
		}
		img.Manifests = append(img.Manifests, md.Digest)
		if n := md.Annotations[AnnotationRefName]; n != "" {
			img.Names = append(img.Names, n)
		}
	}
	return img, nil
}

// Names returns the image names (ref.name annotations) of a verified
// archive.
func Names(archivePath string) ([]string, error) {
	img, err := VerifyFile(archivePath)
	if err != nil {
		return nil, err
	}
	return img.Names, nil
}

func readSmall(r io.Reader, size int64) ([]byte, error) {
	if size > maxJSON {
		return nil, fmt.Errorf("%d bytes, over %d", size, maxJSON)
	}
	return io.ReadAll(io.LimitReader(r, size))
}

// clip shortens a string from an archive for an error message.
func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

type sliceWriter struct{ b *[]byte }

func (w sliceWriter) Write(p []byte) (int, error) {
	*w.b = append(*w.b, p...)
	return len(p), nil
}
