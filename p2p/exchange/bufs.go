package exchange

import (
	"math/bits"
	"sync"

	"github.com/archy-node/archy/p2p/dag"
)

// bufPool lends byte buffers in size classes, powers of two from minBuf
// to dag.MaxChunk, so a request holds a buffer about the size of its
// pieces (most are near dag.AvgChunk), not one of the largest.
type bufPool struct {
	classes [bufClasses]sync.Pool
}

const (
	minBuf     = 64 << 10
	bufClasses = 5 // 64 KiB … 1 MiB
)

// The largest class must hold the largest chunk.
var _ [minBuf<<(bufClasses-1) - dag.MaxChunk]struct{}

// get returns a buffer of at least size bytes (its length is its class's
// size); put it back when done.
func (p *bufPool) get(size int) *[]byte {
	c := bufClass(size)
	if c >= bufClasses {
		b := make([]byte, size)
		return &b
	}
	if b, ok := p.classes[c].Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, minBuf<<c)
	return &b
}

// put returns a buffer from get.
func (p *bufPool) put(b *[]byte) {
	c := bufClass(len(*b))
	if c < bufClasses && len(*b) == minBuf<<c {
		p.classes[c].Put(b)
	}
}

// bufClass is the smallest class whose buffers hold size bytes.
func bufClass(size int) int {
	if size <= minBuf {
		return 0
	}
	return bits.Len(uint(size-1)) - bits.Len(uint(minBuf-1))
}
