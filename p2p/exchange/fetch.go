package exchange

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/archy-node/archy/cas"
	"github.com/archy-node/archy/p2p/blockstore"
	"github.com/archy-node/archy/p2p/dag"
	"github.com/archy-node/archy/p2p/wire"
	cid "github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Fetch tuning.
const (
	peerWindow      = 4 << 20  // bytes in flight to one peer
	fetchWindow     = 16 << 20 // to all peers of one fetch
	seedWindow      = 1 << 20  // to a complete peer, when others exist
	batchBytes      = 1 << 20  // bytes asked in one GET
	lastResortAfter = 2 * time.Second
	busyBackoff     = time.Second     // a busy peer is asked again after about this (±50 %)
	slowGrace       = 2 * time.Second // latency allowance before MinRate applies
)

// ErrNoPeers is returned when no reachable peer holds what a fetch needs.
var ErrNoPeers = errors.New("no peer holds the content")

// fetch is one file being fetched. The goroutine in fetchLeaves owns the
// state; watches, requests and discovery run in goroutines that report
// events to it.
type fetch struct {
	e      *Exchange
	root   cid.Cid
	ctx    context.Context // the fetch's lifetime, for its own goroutines
	cancel context.CancelFunc
	wg     sync.WaitGroup
	events chan fetchEvent

	// Owned by the goroutine in fetchLeaves.
	rs        *rootState
	pack      *blockstore.PackWriter // where pieces go
	offs      []int64                // per piece: its offset in the file
	peers     map[peer.ID]*fetchPeer
	bytes     int64             // in flight, over all peers
	inflight  []peer.ID         // per piece: who is asked, "" if nobody
	holders   []int             // per piece: peers that advertise it
	partial   []int             // per piece: of those, peers that are not complete
	order     []int             // random tie-break for rarest-first
	hinted    map[int][]peer.ID // per refused piece: who the seed said has it
	refusedAt map[int]time.Time // per piece: when a seed first refused it
	rng       *rand.Rand
	nodeBytes map[peer.ID]int64 // DAG node bytes each peer sent (getNode)
}

type fetchPeer struct {
	id       peer.ID
	has      []bool
	complete bool
	bytes    int64     // in flight
	dead     bool      // abandoned for this fetch (bad, slow or gone)
	gone     bool      // its watch ended before it was complete
	since    time.Time // when it went dead or gone
	refused  map[int]time.Time
	// Busy: every upload slot of the peer was taken. It is left alone
	// until waitUntil; busyFrom is when its answers turned busy (zero
	// once it delivers), so a peer busy for longer than the request
	// timeout no longer keeps the fetch from failing.
	waitUntil time.Time
	busyFrom  time.Time

	// Its delivery rate: bytes delivered over the time it had requests
	// in flight.
	got       int64
	busy      time.Duration
	busySince time.Time // zero while nothing is in flight

	// The peer's lifetime in this fetch, for its requests: cancelled when
	// it is dropped, so its other requests end at once and their pieces
	// go to other peers.
	ctx  context.Context
	drop context.CancelFunc
}

type fetchEvent struct {
	kind   int
	p      peer.ID
	idxs   []int // have / done / failed pieces
	hints  []peer.ID
	status int
	err    error
}

const (
	evPeer      = iota // a peer to watch
	evConnected        // a peer connected while the fetch runs
	evHave             // p holds idxs
	evComplete         // p holds everything
	evGone             // p's watch ended
	evDone             // idxs stored
	evFailed           // idxs not delivered by p (status says why)
)

// Fetched is what Fetch made held: the pack the leaves went into (the
// caller closes it), the leaves in file order, and the verified bytes
// each peer sent, to Credit once the file proves to be what the caller
// wanted.
type Fetched struct {
	Pack   *blockstore.PackWriter
	Leaves []dag.Link
	Sent   map[peer.ID]int64
}

// Fetch resolves root's DAG within lim and fetches its missing leaves
// into root's pack. The leaf list is bounded by the size lim allows
// (dag.MaxLeaves), and the pack by that size.
func (e *Exchange) Fetch(ctx context.Context, root cid.Cid, lim dag.Limit) (Fetched, error) {
	f := e.newFetch(ctx, root)
	defer f.close()
	leaves, size, err := dag.LeavesWithin(ctx, root, lim, f.getNode)
	if err != nil {
		return Fetched{}, fmt.Errorf("get %s: resolve dag: %w", root, err)
	}
	w, err := e.store.PackFor(root, int64(size))
	if err != nil {
		return Fetched{}, fmt.Errorf("get %s: %w", root, err)
	}
	if err := f.fetchLeaves(ctx, leaves, w); err != nil {
		_ = w.Close()
		return Fetched{}, fmt.Errorf("get %s: %w", root, err)
	}
	return Fetched{Pack: w, Leaves: leaves, Sent: f.sent()}, nil
}

// findProviders returns up to max peers other than this one that
// announced c, within the request timeout.
func (e *Exchange) findProviders(ctx context.Context, c cid.Cid, max int) ([]peer.AddrInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.RequestTimeout)
	defer cancel()
	var out []peer.AddrInfo
	for pi := range e.swarm.Providers(ctx, c, max) {
		if pi.ID != e.host.ID() {
			out = append(out, pi)
		}
	}
	if len(out) == 0 && ctx.Err() != nil {
		return nil, fmt.Errorf("find providers of %s: %w", c, ctx.Err())
	}
	return out, nil
}

// newFetch starts a fetch's lifetime; close ends it and waits.
func (e *Exchange) newFetch(ctx context.Context, root cid.Cid) *fetch {
	ctx, cancel := context.WithCancel(ctx)
	return &fetch{
		e: e, root: root, ctx: ctx, cancel: cancel,
		events: make(chan fetchEvent, 256),
		peers:  map[peer.ID]*fetchPeer{},
		hinted: map[int][]peer.ID{}, refusedAt: map[int]time.Time{},
		rng:       rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		nodeBytes: map[peer.ID]int64{},
	}
}

// sent returns the verified bytes each peer sent to this fetch.
func (f *fetch) sent() map[peer.ID]int64 {
	out := maps.Clone(f.nodeBytes)
	for id, fp := range f.peers {
		if fp.got > 0 {
			out[id] += fp.got
		}
	}
	return out
}

func (f *fetch) close() {
	f.cancel()
	done := make(chan struct{})
	go func() { f.wg.Wait(); close(done) }()
	for {
		select {
		case <-f.events:
		case <-done:
			if f.rs != nil {
				f.e.release(f.rs)
			}
			return
		}
	}
}

func (f *fetch) emit(ev fetchEvent) {
	select {
	case f.events <- ev:
	case <-f.ctx.Done():
	}
}

func (f *fetch) goFn(fn func()) {
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		fn()
	}()
}

// getNode returns DAG node c from the store, else from connected peers,
// else from providers found in the DHT, and stores it.
func (f *fetch) getNode(ctx context.Context, c cid.Cid) ([]byte, error) {
	e := f.e
	if data, err := e.store.GetRaw(ctx, c); err == nil {
		return data, nil
	}
	try := func(ps []peer.ID) ([]byte, error) {
		var errs []error
		for _, p := range ps {
			if p == e.host.ID() || f.e.swarm.Banned(p) {
				continue
			}
			data, err := f.e.getBlock(ctx, p, c)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if err := e.store.PutVerified(c, data); err != nil {
				return nil, err
			}
			f.e.recvBytes.Add(int64(len(data)))
			f.nodeBytes[p] += int64(len(data))
			return data, nil
		}
		return nil, errors.Join(errs...)
	}
	if data, err := try(e.host.Network().Peers()); err == nil && data != nil {
		return data, nil
	}
	pis, err := e.findProviders(ctx, c, 8)
	if err != nil {
		return nil, fmt.Errorf("fetch block %s: %w: %v", c, ErrNoPeers, err)
	}
	var ids []peer.ID
	for _, pi := range pis {
		if err := e.swarm.Connect(ctx, pi); err == nil {
			ids = append(ids, pi.ID)
		}
	}
	data, err := try(ids)
	if err != nil || data == nil {
		return nil, fmt.Errorf("fetch block %s: %w (%v)", c, ErrNoPeers, err)
	}
	return data, nil
}

// fetchLeaves makes every leaf held, asking peers over Protocol.
func (f *fetch) fetchLeaves(ctx context.Context, leaves []dag.Link, pack *blockstore.PackWriter) error {
	e := f.e
	rs := f.e.register(newRootState(f.root, leaves), true)
	f.rs = rs
	f.pack = pack
	f.offs = make([]int64, len(leaves))
	var off int64
	for i, l := range leaves {
		f.offs[i] = off
		off += int64(l.Size)
	}
	for _, l := range leaves {
		if ok, _ := e.store.Has(ctx, l.Cid); ok {
			rs.markHeld(l.Cid)
		}
	}
	if rs.complete() {
		return nil
	}
	// Tell the DHT we hold (part of) it, so others find us early.
	e.swarm.ProvideAsync(f.root)

	np := len(leaves)
	f.inflight = make([]peer.ID, np)
	f.holders = make([]int, np)
	f.partial = make([]int, np)
	f.order = f.rng.Perm(np)

	for _, p := range e.host.Network().Peers() {
		f.addPeer(p)
	}
	// Peers that connect while the fetch runs (one that reconnects, a
	// node found by mDNS or by another fetch) join it; the DHT is asked
	// again every rediscoverEvery.
	joined := &network.NotifyBundle{ConnectedF: func(_ network.Network, c network.Conn) {
		p := c.RemotePeer()
		f.goFn(func() { f.emit(fetchEvent{kind: evConnected, p: p}) })
	}}
	e.host.Network().Notify(joined)
	defer e.host.Network().StopNotify(joined)
	f.goFn(func() {
		for {
			f.discover()
			select {
			case <-f.ctx.Done():
				return
			case <-time.After(rediscoverEvery):
			}
		}
	})

	stall := time.NewTimer(e.cfg.RequestTimeout)
	defer stall.Stop()
	tick := time.NewTicker(lastResortAfter / 4)
	defer tick.Stop()
	for !rs.complete() {
		f.schedule()
		select {
		case ev := <-f.events:
			now := time.Now()
			f.apply(ev, now)
			if ev.kind == evDone || f.waiting(ev, now) {
				stall.Reset(e.cfg.RequestTimeout)
			}
		case <-tick.C:
			f.revive(time.Now())
			f.debugTail()
		case <-stall.C:
			return fmt.Errorf("fetch pieces: %w: nothing arrived for %s", ErrNoPeers, e.cfg.RequestTimeout)
		case <-ctx.Done():
			return fmt.Errorf("fetch pieces: %w", ctx.Err())
		}
	}
	return nil
}

// debugTail logs, at debug level, why the last few pieces are missing.
func (f *fetch) debugTail() {
	if !f.e.log.Enabled(f.ctx, slog.LevelDebug) {
		return
	}
	f.rs.mu.Lock()
	var missing []int
	for i, h := range f.rs.held {
		if !h {
			missing = append(missing, i)
		}
	}
	f.rs.mu.Unlock()
	if len(missing) == 0 || len(missing) > 3 {
		return
	}
	for _, i := range missing {
		var refused []string
		for id, fp := range f.peers {
			if t, ok := fp.refused[i]; ok {
				refused = append(refused, fmt.Sprintf("%s@%s dead=%v", id.ShortString(), time.Since(t).Round(time.Millisecond), fp.dead))
			}
		}
		f.e.log.Debug("tail piece", "me", f.e.host.ID().ShortString(), "piece", i, "inflight", f.inflight[i].ShortString(),
			"holders", f.holders[i], "partial", f.partial[i], "refused", refused, "hints", len(f.hinted[i]), "alive", f.hintsAlive(i))
	}
}

// reviveAfter is how long a peer given up on (slow, stream error, watch
// ended) is left alone before the fetch tries it again. Banned peers are
// never retried.
const reviveAfter = 5 * time.Second

// rediscoverEvery is how often a running fetch asks the DHT for providers
// again.
const rediscoverEvery = 30 * time.Second

// revive gives peers given up on a new chance once they have been out for
// reviveAfter and nothing of theirs is in flight.
func (f *fetch) revive(now time.Time) {
	for id, fp := range f.peers {
		if (fp.dead || fp.gone) && fp.bytes == 0 && now.Sub(fp.since) > reviveAfter && !f.e.swarm.Banned(id) {
			fp.drop()
			delete(f.peers, id)
			f.addPeer(id)
		}
	}
}

// discover adds DHT providers of the root as they are found.
func (f *fetch) discover() {
	e := f.e
	ctx, cancel := context.WithTimeout(f.ctx, e.cfg.RequestTimeout)
	defer cancel()
	for pi := range e.swarm.Providers(ctx, f.root, 0) {
		if pi.ID == e.host.ID() {
			continue
		}
		if e.host.Network().Connectedness(pi.ID) != network.Connected {
			if err := e.swarm.Connect(ctx, pi); err != nil {
				continue
			}
		}
		f.emit(fetchEvent{kind: evPeer, p: pi.ID})
	}
}

func (f *fetch) addPeer(p peer.ID) {
	if _, ok := f.peers[p]; ok {
		return
	}
	if p == f.e.host.ID() || f.e.swarm.Banned(p) {
		return
	}
	fp := &fetchPeer{id: p, has: make([]bool, len(f.rs.leaves)), refused: map[int]time.Time{}}
	fp.ctx, fp.drop = context.WithCancel(f.ctx)
	f.peers[p] = fp
	f.goFn(func() { f.watch(p) })
}

// watch follows which pieces p holds until the fetch ends.
func (f *fetch) watch(p peer.ID) {
	e := f.e
	ctx, cancel := context.WithTimeout(f.ctx, e.cfg.DialTimeout)
	s, err := e.host.NewStream(ctx, p, Protocol)
	cancel()
	if err != nil {
		f.emit(fetchEvent{kind: evGone, p: p, err: err})
		return
	}
	stop := context.AfterFunc(f.ctx, func() { _ = s.Reset() })
	defer stop()
	defer s.Close()
	w := bufio.NewWriter(s)
	_ = w.WriteByte(opWatch)
	wire.WriteBytes(w, f.root.Bytes())
	if err := w.Flush(); err != nil {
		f.emit(fetchEvent{kind: evGone, p: p, err: err})
		return
	}
	r := bufio.NewReader(s)
	np := uint64(len(f.rs.leaves))
	for {
		kind, err := r.ReadByte()
		if err != nil {
			f.emit(fetchEvent{kind: evGone, p: p, err: err})
			return
		}
		switch kind {
		case frameHave:
			cnt, err := wire.ReadUvarint(r, np)
			if err != nil {
				f.emit(fetchEvent{kind: evGone, p: p, err: err})
				return
			}
			idxs := make([]int, 0, cnt)
			for range cnt {
				i, err := wire.ReadUvarint(r, np-1)
				if err != nil {
					f.emit(fetchEvent{kind: evGone, p: p, err: err})
					return
				}
				idxs = append(idxs, int(i))
			}
			f.emit(fetchEvent{kind: evHave, p: p, idxs: idxs})
		case frameComplete:
			f.emit(fetchEvent{kind: evComplete, p: p})
			return
		default: // frameNotHeld or garbage
			f.emit(fetchEvent{kind: evGone, p: p})
			return
		}
	}
}

// apply folds an event into the fetch state.
func (f *fetch) apply(ev fetchEvent, now time.Time) {
	switch ev.kind {
	case evPeer:
		f.addPeer(ev.p)
		return
	case evConnected:
		// A peer whose watch ended (it went away) gets a new one at once
		// when it comes back; one dropped for misbehaving waits for
		// revive.
		if fp := f.peers[ev.p]; fp != nil && fp.gone && !fp.dead && fp.bytes == 0 {
			fp.drop()
			delete(f.peers, ev.p)
		}
		f.addPeer(ev.p)
		return
	}
	fp := f.peers[ev.p]
	if fp == nil {
		return
	}
	switch ev.kind {
	case evHave:
		for _, i := range ev.idxs {
			if !fp.has[i] {
				fp.has[i] = true
				f.holders[i]++
				if !fp.complete {
					f.partial[i]++
				}
			}
		}
	case evComplete:
		if !fp.complete {
			fp.complete = true
			for i, h := range fp.has {
				if h {
					f.partial[i]--
				}
			}
		}
	case evGone:
		// A complete peer's watch ends on purpose; others are gone.
		if !fp.complete {
			f.dropHas(fp)
			fp.gone, fp.since = true, now
		}
	case evDone:
		for _, i := range ev.idxs {
			f.inflight[i] = ""
		}
		fp.busyFrom = time.Time{}
		fp.got += f.size(ev.idxs)
		fp.charge(-f.size(ev.idxs), now)
		f.bytes -= f.size(ev.idxs)
	case evFailed:
		for _, i := range ev.idxs {
			f.inflight[i] = ""
		}
		fp.charge(-f.size(ev.idxs), now)
		f.bytes -= f.size(ev.idxs)
		switch ev.status {
		case statusBusy:
			// Not a failure: the pieces go to other holders, or to this
			// peer again once a slot may have freed.
			if fp.busyFrom.IsZero() {
				fp.busyFrom = now
			}
			wait := time.Duration(float64(busyBackoff) * (0.5 + f.rng.Float64()))
			fp.waitUntil = now.Add(wait)
		case statusDontHave:
			for _, i := range ev.idxs {
				f.unhave(fp, i)
			}
		case statusRefused:
			for _, i := range ev.idxs {
				if _, ok := fp.refused[i]; !ok {
					fp.refused[i] = now
				}
				if _, ok := f.refusedAt[i]; !ok {
					f.refusedAt[i] = now
				}
			}
			for _, i := range ev.idxs {
				f.hinted[i] = ev.hints
			}
			for _, h := range ev.hints {
				f.addPeer(h)
			}
		default: // bad block, too slow, stream error: abandon the peer
			if !fp.dead {
				fp.dead, fp.since = true, now
				fp.drop()
			}
			f.dropHas(fp)
		}
	}
}

// waiting reports whether ev is a busy answer from a peer that has not
// been busy for longer than the request timeout: a live swarm whose
// slots are taken, which the fetch waits for rather than fail as stalled.
func (f *fetch) waiting(ev fetchEvent, now time.Time) bool {
	fp := f.peers[ev.p]
	return ev.kind == evFailed && ev.status == statusBusy && fp != nil && !fp.dead &&
		now.Sub(fp.busyFrom) < f.e.cfg.RequestTimeout
}

func (f *fetch) unhave(fp *fetchPeer, i int) {
	if fp.has[i] {
		fp.has[i] = false
		f.holders[i]--
		if !fp.complete {
			f.partial[i]--
		}
	}
}

func (f *fetch) dropHas(fp *fetchPeer) {
	for i := range fp.has {
		f.unhave(fp, i)
	}
}

func (f *fetch) size(idxs []int) int64 {
	var s int64
	for _, i := range idxs {
		s += int64(f.rs.leaves[i].Size)
	}
	return s
}

// schedule sends the requests plan decides.
func (f *fetch) schedule() {
	for _, r := range f.plan(time.Now()) {
		ctx := f.peers[r.p].ctx
		f.goFn(func() { f.get(ctx, r.p, r.idxs, r.last) })
	}
}

// request is a GET plan decided: pieces idxs asked of p, as a last
// resort or not.
type request struct {
	p    peer.ID
	idxs []int
	last bool
}

// plan decides which peers with room in their window are asked for which
// pieces, rarest first, and counts them in flight. A complete peer (a
// seed, perhaps the publisher) is asked only for pieces that no partial
// peer advertises, so peers feed each other first.
func (f *fetch) plan(now time.Time) []request {
	rs := f.rs
	rs.mu.Lock()
	held := slices.Clone(rs.held)
	rs.mu.Unlock()
	var want []int
	for _, i := range f.order {
		if !held[i] && f.inflight[i] == "" && f.holders[i] > 0 {
			want = append(want, i)
		}
	}
	if len(want) == 0 {
		return nil
	}
	slices.SortStableFunc(want, func(a, b int) int { return f.holders[a] - f.holders[b] })
	ps := make([]*fetchPeer, 0, len(f.peers))
	for _, fp := range f.peers {
		if !fp.dead && !now.Before(fp.waitUntil) {
			ps = append(ps, fp)
		}
	}
	slices.SortFunc(ps, func(a, b *fetchPeer) int { return strings.Compare(string(a.id), string(b.id)) }) // map order out: f.rng alone decides
	f.rng.Shuffle(len(ps), func(i, j int) { ps[i], ps[j] = ps[j], ps[i] })
	// Partial peers first, so they take pieces before seeds are asked.
	slices.SortStableFunc(ps, func(a, b *fetchPeer) int {
		switch {
		case a.complete == b.complete:
			return 0
		case a.complete:
			return 1
		}
		return -1
	})
	// One batch per peer a round, so that the fetch's window is spread
	// over the peers instead of filling the first ones'.
	var out []request
	for more := true; more && f.bytes < fetchWindow; {
		more = false
		for _, fp := range ps {
			if f.bytes >= fetchWindow {
				break
			}
			// A seed (perhaps a publisher on a thin uplink, super-seeding)
			// gets a short queue: what it promises to one peer arrives
			// soon, so the peers it refused find the piece there in time.
			window := fp.window(now)
			if fp.complete && len(ps) > 1 {
				window = min(window, seedWindow)
			}
			if fp.bytes >= window {
				continue
			}
			batch, bytes, last := f.batch(fp, want, now)
			if len(batch) == 0 {
				continue
			}
			for _, i := range batch {
				f.inflight[i] = fp.id
				delete(fp.refused, i)
			}
			fp.charge(bytes, now)
			f.bytes += bytes
			more = true
			out = append(out, request{p: fp.id, idxs: batch, last: last})
		}
	}
	return out
}

// window is how many bytes may be in flight to fp: about a second of
// what it delivers, at least one batch and at most peerWindow; one batch
// until it has delivered. A slow peer so holds few pieces, and the end of
// a fetch does not wait long on what it holds while faster peers idle.
func (fp *fetchPeer) window(now time.Time) int64 {
	busy := fp.busy
	if !fp.busySince.IsZero() {
		busy += now.Sub(fp.busySince)
	}
	if fp.got == 0 || busy <= 0 {
		return batchBytes
	}
	rate := float64(fp.got) / busy.Seconds()
	return int64(min(max(rate, batchBytes), peerWindow))
}

// charge adds delta to the bytes in flight to fp and keeps its busy time.
func (fp *fetchPeer) charge(delta int64, now time.Time) {
	was := fp.bytes
	fp.bytes += delta
	switch {
	case was <= 0 && fp.bytes > 0:
		fp.busySince = now
	case was > 0 && fp.bytes <= 0 && !fp.busySince.IsZero():
		fp.busy += now.Sub(fp.busySince)
		fp.busySince = time.Time{}
	}
}

// batch picks the next pieces to ask fp for, from want (rarest first),
// up to batchBytes; last says they are asked as a last resort.
func (f *fetch) batch(fp *fetchPeer, want []int, now time.Time) (batch []int, bytes int64, last bool) {
	for _, i := range want {
		if f.inflight[i] != "" || !fp.has[i] {
			continue
		}
		if fp.complete && f.partial[i] > 0 {
			continue
		}
		lr := false
		if t, ok := fp.refused[i]; ok {
			// A refusing seed named peers it sent the piece to: give them
			// lastResortAfter to show it. Then ask the seed again (it
			// names the peers it knows have it now, or serves the piece
			// if those uploads failed), and as a last resort, which it
			// always serves, once the peers it named are gone, or after
			// long.
			if f.holders[i] > 1 || now.Sub(t) < lastResortAfter {
				continue
			}
			lr = !f.hintsAlive(i) || now.Sub(f.refusedAt[i]) >= 5*lastResortAfter
		}
		if len(batch) > 0 && lr != last {
			continue
		}
		last = lr
		batch = append(batch, i)
		bytes += int64(f.rs.leaves[i].Size)
		if bytes >= batchBytes || len(batch) == maxGetPieces {
			break
		}
	}
	return batch, bytes, last
}

// hintsAlive reports whether a peer named in a refusal of piece i is
// still live in this fetch.
func (f *fetch) hintsAlive(i int) bool {
	for _, h := range f.hinted[i] {
		if hp := f.peers[h]; hp != nil && !hp.dead && !hp.gone {
			return true
		}
	}
	return false
}

// get asks p for pieces, verifies and stores each as it arrives, and
// reports. A bad block ends the request at once (and strikes p); so does
// a peer slower than MinRate or over its byte cap.
func (f *fetch) get(ctx context.Context, p peer.ID, idxs []int, lastResort bool) {
	e := f.e
	done := []int{}
	fail := func(rest []int, status int, hints []peer.ID, err error) {
		if len(done) > 0 {
			f.emit(fetchEvent{kind: evDone, p: p, idxs: done})
			done = []int{} // reported; the event keeps the old slice
		}
		if len(rest) > 0 {
			if err != nil {
				e.log.Debug("piece request failed", "peer", p, "pieces", len(rest), "err", err)
			}
			f.emit(fetchEvent{kind: evFailed, p: p, idxs: rest, status: status, hints: hints, err: err})
		}
	}
	var want int64
	for _, i := range idxs {
		want += int64(f.rs.leaves[i].Size)
	}
	// Every request is allowed the time of a full batch at MinRate: a
	// small piece queued behind others at a busy (honest) peer is not a
	// trickle, and abandoning that peer would cost far more than waiting.
	limit := time.Duration(float64(max(want, batchBytes))/float64(e.cfg.MinRate)*float64(time.Second)) + slowGrace
	ctx, cancel := context.WithTimeout(ctx, min(limit, e.cfg.RequestTimeout))
	defer cancel()
	s, err := e.host.NewStream(ctx, p, Protocol)
	if err != nil {
		fail(idxs, -1, nil, err)
		return
	}
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()
	defer s.Close()
	w := bufio.NewWriter(s)
	_ = w.WriteByte(opGet)
	wire.WriteBytes(w, f.root.Bytes())
	var flags byte
	if lastResort {
		flags |= flagLastResort
	}
	_ = w.WriteByte(flags)
	wire.WriteUvarint(w, uint64(len(idxs)))
	for _, i := range idxs {
		wire.WriteUvarint(w, uint64(i))
	}
	if err := w.Flush(); err != nil {
		fail(idxs, -1, nil, err)
		return
	}
	_ = s.CloseWrite()
	// A small buffer: piece bytes bypass it (io.ReadFull into the piece
	// buffer), only statuses and sizes go through it.
	r := bufio.NewReaderSize(s, 4<<10)
	var total int64
	// The piece buffer is taken when the first piece arrives, not while
	// the request waits behind others at the peer, and fits the pieces.
	var buf *[]byte
	defer func() {
		if buf != nil {
			f.e.bufs.put(buf)
		}
	}()
	for k, i := range idxs {
		leaf := f.rs.leaves[i]
		st, err := r.ReadByte()
		if err != nil {
			f.abandon(p, ctx, err)
			fail(idxs[k:], -1, nil, err)
			return
		}
		switch st {
		case statusOK:
		case statusRefused:
			cnt, err := wire.ReadUvarint(r, maxHints)
			var hints []peer.ID
			for j := uint64(0); err == nil && j < cnt; j++ {
				var h peer.ID
				if h, err = wire.ReadPeerID(r); err == nil {
					hints = append(hints, h)
				}
			}
			if err != nil {
				fail(idxs[k:], -1, nil, err)
				return
			}
			fail([]int{i}, statusRefused, hints, nil)
			continue
		case statusDontHave, statusBusy:
			fail([]int{i}, int(st), nil, nil)
			continue
		default:
			fail(idxs[k:], -1, nil, fmt.Errorf("%w: status %d", wire.ErrProtocol, st))
			return
		}
		size, err := wire.ReadUvarint(r, dag.MaxNodeSize)
		if err == nil && size != leaf.Size {
			err = fmt.Errorf("%w: piece %d is %d bytes, dag says %d", wire.ErrProtocol, i, size, leaf.Size)
		}
		if total += int64(size); err == nil && total > e.cfg.MaxPeerBytes {
			err = fmt.Errorf("%w: over the byte cap", wire.ErrProtocol)
		}
		if err != nil {
			f.e.strike(p)
			fail(idxs[k:], -1, nil, err)
			return
		}
		if buf != nil && len(*buf) < int(size) {
			f.e.bufs.put(buf)
			buf = nil
		}
		if buf == nil {
			buf = f.e.bufs.get(int(size))
		}
		data := (*buf)[:size]
		if _, err := io.ReadFull(r, data); err != nil {
			f.abandon(p, ctx, err)
			fail(idxs[k:], -1, nil, err)
			return
		}
		if cas.Digest(data) != digest(leaf.Cid) {
			e.met.BadBlocks.Inc()
			e.log.Warn("dropped a block that does not match its cid", "peer", p, "cid", leaf.Cid)
			f.e.strike(p)
			fail(idxs[k:], -1, nil, cas.ErrMismatch)
			return
		}
		if err := f.pack.Put(leaf.Cid, f.offs[i], data); err != nil {
			fail(idxs[k:], -1, nil, err)
			return
		}
		f.rs.markHeld(leaf.Cid)
		e.met.BlocksIn.Inc()
		e.met.BytesIn.Add(float64(size))
		f.e.recvBytes.Add(int64(size))
		f.e.received.Add(1)
		done = append(done, i)
		if len(done) >= 4 { // report progress so the window refills early
			f.emit(fetchEvent{kind: evDone, p: p, idxs: done})
			done = []int{}
		}
	}
	fail(nil, 0, nil, nil)
}

// abandon counts a peer given up on for slowness.
func (f *fetch) abandon(p peer.ID, ctx context.Context, err error) {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) && f.ctx.Err() == nil {
		f.e.met.PeersSlow.Inc()
		f.e.abandoned.Add(1)
		f.e.log.Info("abandoned a slow peer", "peer", p, "err", err)
	}
}

func digest(c cid.Cid) [cas.DigestSize]byte {
	var d [cas.DigestSize]byte
	h := c.Hash()
	copy(d[:], h[len(h)-cas.DigestSize:])
	return d
}
