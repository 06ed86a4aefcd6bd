package p2p

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"github.com/archy-node/archy/p2p/exchange"
	"github.com/libp2p/go-libp2p/core/network"
)

// The misbehaving transport of the piece exchange: a node made to serve
// through a stream wrapper plays a peer that misbehaves on the wire
// (corrupts, trickles) for the simulator's attacks (Config.Misbehave) and
// the tests, or lets a test act when pieces have gone out, with nothing
// of the kind in the exchange itself.

// misbehave makes n serve as cfg says, when it says anything.
func misbehave(n *Node, cfg Misbehaviour) {
	var wraps []func(network.Stream) network.Stream
	if cfg.Corrupt {
		wraps = append(wraps, corruptPieces)
	}
	if cfg.Trickle > 0 {
		wraps = append(wraps, trickle(n.life, cfg.Trickle))
	}
	if len(wraps) == 0 {
		return
	}
	serveThrough(n, func(s network.Stream) network.Stream {
		for _, w := range wraps {
			s = w(s)
		}
		return s
	})
}

// serveThrough makes n serve the piece exchange through wrap.
func serveThrough(n *Node, wrap func(network.Stream) network.Stream) {
	ex := n.ex.(*exchange.Exchange)
	n.host.SetStreamHandler(PieceProtocol, func(s network.Stream) { ex.HandleStream(wrap(s)) })
}

// corruptPieces flips a byte in the middle of every piece a GET sends
// (DAG nodes asked by BLOCK go out intact, as pieces are what a
// corrupting peer would spoil).
func corruptPieces(s network.Stream) network.Stream {
	return &pieceTap{Stream: s, piece: func(off, size int, chunk []byte) {
		if mid := size / 2; off <= mid && mid < off+len(chunk) {
			chunk[mid-off] ^= 0xff
		}
	}}
}

// trickle writes at most 16 KiB at a time, every d: a slow peer. Its
// pauses end with life (the node's), so a closed node leaves no writer
// asleep.
func trickle(life context.Context, d time.Duration) func(network.Stream) network.Stream {
	return func(s network.Stream) network.Stream { return &trickleStream{Stream: s, life: life, every: d} }
}

type trickleStream struct {
	network.Stream
	life  context.Context
	every time.Duration
}

func (t *trickleStream) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), 16<<10)
		pause := time.NewTimer(t.every)
		select {
		case <-pause.C:
		case <-t.life.Done():
			pause.Stop()
			return n, fmt.Errorf("trickle: %w", t.life.Err())
		}
		m, err := t.Stream.Write(p[:k])
		n += m
		if err != nil {
			return n, err
		}
		p = p[k:]
	}
	return n, nil
}

// pieceTap follows a GET response as it is written (statuses, lengths,
// refusals' peer lists) and passes each piece's bytes to piece, chunk by
// chunk, with the chunk's offset in the piece; piece may change them.
type pieceTap struct {
	network.Stream
	piece func(off, size int, chunk []byte)

	mu     sync.Mutex
	op     int // the request's first byte, 0 until read
	state  int
	varint []byte
	size   int // of the piece (or hint) being written
	off    int
	hints  uint64 // hints left in a refusal
}

const (
	tapStatus = iota
	tapPieceLen
	tapPiece
	tapHintCount
	tapHintLen
	tapHint
)

// The exchange's wire values (exchange/wire.go) the tap reads.
const (
	tapOpGet      = 2
	tapStatusOK   = 0
	tapStatusRefd = 2
)

func (t *pieceTap) Read(p []byte) (int, error) {
	n, err := t.Stream.Read(p)
	t.mu.Lock()
	if t.op == 0 && n > 0 {
		t.op = int(p[0])
	}
	t.mu.Unlock()
	return n, err
}

func (t *pieceTap) Write(p []byte) (int, error) {
	t.mu.Lock()
	if t.op == tapOpGet {
		p = append([]byte(nil), p...) // the caller's buffer stays as it was
		t.follow(p)
	}
	t.mu.Unlock()
	return t.Stream.Write(p)
}

// follow advances the parse over p.
func (t *pieceTap) follow(p []byte) {
	for len(p) > 0 {
		switch t.state {
		case tapPiece, tapHint:
			k := min(len(p), t.size-t.off)
			if t.state == tapPiece {
				t.piece(t.off, t.size, p[:k])
			}
			t.off += k
			p = p[k:]
			if t.off == t.size {
				t.next()
			}
			continue
		case tapStatus:
			switch p[0] {
			case tapStatusOK:
				t.state = tapPieceLen
			case tapStatusRefd:
				t.state = tapHintCount
			}
			p = p[1:]
			continue
		}
		// A uvarint: a length or a count.
		t.varint = append(t.varint, p[0])
		p = p[1:]
		if t.varint[len(t.varint)-1]&0x80 != 0 {
			continue
		}
		v, _ := binary.Uvarint(t.varint)
		t.varint = t.varint[:0]
		switch t.state {
		case tapPieceLen:
			t.state, t.size, t.off = tapPiece, int(v), 0
		case tapHintCount:
			t.hints = v
			t.next()
		case tapHintLen:
			t.state, t.size, t.off = tapHint, int(v), 0
		}
		if t.size == 0 && (t.state == tapPiece || t.state == tapHint) {
			t.next()
		}
	}
}

// next moves past a finished piece or hint.
func (t *pieceTap) next() {
	if t.state == tapHint || t.state == tapHintCount {
		if t.state == tapHint {
			t.hints--
		}
		if t.hints > 0 {
			t.state = tapHintLen
			return
		}
	}
	t.state = tapStatus
}
