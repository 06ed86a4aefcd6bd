package registry

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/go-json-experiment/json"
	cid "github.com/ipfs/go-cid"
	"lukechampine.com/blake3"

	"github.com/archy-node/archy/cas"
)

// Media types of a single-platform image manifest in an OCI index.
const (
	mediaOCIManifest    = "application/vnd.oci.image.manifest.v1+json"
	mediaDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	mediaOCIIndex       = "application/vnd.oci.image.index.v1+json"
)

// Bounds on the small JSON files read out of an image archive.
const (
	maxIndexSize    = 1 << 20
	maxManifestBlob = 4 << 20
)

// ErrNotOCIArchive is returned when an image archive is not an OCI image
// layout in a tar (`podman save --format oci-archive`).
var ErrNotOCIArchive = errors.New("not an OCI archive")

// ArchiveSum is what an image archive pins.
type ArchiveSum struct {
	// CID is the raw-codec BLAKE3 CID of the archive file's bytes.
	CID cid.Cid
	// Digest is the image's OCI manifest digest ("sha256:…"), the one
	// index.json names and Podman reports for the loaded image.
	Digest string
	// Size is the archive file's length in bytes.
	Size int64
}

type ociDescriptor struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
}

// ReadOCIArchive reads an OCI archive (a tar holding oci-layout,
// index.json and blobs/sha256/...) once, streaming: it hashes the whole
// file for its CID and finds the one image manifest index.json names,
// checking that its blob is in the archive with that sha256.
func ReadOCIArchive(file string) (ArchiveSum, error) {
	f, err := os.Open(file)
	if err != nil {
		return ArchiveSum{}, err
	}
	defer f.Close()
	return readOCIArchive(f)
}

func readOCIArchive(r io.Reader) (ArchiveSum, error) {
	h := blake3.New(cas.DigestSize, nil)
	cnt := &countWriter{w: h}
	tee := io.TeeReader(r, cnt)
	tr := tar.NewReader(tee)
	var (
		layout, haveIndex bool
		index             struct {
			SchemaVersion int             `json:"schemaVersion"`
			Manifests     []ociDescriptor `json:"manifests"`
		}
		blobOK = map[string]bool{} // sha256 hex → content matched its name
	)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return ArchiveSum{}, fmt.Errorf("%w: read tar: %v", ErrNotOCIArchive, err)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		name := strings.TrimPrefix(path.Clean("/"+hdr.Name), "/")
		switch {
		case name == "oci-layout":
			var l struct {
				Version string `json:"imageLayoutVersion"`
			}
			if err := readJSON(tr, hdr.Size, 4096, &l); err != nil || l.Version == "" {
				return ArchiveSum{}, fmt.Errorf("%w: bad oci-layout file", ErrNotOCIArchive)
			}
			layout = true
		case name == "index.json":
			if haveIndex {
				return ArchiveSum{}, fmt.Errorf("%w: index.json appears twice", ErrNotOCIArchive)
			}
			if err := readJSON(tr, hdr.Size, maxIndexSize, &index); err != nil {
				return ArchiveSum{}, fmt.Errorf("%w: index.json: %v", ErrNotOCIArchive, err)
			}
			haveIndex = true
		case strings.HasPrefix(name, "blobs/sha256/") && hdr.Size <= maxManifestBlob:
			want := strings.TrimPrefix(name, "blobs/sha256/")
			s := sha256.New()
			if _, err := io.Copy(s, tr); err != nil {
				return ArchiveSum{}, fmt.Errorf("%w: read %s: %v", ErrNotOCIArchive, name, err)
			}
			blobOK[want] = hex.EncodeToString(s.Sum(nil)) == want
		}
	}
	if _, err := io.Copy(io.Discard, tee); err != nil { // the tar's end padding
		return ArchiveSum{}, fmt.Errorf("read archive: %w", err)
	}
	if !layout || !haveIndex {
		return ArchiveSum{}, fmt.Errorf("%w: no oci-layout or index.json (save it with podman save --format oci-archive)", ErrNotOCIArchive)
	}
	var images []ociDescriptor
	for _, d := range index.Manifests {
		switch d.MediaType {
		case mediaOCIManifest, mediaDockerManifest:
			images = append(images, d)
		case mediaOCIIndex:
			return ArchiveSum{}, fmt.Errorf("%w: index.json names a multi-platform image index: save one platform's image", ErrNotOCIArchive)
		}
	}
	if len(images) != 1 {
		return ArchiveSum{}, fmt.Errorf("%w: index.json names %d images, want exactly 1", ErrNotOCIArchive, len(images))
	}
	d := images[0].Digest
	if !digestRe.MatchString(d) {
		return ArchiveSum{}, fmt.Errorf("%w: index.json digest %q is not sha256:<64 hex>", ErrNotOCIArchive, clip(d))
	}
	ok, present := blobOK[strings.TrimPrefix(d, "sha256:")]
	switch {
	case !present:
		return ArchiveSum{}, fmt.Errorf("%w: image manifest %s is missing from blobs/", ErrNotOCIArchive, d)
	case !ok:
		return ArchiveSum{}, fmt.Errorf("%w: image manifest blob %s does not hash to its name", ErrNotOCIArchive, d)
	}
	var sum [cas.DigestSize]byte
	h.Sum(sum[:0])
	return ArchiveSum{CID: cas.FromDigest(cas.Raw, sum), Digest: d, Size: cnt.n}, nil
}

// countWriter counts the bytes written through it.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func readJSON(r io.Reader, size, max int64, v any) error {
	if size > max {
		return fmt.Errorf("%d bytes exceeds the %d-byte cap", size, max)
	}
	b, err := io.ReadAll(io.LimitReader(r, max))
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
