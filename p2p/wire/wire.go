// Package wire holds the framing archy's own stream protocols share (the
// piece exchange, names, manifest envelopes): uvarints, length-prefixed
// bytes, and CIDs and peer IDs read from them, each read bounded so a peer
// cannot make the reader allocate more than the protocol allows.
package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/archy-node/archy/cas"
	cid "github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

// ErrProtocol is returned when a peer breaks a protocol's wire format.
var ErrProtocol = errors.New("protocol violation")

// MaxCIDLen is the most bytes a CID may take on the wire.
const MaxCIDLen = 128

// maxPeerIDLen is the most bytes a peer ID may take on the wire.
const maxPeerIDLen = 128

// WriteUvarint writes v as a uvarint. Errors stick in w; Flush reports them.
func WriteUvarint(w *bufio.Writer, v uint64) {
	var b [binary.MaxVarintLen64]byte
	n := binary.PutUvarint(b[:], v)
	_, _ = w.Write(b[:n])
}

// WriteBytes writes b with a uvarint length before it.
func WriteBytes(w *bufio.Writer, b []byte) {
	WriteUvarint(w, uint64(len(b)))
	_, _ = w.Write(b)
}

// ReadUvarint reads a uvarint of at most max.
func ReadUvarint(r *bufio.Reader, max uint64) (uint64, error) {
	v, err := binary.ReadUvarint(r)
	if err != nil {
		return 0, err
	}
	if v > max {
		return 0, fmt.Errorf("%w: value %d over %d", ErrProtocol, v, max)
	}
	return v, nil
}

// ReadBytes reads what WriteBytes wrote, refusing a length over max
// before anything is allocated.
func ReadBytes(r *bufio.Reader, max uint64) ([]byte, error) {
	n, err := ReadUvarint(r, max)
	if err != nil {
		return nil, err
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	return b, nil
}

// ReadCID reads a CID and holds it to archy's rule (cas.Check: BLAKE3,
// 32 bytes).
func ReadCID(r *bufio.Reader) (cid.Cid, error) {
	b, err := ReadBytes(r, MaxCIDLen)
	if err != nil {
		return cid.Undef, err
	}
	c, err := cid.Cast(b)
	if err != nil {
		return cid.Undef, fmt.Errorf("%w: %v", ErrProtocol, err)
	}
	if err := cas.Check(c); err != nil {
		return cid.Undef, fmt.Errorf("%w: %v", ErrProtocol, err)
	}
	return c, nil
}

// ReadPeerID reads a peer ID's bytes.
func ReadPeerID(r *bufio.Reader) (peer.ID, error) {
	b, err := ReadBytes(r, maxPeerIDLen)
	if err != nil {
		return "", err
	}
	p, err := peer.IDFromBytes(b)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrProtocol, err)
	}
	return p, nil
}
