package p2p

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/archy-node/archy/cas"
	cid "github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// PieceProtocol is archy's piece exchange: a peer watches which leaves of a
// file another peer holds (pushed as the holder gets them, so a flash crowd
// shares pieces before anyone has the whole file) and asks for leaves by
// index, or for any block by CID.
//
// Every message is a request on a fresh stream:
//
//	WATCH  op=1 cid            → frames: 'H' n idx…  (pieces held, as they arrive) | 'C' (has all) | 'N' (not held, stream ends)
//	GET    op=2 cid flags n idx… → per idx: status [len data | n peerID…]
//	BLOCK  op=3 cid            → status [len data]
//
// Integers are uvarints; a CID or peer ID is a uvarint length and bytes.
const PieceProtocol protocol.ID = "/archy/piece/1.0.0"

const (
	opWatch = 1
	opGet   = 2
	opBlock = 3

	flagLastResort = 1

	statusOK       = 0
	statusDontHave = 1
	statusRefused  = 2

	frameHave     = 'H'
	frameComplete = 'C'
	frameNotHeld  = 'N'

	maxGetPieces = 64  // pieces in one GET
	maxHints     = 4   // peers named in one refusal
	maxCIDLen    = 128 // bytes of a CID on the wire
)

// errProtocol is returned when a peer breaks the wire format.
var errProtocol = errors.New("piece protocol violation")

func writeUvarint(w *bufio.Writer, v uint64) {
	var b [binary.MaxVarintLen64]byte
	n := binary.PutUvarint(b[:], v)
	_, _ = w.Write(b[:n])
}

func writeBytes(w *bufio.Writer, b []byte) {
	writeUvarint(w, uint64(len(b)))
	_, _ = w.Write(b)
}

func readUvarint(r *bufio.Reader, max uint64) (uint64, error) {
	v, err := binary.ReadUvarint(r)
	if err != nil {
		return 0, err
	}
	if v > max {
		return 0, fmt.Errorf("%w: value %d over %d", errProtocol, v, max)
	}
	return v, nil
}

func readBytes(r *bufio.Reader, max uint64) ([]byte, error) {
	n, err := readUvarint(r, max)
	if err != nil {
		return nil, err
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	return b, nil
}

// readCID reads a CID and holds it to archy's rule (BLAKE3, 32 bytes).
func readCID(r *bufio.Reader) (cid.Cid, error) {
	b, err := readBytes(r, maxCIDLen)
	if err != nil {
		return cid.Undef, err
	}
	c, err := cid.Cast(b)
	if err != nil {
		return cid.Undef, fmt.Errorf("%w: %v", errProtocol, err)
	}
	if err := cas.Check(c); err != nil {
		return cid.Undef, fmt.Errorf("%w: %v", errProtocol, err)
	}
	return c, nil
}

func readPeerID(r *bufio.Reader) (peer.ID, error) {
	b, err := readBytes(r, 128)
	if err != nil {
		return "", err
	}
	p, err := peer.IDFromBytes(b)
	if err != nil {
		return "", fmt.Errorf("%w: %v", errProtocol, err)
	}
	return p, nil
}
