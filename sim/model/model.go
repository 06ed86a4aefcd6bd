// Package model is the simulator's model mode: a discrete-event model of
// archy's protocols (relay discovery, DHT provider lookups, the piece
// exchange's peer selection with its request windows, super-seeding,
// strikes and bans, trust decisions through the trust harness), driven by
// the same scenario files as the emulation and returning the same
// report.Result.
//
// It trades fidelity for scale: per-node state is struct-of-arrays
// (bitsets for block ownership, neighbour sets of bounded degree), one
// event queue ordered by (time, sequence), one PCG stream per seed, so a
// run is deterministic and 100,000 nodes fit in a few hundred MiB. What it
// leaves out is listed in README.md next to this file.
package model

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"runtime"
	"slices"
	"syscall"
	"time"

	"github.com/archy-node/archy/p2p"
	"github.com/archy-node/archy/p2p/exchange"
	"github.com/archy-node/archy/sim/report"
	"github.com/archy-node/archy/sim/scenario"
)

// The piece exchange's policy constants. The exported defaults come from
// p2p; the unexported ones are mirrored here (p2p/exchange/fetch.go, p2p/exchange/wire.go)
// and TestPolicyMatchesP2P fails when p2p changes them.
const (
	peerWindow      = 4 << 20  // p2p/exchange/fetch.go: bytes in flight to one peer
	fetchWindow     = 16 << 20 // p2p/exchange/fetch.go: to all peers of one fetch
	seedWindow      = 1 << 20  // p2p/exchange/fetch.go: to a complete peer, when others exist
	batchBytes      = 1 << 20  // p2p/exchange/fetch.go: bytes asked in one GET, a peer's least window
	lastResortAfter = 2.0      // p2p/exchange/fetch.go, seconds
	slowGrace       = 2.0      // p2p/exchange/fetch.go, seconds
	reviveAfter     = 5.0      // p2p/exchange/fetch.go, seconds
	rediscoverEvery = 30.0     // p2p/exchange/fetch.go, seconds
	maxHints        = 4        // p2p/exchange/wire.go: peers named in one refusal
	busyBackoff     = 1.0      // p2p/exchange/fetch.go, seconds: a busy peer is asked again after this ±50 %
)

var (
	minRate    = float64(p2p.DefaultMinRate)
	maxStrikes = p2p.DefaultMaxStrikes
	banTime    = p2p.DefaultBanTime.Seconds()
)

// Model parameters that are not archy's policy but the network's shape.
const (
	// MaxDegree bounds a node's connections (libp2p's default host has no
	// bound; the model needs one for memory).
	MaxDegree = 64
	// LookupDegree is how many of them a node fills from provider
	// lookups and accepts from others' lookups; the rest are for the peers
	// a seed names in a refusal, which the real node always dials.
	LookupDegree = 48
	// lookupProviders is how many providers one DHT lookup yields.
	lookupProviders = 20
	// kadBits is Kademlia's effective bits resolved per hop (k=20, α=3
	// buckets): hops ≈ log2(N)/kadBits.
	kadBits = 4
	// relayProc is a relay's time to verify, store and fan out an
	// announcement, and announceCPU a node's CPU to verify it
	// (p2p/discovery's BenchmarkVerifyAnnouncement: 0.85 ms here since the
	// envelope is verified once, 1.1 ms before); with the node's old 1.1
	// ms they were discoverbench's 2.7 ms from publish to discovered on
	// loopback.
	relayProc   = 0.0016
	announceCPU = 0.00085
	// fanoutCPU is the core time one subscriber's copy of an event takes
	// (the relay's write, the node's read): relay's BenchmarkFanout, 160
	// µs of wall a subscriber on 2 busy cores. Charged only when the nodes
	// and the relay share cores (Scenario.SharedCores); a real relay's
	// fan-out on its own cores is not queued (README). Together with
	// announceCPU it is p2p/discovery's BenchmarkDeliverAnnouncement, a
	// real announcement (both events, the envelope in each) delivered to
	// 48 discoverers beside the relay and stored by each: 1.28-1.38 ms of
	// CPU a subscriber on the idle machine (the Go runtime's spinning
	// included), against the 1.17 ms charged here.
	fanoutCPU = 0.00032
	// deliverWall is the same benchmark's wall time a subscriber on the
	// 2-core machine it ran on (deliverCores; 0.74-0.80 ms idle): a burst of deliveries goes
	// through a process whose nodes share cores at that pace, which is
	// slower than their CPU over the cores, as the Go runtime runs such a
	// burst on one of the cores in some rounds and on both in others
	// (sim/emulate/BENCHMARKS.md). With shared cores, a delivery holds a
	// core for its CPU stretched by deliverWall·deliverCores over
	// fanoutCPU + announceCPU.
	deliverWall  = 0.00077
	deliverCores = 2
	// slowRate is a slow malicious peer's trickle, bytes/s.
	slowRate = 8 << 10
	// junkRate is a junk-events peer's events per second at each relay.
	junkRate = 50
)

// node flags
const (
	fOnline = 1 << iota
	fWants
	fFetching
	fDone
	fStalled
	fDiscovered
	fWaitHeal // discovery waits for the partition to heal
	fUpdWant
	fProvided
)

// malicious kinds, 0 is honest
const (
	kHonest = iota
	kCorrupt
	kLieNames
	kDAGBomb
	kSlow
	kStale
	kJunk
)

var kindOf = map[string]uint8{
	scenario.Corrupt: kCorrupt, scenario.LieNames: kLieNames, scenario.DAGBomb: kDAGBomb,
	scenario.Slow: kSlow, scenario.StaleCatalog: kStale, scenario.JunkEvents: kJunk,
}

// event kinds
const (
	evDiscover = iota
	evStart
	evLookup
	evProvide
	evRequest
	evArrive
	evRefuse
	evFail
	evWake
	evRediscover
	evLeave
	evJoin
	evPartition
	evHeal
	evUpdate
	evSent     // a: the uplink whose next transfer ends; blk: its version
	evDeadline // a: the server whose earliest asker's deadline passes; blk: its version
	evBusy     // a: the asker; b: the server, every upload slot taken
)

type event struct {
	t    float64
	seq  uint64
	kind uint8
	flag uint8 // evRequest: last resort; evFail: mark dead
	a, b int32 // a is the node acted on; b the peer
	blk  int32
	ea   uint32 // epochs of a and b when scheduled
	eb   uint32
}

// xfer is a block being sent on an uplink.
type xfer struct {
	r, blk int32
	er     uint32  // the asker's epoch
	lr     bool    // asked as a last resort
	left   float64 // bytes still to send
	down   float64 // when the asker's downlink has room for it
	dl     float64 // when the asker gives it up
}

type queue []event

func (q queue) less(i, j int) bool {
	if q[i].t != q[j].t {
		return q[i].t < q[j].t
	}
	return q[i].seq < q[j].seq
}

func (q *queue) push(e event) {
	*q = append(*q, e)
	h := *q
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !h.less(i, p) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

func (q *queue) pop() event {
	h := *q
	top := h[0]
	n := len(h) - 1
	h[0] = h[n]
	h = h[:n]
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && h.less(r, l) {
			m = r
		}
		if !h.less(m, i) {
			break
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
	*q = h
	return top
}

type sim struct {
	sc  *scenario.Scenario
	rng *rand.Rand
	q   queue
	seq uint64
	now float64

	n, honest  int
	nb, NB, W  int   // release blocks, all blocks (with the update's), words per bitset
	blockBytes int64 // all blocks but the last of the release
	lastBytes  int64
	relMask    []uint64 // blocks of the release
	allMask    []uint64 // every block, the update's too
	updMask    []uint64 // blocks of the updated image
	updated    bool     // the update has been announced

	up, down, lat []float32
	downFree      []float64
	// Each uplink is shared fairly by the askers it serves (p2p serves
	// every GET stream at once through one upload cap, a stream's pieces
	// one after the other; an asker's blocks here are its stream): act[j]
	// are node j's transfers in the order asked, advanced to actAt[j];
	// actVer[j] tells a stale evSent. mark and stamp find each asker's
	// first transfer.
	act             [][]xfer
	actAt           []float64
	actVer          []uint32
	actNext         []float64 // when the queued evSent comes, -1 if none
	dlVer           []uint32  // the same for the earliest deadline's evDeadline
	dlNext          []float64
	mark            []uint32
	stamp           uint32
	have, pend, ref []uint64 // n*W bitsets: held, in flight, refused by the publisher
	avail           []uint16 // honest*NB: neighbours holding each block
	nbr             []int32  // n*MaxDegree
	deg             []uint8
	slotIn          []uint8  // requests in flight per neighbour slot
	slotDead        []uint32 // ms until which the slot's peer is left alone
	slotWait        []uint32 // ms until which the slot's peer, busy, is not asked
	slotBatch       []uint8  // blocks the slot's current GET may still take
	uploadSlots     []uint8  // askers a node serves at once (p2p's exchange.Slots)
	strikes         []uint8
	// A slot's delivery record, for its adaptive window (p2p's
	// fetchPeer.window): bytes got, seconds busy, busy since (-1 idle).
	slotGot, slotBusy, slotSince []float32
	inflight                     []uint8
	flags                        []uint16
	kind                         []uint8
	epoch                        []uint32
	side                         []uint8
	parted                       bool
	wakeAt                       []float64
	refusedAt                    []float64
	discovered                   []float32
	startAt                      []float32
	completion                   []float32
	updCompletion                []float32
	uploaded                     []int64
	providers                    []int32
	sentTo                       [][]int32 // the publisher's super-seeding record, per block
	banned                       map[int32][]uint64
	relayLat                     []float64
	coreFree                     []float64 // with shared cores: when each is next free
	delay                        []float32 // per fetcher: from discovering the release to asking for it

	res       *report.Result
	refused   map[string]int64
	events    int64
	peerWin   int
	batchWin  int // one batch, in blocks
	fetchWin  int
	seedWin   int
	releaseAt float64
	updateAt  float64
	horizon   float64
	fetchers  []int32
	churners  []bool
	// noSuperSeed is p2p's Config.NoSuperSeed (for comparisons).
	noSuperSeed bool
	liars       int
}

// Run simulates sc at one seed, on the network sc draws for it (as the
// emulation of that seed does). It honours ctx between events.
func Run(ctx context.Context, sc *scenario.Scenario, seed uint64) (*report.Result, error) {
	return RunOn(ctx, sc, seed, sc.Draw(seed))
}

// RunOn simulates sc on net (sc.Draw of some seed) with seed driving
// everything else: the calibration runs the model many times on the
// network of each emulated seed.
func RunOn(ctx context.Context, sc *scenario.Scenario, seed uint64, net *scenario.Network) (*report.Result, error) {
	start := time.Now()
	s, err := newSim(sc, seed, net)
	if err != nil {
		return nil, err
	}
	if err := s.run(ctx); err != nil {
		return nil, err
	}
	if err := s.sybils(seed); err != nil {
		return nil, err
	}
	s.finish()
	s.res.WallTime = time.Since(start)
	s.res.PeakBytes = peakRSS()
	return s.res, nil
}

func newSim(sc *scenario.Scenario, seed uint64, net *scenario.Network) (*sim, error) {
	rel := sc.Release
	s := &sim{sc: sc, rng: rand.New(rand.NewPCG(seed, 0x61726368795f736d)), refused: map[string]int64{}, banned: map[int32][]uint64{}}
	s.honest = sc.Nodes
	s.n = sc.Nodes
	for _, m := range sc.Malicious {
		s.n += m.MaliciousCount(sc.Nodes)
	}
	if s.n > math.MaxInt32/MaxDegree {
		return nil, fmt.Errorf("model: %d nodes: too many for the model's int32 indices", s.n)
	}
	s.blockBytes = rel.BlockBytes
	s.nb = int((rel.ImageBytes + rel.BlockBytes - 1) / rel.BlockBytes)
	s.lastBytes = rel.ImageBytes - int64(s.nb-1)*rel.BlockBytes
	s.NB = s.nb
	layerOf := func(b int) int { return b * rel.Layers / s.nb }
	var changed []int // release blocks the update replaces
	if u := sc.Update; u != nil {
		for b := 0; b < s.nb; b++ {
			if layerOf(b) >= rel.Layers-u.Changed {
				changed = append(changed, b)
			}
		}
		s.NB = s.nb + len(changed)
	}
	if s.NB > math.MaxUint16 {
		return nil, fmt.Errorf("model: %d blocks: at most %d (raise release.block_bytes)", s.NB, math.MaxUint16)
	}
	s.W = (s.NB + 63) / 64
	s.relMask = make([]uint64, s.W)
	for b := 0; b < s.nb; b++ {
		setBit(s.relMask, b)
	}
	s.allMask = make([]uint64, s.W)
	for b := 0; b < s.NB; b++ {
		setBit(s.allMask, b)
	}
	if sc.Update != nil {
		s.updMask = append([]uint64(nil), s.relMask...)
		for i, b := range changed {
			clearBit(s.updMask, b)
			setBit(s.updMask, s.nb+i)
		}
	}
	s.peerWin = max(1, int(peerWindow/rel.BlockBytes))
	s.fetchWin = max(1, int(fetchWindow/rel.BlockBytes))
	s.seedWin = max(1, int(seedWindow/rel.BlockBytes))
	s.batchWin = max(1, int(batchBytes/rel.BlockBytes))
	s.releaseAt = rel.At.D().Seconds()
	s.horizon = sc.Horizon.D().Seconds()
	if sc.Update != nil {
		s.updateAt = sc.Update.At.D().Seconds()
	}

	n, D := s.n, MaxDegree
	s.up, s.down, s.lat = make([]float32, n), make([]float32, n), make([]float32, n)
	s.downFree = make([]float64, n)
	s.act, s.actAt, s.actVer, s.mark = make([][]xfer, n), make([]float64, n), make([]uint32, n), make([]uint32, n)
	s.actNext, s.dlNext, s.dlVer = make([]float64, n), make([]float64, n), make([]uint32, n)
	for i := range s.actNext {
		s.actNext[i], s.dlNext[i] = -1, -1
	}
	s.have, s.pend, s.ref = make([]uint64, n*s.W), make([]uint64, n*s.W), make([]uint64, n*s.W)
	s.avail = make([]uint16, s.honest*s.NB)
	s.nbr = make([]int32, n*D)
	s.deg = make([]uint8, n)
	s.slotIn = make([]uint8, n*D)
	s.slotBatch = make([]uint8, n*D)
	s.slotDead = make([]uint32, n*D)
	s.slotWait = make([]uint32, n*D)
	s.uploadSlots = make([]uint8, n)
	s.strikes = make([]uint8, n*D)
	s.slotGot, s.slotBusy, s.slotSince = make([]float32, n*D), make([]float32, n*D), make([]float32, n*D)
	s.inflight = make([]uint8, n)
	s.flags = make([]uint16, n)
	s.kind = make([]uint8, n)
	s.epoch = make([]uint32, n)
	s.side = make([]uint8, n)
	s.wakeAt = make([]float64, n)
	s.refusedAt = make([]float64, n)
	s.discovered = make([]float32, n)
	s.startAt = make([]float32, n)
	s.completion = make([]float32, s.honest)
	s.updCompletion = make([]float32, s.honest)
	s.uploaded = make([]int64, s.honest)
	s.sentTo = make([][]int32, s.NB)
	s.churners = make([]bool, n)
	s.coreFree = make([]float64, sc.SharedCores)

	if len(net.Latency) != n || len(net.Fetch) != s.honest || len(net.RelayLatency) != sc.Relays {
		return nil, fmt.Errorf("model: a network of %d nodes (%d honest) and %d relays for a scenario of %d (%d) and %d",
			len(net.Latency), len(net.Fetch), len(net.RelayLatency), n, s.honest, sc.Relays)
	}
	for i := 0; i < n; i++ {
		s.lat[i] = float32(net.Latency[i])
		s.up[i] = float32(net.Uplink[i])
		s.down[i] = float32(net.Downlink[i])
		s.flags[i] = fOnline
		s.discovered[i] = -1
		s.startAt[i] = -1
		s.wakeAt[i] = -1
	}
	for i := range s.uploadSlots {
		// The emulation caps a node's uploads at its uplink (p2p's
		// UploadRate), from which p2p derives its slots.
		s.uploadSlots[i] = uint8(exchange.Slots(int64(s.up[i]), int64(minRate)))
	}
	for i := range s.completion {
		s.completion[i], s.updCompletion[i] = -1, -1
	}
	i := s.honest
	for _, m := range sc.Malicious {
		for range m.MaliciousCount(sc.Nodes) {
			s.kind[i] = kindOf[m.Behaviour]
			switch s.kind[i] {
			case kSlow:
				s.up[i] = slowRate
			case kLieNames:
				s.liars++
			}
			i++
		}
	}
	s.relayLat = net.RelayLatency
	// The publisher holds the release; fetchers are drawn from the rest.
	copy(s.have[:s.W], s.relMask)
	s.flags[0] |= fDone | fDiscovered
	s.delay = make([]float32, s.honest)
	for i := 1; i < s.honest; i++ {
		if net.Fetch[i] {
			s.flags[i] |= fWants
			s.fetchers = append(s.fetchers, int32(i))
			s.delay[i] = float32(net.Delay[i])
		}
	}
	s.res = &report.Result{Scenario: sc.Name, Mode: report.Model, Seed: seed, Nodes: s.honest, ImageBytes: rel.ImageBytes}
	// The connections nodes have before the release (their joins, as the
	// emulation dials them): a fetch watches these from its start.
	for i, ds := range net.Dials {
		for _, d := range ds {
			s.connect(int32(i), d)
		}
	}
	return s, nil
}

func setBit(m []uint64, b int)                 { m[b>>6] |= 1 << (b & 63) }
func clearBit(m []uint64, b int)               { m[b>>6] &^= 1 << (b & 63) }
func hasBit(m []uint64, b int) bool            { return m[b>>6]&(1<<(b&63)) != 0 }
func (s *sim) bits(m []uint64, i int) []uint64 { return m[i*s.W : (i+1)*s.W] }

func (s *sim) push(t float64, kind uint8, a, b int32, blk int32, flag uint8) {
	s.seq++
	e := event{t: t, seq: s.seq, kind: kind, a: a, b: b, blk: blk, flag: flag, ea: s.epoch[a]}
	if b >= 0 {
		e.eb = s.epoch[b]
	}
	s.q.push(e)
}

func (s *sim) blockSize(b int) float64 {
	if b == s.nb-1 {
		return float64(s.lastBytes)
	}
	if b >= s.nb { // the update's blocks: the changed layers' sizes
		return float64(s.blockBytes)
	}
	return float64(s.blockBytes)
}

// want is the mask of blocks node i is after now.
func (s *sim) want(i int) []uint64 {
	if s.flags[i]&fUpdWant != 0 {
		return s.updMask
	}
	return s.relMask
}

func (s *sim) run(ctx context.Context) error {
	sc := s.sc
	// The release is announced on every relay; the publisher provides it.
	all := make([]int32, 0, s.n-1)
	for i := 1; i < s.n; i++ {
		all = append(all, int32(i))
	}
	s.discoverAfter(s.releaseAt, all)
	s.providers = append(s.providers, 0)
	for i := s.honest; i < s.n; i++ {
		switch s.kind[i] {
		case kCorrupt, kDAGBomb, kSlow, kStale:
			// They answer provider lookups for the root from the start.
			s.providers = append(s.providers, int32(i))
		case kJunk:
			s.refused[report.RefusedJunk] += int64(junkRate * float64(sc.Relays) * s.horizon)
		}
	}
	if u := sc.Update; u != nil {
		s.push(s.updateAt, evUpdate, 0, -1, 0, 0)
	}
	if c := sc.Churn; c != nil {
		for i := 1; i < s.n; i++ {
			if s.rng.Float64() < c.Fraction {
				s.churners[i] = true
				s.push(c.Session.Sample(s.rng), evLeave, int32(i), -1, 0, 0)
			}
		}
	}
	for pi, p := range sc.Partitions {
		s.push(p.At.D().Seconds(), evPartition, 0, -1, int32(pi), 0)
		s.push((p.At + p.Duration).D().Seconds(), evHeal, 0, -1, int32(pi), 0)
	}
	for len(s.q) > 0 {
		e := s.q.pop()
		if e.t > s.horizon {
			break
		}
		s.now = e.t
		s.events++
		if s.events&0xffff == 0 && ctx.Err() != nil {
			return fmt.Errorf("model run of %s: %w", sc.Name, ctx.Err())
		}
		s.handle(e)
	}
	return nil
}

// discoverAfter queues each node's discovery of an announcement that left
// the publisher at t0 (or that it reads from the relay at t0): the
// network and the relay (discoverDelay), then the node's CPU to verify it
// (announceCPU), on its own core or, when the scenario's nodes share
// cores, on the first one free, in the order the announcement reaches
// them.
func (s *sim) discoverAfter(t0 float64, nodes []int32) {
	type arrival struct {
		t float64
		i int32
	}
	as := make([]arrival, len(nodes))
	for k, i := range nodes {
		as[k] = arrival{t0 + s.discoverDelay(int(i)), i}
	}
	if len(s.coreFree) > 0 {
		slices.SortStableFunc(as, func(a, b arrival) int { return cmp.Compare(a.t, b.t) })
	}
	stretch := max(1, deliverWall*deliverCores/(fanoutCPU+announceCPU))
	for _, a := range as {
		t, verify := a.t, announceCPU
		if len(s.coreFree) > 0 {
			k := 0
			for c := range s.coreFree {
				if s.coreFree[c] < s.coreFree[k] {
					k = c
				}
			}
			verify *= stretch
			t = max(t, s.coreFree[k]) + fanoutCPU*stretch
			s.coreFree[k] = t + verify
		}
		s.push(t+verify, evDiscover, a.i, -1, 0, 0)
	}
}

// discoverDelay is the time from an announcement to node i receiving it:
// publisher → relay → subscriber over the fastest relay.
func (s *sim) discoverDelay(i int) float64 {
	best := math.Inf(1)
	for _, r := range s.relayLat {
		best = min(best, float64(s.lat[0])+2*r+float64(s.lat[i])+relayProc)
	}
	return best
}

func (s *sim) online(i int32) bool { return s.flags[i]&fOnline != 0 }

func (s *sim) reachable(a, b int32) bool {
	return s.online(a) && s.online(b) && (!s.parted || s.side[a] == s.side[b])
}

func (s *sim) handle(e event) {
	a := e.a
	stale := e.ea != s.epoch[a]
	switch e.kind {
	case evDiscover:
		if stale || !s.online(a) {
			return // a join schedules discovery again
		}
		s.discover(a)
	case evStart:
		if stale || !s.online(a) {
			return
		}
		s.flags[a] |= fFetching
		if s.startAt[a] < 0 {
			s.startAt[a] = float32(s.now)
		}
		s.lookup(a, s.flags[a]&fProvided == 0)
		s.flags[a] |= fProvided
		s.push(s.now+rediscoverEvery, evRediscover, a, -1, 0, 0)
		// The peers it is connected to already are watched from the
		// start, while the lookup runs (p2p's fetchLeaves).
		s.fill(a)
	case evLookup:
		if stale || !s.online(a) {
			return
		}
		s.connectProviders(a)
		s.fill(a)
	case evProvide:
		if stale || !s.online(a) {
			return
		}
		s.providers = append(s.providers, a)
	case evRediscover:
		if stale || !s.online(a) || s.flags[a]&fFetching == 0 {
			return
		}
		s.lookup(a, false)
		s.push(s.now+rediscoverEvery, evRediscover, a, -1, 0, 0)
	case evRequest:
		if stale {
			// The peer left (and perhaps came back) since it was asked:
			// the asker's stream breaks.
			if e.eb == s.epoch[e.b] {
				s.push(s.now+float64(s.lat[a]+s.lat[e.b]), evFail, e.b, a, e.blk, 0)
			}
			return
		}
		s.serve(e)
	case evArrive:
		if stale {
			return
		}
		s.arrive(e)
	case evRefuse:
		if stale {
			return
		}
		s.release(a, e.b, int(e.blk))
		setBit(s.bits(s.ref, int(a)), int(e.blk))
		s.refusedAt[a] = s.now
		s.refused[report.RefusedSuperSeed]++
		// The hints travel in the refusal: connect to the peers named.
		for _, q := range s.sentTo[e.blk] {
			if q != a && s.slot(a, q) < 0 {
				s.makeRoom(a)
				s.makeRoom(q)
				s.connectUpTo(a, q, MaxDegree)
			}
		}
		s.fill(a)
	case evBusy:
		if stale {
			return
		}
		s.release(a, e.b, int(e.blk))
		if k := s.slot(a, e.b); k >= 0 {
			t := s.now + busyBackoff*(0.5+s.rng.Float64())
			s.slotWait[int(a)*MaxDegree+k] = uint32(t * 1000)
			s.scheduleWake(a, t+0.001)
		}
		s.fill(a)
	case evFail:
		if stale {
			return
		}
		s.release(a, e.b, int(e.blk))
		if e.flag != 0 {
			if k := s.slot(a, e.b); k >= 0 {
				s.slotDead[int(a)*MaxDegree+k] = uint32((s.now + reviveAfter) * 1000)
			}
			s.scheduleWake(a, s.now+reviveAfter)
		}
		s.fill(a)
	case evWake:
		if stale || s.wakeAt[a] != e.t {
			return
		}
		s.wakeAt[a] = -1
		s.fill(a)
	case evLeave:
		if stale {
			return
		}
		s.leave(a)
		s.push(s.now+s.sc.Churn.Downtime.Sample(s.rng), evJoin, a, -1, 0, 0)
	case evJoin:
		s.join(a)
		s.push(s.now+s.sc.Churn.Session.Sample(s.rng), evLeave, a, -1, 0, 0)
	case evPartition:
		s.partition(s.sc.Partitions[e.blk].Fraction)
	case evHeal:
		s.heal()
	case evSent:
		if uint32(e.blk) == s.actVer[a] {
			s.actNext[a] = -1
			s.sent(a)
		}
	case evDeadline:
		if uint32(e.blk) == s.dlVer[a] {
			s.dlNext[a] = -1
			s.deadlines(a)
		}
	case evUpdate:
		s.updated = true
		for b := s.nb; b < s.NB; b++ {
			setBit(s.bits(s.have, 0), b)
		}
		var wants []int32
		for i := 1; i < s.honest; i++ {
			s.flags[i] &^= fDiscovered
			if s.flags[i]&fWants != 0 {
				wants = append(wants, int32(i))
			}
		}
		s.discoverAfter(s.now, wants)
		// Neighbours learn the publisher's new blocks.
		for k := 0; k < int(s.deg[0]); k++ {
			if q := s.nbr[k]; int(q) < s.honest {
				for b := s.nb; b < s.NB; b++ {
					s.avail[int(q)*s.NB+b]++
				}
			}
		}
	}
}

// discover: node a reads the announcement (release or update) on a relay.
func (s *sim) discover(a int32) {
	if s.parted && s.side[a] != s.side[0] {
		s.flags[a] |= fWaitHeal
		return
	}
	if s.flags[a]&fDiscovered != 0 {
		return
	}
	s.flags[a] |= fDiscovered
	if int(a) >= s.honest {
		return
	}
	upd := s.updated
	if upd {
		if s.flags[a]&fWants == 0 {
			return
		}
		s.flags[a] |= fUpdWant
		s.flags[a] &^= fDone
		if s.discovered[a] < 0 {
			s.discovered[a] = float32(s.now)
		}
		if s.flags[a]&fFetching != 0 {
			s.fill(a)
			return
		}
		s.push(s.now, evStart, a, -1, 0, 0)
		return
	}
	if s.discovered[a] < 0 {
		s.discovered[a] = float32(s.now)
		// Every name liar's announcement is read too, and refused: it is
		// not signed by the key the name is bound to.
		s.refused[report.RefusedLieName] += int64(s.liars)
	}
	if s.flags[a]&fWants == 0 || s.flags[a]&(fDone|fFetching) != 0 {
		return
	}
	s.push(s.now+float64(s.delay[a]), evStart, a, -1, 0, 0)
}

// lookup asks the DHT for providers: ~log2(N)/kadBits hops, each a round
// trip to a random node. A fetch start also provides the root.
func (s *sim) lookup(a int32, provide bool) {
	mean := math.Log2(float64(s.n)) / kadBits
	hops := max(1, int(math.Floor(mean+s.rng.Float64())))
	t := 0.0
	for range hops {
		x := s.rng.IntN(s.n)
		t += 2 * float64(s.lat[a]+s.lat[x])
	}
	s.res.LookupHops = append(s.res.LookupHops, hops)
	s.push(s.now+t, evLookup, a, -1, 0, 0)
	if provide {
		s.push(s.now+t, evProvide, a, -1, 0, 0)
	}
}

func (s *sim) connectProviders(a int32) {
	np := len(s.providers)
	for k := 0; k < lookupProviders && k < np; k++ {
		var p int32
		if np <= lookupProviders {
			p = s.providers[k]
		} else {
			p = s.providers[s.rng.IntN(np)]
		}
		if p != a {
			s.connect(a, p)
		}
	}
}

func (s *sim) slot(a, b int32) int {
	base := int(a) * MaxDegree
	for k := 0; k < int(s.deg[a]); k++ {
		if s.nbr[base+k] == b {
			return k
		}
	}
	return -1
}

func (s *sim) isBanned(a, m int32) bool {
	bs := s.banned[m]
	return bs != nil && hasBit(bs, int(a))
}

// claims is what peer p says it holds: malicious servers claim all.
func (s *sim) claims(p int32) []uint64 {
	switch s.kind[p] {
	case kHonest:
		return s.bits(s.have, int(p))
	case kCorrupt, kDAGBomb, kSlow:
		return s.allMask
	}
	return nil
}

func (s *sim) connect(a, b int32) bool {
	return s.connectUpTo(a, b, LookupDegree)
}

func (s *sim) connectUpTo(a, b int32, limit uint8) bool {
	if a == b || !s.reachable(a, b) || s.slot(a, b) >= 0 || s.deg[a] >= limit || s.deg[b] >= limit {
		return false
	}
	if s.isBanned(a, b) || s.isBanned(b, a) {
		return false
	}
	if s.kind[b] == kStale {
		// It serves an old, validly signed catalog: refused as stale, and
		// it holds nothing of the release.
		s.refused[report.RefusedStale]++
	}
	s.addHalf(a, b)
	s.addHalf(b, a)
	return true
}

func (s *sim) addHalf(a, b int32) {
	k := int(a)*MaxDegree + int(s.deg[a])
	s.nbr[k] = b
	s.slotIn[k], s.slotDead[k], s.slotWait[k], s.strikes[k], s.slotBatch[k] = 0, 0, 0, 0, 0
	s.slotGot[k], s.slotBusy[k], s.slotSince[k] = 0, 0, -1
	s.deg[a]++
	if int(a) < s.honest {
		if c := s.claims(b); c != nil {
			base := int(a) * s.NB
			for w, word := range c {
				for word != 0 {
					i := bits.TrailingZeros64(word)
					word &= word - 1
					s.avail[base+w*64+i]++
				}
			}
			s.wakeStalled(a)
		}
	}
}

func (s *sim) removeHalf(a int32, k int) {
	base := int(a) * MaxDegree
	b := s.nbr[base+k]
	last := int(s.deg[a]) - 1
	s.nbr[base+k], s.slotIn[base+k], s.slotDead[base+k], s.slotWait[base+k], s.strikes[base+k], s.slotBatch[base+k] =
		s.nbr[base+last], s.slotIn[base+last], s.slotDead[base+last], s.slotWait[base+last], s.strikes[base+last], s.slotBatch[base+last]
	s.slotGot[base+k], s.slotBusy[base+k], s.slotSince[base+k] = s.slotGot[base+last], s.slotBusy[base+last], s.slotSince[base+last]
	s.deg[a]--
	if int(a) < s.honest {
		if c := s.claims(b); c != nil {
			nb := int(a) * s.NB
			for w, word := range c {
				for word != 0 {
					i := bits.TrailingZeros64(word)
					word &= word - 1
					s.avail[nb+w*64+i]--
				}
			}
		}
	}
}

// makeRoom drops one of a's connections when it has no free slot: the
// real node has no connection bound, so a peer named in a refusal is
// always dialled; the model trims an idle connection instead (never the
// publisher's).
func (s *sim) makeRoom(a int32) {
	if s.deg[a] < MaxDegree {
		return
	}
	base := int(a) * MaxDegree
	off := s.rng.IntN(MaxDegree)
	for i := 0; i < MaxDegree; i++ {
		k := (off + i) % MaxDegree
		if q := s.nbr[base+k]; q != 0 && s.slotIn[base+k] == 0 {
			if s.slot(q, a) >= 0 && s.slotIn[int(q)*MaxDegree+s.slot(q, a)] != 0 {
				continue
			}
			s.disconnect(a, q)
			return
		}
	}
	// Every connection is busy: drop one anyway (its transfers in flight
	// still land), as the real node, which has no bound, would not refuse
	// the dial.
	for i := 0; i < MaxDegree; i++ {
		if q := s.nbr[base+(off+i)%MaxDegree]; q != 0 {
			s.disconnect(a, q)
			return
		}
	}
}

func (s *sim) disconnect(a, b int32) {
	if k := s.slot(a, b); k >= 0 {
		s.removeHalf(a, k)
	}
	if k := s.slot(b, a); k >= 0 {
		s.removeHalf(b, k)
	}
}

func (s *sim) wakeStalled(a int32) {
	if s.flags[a]&(fStalled|fFetching) == fStalled|fFetching {
		s.scheduleWake(a, s.now)
	}
}

func (s *sim) scheduleWake(a int32, t float64) {
	if w := s.wakeAt[a]; w >= 0 && w <= t {
		return
	}
	s.wakeAt[a] = t
	s.push(t, evWake, a, -1, 0, 0)
}

// fill asks neighbours for blocks until the fetch window is full: the
// rarest block among the neighbours first (ties in a random order, as
// p2p's f.order), from a peer with room in its window; a seed that
// refused a block is asked again only as a last resort.
func (s *sim) fill(a int32) {
	if !s.online(a) || s.flags[a]&fFetching == 0 || int(a) >= s.honest {
		return
	}
	s.flags[a] &^= fStalled
	W := s.W
	mine, pend, ref := s.bits(s.have, int(a)), s.bits(s.pend, int(a)), s.bits(s.ref, int(a))
	want := s.want(int(a))
	base := int(a) * MaxDegree
	nowMS := uint32(s.now * 1000)
	// cs: blocks an eligible peer can be asked for; fromSeed: those only
	// complete eligible peers hold; partial: blocks a live partial
	// neighbour holds, busy or not (p2p's fetch.partial), which no
	// complete peer is asked for. Up to 512 blocks on the stack; larger
	// images allocate.
	var cand, seedb, partb [8]uint64
	cs, fromSeed, partial := cand[:0], seedb[:0], partb[:0]
	if W > len(cand) {
		cs, fromSeed, partial = make([]uint64, 0, W), make([]uint64, 0, W), make([]uint64, 0, W)
	}
	cs, fromSeed, partial = cs[:W], fromSeed[:W], partial[:W]
	var eligible [MaxDegree]int
	nextWake := math.Inf(1)
	for int(s.inflight[a]) < s.fetchWin {
		ne := 0
		clear(cs)
		clear(fromSeed)
		clear(partial)
		others := int(s.deg[a]) > 1
		for k := 0; k < int(s.deg[a]); k++ {
			p := s.nbr[base+k]
			if !s.complete(p) && s.slotDead[base+k] <= nowMS && s.reachable(a, p) {
				for w, word := range s.bits(s.have, int(p)) {
					partial[w] |= word
				}
			}
			if d := max(s.slotDead[base+k], s.slotWait[base+k]); d > nowMS {
				nextWake = min(nextWake, float64(d)/1000+0.001)
				continue
			}
			if !s.reachable(a, p) {
				continue
			}
			c := s.claims(p)
			if c == nil {
				continue
			}
			if s.slotBatch[base+k] == 0 {
				// A new GET (a batch) only while the bytes in flight to
				// the peer are under its window, as p2p's plan; in flight
				// falls as a GET's pieces are reported, a batch at a time.
				in := int(s.slotIn[base+k])
				cap := s.seedWin
				if !others || !s.complete(p) {
					cap = s.window(base + k)
				}
				if in > 0 && in+s.batchWin > cap {
					continue
				}
				s.slotBatch[base+k] = uint8(s.batchWin)
			}
			eligible[ne] = k
			ne++
			if s.complete(p) {
				for w := range fromSeed {
					fromSeed[w] |= c[w]
				}
			} else {
				for w := range cs {
					cs[w] |= c[w]
				}
			}
		}
		any := false
		for w := range cs {
			cs[w] = (cs[w] | fromSeed[w]&^partial[w]) & want[w] &^ mine[w] &^ pend[w]
			any = any || cs[w] != 0
		}
		if !any {
			break
		}
		reaskOK := s.now >= s.refusedAt[a]+lastResortAfter
		lrOK := s.now >= s.refusedAt[a]+5*lastResortAfter
		got := false
		for !got {
			b := s.rarest(a, cs)
			if b < 0 {
				break
			}
			clearBit(cs, b)
			// A holder with room: a complete peer (a seed) only when no
			// live partial peer holds the piece (p2p's fetch.batch:
			// peers feed each other first).
			part := hasBit(partial, b)
			bestK, bestIn, lr := -1, 1<<30, uint8(0)
			for _, k := range eligible[:ne] {
				p := s.nbr[base+k]
				if !hasBit(s.claims(p), b) || part && s.complete(p) {
					continue
				}
				in := int(s.slotIn[base+k])
				if p == 0 {
					// A refusing seed is asked again only when no other
					// live neighbour holds the piece (a peer given up on
					// as too slow no longer counts: p2p's dropHas), after
					// lastResortAfter (it names peers again), and as a
					// last resort once the peers it named are gone or
					// after five times that (p2p's fetch.batch).
					if hasBit(ref, b) {
						if !reaskOK {
							nextWake = min(nextWake, s.refusedAt[a]+lastResortAfter)
							continue
						}
						if s.avail[int(a)*s.NB+b] > 1 && s.liveHolder(a, b, nowMS) {
							continue
						}
					}
					in += 1 << 20 // the origin last
				}
				if in < bestIn || (in == bestIn && s.rng.IntN(2) == 0) {
					bestK, bestIn = k, in
				}
			}
			if bestK < 0 {
				continue
			}
			p := s.nbr[base+bestK]
			if p == 0 && hasBit(ref, b) && (lrOK || !s.hintsAlive(a, b, nowMS)) {
				lr = 1
			}
			if s.slotIn[base+bestK] == 0 {
				s.slotSince[base+bestK] = float32(s.now)
			}
			s.slotIn[base+bestK]++
			s.slotBatch[base+bestK]--
			s.inflight[a]++
			setBit(pend, b)
			s.push(s.now+float64(s.lat[a]+s.lat[p]), evRequest, p, a, int32(b), lr)
			got = true
		}
		if !got {
			break
		}
	}
	if int(s.inflight[a]) < s.fetchWin {
		s.flags[a] |= fStalled
		if !math.IsInf(nextWake, 1) {
			s.scheduleWake(a, max(nextWake, s.now))
		}
	}
}

// complete reports whether peer p holds (or claims) the whole file.
func (s *sim) complete(p int32) bool {
	return p == 0 || s.kind[p] != kHonest || s.flags[p]&fDone != 0
}

// liveHolder reports whether a neighbour of a other than the origin, not
// given up on, holds block b.
func (s *sim) liveHolder(a int32, b int, nowMS uint32) bool {
	base := int(a) * MaxDegree
	for k := 0; k < int(s.deg[a]); k++ {
		if p := s.nbr[base+k]; p != 0 && s.slotDead[base+k] <= nowMS {
			if c := s.claims(p); c != nil && hasBit(c, b) {
				return true
			}
		}
	}
	return false
}

// hintsAlive reports whether a peer the origin named for block b is
// connected to a and not given up on (p2p's fetch.hintsAlive).
func (s *sim) hintsAlive(a int32, b int, nowMS uint32) bool {
	base := int(a) * MaxDegree
	for _, q := range s.sentTo[b] {
		if k := s.slot(a, q); k >= 0 && s.slotDead[base+k] <= nowMS && s.online(q) {
			return true
		}
	}
	return false
}

// rarest picks the candidate block fewest neighbours hold, scanning from a
// random start so ties fall in a random order.
func (s *sim) rarest(a int32, cs []uint64) int {
	base := int(a) * s.NB
	best, bestN := -1, math.MaxInt
	// From a random bit, wrapping round: a random word alone leaves every
	// node of a small file (one word) taking the lowest block first, all
	// asking the same peers for the same blocks (p2p's order is a random
	// permutation per fetch).
	start := s.rng.IntN(s.W * 64)
	sw, sb := start/64, uint(start%64)
	for i := 0; i <= s.W; i++ {
		w := (sw + i) % s.W
		word := cs[w]
		switch i {
		case 0:
			word &= ^uint64(0) << sb
		case s.W:
			word &= 1<<sb - 1
		}
		for word != 0 {
			j := bits.TrailingZeros64(word)
			word &= word - 1
			b := w*64 + j
			if n := int(s.avail[base+b]); n < bestN {
				best, bestN = b, n
			}
		}
	}
	return best
}

// release frees what a's request of blk from p held.
func (s *sim) release(a, p int32, blk int) {
	if s.inflight[a] > 0 {
		s.inflight[a]--
	}
	clearBit(s.bits(s.pend, int(a)), blk)
	if k := s.slot(a, p); k >= 0 && s.slotIn[int(a)*MaxDegree+k] > 0 {
		i := int(a)*MaxDegree + k
		s.slotIn[i]--
		if s.slotIn[i] == 0 && s.slotSince[i] >= 0 {
			s.slotBusy[i] += float32(s.now) - s.slotSince[i]
			s.slotSince[i] = -1
		}
	}
}

// window is the blocks that may be in flight on slot i: about a second of
// what its peer delivers, at least one batch and at most peerWindow, one
// batch until it has delivered (p2p's fetchPeer.window).
func (s *sim) window(i int) int {
	busy := s.slotBusy[i]
	if s.slotSince[i] >= 0 {
		busy += float32(s.now) - s.slotSince[i]
	}
	if s.slotGot[i] == 0 || busy <= 0 {
		return s.batchWin
	}
	rate := float64(s.slotGot[i]/busy) / float64(s.blockBytes)
	return int(min(max(rate, float64(s.batchWin)), float64(s.peerWin)))
}

// serve is the request of block e.blk by e.b arriving at e.a.
func (s *sim) serve(e event) {
	j, r, b := e.a, e.b, int(e.blk)
	back := float64(s.lat[j] + s.lat[r])
	if e.eb != s.epoch[r] {
		return // the asker left; its state was reset
	}
	if !s.reachable(j, r) {
		s.push(s.now+back, evFail, r, j, e.blk, 1)
		return
	}
	size := s.blockSize(b)
	limit := slowGrace + max(size, float64(1<<20))/minRate
	if s.kind[j] == kSlow {
		s.refused[report.RefusedSlowAbort]++
		s.push(s.now+limit, evFail, r, j, e.blk, 1)
		return
	}
	if s.kind[j] == kHonest && !hasBit(s.bits(s.have, int(j)), b) {
		s.push(s.now+back, evFail, r, j, e.blk, 0)
		return
	}
	// Super-seeding: the publisher holds the file whole and points askers
	// at connected peers it sent the piece to, unless asked as a last
	// resort.
	if j == 0 && e.flag == 0 && !s.noSuperSeed {
		hinted := false
		for _, q := range s.sentTo[b] {
			if q != r && s.slot(0, q) >= 0 && s.online(q) {
				hinted = true
				break
			}
		}
		if hinted {
			s.push(s.now+back, evRefuse, r, j, e.blk, 0)
			return
		}
	}
	// Upload slots: an honest node sends to at most uploadSlots askers
	// at once (one already served shares its slot); the others are told
	// busy and ask another holder, or again after busyBackoff.
	if s.kind[j] == kHonest && !s.admitted(j, r) {
		s.refused[report.RefusedBusy]++
		s.push(s.now+back, evBusy, r, j, e.blk, 0)
		return
	}
	// The downlink is a budget from now (not from when the uplink gets
	// to it, which at a busy sender may be far ahead and would hold up
	// faster senders' blocks).
	ds := max(s.now, s.downFree[r])
	dd := size / float64(s.down[r])
	s.downFree[r] = ds + dd
	if j == 0 && len(s.sentTo[b]) < maxHints {
		s.sentTo[b] = append(s.sentTo[b], r) // recorded when offered, as p2p's rootState.offer
	}
	s.advance(j)
	// The asker gives the request up limit after it sent it (p2p's
	// fetch.get: below MinRate).
	s.act[j] = append(s.act[j], xfer{r: r, blk: e.blk, er: s.epoch[r], lr: e.flag != 0, left: size, down: ds + dd,
		dl: s.now - back/2 + limit})
	s.reschedule(j)
}

// admitted reports whether node j sends to r now: r is among its askers
// already, or fewer than its upload slots are taken.
func (s *sim) admitted(j, r int32) bool {
	for _, x := range s.act[j] {
		if x.r == r && x.er == s.epoch[r] {
			return true
		}
	}
	return s.heads(j, nil) < int(s.uploadSlots[j])
}

// deadlines gives up, for their askers, node j's transfers whose
// deadline passed.
func (s *sim) deadlines(j int32) {
	for {
		i := slices.IndexFunc(s.act[j], func(x xfer) bool { return x.dl <= s.now && x.er == s.epoch[x.r] })
		if i < 0 {
			break
		}
		s.deadline(j, s.act[j][i].r, s.act[j][i].blk)
	}
	s.reschedule(j)
}

// heads calls f, when set, with the index of each asker's first
// transfer at node j (the one being sent) and returns how many askers
// there are.
func (s *sim) heads(j int32, f func(i int)) int {
	s.stamp++
	if s.stamp == 0 { // wrapped: old marks could match
		clear(s.mark)
		s.stamp = 1
	}
	k := 0
	for i, x := range s.act[j] {
		if s.mark[x.r] != s.stamp {
			s.mark[x.r] = s.stamp
			k++
			if f != nil {
				f(i)
			}
		}
	}
	return k
}

// advance counts what node j's uplink sent since actAt[j], shared
// equally by its askers.
func (s *sim) advance(j int32) {
	if len(s.act[j]) > 0 {
		per := (s.now - s.actAt[j]) * float64(s.up[j]) / float64(s.heads(j, nil))
		s.heads(j, func(i int) { s.act[j][i].left -= per })
	}
	s.actAt[j] = s.now
}

// reschedule queues the end of node j's next transfer to end, unless an
// evSent no later is queued already (one that comes early finds nothing
// through and queues the next): a busy uplink changes at every transfer,
// and an event queued at each change would fill the queue.
func (s *sim) reschedule(j int32) {
	if len(s.act[j]) == 0 {
		return
	}
	s.rescheduleDeadline(j)
	least := math.Inf(1)
	k := s.heads(j, func(i int) { least = min(least, s.act[j][i].left) })
	t := s.now + max(least, 0)*float64(k)/float64(s.up[j])
	if next := s.actNext[j]; next >= 0 && next <= t {
		return
	}
	s.actVer[j]++
	s.actNext[j] = t
	s.push(t, evSent, j, -1, int32(s.actVer[j]), 0)
}

// rescheduleDeadline queues the earliest deadline of node j's askers
// (one event a node, not one a request), unless one no later is queued.
func (s *sim) rescheduleDeadline(j int32) {
	dl := math.Inf(1)
	for _, x := range s.act[j] {
		if x.er == s.epoch[x.r] {
			dl = min(dl, x.dl)
		}
	}
	if math.IsInf(dl, 1) {
		return
	}
	if next := s.dlNext[j]; next >= 0 && next <= dl {
		return
	}
	s.dlVer[j]++
	s.dlNext[j] = dl
	s.push(max(dl, s.now), evDeadline, j, -1, int32(s.dlVer[j]), 0)
}

// sent ends node j's transfers that are through: each block arrives once
// the asker's downlink took it, a one-way latency later.
func (s *sim) sent(j int32) {
	s.advance(j)
	keep := s.act[j][:0]
	for _, x := range s.act[j] {
		if x.left > 0.5 { // bytes: what float rounding leaves is sent
			keep = append(keep, x)
			continue
		}
		size := s.blockSize(int(x.blk))
		if int(j) < s.honest {
			s.uploaded[j] += int64(size)
		}
		if j == 0 {
			if x.lr {
				s.res.LastResorts++
			}
			s.res.OriginBytes += int64(size)
		}
		if x.er == s.epoch[x.r] {
			s.push(max(s.now, x.down)+float64(s.lat[j]+s.lat[x.r])/2, evArrive, x.r, j, x.blk, 0)
		}
	}
	clear(s.act[j][len(keep):])
	s.act[j] = keep
	s.reschedule(j)
}

// deadline is asker r giving up block blk at server j: if it is still
// being sent, the asker abandons the peer as too slow, with every other
// request to it (p2p drops the peer: its other streams end too), and the
// server stops sending them (their streams are reset).
func (s *sim) deadline(j, r, blk int32) {
	i := slices.IndexFunc(s.act[j], func(x xfer) bool { return x.r == r && x.blk == blk && x.er == s.epoch[r] })
	if i < 0 {
		return // sent, or the asker left
	}
	s.advance(j)
	s.refused[report.RefusedSlowAbort]++
	s.push(s.now, evFail, r, j, blk, 1)
	keep := s.act[j][:0]
	for _, x := range s.act[j] {
		if x.r != r || x.er != s.epoch[r] {
			keep = append(keep, x)
			continue
		}
		if x.blk != blk {
			s.push(s.now, evFail, r, j, x.blk, 0)
		}
		if j == 0 {
			// Not delivered: the asker is no longer named for it.
			s.sentTo[x.blk] = slices.DeleteFunc(s.sentTo[x.blk], func(q int32) bool { return q == r })
		}
	}
	clear(s.act[j][len(keep):])
	s.act[j] = keep
	s.reschedule(j)
}

func (s *sim) arrive(e event) {
	r, j, b := e.a, e.b, int(e.blk)
	s.release(r, j, b)
	if e.eb != s.epoch[j] || !s.reachable(r, j) {
		s.fill(r) // the transfer was cut
		return
	}
	if k := s.kind[j]; k == kCorrupt || k == kDAGBomb {
		// Verified against the signed DAG and refused; a strike.
		if k == kCorrupt {
			s.refused[report.RefusedCorrupt]++
		} else {
			s.refused[report.RefusedDAGBomb]++
		}
		if sl := s.slot(r, j); sl >= 0 {
			i := int(r)*MaxDegree + sl
			s.strikes[i]++
			if int(s.strikes[i]) >= maxStrikes {
				s.ban(r, j)
			}
		}
		s.fill(r)
		return
	}
	if sl := s.slot(r, j); sl >= 0 {
		s.slotGot[int(r)*MaxDegree+sl] += float32(s.blockSize(b))
	}
	mine := s.bits(s.have, int(r))
	if hasBit(mine, b) {
		s.fill(r)
		return
	}
	setBit(mine, b)
	clearBit(s.bits(s.ref, int(r)), b)
	base := int(r) * MaxDegree
	for k := 0; k < int(s.deg[r]); k++ {
		q := s.nbr[base+k]
		if int(q) < s.honest {
			s.avail[int(q)*s.NB+b]++
			if s.flags[q]&fStalled != 0 && hasBit(s.want(int(q)), b) && !hasBit(s.bits(s.have, int(q)), b) {
				s.fill(q) // at once: a queued wake costs the heap twice
			}
		}
	}
	s.checkDone(r)
	s.fill(r)
}

func (s *sim) checkDone(r int32) {
	mine, want := s.bits(s.have, int(r)), s.want(int(r))
	for w := range want {
		if mine[w]&want[w] != want[w] {
			return
		}
	}
	s.flags[r] |= fDone
	s.flags[r] &^= fFetching | fStalled
	if s.flags[r]&fUpdWant != 0 {
		s.updCompletion[r] = float32(s.now - s.updateAt)
		if s.completion[r] < 0 {
			s.completion[r] = float32(s.now - s.releaseAt)
		}
	} else if s.completion[r] < 0 {
		s.completion[r] = float32(s.now - s.releaseAt)
	}
}

func (s *sim) ban(r, j int32) {
	bs := s.banned[j]
	if bs == nil {
		bs = make([]uint64, (s.honest+63)/64)
		s.banned[j] = bs
	}
	setBit(bs, int(r))
	s.res.Banned++
	s.disconnect(r, j)
	_ = banTime // bans outlast every shipped scenario's attack; not expired in the model
}

func (s *sim) leave(a int32) {
	for s.deg[a] > 0 {
		s.disconnect(a, s.nbr[int(a)*MaxDegree])
	}
	s.flags[a] &^= fOnline | fStalled
	// What it was sending ends: its askers' streams break.
	for _, x := range s.act[a] {
		if x.er == s.epoch[x.r] {
			s.push(s.now, evFail, x.r, a, x.blk, 0)
		}
	}
	s.act[a] = s.act[a][:0]
	s.reschedule(a)
	s.epoch[a]++
	s.inflight[a] = 0
	clear(s.bits(s.pend, int(a)))
	clear(s.bits(s.ref, int(a))) // the fetch's refusals die with it
	s.wakeAt[a] = -1
}

func (s *sim) join(a int32) {
	s.flags[a] |= fOnline
	s.epoch[a]++
	if s.flags[a]&fDiscovered == 0 {
		// It subscribes again and reads the stored announcement.
		if s.now >= s.releaseAt {
			s.discoverAfter(s.now, []int32{a})
		}
		return
	}
	if s.flags[a]&fFetching != 0 {
		s.lookup(a, false)
		s.push(s.now+rediscoverEvery, evRediscover, a, -1, 0, 0)
	} else if s.flags[a]&(fWants|fDone) == fWants && int(a) < s.honest {
		// It left between discovering the release and its owner asking
		// for it (the start queued then died with the epoch): the owner
		// asks now, or when the crowd delay ends (the emulation's owner
		// asks again every 2 s until the node answers).
		s.push(max(s.now, float64(s.discovered[a])+float64(s.delay[a])), evStart, a, -1, 0, 0)
	} else if s.flags[a]&fDone != 0 && int(a) < s.honest {
		// A finished node reconnects to some providers, to seed.
		s.lookup(a, false)
	}
}

func (s *sim) partition(frac float64) {
	s.parted = true
	for i := 1; i < s.n; i++ {
		s.side[i] = 0
		if s.rng.Float64() < frac {
			s.side[i] = 1
		}
	}
	for i := 0; i < s.n; i++ {
		base := i * MaxDegree
		for k := 0; k < int(s.deg[i]); {
			q := s.nbr[base+k]
			if s.side[q] != s.side[i] {
				s.disconnect(int32(i), q)
				continue
			}
			k++
		}
	}
}

func (s *sim) heal() {
	s.parted = false
	var waited []int32
	for i := 1; i < s.n; i++ {
		s.side[i] = 0
		if s.flags[i]&fWaitHeal != 0 {
			s.flags[i] &^= fWaitHeal
			waited = append(waited, int32(i))
		}
	}
	s.discoverAfter(s.now, waited)
}

// sybils runs the trust harness for the scenario's sybil attack: the same
// trust engine and graph generator the trust package holds to its goals.
func (s *sim) sybils(seed uint64) error {
	if s.sc.Sybil == nil {
		return nil
	}
	rows, err := SybilRows(s.sc, int64(seed), len(s.fetchers))
	if err != nil {
		return err
	}
	s.res.Sybil = rows
	return nil
}

func (s *sim) finish() {
	r := s.res
	for _, f := range s.fetchers {
		r.Completion = append(r.Completion, secs(s.completion[f]))
		r.Fetched = append(r.Fetched, secs(s.completion[f]))
		r.Discovery = append(r.Discovery, secs(s.discovered[f]-float32(s.releaseAt)))
		if s.updMask != nil {
			r.UpdateCompletion = append(r.UpdateCompletion, secs(s.updCompletion[f]))
		}
	}
	r.Uploaded = append([]int64(nil), s.uploaded...)
	r.LowerBound = s.lowerBound()
	r.Refused = s.refused
	r.Events = s.events
}

func secs(v float32) time.Duration {
	if v < 0 {
		return -1
	}
	return time.Duration(float64(v) * float64(time.Second))
}

// lowerBound is the shortest time the links allow the last fetcher to
// finish, from the announcement (Kumar and Ross's bound for a
// file of S bytes to n fetchers, with each fetcher's start added):
//
//	max( S / u_publisher,                   every byte leaves the origin once
//	     max_i (t_i + S / d_i),              fetcher i starts at t_i, its downlink d_i
//	     n·S / (u_publisher + Σ_i u_i) )     all n copies cross the uplinks
//
// t_i is the fetcher's discovery plus its crowd delay; malicious peers'
// uplinks are not counted (they serve nothing useful).
func (s *sim) lowerBound() time.Duration {
	S := float64(s.sc.Release.ImageBytes)
	lb := S / float64(s.up[0])
	total := float64(s.up[0])
	n := 0
	for _, f := range s.fetchers {
		total += float64(s.up[f])
		n++
	}
	lb = max(lb, float64(n)*S/total)
	for _, f := range s.fetchers {
		if s.startAt[f] >= 0 {
			lb = max(lb, float64(s.startAt[f])-s.releaseAt+S/float64(s.down[f]))
		}
	}
	return time.Duration(lb * float64(time.Second))
}

// peakRSS is the process's resident-memory high-water mark.
func peakRSS() uint64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil && ru.Maxrss > 0 {
		return uint64(ru.Maxrss) * 1024
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.Sys
}
