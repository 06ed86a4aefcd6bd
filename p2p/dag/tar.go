package dag

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
)

// maxTarEntries bounds how many tar entries TarCuts reads.
const maxTarEntries = 1 << 16

// TarCuts returns where, in a tar archive read from r's current position,
// the chunker must end a chunk: at the start and at the end of the data of
// every regular file of at least MinChunk bytes. An OCI image archive keeps
// each layer in such a file, so a layer's chunks depend on the layer alone:
// an unchanged layer gives the same blocks in every version of an image,
// wherever it sits in the archive, and an update fetches only what changed.
//
// Input that is not a tar archive has no cuts (nil, nil); so has a tar
// archive of more than maxTarEntries entries. The cuts depend only on the
// bytes, so the CID of a file stays a function of its content. r is left
// at the position it had.
func TarCuts(r io.ReadSeeker) ([]uint64, error) {
	start, err := r.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, fmt.Errorf("scan tar: %w", err)
	}
	cuts, scanErr := tarCuts(r, start)
	if _, err := r.Seek(start, io.SeekStart); err != nil {
		return nil, fmt.Errorf("scan tar: %w", err)
	}
	if scanErr != nil {
		return nil, nil
	}
	return cuts, nil
}

func tarCuts(r io.ReadSeeker, start int64) ([]uint64, error) {
	tr := tar.NewReader(r)
	var cuts []uint64
	for range maxTarEntries {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return cuts, nil
		}
		if err != nil {
			return nil, err
		}
		if hdr.Typeflag != tar.TypeReg || hdr.Size < MinChunk {
			continue
		}
		pos, err := r.Seek(0, io.SeekCurrent)
		if err != nil {
			return nil, err
		}
		off := uint64(pos - start)
		cuts = append(cuts, off, off+uint64(hdr.Size))
	}
	return nil, errors.New("too many entries")
}
