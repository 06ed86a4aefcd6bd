package p2p

import (
	"sync"

	"github.com/libp2p/go-libp2p/core/network"
)

// afterPieces calls fn once, when the count-th piece (over all the
// streams it wraps) has been written whole.
func afterPieces(count int, fn func()) func(network.Stream) network.Stream {
	var mu sync.Mutex
	sent := 0
	return func(s network.Stream) network.Stream {
		return &pieceTap{Stream: s, piece: func(off, size int, chunk []byte) {
			if off+len(chunk) < size {
				return
			}
			mu.Lock()
			sent++
			now := sent == count
			mu.Unlock()
			if now {
				fn()
			}
		}}
	}
}
