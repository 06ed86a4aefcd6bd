// Package exchange is archy's piece exchange (Protocol): it serves the
// blocks a node holds and fetches files from many peers at once, rarest
// piece first, each peer's request window sized by what it delivers,
// seeds super-seeding (each piece sent once, askers pointed at the peers
// that got it), and peers that send bad blocks struck and banned. The p2p
// node composes it with the host, the DHT and the bans (Swarm).
package exchange

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/archy-node/archy/cas"
	"github.com/archy-node/archy/p2p/blockstore"
	"github.com/archy-node/archy/p2p/dag"
	"github.com/archy-node/archy/p2p/wire"
	cid "github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// Exchange serves and fetches blocks over Protocol. Create it with New;
// Close stops serving.
type Exchange struct {
	host    host.Host
	store   *blockstore.Store
	swarm   Swarm
	cfg     Config
	met     Metrics
	log     *slog.Logger
	limiter *rate.Limiter // upload cap, nil for none

	// life is the exchange's lifetime, ended by Close: the base context
	// of the requests it serves.
	life   context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	roots   map[cid.Cid]*rootState
	rootsCh chan struct{} // closed and replaced when roots gains an entry
	strikes map[peer.ID]int
	// good counts the verified block bytes each peer sent: roots they
	// name are tried first (see p2p's GetNamed).
	good map[peer.ID]int64

	received  atomic.Int64 // verified blocks stored from peers
	sent      atomic.Int64 // block bytes sent
	recvBytes atomic.Int64 // verified block bytes stored from peers
	abandoned atomic.Int64 // peers given up on for slowness
	refusals  atomic.Int64 // pieces refused by super-seeding
	resorts   atomic.Int64 // pieces served as a last resort
	busied    atomic.Int64 // pieces answered busy: no upload slot free

	// serving counts, per asker, the GET streams being sent pieces: at
	// most cfg.UploadSlots askers at once (see admit).
	slotMu  sync.Mutex
	serving map[peer.ID]int

	bufs bufPool // piece buffers of GETs being served or asked
}

// Swarm is what the exchange needs of the node around it: finding and
// dialling peers, announcing what it holds, and the node's bans (which
// also gate connections, so they live with the node).
type Swarm interface {
	// Connect dials pi within the node's dial timeout.
	Connect(ctx context.Context, pi peer.AddrInfo) error
	// Providers streams the peers that announced c, up to max of them
	// (0: no limit), until ctx ends.
	Providers(ctx context.Context, c cid.Cid, max int) <-chan peer.AddrInfo
	// ProvideAsync announces in the background that this node holds c.
	ProvideAsync(c cid.Cid)
	// Banned reports whether p is banned, by its ID or by the address it
	// is connected from.
	Banned(p peer.ID) bool
	// Ban disconnects and refuses p.
	Ban(p peer.ID, why string)
}

// Config tunes an Exchange; p2p.Config documents each field and its
// default, and New expects them filled in.
type Config struct {
	DialTimeout    time.Duration
	RequestTimeout time.Duration
	MinRate        int64
	MaxPeerBytes   int64
	UploadRate     int64
	UploadSlots    int
	NoSuperSeed    bool
	MaxStrikes     int
}

// Slots is how many askers a node sends pieces to at once, by default:
// enough that each gets at least four times minRate of an upload cap
// (uploadRate), so a batch arrives well inside the asker's deadline
// instead of every asker of a crowded peer slowing down together and
// giving it up together; 2 to 16 of them, and 8 when uploads are not
// capped (the node cannot know its uplink).
func Slots(uploadRate, minRate int64) int {
	if uploadRate <= 0 || minRate <= 0 {
		return 8
	}
	return int(min(max(uploadRate/(4*minRate), 2), 16))
}

// Metrics are the node's counters the exchange adds to; nil ones are
// not kept.
type Metrics struct {
	BlocksIn  prometheus.Counter // verified blocks received
	BytesIn   prometheus.Counter // bytes of those
	BytesOut  prometheus.Counter // block bytes sent
	BadBlocks prometheus.Counter // blocks that did not match their CID
	PeersSlow prometheus.Counter // peers abandoned for slowness
	Busy      prometheus.Counter // pieces answered busy
	Refusals  prometheus.Counter // pieces refused by super-seeding
}

func (m *Metrics) fill() {
	for _, c := range []*prometheus.Counter{&m.BlocksIn, &m.BytesIn, &m.BytesOut, &m.BadBlocks, &m.PeersSlow, &m.Busy, &m.Refusals} {
		if *c == nil {
			*c = prometheus.NewCounter(prometheus.CounterOpts{Name: "unused"})
		}
	}
}

// Stats are the exchange's running totals.
type Stats struct {
	Received    int64 // verified blocks stored from peers
	RecvBytes   int64 // verified block bytes stored from peers
	Sent        int64 // block bytes sent
	Abandoned   int64 // peers given up on for slowness
	Refusals    int64 // pieces refused by super-seeding
	LastResorts int64 // pieces served as a last resort
	Busy        int64 // pieces answered busy: no upload slot was free
}

// New starts an exchange on h, serving from and fetching into store, and
// registers its stream handler. base is the lifetime of the work it does
// on its own (serving peers); Close ends it.
func New(base context.Context, h host.Host, store *blockstore.Store, sw Swarm, cfg Config, met Metrics, log *slog.Logger) *Exchange {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	met.fill()
	e := &Exchange{
		host: h, store: store, swarm: sw, cfg: cfg, met: met, log: log,
		roots:   map[cid.Cid]*rootState{},
		rootsCh: make(chan struct{}),
		strikes: map[peer.ID]int{},
		good:    map[peer.ID]int64{},
		serving: map[peer.ID]int{},
	}
	if e.cfg.UploadSlots <= 0 {
		e.cfg.UploadSlots = Slots(cfg.UploadRate, cfg.MinRate)
	}
	e.life, e.cancel = context.WithCancel(base)
	if cfg.UploadRate > 0 {
		e.limiter = rate.NewLimiter(rate.Limit(cfg.UploadRate), sendChunk)
	}
	h.SetStreamHandler(Protocol, e.HandleStream)
	return e
}

// Close stops serving; fetches in progress end with their contexts.
func (e *Exchange) Close() {
	e.host.RemoveStreamHandler(Protocol)
	e.cancel()
}

// Stats returns the running totals.
func (e *Exchange) Stats() Stats {
	return Stats{
		Received: e.received.Load(), RecvBytes: e.recvBytes.Load(), Sent: e.sent.Load(),
		Abandoned: e.abandoned.Load(), Refusals: e.refusals.Load(), LastResorts: e.resorts.Load(),
		Busy: e.busied.Load(),
	}
}

// Strikes returns the bad blocks p sent since it was last banned.
func (e *Exchange) Strikes(p peer.ID) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.strikes[p]
}

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
func (e *Exchange) state(ctx context.Context, root cid.Cid) *rootState {
	e.mu.Lock()
	rs := e.roots[root]
	e.mu.Unlock()
	if rs != nil {
		return rs
	}
	if ok, _ := e.store.Has(ctx, root); !ok {
		return nil
	}
	leaves, _, err := dag.Leaves(ctx, root, e.store.GetRaw)
	if err != nil {
		return nil
	}
	rs = newRootState(root, leaves)
	for _, l := range leaves {
		if ok, _ := e.store.Has(ctx, l.Cid); ok {
			rs.markHeld(l.Cid)
		}
	}
	return e.register(rs, false)
}

// register adds rs (or returns the state already there), wakes watchers
// waiting for the root, and, with use, counts a fetch using it.
func (e *Exchange) register(rs *rootState, use bool) *rootState {
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

func (e *Exchange) release(rs *rootState) {
	rs.mu.Lock()
	rs.active--
	rs.mu.Unlock()
}

const maxRootStates = 256

// strike penalises a peer that sent a bad block; repeat offenders are
// disconnected and refused for BanTime.
func (e *Exchange) strike(p peer.ID) {
	e.mu.Lock()
	e.strikes[p]++
	ban := e.strikes[p] >= e.cfg.MaxStrikes
	if ban {
		delete(e.strikes, p)
	}
	e.mu.Unlock()
	if ban {
		e.swarm.Ban(p, "sent bad blocks")
	}
}

// maxGoodPeers bounds the peers whose good blocks are counted.
const maxGoodPeers = 4096

// Credit counts the bytes peers sent of a file that proved good: one
// asked for by its root, or one that hashed to its sum. (Any block
// matches its own CID; only a file the caller wanted says a peer helped.)
func (e *Exchange) Credit(sent map[peer.ID]int64) {
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

// Served reports whether p has sent this node blocks of a file that
// proved good (Credit).
func (e *Exchange) Served(p peer.ID) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.good[p] > 0
}

// Progress reports the bytes of root held and its size, while a fetch or
// a watcher keeps its state.
func (e *Exchange) Progress(root cid.Cid) (done, total int64, ok bool) {
	e.mu.Lock()
	rs := e.roots[root]
	e.mu.Unlock()
	if rs == nil {
		return 0, 0, false
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for i, l := range rs.leaves {
		total += int64(l.Size)
		if rs.held[i] {
			done += int64(l.Size)
		}
	}
	return done, total, true
}

// HeldWhole reports whether every leaf of root is held here, and the
// file's size.
func (e *Exchange) HeldWhole(ctx context.Context, root cid.Cid) (size uint64, ok bool) {
	rs := e.state(ctx, root)
	if rs == nil || !rs.complete() {
		return 0, false
	}
	for _, l := range rs.leaves {
		size += l.Size
	}
	return size, true
}

// HandleStream serves one request on Protocol. New registers it on the
// host; a test may register a wrapper that plays a misbehaving peer.
func (e *Exchange) HandleStream(s network.Stream) {
	defer s.Close()
	p := s.Conn().RemotePeer()
	if e.swarm.Banned(p) {
		_ = s.Reset()
		return
	}
	_ = s.SetReadDeadline(time.Now().Add(e.cfg.RequestTimeout))
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
		e.log.Debug("piece request failed", "peer", p, "op", op, "err", err)
		_ = s.Reset()
	}
}

func (e *Exchange) serveBlock(s network.Stream, w *bufio.Writer, c cid.Cid) error {
	_ = s.SetWriteDeadline(time.Now().Add(e.cfg.RequestTimeout))
	data, err := e.store.GetToSend(e.life, c)
	if err != nil {
		_ = w.WriteByte(statusDontHave)
		return w.Flush()
	}
	_ = w.WriteByte(statusOK)
	wire.WriteUvarint(w, uint64(len(data)))
	if err := e.upload(e.life, w, data); err != nil {
		return err
	}
	return w.Flush()
}

// sendChunk is how much of a piece is read from disk and written to the
// stream at a time; the upload cap's bucket holds as much.
const sendChunk = 64 << 10

// upload writes data through the upload cap, waiting for it no later
// than ctx's deadline.
func (e *Exchange) upload(ctx context.Context, w *bufio.Writer, data []byte) error {
	for len(data) > 0 {
		n := min(len(data), sendChunk)
		if w.Buffered() > 0 && w.Available() > 0 {
			// Top the buffer up exactly: it then flushes, and the rest of
			// the piece goes to the stream without a copy into it.
			n = min(len(data), w.Available())
		}
		if e.limiter != nil {
			if err := e.limiter.WaitN(ctx, n); err != nil {
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

func (e *Exchange) serveWatch(s network.Stream, r *bufio.Reader, w *bufio.Writer, root cid.Cid) error {
	ctx, cancel := context.WithCancel(e.life)
	defer cancel()
	// The watcher ends the watch by closing its side.
	go func() {
		_, _ = io.Copy(io.Discard, r)
		cancel()
	}()
	_ = s.SetReadDeadline(time.Time{})
	wait := time.NewTimer(e.cfg.RequestTimeout)
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
		_ = s.SetWriteDeadline(time.Now().Add(e.cfg.RequestTimeout))
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

func (e *Exchange) serveGet(s network.Stream, r *bufio.Reader, w *bufio.Writer, p peer.ID, root cid.Cid) error {
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
	rs := e.state(e.life, root)
	// An asker already being sent pieces keeps its slot for its other
	// streams; a new one waits for a free slot (asking again, or asking
	// another holder) rather than share the uplink so thinly that every
	// asker's deadline passes at once.
	admitted := e.admit(p)
	if admitted {
		defer e.unadmit(p)
	}
	// The whole GET, not each piece, has the request timeout: an honest
	// asker gives a batch up sooner (slowGrace plus a batch at MinRate),
	// and a peer that asks much and reads slowly (or asks the same piece
	// 64 times) must not hold a slot for long.
	deadline := time.Now().Add(e.cfg.RequestTimeout)
	ctx, cancel := context.WithDeadline(e.life, deadline)
	defer cancel()
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
		_ = s.SetWriteDeadline(deadline)
		if rs == nil || i >= uint64(len(rs.leaves)) {
			_ = w.WriteByte(statusDontHave)
			continue
		}
		lastResort := flags&flagLastResort != 0
		held, hints, rec := rs.offer(p, int(i), !e.cfg.NoSuperSeed, lastResort, admitted, e.connected)
		if rec {
			recorded = append(recorded, i)
		}
		if held && len(hints) == 0 && lastResort {
			e.resorts.Add(1)
		}
		if !held {
			_ = w.WriteByte(statusDontHave)
			continue
		}
		if !admitted && len(hints) == 0 {
			e.busied.Add(1)
			e.met.Busy.Inc()
			_ = w.WriteByte(statusBusy)
			continue
		}
		if len(hints) > 0 {
			// Super-seeding: this piece is already out there; ask them.
			e.refusals.Add(1)
			e.met.Refusals.Inc()
			_ = w.WriteByte(statusRefused)
			wire.WriteUvarint(w, uint64(len(hints)))
			for _, q := range hints {
				wire.WriteBytes(w, []byte(q))
			}
			continue
		}
		if sec, gen, ok := e.store.SectionToSend(rs.leaves[i].Cid); ok {
			if chunk == nil {
				chunk = e.bufs.get(sendChunk)
				defer e.bufs.put(chunk)
			}
			sent, err := e.stream(ctx, w, sec, *chunk, func() bool { return e.store.Intact(rs.leaves[i].Cid, sec, gen) })
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
		data, err := e.store.ReadToSend(e.life, rs.leaves[i].Cid, *buf)
		if err != nil {
			_ = w.WriteByte(statusDontHave)
			continue
		}
		_ = w.WriteByte(statusOK)
		wire.WriteUvarint(w, uint64(len(data)))
		if err := e.upload(ctx, w, data); err != nil {
			return err
		}
		e.sent.Add(int64(len(data)))
		e.met.BytesOut.Add(float64(len(data)))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	recorded = nil // delivered
	return nil
}

// offer decides whether piece i goes to p, and records it if so, in one
// step, so concurrent askers of the same piece are pointed at the first
// instead of all being served. With superSeed, a piece of a file held
// whole that was sent to other peers still connected is refused with
// their names (hints), unless p asks as a last resort. Without send (p
// has no upload slot) nothing is recorded: p gets hints or nothing.
// recorded says p was added to the piece's list (it is capped at
// maxHints).
func (rs *rootState) offer(p peer.ID, i int, superSeed, lastResort, send bool, connected func(peer.ID) bool) (held bool, hints []peer.ID, recorded bool) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	held = rs.held[i]
	if held && superSeed && !lastResort && len(rs.log) == len(rs.leaves) {
		for _, q := range rs.sentTo[i] {
			if q != p && connected(q) {
				hints = append(hints, q)
			}
		}
	}
	if held && len(hints) == 0 && send {
		rs.sent[i]++
		if len(rs.sentTo[i]) < maxHints {
			rs.sentTo[i] = append(rs.sentTo[i], p)
			recorded = true
		}
	}
	return held, hints, recorded
}

// admit takes an upload slot for p's GET stream, or shares the one p
// holds; false when every slot is another asker's.
func (e *Exchange) admit(p peer.ID) bool {
	e.slotMu.Lock()
	defer e.slotMu.Unlock()
	if e.serving[p] == 0 && len(e.serving) >= e.cfg.UploadSlots {
		return false
	}
	e.serving[p]++
	return true
}

func (e *Exchange) unadmit(p peer.ID) {
	e.slotMu.Lock()
	defer e.slotMu.Unlock()
	if e.serving[p]--; e.serving[p] <= 0 {
		delete(e.serving, p)
	}
}

// connected reports whether p is connected now.
func (e *Exchange) connected(p peer.ID) bool {
	return e.host.Network().Connectedness(p) == network.Connected
}

// stream sends a piece from its place in a pack, a chunk at a time, so a
// node serving many requests at once holds a chunk for each, not a piece.
// sent is false, and nothing written, when the first chunk cannot be read
// (the pack went away): the caller falls back to a whole read.
func (e *Exchange) stream(ctx context.Context, w *bufio.Writer, sec *io.SectionReader, chunk []byte, intact func() bool) (sent bool, err error) {
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
		if err := e.upload(ctx, w, chunk[:n]); err != nil {
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
	e.met.BytesOut.Add(float64(size))
	return true, nil
}

// getBlock fetches one block by CID from p, verified.
func (e *Exchange) getBlock(ctx context.Context, p peer.ID, c cid.Cid) ([]byte, error) {
	limit := slowGrace + time.Duration(float64(dag.MaxNodeSize)/float64(e.cfg.MinRate)*float64(time.Second))
	ctx, cancel := context.WithTimeout(ctx, min(limit, e.cfg.RequestTimeout))
	defer cancel()
	s, err := e.host.NewStream(ctx, p, Protocol)
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
		e.met.BadBlocks.Inc()
		e.strike(p)
		return nil, fmt.Errorf("block %s from %s: %w", c, p, err)
	}
	return data, nil
}

var (
	errNotHeld = errors.New("peer does not hold the block")
	errPunched = errors.New("block collected while it was sent")
)
