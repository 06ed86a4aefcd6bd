package cas

import (
	"fmt"
	"testing"

	zeebo "github.com/zeebo/blake3"
	"lukechampine.com/blake3"
)

// Benchmarks only (go test -run '^$' -bench . ./cas): BLAKE3 by
// lukechampine.com/blake3 and github.com/zeebo/blake3, archy's own paths
// (Digest, Hasher), and memcpy as the ceiling, on the same buffers.
// `make bench` prints the headline figures through
// ./cas/internal/blake3bench.

var benchSizes = []int{4 << 10, 1 << 20, 64 << 20}

func benchSize(n int) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%dMiB", n>>20)
	}
	return fmt.Sprintf("%dKiB", n>>10)
}

func benchBytes(b *testing.B, fn func(dst, src []byte)) {
	for _, n := range benchSizes {
		b.Run(benchSize(n), func(b *testing.B) {
			src, dst := vectorInput(n), make([]byte, n)
			b.SetBytes(int64(n))
			for b.Loop() {
				fn(dst, src)
			}
		})
	}
}

var sink [32]byte

func BenchmarkBLAKE3Lukechampine(b *testing.B) {
	benchBytes(b, func(_, src []byte) { sink = blake3.Sum256(src) })
}

func BenchmarkBLAKE3Zeebo(b *testing.B) {
	benchBytes(b, func(_, src []byte) { sink = zeebo.Sum256(src) })
}

func BenchmarkDigest(b *testing.B) {
	benchBytes(b, func(_, src []byte) { sink = Digest(src) })
}

// BenchmarkHasher streams the buffer in 1 MiB writes, as SumReader does.
func BenchmarkHasher(b *testing.B) {
	benchBytes(b, func(_, src []byte) {
		h := NewHasher()
		for rest := src; len(rest) > 0; {
			n := min(readSize, len(rest))
			h.Write(rest[:n])
			rest = rest[n:]
		}
		sink = h.Digest()
	})
}

func BenchmarkMemcpy(b *testing.B) {
	benchBytes(b, func(dst, src []byte) { copy(dst, src) })
}
