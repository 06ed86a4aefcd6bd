package dag

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
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
// MaxChunk bytes unless it is the end of the input.
func cut(data []byte) int {
	n := len(data)
	if n <= MinChunk {
		return n
	}
	if n > MaxChunk {
		n = MaxChunk
	}
	normal := AvgChunk
	if n < normal {
		normal = n
	}
	var h uint64
	i := MinChunk
	for ; i < normal; i++ {
		h = h<<1 + gear[data[i]]
		if h&maskS == 0 {
			return i
		}
	}
	for ; i < n; i++ {
		h = h<<1 + gear[data[i]]
		if h&maskL == 0 {
			return i
		}
	}
	return n
}

// Chunker splits a stream into content-defined chunks.
type Chunker struct {
	r    io.Reader
	buf  []byte
	beg  int
	end  int
	eof  bool
	pos  uint64   // stream offset of buf[beg]
	cuts []uint64 // offsets ahead where a chunk must end, ascending
}

// NewChunker returns a chunker over r.
func NewChunker(r io.Reader) *Chunker {
	return &Chunker{r: r, buf: make([]byte, 4*MaxChunk)}
}

// NewChunkerCuts returns a chunker over r that also ends a chunk at each
// of cuts (stream offsets, ascending; see TarCuts). Between two cuts the
// chunks are content-defined as usual, starting afresh at each cut.
func NewChunkerCuts(r io.Reader, cuts []uint64) *Chunker {
	c := NewChunker(r)
	c.cuts = cuts
	return c
}

// Next returns the next chunk, valid until the following call, or io.EOF.
func (c *Chunker) Next() ([]byte, error) {
	if c.end-c.beg < MaxChunk && !c.eof {
		copy(c.buf, c.buf[c.beg:c.end])
		c.end -= c.beg
		c.beg = 0
		for c.end < len(c.buf) && !c.eof {
			n, err := c.r.Read(c.buf[c.end:])
			c.end += n
			if errors.Is(err, io.EOF) {
				c.eof = true
			} else if err != nil {
				return nil, fmt.Errorf("read input: %w", err)
			}
		}
	}
	if c.beg == c.end {
		return nil, io.EOF
	}
	for len(c.cuts) > 0 && c.cuts[0] <= c.pos {
		c.cuts = c.cuts[1:]
	}
	avail := c.end - c.beg
	if len(c.cuts) > 0 && c.cuts[0]-c.pos < uint64(avail) {
		avail = int(c.cuts[0] - c.pos)
	}
	n := cut(c.buf[c.beg : c.beg+avail])
	out := c.buf[c.beg : c.beg+n]
	c.beg += n
	c.pos += uint64(n)
	return out, nil
}
