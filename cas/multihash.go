package cas

import (
	"hash"

	"github.com/zeebo/blake3"

	mhcore "github.com/multiformats/go-multihash/core"
)

// maxMultihashSize is the longest BLAKE3 multihash digest the registry
// hands out, as go-multihash's own registration allows.
const maxMultihashSize = 128

// Importing go-multihash registers lukechampine.com/blake3 for code 0x1e in
// its process-wide registry, which go-cid and boxo use to check blocks
// (cid.Prefix.Sum, blockstore and bitswap verification). cas replaces that
// entry with the implementation behind Digest, so every BLAKE3 multihash in
// the process comes from the same code the test vectors check, on the
// faster path. Package initialisation runs go-multihash's registration
// before this one, so this one stands.
func init() {
	mhcore.RegisterVariableSize(mhcore.BLAKE3, newMultihashHasher)
}

// newMultihashHasher returns a BLAKE3 hash.Hash with a size-byte output
// (32 when size is -1), or false for sizes the registry must refuse.
func newMultihashHasher(size int) (hash.Hash, bool) {
	switch {
	case size == -1 || size == DigestSize:
		return blake3.New(), true
	case size <= 0 || size > maxMultihashSize:
		return nil, false
	}
	return sizedHasher{blake3.New(), size}, true
}

// sizedHasher is a BLAKE3 hasher with an extended (or shortened) output.
type sizedHasher struct {
	*blake3.Hasher
	size int
}

func (h sizedHasher) Size() int { return h.size }

func (h sizedHasher) Sum(b []byte) []byte {
	out := make([]byte, h.size)
	_, _ = h.Digest().Read(out) // an XOF never fails to fill a buffer
	return append(b, out...)
}
