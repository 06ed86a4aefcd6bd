package dag

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync/atomic"
)

// Chunk sizes of the content-defined chunker (FastCDC with normalised
// chunking). Boundaries depend only on nearby bytes, so an edit in one part
// of a file (a changed layer inside an image archive) changes only the
// chunks around it and every other chunk keeps its CID.
const (
	MinChunk = 64 << 10
	AvgChunk = 256 << 10
	MaxChunk = 1 << 20
)

const (
	maskS = uint64(0xFFFFF) << 44 // 20 bits: harder to cut before AvgChunk
	maskL = uint64(0xFFFF) << 48  // 16 bits: easier to cut after it
)

// gear is FastCDC's table of 256 random words, fixed forever: changing it
// changes every CID archy has made.
var gear = func() [256]uint64 {
	var g [256]uint64
	r := rand.New(rand.NewPCG(0x61726368, 0x79636463)) // "arch", "ycdc"
	for i := range g {
		g[i] = r.Uint64()
	}
	return g
}()

// cut returns the length of the first chunk of data; data holds at least
// MaxChunk bytes unless it is the end of the input (or of a segment).
func cut(data []byte) int {
	n := len(data)
	if n <= MinChunk {
		return n
	}
	if n > MaxChunk {
		n = MaxChunk
	}
	normal := min(AvgChunk, n)
	i, h, ok := scan(data[:normal], MinChunk, 0, maskS)
	if ok {
		return i
	}
	if i, _, ok = scan(data[:n], normal, h, maskL); ok {
		return i
	}
	return n
}

// scan runs the gear hash h over data from i on and returns the first
// position where h&mask is zero (ok), or len(data) and the hash there.
// Eight bytes a round: the hash k bytes on is h<<k plus a sum of their
// gear values computed off the chain, so the loop is not bound by the
// latency of one shift and add per byte (8 measured 1.25x faster than 4
// here); a round that passes mask somewhere is redone a byte at a time.
// It returns the same positions as the byte-at-a-time loop of FastCDC.
func scan(data []byte, i int, h, mask uint64) (int, uint64, bool) {
	for ; i+8 <= len(data); i += 8 {
		b := data[i : i+8 : i+8]
		g0, g1, g2, g3 := gear[b[0]], gear[b[1]], gear[b[2]], gear[b[3]]
		g4, g5, g6, g7 := gear[b[4]], gear[b[5]], gear[b[6]], gear[b[7]]
		p1 := g0<<1 + g1
		p2 := p1<<1 + g2
		p3 := p2<<1 + g3
		h0 := h<<1 + g0
		h1 := h<<2 + p1
		h2 := h<<3 + p2
		h3 := h<<4 + p3
		q1 := g4<<1 + g5
		q2 := q1<<1 + g6
		q3 := q2<<1 + g7
		h4 := h3<<1 + g4
		h5 := h3<<2 + q1
		h6 := h3<<3 + q2
		h7 := h3<<4 + q3
		if h0&mask == 0 || h1&mask == 0 || h2&mask == 0 || h3&mask == 0 ||
			h4&mask == 0 || h5&mask == 0 || h6&mask == 0 || h7&mask == 0 {
			break
		}
		h = h7
	}
	for ; i < len(data); i++ {
		h = h<<1 + gear[data[i]]
		if h&mask == 0 {
			return i, h, true
		}
	}
	return i, h, false
}

// Chunker splits a stream into content-defined chunks. It reads into
// windows of windowSize bytes and hands out chunks as slices of them, so
// no byte is copied between the read and the chunk's user; a window is
// reused once every chunk in it is released.
type Chunker struct {
	r       io.Reader
	free    chan []byte // windows to reuse
	windows int         // windows made
	win     *window     // the window being cut
	beg     int
	end     int
	eof     bool
	pos     uint64   // stream offset of win.buf[beg]
	cuts    []uint64 // offsets ahead where a chunk must end, ascending
	tar     tarWalk  // the input read as a tar archive, while it is one
}

// windowSize is the size of a chunker window; maxWindows bound the
// windows (and so the memory) of one chunker whose chunks are in use.
const (
	windowSize = 8 << 20
	maxWindows = 4
)

type window struct {
	buf  []byte
	refs atomic.Int32 // chunks not released, +1 while the chunker cuts it
	free chan []byte
}

func (w *window) release() {
	if w.refs.Add(-1) == 0 {
		select {
		case w.free <- w.buf:
		default:
		}
	}
}

// Chunk is a chunk of the stream, valid until Release.
type Chunk struct {
	Data []byte
	w    *window
}

// Release lets the chunker reuse the chunk's memory.
func (c Chunk) Release() {
	if c.w != nil {
		c.w.release()
	}
}

// NewChunker returns a chunker over r. Besides content-defined cuts, it
// ends chunks at the edges of large tar members (see tar.go); between
// two such cuts the chunks are content-defined as usual, starting afresh.
func NewChunker(r io.Reader) *Chunker {
	return &Chunker{r: r, free: make(chan []byte, maxWindows), tar: newTarWalk()}
}

// refill moves the unread tail into a fresh window and reads after it.
// The fresh window waits for a free one when maxWindows are in use.
func (c *Chunker) refill() error {
	var buf []byte
	select {
	case buf = <-c.free:
	default:
		if c.windows < maxWindows {
			c.windows++
			buf = make([]byte, windowSize)
		} else {
			buf = <-c.free
		}
	}
	w := &window{buf: buf, free: c.free}
	w.refs.Store(1)
	n := 0
	if c.win != nil {
		n = copy(buf, c.win.buf[c.beg:c.end])
		c.win.release()
	}
	c.win, c.beg, c.end = w, 0, n
	for c.end < len(buf) && !c.eof {
		m, err := c.r.Read(buf[c.end:])
		c.end += m
		if errors.Is(err, io.EOF) {
			c.eof = true
		} else if err != nil {
			return fmt.Errorf("read input: %w", err)
		}
	}
	return nil
}

// Next returns the next chunk, or io.EOF. The caller releases each chunk.
func (c *Chunker) Next() (Chunk, error) {
	if c.win == nil || (c.end-c.beg < MaxChunk+tarLookahead && !c.eof) {
		if err := c.refill(); err != nil {
			return Chunk{}, err
		}
	}
	c.cuts = c.tar.walk(c.win.buf[c.beg:c.end], c.pos, c.eof, c.cuts)
	if c.beg == c.end {
		c.win.release()
		c.win = nil
		c.eof = true
		return Chunk{}, io.EOF
	}
	for len(c.cuts) > 0 && c.cuts[0] <= c.pos {
		c.cuts = c.cuts[1:]
	}
	avail := c.end - c.beg
	if len(c.cuts) > 0 && c.cuts[0]-c.pos < uint64(avail) {
		avail = int(c.cuts[0] - c.pos)
	}
	n := cut(c.win.buf[c.beg : c.beg+avail])
	out := Chunk{Data: c.win.buf[c.beg : c.beg+n : c.beg+n], w: c.win}
	c.win.refs.Add(1)
	c.beg += n
	c.pos += uint64(n)
	return out, nil
}
