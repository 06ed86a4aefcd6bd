package registry

import (
	"fmt"
	"io"
	"os"

	cid "github.com/ipfs/go-cid"

	"github.com/archy-node/archy/cas"
	"github.com/archy-node/archy/internal/ociimage"
)

// ErrNotOCIArchive is returned when an image archive is not a whole OCI
// image layout in a tar (`podman save --format oci-archive`).
var ErrNotOCIArchive = ociimage.ErrInvalid

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

// ReadOCIArchive reads an OCI archive once, streaming: it hashes the whole
// file for its CID and checks it with ociimage.Verify, which must find
// exactly one image.
func ReadOCIArchive(file string) (ArchiveSum, error) {
	f, err := os.Open(file)
	if err != nil {
		return ArchiveSum{}, err
	}
	defer f.Close()
	return readOCIArchive(f)
}

func readOCIArchive(r io.Reader) (ArchiveSum, error) {
	h := cas.NewHasher()
	cnt := &countWriter{w: h}
	img, err := ociimage.Verify(io.TeeReader(r, cnt))
	if err != nil {
		return ArchiveSum{}, err
	}
	if len(img.Manifests) != 1 {
		return ArchiveSum{}, fmt.Errorf("%w: index.json names %d images, want exactly 1", ErrNotOCIArchive, len(img.Manifests))
	}
	return ArchiveSum{CID: h.CID(), Digest: img.Manifests[0], Size: cnt.n}, nil
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
