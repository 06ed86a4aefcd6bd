// Package oci checks OCI image archives (the tar that `podman save
// --format oci-archive` writes and `podman load` reads) before they go
// into the swarm and after they come out of it: every blob's bytes match
// the sha256 digest in its name, and the index, the manifests, their
// configs and layers are all present with the sizes the descriptors give.
// A BLAKE3 CID proves the archive is the one published; this proves the
// archive is a whole image, so a publisher cannot push, and a node cannot
// load, a broken one.
package oci

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// Media types archy accepts in an archive's index.
const (
	MediaTypeIndex        = "application/vnd.oci.image.index.v1+json"
	MediaTypeManifest     = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeDockerManif  = "application/vnd.docker.distribution.manifest.v2+json"
	AnnotationRefName     = "org.opencontainers.image.ref.name"
	maxJSON               = 4 << 20  // index.json, a manifest or a config
	maxKept               = 64 << 20 // small blobs kept in memory to parse
	maxEntries            = 1 << 16
	blobPrefix            = "blobs/sha256/"
	ociLayoutFile         = "oci-layout"
	indexFile             = "index.json"
	supportedLayoutVesion = "1.0.0"
)

// ErrInvalid is wrapped by every error about an archive's content.
var ErrInvalid = errors.New("invalid OCI image archive")

// Descriptor is an OCI content descriptor.
type Descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type index struct {
	SchemaVersion int          `json:"schemaVersion"`
	Manifests     []Descriptor `json:"manifests"`
}

type manifest struct {
	SchemaVersion int          `json:"schemaVersion"`
	Config        Descriptor   `json:"config"`
	Layers        []Descriptor `json:"layers"`
}

// Image describes a verified archive.
type Image struct {
	// Names are the image names the index carries (ref.name annotations).
	Names []string `json:"names,omitempty"`
	// Manifests are the digests of the image manifests, in index order.
	Manifests []string `json:"manifests"`
	// Blobs is how many blobs the archive holds; Bytes their total size.
	Blobs int   `json:"blobs"`
	Bytes int64 `json:"bytes"`
}

// VerifyFile checks the archive at path (see the package comment).
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

// Verify reads an archive to its end and checks it.
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
			return Image{}, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		name := strings.TrimPrefix(hdr.Name, "./")
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		switch {
		case name == ociLayoutFile:
			var l struct {
				Version string `json:"imageLayoutVersion"`
			}
			data, err := readSmall(tr, hdr.Size)
			if err != nil || json.Unmarshal(data, &l) != nil || l.Version != supportedLayoutVesion {
				return Image{}, fmt.Errorf("%w: bad oci-layout", ErrInvalid)
			}
			layout = true
		case name == indexFile:
			if idxData, err = readSmall(tr, hdr.Size); err != nil {
				return Image{}, fmt.Errorf("%w: index.json: %v", ErrInvalid, err)
			}
		case strings.HasPrefix(name, blobPrefix):
			hexd := strings.TrimPrefix(name, blobPrefix)
			if len(hexd) != 64 || strings.ToLower(hexd) != hexd {
				return Image{}, fmt.Errorf("%w: blob name %q", ErrInvalid, name)
			}
			if _, err := hex.DecodeString(hexd); err != nil {
				return Image{}, fmt.Errorf("%w: blob name %q", ErrInvalid, name)
			}
			h := sha256.New()
			var keep []byte
			var w io.Writer = h
			if hdr.Size <= maxJSON && kept+hdr.Size <= maxKept {
				kept += hdr.Size
				keep = make([]byte, 0, hdr.Size)
				w = io.MultiWriter(h, sliceWriter{&keep})
			}
			if _, err := io.Copy(w, tr); err != nil {
				return Image{}, fmt.Errorf("%w: blob %s: %v", ErrInvalid, hexd, err)
			}
			if got := hex.EncodeToString(h.Sum(nil)); got != hexd {
				return Image{}, fmt.Errorf("%w: blob %s has digest sha256:%s", ErrInvalid, hexd, got)
			}
			d := "sha256:" + hexd
			blobs[d] = hdr.Size
			if keep != nil {
				smalls[d] = keep
			}
		}
	}
	if !layout {
		return Image{}, fmt.Errorf("%w: no oci-layout file", ErrInvalid)
	}
	if idxData == nil {
		return Image{}, fmt.Errorf("%w: no index.json", ErrInvalid)
	}
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
			return fmt.Errorf("%w: %s %s missing", ErrInvalid, what, d.Digest)
		}
		if size != d.Size {
			return fmt.Errorf("%w: %s %s is %d bytes, its descriptor says %d", ErrInvalid, what, d.Digest, size, d.Size)
		}
		return nil
	}
	for _, md := range idx.Manifests {
		if md.MediaType != MediaTypeManifest && md.MediaType != MediaTypeDockerManif {
			return Image{}, fmt.Errorf("%w: index entry %s has media type %q (nested indexes are not supported)", ErrInvalid, md.Digest, md.MediaType)
		}
		if err := present(md, "manifest"); err != nil {
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

func readSmall(r io.Reader, size int64) ([]byte, error) {
	if size > maxJSON {
		return nil, fmt.Errorf("%d bytes, over %d", size, maxJSON)
	}
	return io.ReadAll(io.LimitReader(r, size))
}

type sliceWriter struct{ b *[]byte }

func (w sliceWriter) Write(p []byte) (int, error) {
	*w.b = append(*w.b, p...)
	return len(p), nil
}
