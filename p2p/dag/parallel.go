package dag

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/archy-node/archy/cas"
	cid "github.com/ipfs/go-cid"
)

// Build's pipeline finds chunk boundaries on every core. FastCDC's gear
// hash at a position depends only on the 64 bytes that end there (each
// step shifts the older bytes one bit further out of the word), except
// within 64 bytes of where a chunk's scan starts (MinChunk into the
// chunk), where it has seen fewer. So workers scan whole segments of the
// input for the positions whose full hash passes the loose mask (maskL,
// 2^-16 of positions; the strict mask maskS is a superset of its bits),
// and one goroutine picks the boundaries in order from those, computing
// the 64 positions after each chunk's MinChunk directly. The boundaries
// are exactly those of cut (TestParallelMatchesChunker).

// segPrefix is how many bytes of the previous segment each segment starts
// with: 64 for the gear hash, and enough for a tar header (with its PAX
// data) that straddles two segments to be read whole.
const segPrefix = 64 << 10

// segmentSize is the input each segment holds by default (pipeline's
// segment); maxSegments bound the memory of one build.
const segmentSize = 4 << 20

const maxSegments = 6

// Segment buffers and the buffers of chunks that straddle two segments
// outlive a build: memory the process has not touched yet costs a page
// fault per 4 KiB (a copy into it measured 1.5 GB/s here, half the speed
// of hashing it), and the allocations made the GC stop the scans.
var (
	segPool  sync.Pool // *[]byte of cap segPrefix + the segment size of the build that made it
	joinPool sync.Pool // *[]byte of cap MaxChunk
)

type candidate struct {
	pos    uint64 // stream offset
	strict bool   // also passes maskS
}

type segment struct {
	buf     []byte // segPrefix bytes of the previous segment (fewer at the start), then data
	pre     int    // length of the prefix
	base    uint64 // stream offset of buf[pre]
	eof     bool   // the last segment
	cands   []candidate
	scanned chan struct{}
	refs    atomic.Int32
	free    chan []byte
}

func (s *segment) data() []byte { return s.buf[s.pre:] }
func (s *segment) end() uint64  { return s.base + uint64(len(s.buf)-s.pre) }

func (s *segment) release() {
	if s.refs.Add(-1) == 0 {
		s.free <- s.buf[:cap(s.buf)]
	}
}

// scanCandidates records the positions of s's data where the full gear
// hash passes maskL.
func (s *segment) scanCandidates() {
	var h uint64
	b := s.buf
	i := max(0, s.pre-64)
	for ; i < s.pre; i++ { // warm up on the prefix's last 64 bytes
		h = h<<1 + gear[b[i]]
	}
	for {
		j, hj, ok := scan(b, i, h, maskL)
		if !ok {
			break
		}
		s.cands = append(s.cands, candidate{pos: s.base + uint64(j-s.pre), strict: hj&maskS == 0})
		i, h = j+1, hj
	}
	close(s.scanned)
}

// pipeline configures buildParallel; the zero value is the default.
type pipeline struct {
	// segment is the input each segment holds (default segmentSize);
	// tests vary it to put boundaries near segment edges.
	segment int
}

// buildParallel is Build's pipeline (see above).
func buildParallel(ctx context.Context, r io.Reader, sink Sink) (cid.Cid, uint64, error) {
	return pipeline{}.build(ctx, r, sink)
}

func (pl pipeline) build(ctx context.Context, r io.Reader, sink Sink) (cid.Cid, uint64, error) {
	segSize := pl.segment
	if segSize <= 0 {
		segSize = segmentSize
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	workers := runtime.GOMAXPROCS(0)
	work := make(chan func(), 4*workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for fn := range work {
				fn()
			}
		}()
	}
	var (
		mu     sync.Mutex
		leaves []Link
		werr   error
	)
	setErr := func(err error) {
		mu.Lock()
		if werr == nil {
			werr = err
		}
		mu.Unlock()
		cancel()
	}

	spans, _ := sink.(SpanSink)
	// Spans are written by a goroutine of their own: a write waits for
	// the disk, and would otherwise hold a worker the CPU work needs.
	writes := make(chan func(), maxSegments)
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		for fn := range writes {
			fn()
		}
	}()
	// Reader: segments in order, each queued for a scan (and, for a
	// SpanSink, a write).
	free := make(chan []byte, maxSegments)
	for range maxSegments {
		free <- nil
	}
	segs := make(chan *segment, maxSegments)
	var rerr error
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		defer close(segs)
		var prev *segment
		var base uint64
		for {
			var buf []byte
			select {
			case buf = <-free:
			case <-ctx.Done():
				return
			}
			if buf == nil {
				if p, ok := segPool.Get().(*[]byte); ok && cap(*p) >= segPrefix+segSize {
					buf = (*p)[:segPrefix+segSize]
				} else {
					buf = make([]byte, segPrefix+segSize)
				}
			}
			s := &segment{buf: buf, base: base, scanned: make(chan struct{}), free: free}
			s.refs.Store(1) // the selector's
			if prev != nil {
				s.pre = copy(buf, prev.buf[max(prev.pre, len(prev.buf)-segPrefix):])
			}
			n, err := io.ReadFull(r, buf[s.pre:s.pre+segSize])
			s.buf = buf[:s.pre+n]
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				s.eof = true
			} else if err != nil {
				rerr = fmt.Errorf("read input: %w", err)
				cancel()
				return
			}
			base += uint64(n)
			select {
			case work <- s.scanCandidates:
			case <-ctx.Done():
				return
			}
			if spans != nil && n > 0 {
				s.refs.Add(1)
				write := func() {
					defer s.release()
					if ctx.Err() == nil {
						if err := spans.PutSpan(s.base, s.data()); err != nil {
							setErr(fmt.Errorf("store input at %d: %w", s.base, err))
						}
					}
				}
				select {
				case writes <- write:
				case <-ctx.Done():
					s.release()
					return
				}
			}
			select {
			case segs <- s:
			case <-ctx.Done():
				return
			}
			if s.eof {
				return
			}
			prev = s
		}
	}()

	total, err := selectChunks(ctx, segs, work, func(seq int, off uint64, data []byte, done func()) {
		mu.Lock()
		leaves = append(leaves, Link{})
		mu.Unlock()
		job := func() {
			defer done()
			if ctx.Err() != nil {
				return
			}
			c := cas.Sum(data)
			if err := sink.PutLeaf(c, off, data); err != nil {
				setErr(fmt.Errorf("store chunk %d: %w", seq, err))
				return
			}
			mu.Lock()
			leaves[seq] = Link{Cid: c, Size: uint64(len(data))}
			mu.Unlock()
		}
		select {
		case work <- job:
		case <-ctx.Done():
			done()
		}
	})
	// Drain what the reader still sends, so it ends.
	for s := range segs {
		s.release()
	}
	<-readerDone
	close(writes)
	<-writerDone
	close(work)
	wg.Wait()
	// Every segment is released now; keep their buffers for the next build.
	for len(free) > 0 {
		if buf := <-free; buf != nil {
			segPool.Put(&buf)
		}
	}
	if err == nil {
		err = ctx.Err()
	}
	mu.Lock()
	err = errors.Join(rerr, werr, err)
	mu.Unlock()
	if err != nil {
		return cid.Undef, 0, err
	}
	root, err := BuildTree(leaves, sink.PutNode)
	if err != nil {
		return cid.Undef, 0, err
	}
	return root, total, nil
}

// selectChunks picks chunk boundaries from the scanned segments, in order,
// and hands each chunk to emit (data stays valid until done is called).
func selectChunks(ctx context.Context, segs <-chan *segment, work chan<- func(), emit func(seq int, off uint64, data []byte, done func())) (uint64, error) {
	var (
		held  []*segment // segments covering [held[0].base, end)
		cands []candidate
		cuts  []uint64
		tw    = newTarWalk()
		s     uint64 // start of the next chunk
		seq   int
		eof   bool
	)
	end := func() uint64 {
		if len(held) == 0 {
			return 0
		}
		return held[len(held)-1].end()
	}
	// slice returns the stream bytes [from, to), copying when they span
	// two segments; done releases what it holds.
	slice := func(from, to uint64) ([]byte, func()) {
		for i, sg := range held {
			if from >= sg.base && from < sg.end() || (from == to && from == sg.end()) {
				if to <= sg.end() {
					sg.refs.Add(1)
					d := sg.data()
					return d[from-sg.base : to-sg.base : to-sg.base], sg.release
				}
				p, ok := joinPool.Get().(*[]byte)
				if !ok {
					b := make([]byte, MaxChunk)
					p = &b
				}
				out := (*p)[:0]
				for _, t := range held[i:] {
					lo, hi := max(from, t.base), min(to, t.end())
					if lo < hi {
						out = append(out, t.data()[lo-t.base:hi-t.base]...)
					}
				}
				return out, func() { joinPool.Put(p) }
			}
		}
		return nil, func() {}
	}
	byteAt := func(p uint64) byte {
		for _, sg := range held {
			if p >= sg.base && p < sg.end() {
				return sg.data()[p-sg.base]
			}
		}
		return 0
	}
	// next decides the chunk at s; ok is false when more input is needed.
	next := func() (uint64, bool) {
		hi := end()
		if !eof && s+MaxChunk+tarLookahead > hi {
			return 0, false
		}
		for len(cuts) > 0 && cuts[0] <= s {
			cuts = cuts[1:]
		}
		n := min(uint64(MaxChunk), hi-s)
		if len(cuts) > 0 {
			n = min(n, cuts[0]-s)
		}
		if n <= MinChunk {
			return n, true
		}
		normal := min(uint64(AvgChunk), n)
		// The first 64 positions of the scan, hashed from MinChunk on.
		var h uint64
		warm := min(uint64(MinChunk+64), n)
		for i := uint64(MinChunk); i < warm; i++ {
			h = h<<1 + gear[byteAt(s+i)]
			mask := maskL
			if i < normal {
				mask = maskS
			}
			if h&mask == 0 {
				return i, true
			}
		}
		for len(cands) > 0 && cands[0].pos < s+warm {
			cands = cands[1:]
		}
		for _, c := range cands {
			i := c.pos - s
			if i >= n {
				break
			}
			if i >= normal || c.strict {
				return i, true
			}
		}
		return n, true
	}
	for {
		for {
			n, ok := next()
			if !ok || (eof && s == end()) {
				break
			}
			data, done := slice(s, s+n)
			emit(seq, s, data, done)
			seq++
			s += n
			for len(held) > 0 && held[0].end() <= s && !(eof && len(held) == 1) {
				held[0].release()
				held = held[1:]
			}
		}
		if eof {
			for _, sg := range held {
				sg.release()
			}
			return s, nil
		}
		var sg *segment
		var more bool
		select {
		case sg, more = <-segs:
		case <-ctx.Done():
			for _, h := range held {
				h.release()
			}
			return s, ctx.Err()
		}
		if !more {
			for _, h := range held {
				h.release()
			}
			return s, errors.New("input ended early")
		}
		select {
		case <-sg.scanned:
		case <-ctx.Done():
			sg.release()
			for _, h := range held {
				h.release()
			}
			return s, ctx.Err()
		}
		held = append(held, sg)
		cands = append(cands, sg.cands...)
		cuts = tw.walk(sg.buf, sg.base-uint64(sg.pre), sg.eof, cuts)
		eof = sg.eof
	}
}
