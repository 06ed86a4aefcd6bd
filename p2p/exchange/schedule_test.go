package exchange

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/archy-node/archy/cas"
	"github.com/archy-node/archy/p2p/dag"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Unit tests of the fetch scheduler's and the server's decisions on
// in-memory state: no host, no streams, no clock (every decision takes
// its time as an argument). End-to-end behaviour is tested in p2p.

// newPlanFetch is a fetch of pieces of the given sizes with nothing held
// and no peers, its random tie-breaks seeded.
func newPlanFetch(seed uint64, sizes ...uint64) *fetch {
	leaves := make([]dag.Link, len(sizes))
	for i, sz := range sizes {
		leaves[i] = dag.Link{Cid: cas.Sum(fmt.Appendf(nil, "piece %d", i)), Size: sz}
	}
	f := &fetch{
		root:  cas.Sum([]byte("root")),
		peers: map[peer.ID]*fetchPeer{}, hinted: map[int][]peer.ID{}, refusedAt: map[int]time.Time{},
		rng:       rand.New(rand.NewPCG(seed, seed)),
		nodeBytes: map[peer.ID]int64{},
	}
	f.rs = newRootState(f.root, leaves)
	f.inflight = make([]peer.ID, len(sizes))
	f.holders = make([]int, len(sizes))
	f.partial = make([]int, len(sizes))
	f.order = f.rng.Perm(len(sizes))
	return f
}

// join adds peer id as if its watch had reported has (and, with
// complete, that it holds everything).
func (f *fetch) join(t0 time.Time, id string, complete bool, has ...int) *fetchPeer {
	p := peer.ID(id)
	fp := &fetchPeer{id: p, has: make([]bool, len(f.rs.leaves)), refused: map[int]time.Time{}}
	fp.ctx, fp.drop = context.WithCancel(context.Background())
	f.peers[p] = fp
	f.apply(fetchEvent{kind: evHave, p: p, idxs: has}, t0)
	if complete {
		f.apply(fetchEvent{kind: evComplete, p: p}, t0)
	}
	return fp
}

func mib(n int) []uint64 {
	s := make([]uint64, n)
	for i := range s {
		s[i] = batchBytes // one piece a batch
	}
	return s
}

func span(from, to int) []int {
	var s []int
	for i := from; i < to; i++ {
		s = append(s, i)
	}
	return s
}

// asked maps each peer to the pieces a plan asks of it.
func asked(rs []request) map[string][]int {
	m := map[string][]int{}
	for _, r := range rs {
		m[string(r.p)] = append(m[string(r.p)], r.idxs...)
	}
	return m
}

// The rarest piece a peer holds is asked of it first, whatever order the
// peers come in: a holds all 8, b all but 7, c all but 6 and 7; each may
// take one batch (one piece), so a must be asked for 7 and b for 6.
func TestPlanRarestFirst(t *testing.T) {
	t0 := time.Unix(1000, 0)
	for seed := range uint64(32) {
		f := newPlanFetch(seed, mib(8)...)
		f.join(t0, "a", false, span(0, 8)...)
		f.join(t0, "b", false, span(0, 7)...)
		f.join(t0, "c", false, span(0, 6)...)
		got := asked(f.plan(t0))
		if !slices.Equal(got["a"], []int{7}) || !slices.Equal(got["b"], []int{6}) || len(got["c"]) != 1 || got["c"][0] >= 6 {
			t.Fatalf("seed %d: asked %v, want a:[7] b:[6] c:one of 0-5", seed, got)
		}
	}
}

// A seed (a complete peer) is asked only for pieces no partial peer
// advertises, so peers feed each other before the origin is asked: with
// p holding 0-3 and q holding 4, the seed is asked for nothing.
func TestPlanSeedsLast(t *testing.T) {
	t0 := time.Unix(1000, 0)
	for seed := range uint64(32) {
		f := newPlanFetch(seed, mib(5)...)
		f.join(t0, "seed", true, span(0, 5)...)
		f.join(t0, "p", false, span(0, 4)...)
		f.join(t0, "q", false, 4)
		got := asked(f.plan(t0))
		if len(got["seed"]) != 0 || len(got["p"]) != 1 || !slices.Equal(got["q"], []int{4}) {
			t.Fatalf("seed %d: asked %v, want p one of 0-3, q 4, the seed nothing", seed, got)
		}
	}
}

// A peer's window is one batch until it has delivered, then about a
// second of what it delivers, at most peerWindow; the fetch's window caps
// what is in flight over all peers; no piece is asked twice.
func TestPlanWindows(t *testing.T) {
	t0 := time.Unix(1000, 0)
	for _, tc := range []struct {
		name      string
		got       int64
		busy      time.Duration
		want      int64
		busySince bool
	}{
		{"new peer", 0, 0, batchBytes, false},
		{"slow peer", 256 << 10, time.Second, batchBytes, false},
		{"3 MiB/s", 3 << 20, time.Second, 3 << 20, false},
		{"fast peer", 64 << 20, time.Second, peerWindow, false},
		{"busy now counts", 3 << 20, 0, 3 << 20, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fp := &fetchPeer{got: tc.got, busy: tc.busy}
			if tc.busySince {
				fp.busySince = t0.Add(-time.Second)
			}
			if w := fp.window(t0); w != tc.want {
				t.Fatalf("window %d, want %d", w, tc.want)
			}
		})
	}

	// New peers: one batch each.
	f := newPlanFetch(1, mib(64)...)
	for i := range 3 {
		f.join(t0, fmt.Sprint("p", i), false, span(0, 64)...)
	}
	rs := f.plan(t0)
	if len(rs) != 3 {
		t.Fatalf("%d requests to 3 new peers, want one each: %v", len(rs), asked(rs))
	}
	if again := f.plan(t0); len(again) != 0 {
		t.Fatalf("peers with full windows asked again: %v", asked(again))
	}

	// Fast peers: the fetch's window, spread one batch a round, no piece twice.
	f = newPlanFetch(2, mib(64)...)
	for i := range 6 {
		fp := f.join(t0, fmt.Sprint("p", i), false, span(0, 64)...)
		fp.got, fp.busy = 64<<20, time.Second
	}
	rs = f.plan(t0)
	var total int64
	seen := map[int]bool{}
	for _, r := range rs {
		for _, i := range r.idxs {
			if seen[i] {
				t.Fatalf("piece %d asked twice", i)
			}
			seen[i] = true
			total += int64(f.rs.leaves[i].Size)
		}
	}
	if total != fetchWindow || f.bytes != fetchWindow {
		t.Fatalf("%d bytes asked (%d counted), want the fetch window %d", total, f.bytes, fetchWindow)
	}
	for p, idxs := range asked(rs) {
		if n := len(idxs); n < 2 || n > 3 { // 16 batches over 6 peers
			t.Fatalf("%s asked for %d batches: the window was not spread (%v)", p, n, asked(rs))
		}
	}
	// Delivered pieces free the window.
	r := rs[0]
	f.apply(fetchEvent{kind: evDone, p: r.p, idxs: r.idxs}, t0.Add(time.Second))
	for _, i := range r.idxs {
		f.rs.markHeld(f.rs.leaves[i].Cid)
	}
	if more := f.plan(t0.Add(time.Second)); len(more) != 1 {
		t.Fatalf("%d requests after one batch came in, want 1", len(more))
	}
}

// A seed that refused a piece (super-seeding) is not asked for it again
// while the peers it named may still show it; after lastResortAfter it
// is asked again, and as a last resort once the peers it named are gone.
func TestPlanAfterRefusal(t *testing.T) {
	t0 := time.Unix(1000, 0)
	f := newPlanFetch(3, mib(1)...)
	f.join(t0, "seed", true, 0)
	f.join(t0, "named", false) // holds nothing yet
	rs := f.plan(t0)
	if len(rs) != 1 || rs[0].p != "seed" || rs[0].last {
		t.Fatalf("first plan %+v, want the seed asked, not as a last resort", rs)
	}
	refuse := func(at time.Time) {
		f.apply(fetchEvent{kind: evFailed, p: "seed", idxs: []int{0}, status: statusRefused, hints: []peer.ID{"named"}}, at)
	}
	refuse(t0)
	if rs := f.plan(t0.Add(lastResortAfter / 2)); len(rs) != 0 {
		t.Fatalf("refused piece asked again at once: %+v", rs)
	}
	rs = f.plan(t0.Add(lastResortAfter + time.Millisecond))
	if len(rs) != 1 || rs[0].p != "seed" || rs[0].last {
		t.Fatalf("after lastResortAfter %+v, want the seed asked again, not as a last resort (the named peer is live)", rs)
	}
	t1 := t0.Add(lastResortAfter + time.Millisecond)
	refuse(t1)
	f.apply(fetchEvent{kind: evGone, p: "named"}, t1)
	rs = f.plan(t1.Add(lastResortAfter + time.Millisecond))
	if len(rs) != 1 || rs[0].p != "seed" || !rs[0].last {
		t.Fatalf("with the named peer gone %+v, want the seed asked as a last resort", rs)
	}
}

// A peer that sent a bad block is dropped from the fetch: it is not
// asked again, and what it advertised no longer counts, so a seed is
// asked for a piece only the bad peer claimed besides it.
func TestPlanDropsBadPeer(t *testing.T) {
	t0 := time.Unix(1000, 0)
	f := newPlanFetch(4, mib(2)...)
	f.join(t0, "seed", true, 0, 1)
	f.join(t0, "bad", false, 0, 1)
	rs := f.plan(t0)
	a := asked(rs)
	if len(a["seed"]) != 0 || len(a["bad"]) != 1 {
		t.Fatalf("asked %v, want the partial peer asked first", a)
	}
	f.apply(fetchEvent{kind: evFailed, p: "bad", idxs: a["bad"], status: -1}, t0)
	if !f.peers["bad"].dead {
		t.Fatal("the bad peer is not dead")
	}
	a = asked(f.plan(t0))
	if len(a["bad"]) != 0 || len(a["seed"]) != 1 {
		t.Fatalf("after a bad block asked %v, want the seed asked, the bad peer not", a)
	}
}

// The server's side of super-seeding: a piece of a file held whole goes
// to its first asker; later askers are pointed at the peers that got it
// while those are connected, unless they ask as a last resort; a file
// held in part is served without refusals, and so is everything with
// super-seeding off.
func TestOfferSuperSeeds(t *testing.T) {
	connected := map[peer.ID]bool{"a": true, "b": true, "c": true}
	isConn := func(p peer.ID) bool { return connected[p] }
	whole := func() *rootState {
		leaves := []dag.Link{{Cid: cas.Sum([]byte("x")), Size: 1}, {Cid: cas.Sum([]byte("y")), Size: 1}}
		rs := newRootState(cas.Sum([]byte("r")), leaves)
		for _, l := range leaves {
			rs.markHeld(l.Cid)
		}
		return rs
	}
	rs := whole()
	if held, hints, rec := rs.offer("a", 0, true, false, true, isConn); !held || hints != nil || !rec {
		t.Fatalf("first asker: held %v hints %v recorded %v, want served and recorded", held, hints, rec)
	}
	if _, hints, rec := rs.offer("b", 0, true, false, true, isConn); !slices.Equal(hints, []peer.ID{"a"}) || rec {
		t.Fatalf("second asker: hints %v recorded %v, want pointed at a", hints, rec)
	}
	if _, hints, rec := rs.offer("b", 0, true, true, true, isConn); hints != nil || !rec {
		t.Fatalf("last resort: hints %v recorded %v, want served", hints, rec)
	}
	if _, hints, _ := rs.offer("c", 0, true, false, true, isConn); !slices.Equal(hints, []peer.ID{"a", "b"}) {
		t.Fatalf("third asker: hints %v, want a and b", hints)
	}
	connected["a"], connected["b"] = false, false
	if _, hints, _ := rs.offer("c", 0, true, false, true, isConn); hints != nil {
		t.Fatalf("hints %v naming disconnected peers, want served", hints)
	}
	if _, hints, _ := whole().offer("b", 1, false, false, true, isConn); hints != nil {
		t.Fatal("refused with super-seeding off")
	}
	rs = whole()
	rs.offer("a", 0, true, false, true, isConn)
	connected["a"] = true
	partial := newRootState(rs.root, rs.leaves)
	partial.markHeld(rs.leaves[0].Cid)
	partial.offer("a", 0, true, false, true, isConn)
	if held, hints, _ := partial.offer("b", 0, true, false, true, isConn); !held || hints != nil {
		t.Fatalf("a file held in part: held %v hints %v, want served", held, hints)
	}
	if held, _, _ := partial.offer("b", 1, true, false, true, isConn); held {
		t.Fatal("a piece not held was offered")
	}
	// The list of peers a piece went to is capped.
	rs = whole()
	for i := range maxHints + 2 {
		rs.offer(peer.ID(fmt.Sprint("q", i)), 1, true, true, true, isConn)
	}
	if n := len(rs.sentTo[1]); n != maxHints {
		t.Fatalf("%d peers recorded for a piece, want at most %d", n, maxHints)
	}
}

type banRecorder struct {
	Swarm
	bans []peer.ID
}

func (b *banRecorder) Ban(p peer.ID, _ string) { b.bans = append(b.bans, p) }

// A peer is banned at its MaxStrikes-th bad block, once; its count
// starts again after the ban; other peers' counts are their own.
func TestStrikesBan(t *testing.T) {
	sw := &banRecorder{}
	e := &Exchange{swarm: sw, cfg: Config{MaxStrikes: 3}, strikes: map[peer.ID]int{}}
	e.strike("a")
	e.strike("b")
	e.strike("a")
	if len(sw.bans) != 0 {
		t.Fatalf("banned %v after two strikes", sw.bans)
	}
	e.strike("a")
	if !slices.Equal(sw.bans, []peer.ID{"a"}) || e.Strikes("a") != 0 || e.Strikes("b") != 1 {
		t.Fatalf("bans %v, strikes a=%d b=%d; want a banned once, its count reset, b at 1", sw.bans, e.Strikes("a"), e.Strikes("b"))
	}
}

// A peer whose upload slots are all taken answers busy: its pieces go to
// the other holder at once, it is left alone for busyBackoff ±50 % and
// asked again after; its busy answers keep the fetch from failing as
// stalled only while it has been busy for less than the request timeout.
func TestPlanAfterBusy(t *testing.T) {
	t0 := time.Unix(1000, 0)
	f := newPlanFetch(1, mib(2)...)
	f.e = &Exchange{cfg: Config{RequestTimeout: 10 * time.Second}}
	f.join(t0, "a", false, 0, 1)
	f.join(t0, "b", false, 1)
	got := asked(f.plan(t0))
	if !slices.Equal(got["a"], []int{0}) || !slices.Equal(got["b"], []int{1}) {
		t.Fatalf("asked %v, want a:[0] b:[1]", got)
	}
	busy := fetchEvent{kind: evFailed, p: "a", idxs: []int{0}, status: statusBusy}
	f.apply(busy, t0)
	if !f.waiting(busy, t0) {
		t.Error("a first busy answer does not count as a live swarm")
	}
	if got := asked(f.plan(t0)); len(got) != 0 {
		t.Fatalf("asked %v right after a's busy answer, want nothing (b is full, a waits)", got)
	}
	if fp := f.peers["a"]; fp.dead || !fp.has[0] {
		t.Fatal("a busy peer was given up on or forgot what it holds")
	}
	t1 := t0.Add(busyBackoff * 3 / 2)
	if got := asked(f.plan(t1)); !slices.Equal(got["a"], []int{0}) {
		t.Fatalf("asked %v after the backoff, want a:[0] again", got)
	}
	f.apply(fetchEvent{kind: evFailed, p: "a", idxs: []int{0}, status: statusBusy}, t0.Add(11*time.Second))
	if f.waiting(busy, t0.Add(11*time.Second)) {
		t.Error("a peer busy for longer than the request timeout still keeps the fetch alive")
	}
	f.apply(fetchEvent{kind: evDone, p: "a", idxs: []int{}}, t0.Add(12*time.Second))
	f.apply(busy, t0.Add(13*time.Second))
	if !f.waiting(busy, t0.Add(13*time.Second)) {
		t.Error("a peer that delivered since is still counted busy since its first busy answer")
	}
}

// Upload slots go to askers, not streams: an asker holding one opens
// more streams on it; a new asker gets one only while fewer than
// UploadSlots askers hold them. Without a slot, offer records nothing:
// the piece is not counted as sent to the asker, so nobody is pointed at
// it.
func TestAdmitSlots(t *testing.T) {
	e := &Exchange{cfg: Config{UploadSlots: 2}, serving: map[peer.ID]int{}}
	if !e.admit("a") || !e.admit("a") || !e.admit("b") {
		t.Fatal("two askers refused with two slots")
	}
	if e.admit("c") {
		t.Fatal("a third asker admitted with two slots taken")
	}
	e.unadmit("a")
	if e.admit("c") {
		t.Fatal("a third asker admitted while a still has a stream")
	}
	e.unadmit("a")
	if !e.admit("c") {
		t.Fatal("a slot freed by a's last stream was not given to c")
	}
	leaves := []dag.Link{{Cid: cas.Sum([]byte("x")), Size: 1}}
	rs := newRootState(cas.Sum([]byte("r")), leaves)
	rs.markHeld(leaves[0].Cid)
	isConn := func(peer.ID) bool { return true }
	if held, hints, rec := rs.offer("d", 0, true, false, false, isConn); !held || hints != nil || rec || len(rs.sentTo[0]) != 0 {
		t.Fatalf("offer without a slot: held %v hints %v recorded %v sentTo %v; want held, nothing recorded", held, hints, rec, rs.sentTo[0])
	}
	rs.offer("a", 0, true, false, true, isConn)
	if _, hints, _ := rs.offer("d", 0, true, false, false, isConn); !slices.Equal(hints, []peer.ID{"a"}) {
		t.Fatalf("offer without a slot of a piece sent to a: hints %v, want a (hints before busy)", hints)
	}
	if n := Slots(512<<10, 64<<10); n != 2 {
		t.Errorf("Slots(512 KiB/s) = %d, want 2", n)
	}
	if n := Slots(0, 64<<10); n != 8 {
		t.Errorf("Slots(uncapped) = %d, want 8", n)
	}
	if n := Slots(1<<30, 64<<10); n != 16 {
		t.Errorf("Slots(1 GiB/s) = %d, want 16", n)
	}
}
