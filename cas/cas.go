// Package cas owns archy's content addresses: CIDv1 with a BLAKE3 multihash
// (0x1e, 32-byte digest), printed in base32. Every manifest, catalog, blob,
// block and image archive in archy is named by one, and every byte that
// arrives from a peer, a relay or a file is checked against one before use.
package cas

import (
	"errors"
	"fmt"

	cid "github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
	"lukechampine.com/blake3"
)

// BLAKE3 is the multihash code of BLAKE3 (0x1e) and DigestSize the only
// digest length archy accepts.
const (
	BLAKE3     = mh.BLAKE3
	DigestSize = 32
)

// Codecs used by archy: raw bytes (manifests, catalogs, leaf blocks) and
// DAG-PB nodes (files and images split into blocks).
const (
	Raw    = cid.Raw
	DagPB  = cid.DagProtobuf
	prefix = "b" // base32 lower, the default for CIDv1
)

// ErrNotBLAKE3 is returned when a CID does not use a 32-byte BLAKE3 digest.
var ErrNotBLAKE3 = errors.New("cid is not a 32-byte BLAKE3 CIDv1")

// ErrMismatch is returned when bytes do not hash to the CID they claim.
var ErrMismatch = errors.New("content does not match its cid")

// Digest returns the BLAKE3-256 digest of data. It is the one hashing path
// behind every CID archy makes or checks.
func Digest(data []byte) [DigestSize]byte {
	return blake3.Sum256(data)
}

// FromDigest builds a CIDv1 with the given codec from a BLAKE3-256 digest.
func FromDigest(codec uint64, d [DigestSize]byte) cid.Cid {
	buf, err := mh.Encode(d[:], BLAKE3)
	if err != nil {
		// mh.Encode fails only for unknown codes or lengths; both are constants here.
		panic(fmt.Sprintf("cas: encode multihash: %v", err))
	}
	return cid.NewCidV1(codec, mh.Multihash(buf))
}

// Sum returns the raw-codec CID of data.
func Sum(data []byte) cid.Cid { return FromDigest(Raw, Digest(data)) }

// SumCodec returns the CID of data with the given codec.
func SumCodec(codec uint64, data []byte) cid.Cid { return FromDigest(codec, Digest(data)) }

// Check returns ErrNotBLAKE3 unless c is a CIDv1 with a 32-byte BLAKE3
// multihash. Peers and files are held to this before anything is fetched.
func Check(c cid.Cid) error {
	if !c.Defined() || c.Version() != 1 {
		return ErrNotBLAKE3
	}
	dec, err := mh.Decode(c.Hash())
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNotBLAKE3, err)
	}
	if dec.Code != BLAKE3 || dec.Length != DigestSize || len(dec.Digest) != DigestSize {
		return ErrNotBLAKE3
	}
	return nil
}

// Parse parses a CID string and applies Check.
func Parse(s string) (cid.Cid, error) {
	if len(s) > 128 {
		return cid.Undef, fmt.Errorf("parse cid: %w: too long", ErrNotBLAKE3)
	}
	c, err := cid.Decode(s)
	if err != nil {
		return cid.Undef, fmt.Errorf("parse cid: %w", err)
	}
	if err := Check(c); err != nil {
		return cid.Undef, fmt.Errorf("parse cid %s: %w", c, err)
	}
	return c, nil
}

// Verify returns nil if data hashes to c, ErrMismatch if not, and
// ErrNotBLAKE3 if c is not an archy CID.
func Verify(c cid.Cid, data []byte) error {
	if err := Check(c); err != nil {
		return err
	}
	d := Digest(data)
	want, _ := mh.Decode(c.Hash())
	if string(want.Digest) != string(d[:]) {
		return ErrMismatch
	}
	return nil
}

// String prints c in base32, the form archy shows users.
func String(c cid.Cid) string { return c.String() }
