package p2p

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/archy-node/archy/cas"
	"github.com/archy-node/archy/p2p/dag"
	"github.com/archy-node/archy/p2p/wire"
	cid "github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"
)

// blockExchange serves and fetches blocks over PieceProtocol.
type blockExchange struct {
	n       *Node
	limiter *rate.Limiter // upload cap, nil for none

	mu      sync.Mutex
	roots   map[cid.Cid]*rootState
	rootsCh chan struct{} // closed and replaced when roots gains an entry
	strikes map[peer.ID]int
	banned  *banList
	// good counts the verified block bytes each peer sent: roots they
	// name are tried first (see GetNamed).
	good map[peer.ID]int64

	received  atomic.Int64    // verified blocks stored from peers
	sent      atomic.Int64    // block bytes sent
	recvBytes atomic.Int64    // verified block bytes stored from peers
	abandoned atomic.Int64    // peers given up on for slowness
	refusals  atomic.Int64    // pieces refused by super-seeding
	resorts   atomic.Int64    // pieces served as a last resort
	onBlock   func(got int64) // test hook, called after each stored block

	bufs bufPool // piece buffers of GETs being served or asked

	// Test hooks that make this node misbehave as a server.
	corrupt bool          // flip a byte of every piece sent
	trickle time.Duration // pause before every 16 KiB sent
}

func newExchange(n *Node) *blockExchange {
	e := &blockExchange{
		n:       n,
		roots:   map[cid.Cid]*rootState{},
		rootsCh: make(chan struct{}),
		strikes: map[peer.ID]int{},
		banned:  n.bans,
		good:    map[peer.ID]int64{},
	}
	if n.cfg.UploadRate > 0 {
		e.limiter = rate.NewLimiter(rate.Limit(n.cfg.UploadRate), sendChunk)
	}
	n.host.SetStreamHandler(PieceProtocol, e.handle)
	return e
}

func (e *blockExchange) close() { e.n.host.RemoveStreamHandler(PieceProtocol) }

// rootState is what this node knows and holds of one file being served or
// fetched: its leaves, which of them are held (in the order they arrived,
// for watchers), and how often each was uploaded.
type rootState struct {
	root   cid.Cid
	leaves []dag.Link
	byCID  map[cid.Cid][]int

	mu      sync.Mutex
	held    []bool
	log     []uint32 // indices held, in arrival order
	changed chan struct{}
	sent    []uint16
	sentTo  [][]peer.ID
	active  int // fetches using this state
}

func newRootState(root cid.Cid, leaves []dag.Link) *rootState {
	rs := &rootState{
		root: root, leaves: leaves, byCID: map[cid.Cid][]int{},
		held: make([]bool, len(leaves)), changed: make(chan struct{}),
		sent: make([]uint16, len(leaves)), sentTo: make([][]peer.ID, len(leaves)),
	}
	for i, l := range leaves {
		rs.byCID[l.Cid] = append(rs.byCID[l.Cid], i)
	}
	return rs
}

// markHeld records that leaf c is stored and wakes watchers.
func (rs *rootState) markHeld(c cid.Cid) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	added := false
	for _, i := range rs.byCID[c] {
		if !rs.held[i] {
			rs.held[i] = true
			rs.log = append(rs.log, uint32(i))
			added = true
		}
	}
	if added {
		close(rs.changed)
		rs.changed = make(chan struct{})
	}
}

func (rs *rootState) complete() bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return len(rs.log) == len(rs.leaves)
}

// state returns the root's state, loading it from the store when the DAG's
// interior nodes are held locally; nil when the root is unknown here.
func (e *blockExchange) state(ctx context.Context, root cid.Cid) *rootState {
	e.mu.Lock()
	rs := e.roots[root]
	e.mu.Unlock()
	if rs != nil {
		return rs
	}
	if ok, _ := e.n.store.Has(ctx, root); !ok {
		return nil
	}
	leaves, _, err := dag.Leaves(ctx, root, e.n.store.GetRaw)
	if err != nil {
		return nil
	}
	rs = newRootState(root, leaves)
	for _, l := range leaves {
		if ok, _ := e.n.store.Has(ctx, l.Cid); ok {
			rs.markHeld(l.Cid)
		}
	}
	return e.register(rs, false)
}

// register adds rs (or returns the state already there), wakes watchers
// waiting for the root, and, with use, counts a fetch using it.
func (e *blockExchange) register(rs *rootState, use bool) *rootState {
	e.mu.Lock()
	defer e.mu.Unlock()
	if old := e.roots[rs.root]; old != nil {
		rs = old
	} else {
		if len(e.roots) >= maxRootStates {
			for k, v := range e.roots {
				v.mu.Lock()
				idle := v.active == 0
				v.mu.Unlock()
				if idle {
					delete(e.roots, k)
					break
				}
			}
		}
		e.roots[rs.root] = rs
		close(e.rootsCh)
		e.rootsCh = make(chan struct{})
	}
	if use {
		rs.mu.Lock()
		rs.active++
		rs.mu.Unlock()
	}
	return rs
}

func (e *blockExchange) release(rs *rootState) {
	rs.mu.Lock()
	rs.active--
	rs.mu.Unlock()
}

const maxRootStates = 256

// strike penalises a peer that sent a bad block; repeat offenders are
// disconnected and refused for BanTime.
func (e *blockExchange) strike(p peer.ID) {
	e.mu.Lock()
	e.strikes[p]++
	ban := e.strikes[p] >= e.n.cfg.MaxStrikes
	if ban {
		delete(e.strikes, p)
	}
	e.mu.Unlock()
	if ban {
		e.n.ban(p, "sent bad blocks")
	}
}

// maxGoodPeers bounds the peers whose good blocks are counted.
const maxGoodPeers = 4096

// credit counts the bytes peers sent of a file that proved good: one
// asked for by its root, or one that hashed to its sum. (Any block
// matches its own CID; only a file the caller wanted says a peer helped.)
func (e *blockExchange) credit(sent map[peer.ID]int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for p, bytes := range sent {
		if _, ok := e.good[p]; !ok && len(e.good) >= maxGoodPeers {
			for k := range e.good { // forget one at random
				delete(e.good, k)
				break
			}
		}
		e.good[p] += bytes
	}
}

// served reports whether p has sent this node verified blocks.
func (e *blockExchange) served(p peer.ID) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.good[p] > 0
}

// isBanned reports whether p is banned now, by its ID or by the address
// it is connected from.
func (e *blockExchange) isBanned(p peer.ID) bool {
	if e.banned.has(p) {
		return true
	}
	for _, c := range e.n.host.Network().ConnsToPeer(p) {
		if e.banned.hasAddr(c.RemoteMultiaddr()) {
			return true
		}
	}
	return false
}

// handle serves one request.
func (e *blockExchange) handle(s network.Stream) {
	defer s.Close()
	p := s.Conn().RemotePeer()
	if e.isBanned(p) {
		_ = s.Reset()
		return
	}
	_ = s.SetReadDeadline(time.Now().Add(e.n.cfg.RequestTimeout))
	r := bufio.NewReaderSize(s, 4<<10)
	// A small buffer: piece bytes bypass it (see upload), only headers
	// and have-frames go through it.
	w := bufio.NewWriterSize(s, 4<<10)
	op, err := r.ReadByte()
	if err != nil {
		return
	}
	c, err := wire.ReadCID(r)
	if err != nil {
		_ = s.Reset()
		return
	}
	switch op {
	case opWatch:
		err = e.serveWatch(s, r, w, c)
	case opGet:
		err = e.serveGet(s, r, w, p, c)
	case opBlock:
		err = e.serveBlock(s, w, c)
	default:
		err = fmt.Errorf("%w: op %d", wire.ErrProtocol, op)
	}
	if err != nil {
		e.n.log.Debug("piece request failed", "peer", p, "op", op, "err", err)
		_ = s.Reset()
	}
}

func (e *blockExchange) serveBlock(s network.Stream, w *bufio.Writer, c cid.Cid) error {
	_ = s.SetWriteDeadline(time.Now().Add(e.n.cfg.RequestTimeout))
	data, err := e.n.store.GetToSend(e.n.life, c)
	if err != nil {
		_ = w.WriteByte(statusDontHave)
		return w.Flush()
	}
	_ = w.WriteByte(statusOK)
	wire.WriteUvarint(w, uint64(len(data)))
	if err := e.upload(w, data, false); err != nil {
		return err
	}
	return w.Flush()
}

// sendChunk is how much of a piece is read from disk and written to the
// stream at a time; the upload cap's bucket holds as much.
const sendChunk = 64 << 10

// upload writes data through the upload cap.
func (e *blockExchange) upload(w *bufio.Writer, data []byte, piece bool) error {
	if e.corrupt && piece {
		data = append([]byte(nil), data...)
		data[len(data)/2] ^= 0xff
	}
	for len(data) > 0 {
		n := min(len(data), sendChunk)
		if w.Buffered() > 0 && w.Available() > 0 {
			// Top the buffer up exactly: it then flushes, and the rest of
			// the piece goes to the stream without a copy into it.
			n = min(len(data), w.Available())
		}
		if e.trickle > 0 && piece {
			n = min(n, 16<<10)
			select {
			case <-time.After(e.trickle):
			case <-e.n.life.Done():
				return e.n.life.Err()
			}
			if err := w.Flush(); err != nil {
				return err
			}
		}
		if e.limiter != nil {
			if err := e.limiter.WaitN(e.n.life, n); err != nil {
				return err
			}
		}
		if _, err := w.Write(data[:n]); err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}

func (e *blockExchange) serveWatch(s network.Stream, r *bufio.Reader, w *bufio.Writer, root cid.Cid) error {
	ctx, cancel := context.WithCancel(e.n.life)
	defer cancel()
	// The watcher ends the watch by closing its side.
	go func() {
		_, _ = io.Copy(io.Discard, r)
		cancel()
	}()
	_ = s.SetReadDeadline(time.Time{})
	wait := time.NewTimer(e.n.cfg.RequestTimeout)
	defer wait.Stop()
	var rs *rootState
	for {
		e.mu.Lock()
		ch := e.rootsCh
		e.mu.Unlock()
		if rs = e.state(ctx, root); rs != nil {
			break
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil
		case <-wait.C:
			_ = w.WriteByte(frameNotHeld)
			return w.Flush()
		}
	}
	cursor := 0
	for {
		rs.mu.Lock()
		news := rs.log[cursor:]
		cursor = len(rs.log)
		done := cursor == len(rs.leaves)
		ch := rs.changed
		rs.mu.Unlock()
		_ = s.SetWriteDeadline(time.Now().Add(e.n.cfg.RequestTimeout))
		if len(news) > 0 {
			_ = w.WriteByte(frameHave)
			wire.WriteUvarint(w, uint64(len(news)))
			for _, i := range news {
				wire.WriteUvarint(w, uint64(i))
			}
		}
		if done {
			_ = w.WriteByte(frameComplete)
		}
		if err := w.Flush(); err != nil || done {
			return err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil
		}
	}
}

func (e *blockExchange) serveGet(s network.Stream, r *bufio.Reader, w *bufio.Writer, p peer.ID, root cid.Cid) error {
	flags, err := r.ReadByte()
	if err != nil {
		return err
	}
	n, err := wire.ReadUvarint(r, maxGetPieces)
	if err != nil {
		return err
	}
	idxs := make([]uint64, n)
	for i := range idxs {
		if idxs[i], err = wire.ReadUvarint(r, 1<<32); err != nil {
			return err
		}
	}
	rs := e.state(e.n.life, root)
	var buf, chunk *[]byte
	// Pieces recorded as sent to p: if the request fails, p is taken off
	// their lists, so askers are not pointed at a peer that never got them.
	var recorded []uint64
	defer func() {
		if recorded == nil || rs == nil {
			return
		}
		rs.mu.Lock()
		for _, i := range recorded {
			rs.sentTo[i] = slices.DeleteFunc(rs.sentTo[i], func(q peer.ID) bool { return q == p })
		}
		rs.mu.Unlock()
	}()
	for _, i := range idxs {
		_ = s.SetWriteDeadline(time.Now().Add(e.n.cfg.RequestTimeout))
		if rs == nil || i >= uint64(len(rs.leaves)) {
			_ = w.WriteByte(statusDontHave)
			continue
		}
		// Decide and record in one step, so concurrent askers of the same
		// piece are pointed at the first instead of all being served.
		rs.mu.Lock()
		held := rs.held[i]
		var hints []peer.ID
		if held && !e.n.cfg.NoSuperSeed && flags&flagLastResort == 0 && len(rs.log) == len(rs.leaves) {
			for _, q := range rs.sentTo[i] {
				if q != p && e.n.host.Network().Connectedness(q) == network.Connected {
					hints = append(hints, q)
				}
			}
		}
		if held && len(hints) == 0 {
			if flags&flagLastResort != 0 {
				e.resorts.Add(1)
			}
			rs.sent[i]++
			if len(rs.sentTo[i]) < maxHints {
				rs.sentTo[i] = append(rs.sentTo[i], p)
				recorded = append(recorded, i)
			}
		}
		rs.mu.Unlock()
		if !held {
			_ = w.WriteByte(statusDontHave)
			continue
		}
		if len(hints) > 0 {
			// Super-seeding: this piece is already out there; ask them.
			e.refusals.Add(1)
			_ = w.WriteByte(statusRefused)
			wire.WriteUvarint(w, uint64(len(hints)))
			for _, q := range hints {
				wire.WriteBytes(w, []byte(q))
			}
			continue
		}
		if sec, gen, ok := e.n.store.SectionToSend(rs.leaves[i].Cid); ok {
			if chunk == nil {
				chunk = e.bufs.get(sendChunk)
				defer e.bufs.put(chunk)
			}
			sent, err := e.stream(w, sec, *chunk, func() bool { return e.n.store.Intact(rs.leaves[i].Cid, sec, gen) })
			if err != nil {
				return err
			}
			if sent {
				continue
			}
		}
		if buf == nil {
			buf = e.bufs.get(dag.MaxChunk)
			defer e.bufs.put(buf)
		}
		data, err := e.n.store.ReadToSend(e.n.life, rs.leaves[i].Cid, *buf)
		if err != nil {
			_ = w.WriteByte(statusDontHave)
			continue
		}
		_ = w.WriteByte(statusOK)
		wire.WriteUvarint(w, uint64(len(data)))
		if err := e.upload(w, data, true); err != nil {
			return err
		}
		e.sent.Add(int64(len(data)))
		e.n.met.bytesOut.Add(float64(len(data)))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	recorded = nil // delivered
	return nil
}

// stream sends a piece from its place in a pack, a chunk at a time, so a
// node serving many requests at once holds a chunk for each, not a piece.
// sent is false, and nothing written, when the first chunk cannot be read
// (the pack went away): the caller falls back to a whole read.
func (e *blockExchange) stream(w *bufio.Writer, sec *io.SectionReader, chunk []byte, intact func() bool) (sent bool, err error) {
	size := sec.Size()
	read := func(off int64) (int, error) {
		want := int(min(int64(len(chunk)), size-off))
		n, err := sec.ReadAt(chunk[:want], off)
		if n < want {
			return n, fmt.Errorf("read piece: %w", err)
		}
		return n, nil
	}
	n, err := read(0)
	if err != nil {
		return false, nil
	}
	_ = w.WriteByte(statusOK)
	wire.WriteUvarint(w, uint64(size))
	for off := int64(0); ; {
		if off+int64(n) == size && !intact() {
			// GC punched the block while it was read: break the stream
			// before the piece is whole, rather than send bad bytes.
			return false, errPunched
		}
		if err := e.upload(w, chunk[:n], true); err != nil {
			return false, err
		}
		if off += int64(n); off == size {
			break
		}
		if n, err = read(off); err != nil {
			return false, err
		}
	}
	e.sent.Add(size)
	e.n.met.bytesOut.Add(float64(size))
	return true, nil
}

// getBlock fetches one block by CID from p, verified.
func (e *blockExchange) getBlock(ctx context.Context, p peer.ID, c cid.Cid) ([]byte, error) {
	limit := slowGrace + time.Duration(float64(dag.MaxNodeSize)/float64(e.n.cfg.MinRate)*float64(time.Second))
	ctx, cancel := context.WithTimeout(ctx, min(limit, e.n.cfg.RequestTimeout))
	defer cancel()
	s, err := e.n.host.NewStream(ctx, p, PieceProtocol)
	if err != nil {
		return nil, fmt.Errorf("open stream to %s: %w", p, err)
	}
	defer s.Close()
	dl, _ := ctx.Deadline()
	_ = s.SetDeadline(dl)
	w := bufio.NewWriter(s)
	_ = w.WriteByte(opBlock)
	wire.WriteBytes(w, c.Bytes())
	if err := w.Flush(); err != nil {
		_ = s.Reset()
		return nil, fmt.Errorf("ask %s for %s: %w", p, c, err)
	}
	_ = s.CloseWrite()
	r := bufio.NewReader(s)
	st, err := r.ReadByte()
	if err != nil {
		return nil, fmt.Errorf("ask %s for %s: %w", p, c, err)
	}
	if st != statusOK {
		return nil, fmt.Errorf("ask %s for %s: %w", p, c, errNotHeld)
	}
	data, err := wire.ReadBytes(r, dag.MaxNodeSize)
	if err != nil {
		_ = s.Reset()
		return nil, fmt.Errorf("ask %s for %s: %w", p, c, err)
	}
	if err := cas.Verify(c, data); err != nil {
		e.n.met.badBlocks.Inc()
		e.strike(p)
		return nil, fmt.Errorf("block %s from %s: %w", c, p, err)
	}
	return data, nil
}

var (
	errNotHeld = errors.New("peer does not hold the block")
	errPunched = errors.New("block collected while it was sent")
)
