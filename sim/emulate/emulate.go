// Package emulate is the simulator's emulation mode: it runs a scenario's
// swarm as real archy nodes (node.New, the same code an operator runs) in
// one process, over go-libp2p's mocknet with each link's latency and
// bandwidth drawn from the scenario, one real Nostr relay served over
// websockets on 127.0.0.1 (each node reaches it through a link delaying
// every byte by its latency plus the relay's), and the orchestrator's
// in-memory twin in place of Podman. The publisher (node 0) publishes a
// signed release through its own API and announces it on the relay; each
// crowd node discovers it there and installs it through its API, so the
// real fetch, verification, super-seeding, strikes and bans run.
//
// What is approximated: a node's uplink is its piece exchange's upload
// cap (p2p.Config.UploadRate, exact for piece bytes); mocknet limits
// bandwidth per link, both directions together, so each link gets the
// smaller of the two ends' downlinks (a node's total downlink is not
// capped); a link's latency is the sum of both ends' one-way latencies,
// as the scenario defines it. Nodes do not find each other through the
// relay's peer announcements (which would dial every peer, a full mesh):
// each joins by dialling Degree random earlier nodes, as a bootstrap
// list would, and the DHT does the rest. mocknet delivers a stream's
// writes one at a time, a latency apart: one stream moves at most one
// write (up to 64 KiB) per one-way latency. The scenario's block size is
// not used: the DAG's chunking is the node's own. Malicious peers are
// extra nodes holding the image; corrupt ones flip a byte of each piece
// they send, slow ones trickle 16 KiB/s (p2p.Config.Misbehave); the other
// behaviours, sybils, churn with partitions and more than one relay are
// refused with ErrUnsupported. An update is published before the release
// is announced, announced at its time, and installed by each node once
// it runs the release (Result.UpdateCompletion). A partition cuts the swarm's
// links between its two sides (not the relay, a server elsewhere); a
// churning node leaving loses all its links, its process running on. An install that fails is
// asked for again every 2 s until the horizon. See BENCHMARKS.md for
// sizes.
package emulate

import (
	"archive/tar"
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	cid "github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	"github.com/nbd-wtf/go-nostr"
	"golang.org/x/sync/errgroup"

	"github.com/archy-node/archy/cas"
	"github.com/archy-node/archy/did"
	"github.com/archy-node/archy/internal/ociimage"
	"github.com/archy-node/archy/node"
	"github.com/archy-node/archy/orchestrator"
	"github.com/archy-node/archy/orchestrator/memruntime"
	"github.com/archy-node/archy/p2p"
	"github.com/archy-node/archy/p2p/discovery"
	"github.com/archy-node/archy/registry"
	"github.com/archy-node/archy/relay"
	"github.com/archy-node/archy/sim/report"
	"github.com/archy-node/archy/sim/scenario"
)

// Degree is how many earlier nodes each node dials when it joins (the
// scenario's network draws which, for both modes).
const Degree = scenario.JoinDegree

// Trickle is a slow peer's pause before every 16 KiB it sends: 16 KiB/s,
// under the exchange's default minimum rate, so honest fetchers abandon it.
const Trickle = time.Second

// ErrUnsupported is wrapped by the error for a scenario feature the
// emulation does not run.
var ErrUnsupported = errors.New("not supported in emulation")

// Run runs sc once at seed and reports what it measured. ctx ends the
// run early (the result is then an error).
func Run(ctx context.Context, sc *scenario.Scenario, seed uint64) (*report.Result, error) {
	return RunWith(ctx, sc, seed, Options{})
}

// Options tune a run beside the scenario.
type Options struct {
	// Dir is where the nodes keep their data (default: a temporary folder,
	// removed at the end).
	Dir string
	// Log receives the emulator's progress (default: discarded); the
	// nodes' own logs are discarded.
	Log *slog.Logger
	// Degree is how many earlier nodes each node dials when it joins
	// (default the package's Degree).
	Degree int
	// Stats, when set, receives counters the Result has no field for.
	Stats *Stats
	// OnSwarmUp, when set, is called once every node runs and has joined,
	// before the release (benchmarks profile there).
	OnSwarmUp func()
	// DiscoveryRounds, when above 0, times that many announcements before
	// the release's, each of a release of a probe app by the same
	// publisher, into Result.DiscoveryRounds. The nodes' discovery runs
	// on the machine's shared cores, which the Go runtime uses fully in
	// some rounds and one of in others: rounds give a run's discovery
	// figure both (the calibration).
	DiscoveryRounds int
}

// Stats are what a run did that the Result has no field for (the
// defence counters are in Result.Refused and Result.Banned).
type Stats struct {
	// Churned counts the churn events played (nodes leaving or coming back).
	Churned int64
	// Recreated counts the containers the honest nodes' reconcilers
	// recreated (a dead PID, a drifted spec): none in a healthy run, and
	// a recreate loop would spend the cores the nodes' exchange needs.
	Recreated int64
}

// member is one emulated node.
type member struct {
	idx     int
	n       *node.Node
	rt      *memruntime.Runtime
	bad     string // behaviour of a malicious peer, "" when honest
	lat     time.Duration
	up      float64
	down    float64
	fetch   bool          // a crowd node
	delay   time.Duration // from discovery to asking for the install
	found   time.Duration // discovery time, -1 until then
	foundAt atomic.Int64  // when it was seen to hold the release (Unix ns), 0 until then
	seenMu  sync.Mutex
	seen    map[string]int64 // per release CID: when the node stored it (Unix ns), from its OnDiscovered
	done    time.Duration    // completion time, -1 until then
	fetched time.Duration    // when its install's fetch stage ended, -1 until then
	updDone time.Duration    // the update's, from its announcement
	failed  string           // the last install error
	relay   string           // the relay's URL through its link to the relay
	running chan error
	stored  chan struct{} // shared by the run's members: a release was stored
}

// RunWith is Run with options.
func RunWith(ctx context.Context, sc *scenario.Scenario, seed uint64, opt Options) (res *report.Result, err error) {
	if err := supported(sc); err != nil {
		return nil, err
	}
	log := opt.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	resetPeak()
	start := time.Now()
	dir := opt.Dir
	if dir == "" {
		need := int64(len(sc.Malicious)+sc.Nodes+2) * 5 / 2 * sc.Release.ImageBytes
		if dir, err = os.MkdirTemp(scratch(need), "archy-emulate-*"); err != nil {
			return nil, fmt.Errorf("emulate: data folder: %w", err)
		}
		defer os.RemoveAll(dir)
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	// The nodes' APIs, on loopback; idle connections go with the run.
	cl := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	defer cl.CloseIdleConnections()

	// The swarm: honest nodes (0 the publisher), then malicious peers, on
	// the network the scenario draws for the seed (the model's for the
	// same seed).
	net := sc.Draw(seed)
	secs := func(v float64) time.Duration { return time.Duration(v * float64(time.Second)) }
	var ms []*member
	stored := make(chan struct{}, 1)
	for i := range sc.Nodes {
		m := &member{idx: i, found: -1, done: -1, fetched: -1, updDone: -1,
			lat: secs(net.Latency[i]), up: net.Uplink[i], down: net.Downlink[i], fetch: net.Fetch[i], delay: secs(net.Delay[i]), stored: stored}
		ms = append(ms, m)
	}
	for _, mal := range sc.Malicious {
		for range mal.MaliciousCount(sc.Nodes) {
			i := len(ms)
			ms = append(ms, &member{idx: i, bad: mal.Behaviour, found: -1, done: -1, fetched: -1, updDone: -1,
				lat: secs(net.Latency[i]), up: net.Uplink[i], down: net.Downlink[i], stored: stored})
		}
	}

	// The relay is a node of the network too: its latency is drawn as
	// a node's, and each node reaches it through a link of both ends'.
	relayLat := secs(net.RelayLatency[0])
	far := farSides(ms, sc.Partitions, rng)
	churns := churnPlan(ms, sc.Churn, sc.Horizon.D(), rng)
	img, err := buildImage(dir, "1", sc, rng, nil, 0)
	if err != nil {
		return nil, err
	}

	relayURL, stopRelay, err := startRelay(len(ms))
	if err != nil {
		return nil, err
	}
	defer stopRelay()
	for _, m := range ms {
		l, err := newRelayLink(strings.TrimPrefix(relayURL, "ws://"), m.lat+relayLat)
		if err != nil {
			return nil, fmt.Errorf("emulate: node %d's link to the relay: %w", m.idx, err)
		}
		defer l.Close()
		m.relay = l.URL()
	}

	mn := mocknet.New()
	defer mn.Close()
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer func() {
		stop()
		for _, m := range ms {
			if m.running != nil {
				if rerr := <-m.running; rerr != nil && !errors.Is(rerr, context.Canceled) && err == nil {
					err = fmt.Errorf("emulate: node %d: %w", m.idx, rerr)
				}
			}
		}
	}()
	// The nodes start a few at a time (each makes keys and folders).
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, m := range ms {
		h, err := mn.GenPeer()
		if err != nil {
			return nil, fmt.Errorf("emulate: mocknet peer %d: %w", m.idx, err)
		}
		m.rt = memruntime.New(memruntime.Config{CallTimeout: time.Minute})
		cfg := node.Config{
			DataDir:         filepath.Join(dir, strconv.Itoa(m.idx)),
			APIListen:       "127.0.0.1:0",
			NoEmbeddedRelay: true,
			Relays:          []string{m.relay},
			NoPeering:       true,
			OnDiscovered:    m.discovered,
			ShutdownTimeout: 10 * time.Second,
			Podman:          node.PodmanConfig{Runtime: m.rt},
			P2P: p2p.Config{Host: h, UploadRate: int64(m.up),
				ReprovideInterval: -1, GCInterval: -1},
		}
		switch m.bad {
		case scenario.Corrupt:
			cfg.P2P.Misbehave.Corrupt = true
		case scenario.Slow:
			cfg.P2P.Misbehave.Trickle = Trickle
		}
		g.Go(func() error {
			n, err := node.New(gctx, cfg, nil)
			if err != nil {
				return fmt.Errorf("emulate: start node %d: %w", m.idx, err)
			}
			m.n = n
			return nil
		})
	}
	err = g.Wait()
	for _, m := range ms {
		switch {
		case m.n == nil:
		case err != nil:
			m.n.Close()
		default:
			m.running = make(chan error, 1)
			go func() { m.running <- m.n.Run(runCtx) }()
		}
	}
	if err != nil {
		return nil, err
	}
	log.Info("nodes started", "nodes", len(ms), "took", time.Since(start).Round(time.Millisecond))
	if err := link(mn, ms); err != nil {
		return nil, err
	}
	log.Info("nodes linked", "took", time.Since(start).Round(time.Millisecond))
	if opt.Degree <= 0 {
		opt.Degree = Degree
	}
	dials := net.Dials
	if opt.Degree != scenario.JoinDegree {
		dials = scenario.Dials(rng, len(ms), opt.Degree)
	}
	if err := join(ctx, ms, dials, log); err != nil {
		return nil, err
	}
	log.Info("swarm up", "nodes", len(ms), "took", time.Since(start).Round(time.Millisecond))
	if opt.OnSwarmUp != nil {
		opt.OnSwarmUp()
	}

	rel, err := publish(ctx, cl, ms[0], img, sc.Release.App, "1.0.0", nil)
	if err != nil {
		return nil, err
	}
	// The update is published now and announced at its time.
	var img2 *image
	if u := sc.Update; u != nil {
		if img2, err = buildImage(dir, "2", sc, rng, img, u.Changed); err != nil {
			return nil, err
		}
		if rel.next, err = publish(ctx, cl, ms[0], img2, sc.Release.App, "1.1.0", rel.key); err != nil {
			return nil, err
		}
		rel.nextAt = u.At.D() - sc.Release.At.D()
	}
	for _, m := range ms {
		if m.bad != "" {
			if _, err := postBlob(ctx, cl, m.n, img.path); err != nil {
				return nil, fmt.Errorf("emulate: malicious peer %d: %w", m.idx, err)
			}
		}
	}
	// The set-up's tail (the joins' DHT traffic, the publisher's provides)
	// runs on the same 2 cores as every node: the announcement leaves once
	// the process is quiet, so discovery times the network and the relay,
	// not the set-up's last work.
	waited := settle(ctx, 0.25, 200*time.Millisecond, 15*time.Second)
	log.Info("settled", "waited", waited.Round(time.Millisecond))
	var rounds [][]time.Duration
	for k := range opt.DiscoveryRounds {
		r, err := probeRound(ctx, ms, img, sc.Release.App, k, rel.key)
		if err != nil {
			return nil, err
		}
		rounds = append(rounds, r)
	}
	collect()
	// Discoveries are watched from before the announcement leaves.
	wctx, stopWatch := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() { defer close(watched); watchDiscovery(wctx, ms, rel.v.CID) }()
	defer func() { stopWatch(); <-watched }()
	t0, err := announce(ctx, ms[0].relay, rel)
	if err != nil {
		return nil, err
	}
	horizon := sc.Horizon.D()
	pctx, stopParts := context.WithCancel(ctx)
	var churned atomic.Int64
	parted := make(chan struct{})
	go func() {
		defer close(parted)
		partition(pctx, mn, ms, sc.Partitions, far, t0, log)
		churn(pctx, mn, ms, churns, t0, &churned, log)
	}()
	announced := make(chan struct{})
	go func() {
		defer close(announced)
		if rel.next == nil {
			return
		}
		select {
		case <-time.After(time.Until(t0.Add(rel.nextAt))):
		case <-pctx.Done():
			return
		}
		if _, err := announce(pctx, ms[0].relay, rel.next); err != nil {
			log.Warn("announce the update", "err", err)
		}
	}()
	err = crowd(ctx, cl, ms, rel, t0, horizon, log)
	stopParts()
	<-parted
	<-announced
	if err != nil {
		return nil, err
	}
	if opt.Stats != nil {
		opt.Stats.Churned = churned.Load()
	}
	res = &report.Result{Scenario: sc.Name, Mode: report.Emulation, Seed: seed, Nodes: sc.Nodes, ImageBytes: img.size, DiscoveryRounds: rounds}
	for _, m := range ms {
		if m.bad != "" {
			continue
		}
		met, err := metrics(ctx, cl, m.n)
		if err != nil {
			return nil, err
		}
		up := met["archy_p2p_block_bytes_sent_total"]
		// The defence counters, under the reasons the model reports them by.
		for reason, name := range map[string]string{
			report.RefusedCorrupt:   "archy_p2p_bad_blocks_total",
			report.RefusedSlowAbort: "archy_p2p_peers_abandoned_total",
			report.RefusedBusy:      "archy_p2p_pieces_busy_total",
			report.RefusedSuperSeed: "archy_p2p_super_seed_refusals_total",
		} {
			if v := met[name]; v > 0 {
				if res.Refused == nil {
					res.Refused = map[string]int64{}
				}
				res.Refused[reason] += v
			}
		}
		res.Banned += int(met["archy_p2p_peers_banned_total"])
		if opt.Stats != nil {
			as, err := apps(ctx, cl, m)
			if err != nil {
				return nil, err
			}
			for _, a := range as {
				opt.Stats.Recreated += int64(a.Recreated)
			}
		}
		res.Uploaded = append(res.Uploaded, up)
		if m.idx == 0 {
			res.OriginBytes = up
		}
		if !m.fetch {
			continue
		}
		if m.done < 0 {
			log.Warn("node did not complete", "node", m.idx, "err", m.failed)
		}
		res.Completion = append(res.Completion, m.done)
		res.Fetched = append(res.Fetched, m.fetched)
		if img2 != nil {
			res.UpdateCompletion = append(res.UpdateCompletion, m.updDone)
		}
		if m.updDone >= 0 {
			ok, err := holdsImage(m.n, img2)
			if err != nil {
				return nil, err
			}
			if !ok {
				res.CorruptAccepted++
			}
		}
		res.Discovery = append(res.Discovery, m.found)
		// After an update the first image is pruned: the update's is
		// checked instead (above).
		if m.done >= 0 && m.updDone < 0 {
			ok, err := holdsImage(m.n, img)
			if err != nil {
				return nil, err
			}
			if !ok {
				res.CorruptAccepted++
			}
		}
	}
	res.LowerBound = lowerBound(ms, img.size)
	res.WallTime = time.Since(start)
	res.PeakBytes = peakBytes()
	return res, nil
}

// lowerBound is the shortest time the links allow the last fetcher: the
// publisher must send one copy, the slowest fetcher's downlink take one,
// and all fetchers' copies but the publisher's must cross the honest
// uplinks.
func lowerBound(ms []*member, size int64) time.Duration {
	var upAll float64
	fetchers := 0
	slowest := math.Inf(1)
	for _, m := range ms {
		if m.bad != "" {
			continue
		}
		upAll += m.up
		if m.fetch {
			fetchers++
			slowest = min(slowest, m.down)
		}
	}
	if fetchers == 0 || ms[0].up <= 0 {
		return 0
	}
	s := float64(size)
	secs := max(s/ms[0].up, s/slowest, float64(fetchers)*s/upAll)
	return time.Duration(secs * float64(time.Second))
}

// supported refuses what the emulation does not run, naming it.
func supported(sc *scenario.Scenario) error {
	switch {
	case sc.Churn != nil && len(sc.Partitions) > 0:
		return fmt.Errorf("emulate: churn with partitions: %w", ErrUnsupported)
	case sc.Sybil != nil:
		return fmt.Errorf("emulate: sybil: %w", ErrUnsupported)
	case sc.Relays > 1:
		return fmt.Errorf("emulate: relays: %d relays: %w (one relay is)", sc.Relays, ErrUnsupported)
	}
	for i, m := range sc.Malicious {
		if m.Behaviour != scenario.Corrupt && m.Behaviour != scenario.Slow {
			return fmt.Errorf("emulate: malicious[%d].behaviour %q: %w (corrupt and slow are)", i, m.Behaviour, ErrUnsupported)
		}
	}
	return nil
}

// image is a release's OCI archive.
type image struct {
	path, ref string
	sum       registry.ArchiveSum
	size      int64
	seeds     [][32]byte // each layer's random bytes
}

// buildImage writes an OCI archive of the release's size: release.layers
// layers of random bytes, each its own blob (layers in order, then the
// config, manifest and index), as `podman save` lays an image out. An
// update (from, changed > 0) keeps from's layers but the last changed
// ones, so the unchanged ones sit at the same offsets of the archive.
func buildImage(dir, name string, sc *scenario.Scenario, rng *rand.Rand, from *image, changed int) (*image, error) {
	layers := sc.Release.Layers
	img := &image{path: filepath.Join(dir, name+".tar"), ref: "localhost/archy-sim/" + sc.Release.App + ":" + name}
	for i := range layers {
		if from != nil && i < layers-changed {
			img.seeds = append(img.seeds, from.seeds[i])
			continue
		}
		var seed [32]byte
		for j := range seed {
			seed[j] = byte(rng.Uint32())
		}
		img.seeds = append(img.seeds, seed)
	}
	per := sc.Release.ImageBytes / int64(layers)
	sizeOf := func(i int) int64 {
		if i == layers-1 {
			return sc.Release.ImageBytes - per*int64(layers-1)
		}
		return per
	}
	// Each layer's bytes are made twice from its seed: once for the
	// digest its tar entry is named by, once into the archive.
	layerBytes := func(i int, w io.Writer) error {
		src := rand.NewChaCha8(img.seeds[i])
		buf := make([]byte, 64<<10)
		for left := sizeOf(i); left > 0; {
			k := min(left, int64(len(buf)))
			_, _ = src.Read(buf[:k])
			if _, err := w.Write(buf[:k]); err != nil {
				return err
			}
			left -= k
		}
		return nil
	}
	f, err := os.Create(img.path)
	if err != nil {
		return nil, fmt.Errorf("emulate: image: %w", err)
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	tw := tar.NewWriter(bw)
	add := func(name string, size int64, write func(io.Writer) error) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: size, Typeflag: tar.TypeReg, ModTime: ociimage.Epoch}); err != nil {
			return err
		}
		return write(tw)
	}
	blob := func(b []byte) (string, error) {
		d := fmt.Sprintf("%x", sha256.Sum256(b))
		return "sha256:" + d, add("blobs/sha256/"+d, int64(len(b)), func(w io.Writer) error { _, err := w.Write(b); return err })
	}
	type desc struct {
		MediaType   string            `json:"mediaType"`
		Digest      string            `json:"digest"`
		Size        int64             `json:"size"`
		Annotations map[string]string `json:"annotations,omitempty"`
	}
	err = add("oci-layout", 30, func(w io.Writer) error { _, err := io.WriteString(w, `{"imageLayoutVersion":"1.0.0"}`); return err })
	var descs []desc
	var diffIDs []string
	for i := range layers {
		if err != nil {
			break
		}
		h := sha256.New()
		_ = layerBytes(i, h)
		d := fmt.Sprintf("%x", h.Sum(nil))
		descs = append(descs, desc{MediaType: ociimage.MediaTypeLayer, Digest: "sha256:" + d, Size: sizeOf(i)})
		diffIDs = append(diffIDs, "sha256:"+d)
		err = add("blobs/sha256/"+d, sizeOf(i), func(w io.Writer) error { return layerBytes(i, w) })
	}
	var cfgDigest, manDigest string
	var cfg, man []byte
	if err == nil {
		cfg, _ = json.Marshal(map[string]any{"architecture": runtime.GOARCH, "os": "linux",
			"rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs}})
		cfgDigest, err = blob(cfg)
	}
	if err == nil {
		man, _ = json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": ociimage.MediaTypeManifest,
			"config": desc{MediaType: ociimage.MediaTypeConfig, Digest: cfgDigest, Size: int64(len(cfg))}, "layers": descs})
		manDigest, err = blob(man)
	}
	if err == nil {
		idx, _ := json.Marshal(map[string]any{"schemaVersion": 2, "manifests": []desc{{MediaType: ociimage.MediaTypeManifest,
			Digest: manDigest, Size: int64(len(man)), Annotations: map[string]string{ociimage.AnnotationRefName: img.ref}}}})
		err = add("index.json", int64(len(idx)), func(w io.Writer) error { _, err := w.Write(idx); return err })
	}
	if err == nil {
		err = tw.Close()
	}
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("emulate: write image %s: %w", img.path, err)
	}
	sum, err := registry.ReadOCIArchive(img.path)
	if err != nil {
		return nil, fmt.Errorf("emulate: read image: %w", err)
	}
	img.sum, img.size = sum, sum.Size
	return img, nil
}

// startRelay serves one relay, in memory, over real websockets on a
// loopback port, with room for every node's connections (all from
// 127.0.0.1).
func startRelay(nodes int) (url string, stop func(), err error) {
	conns := 4*nodes + 16
	r, err := relay.New(relay.Config{MaxConnections: conns, MaxConnectionsPerIP: conns}, slog.New(slog.DiscardHandler))
	if err != nil {
		return "", nil, fmt.Errorf("emulate: relay: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		r.Close()
		return "", nil, fmt.Errorf("emulate: relay: listen: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Serve(ctx, ln) }()
	return "ws://" + ln.Addr().String(), func() { cancel(); <-done }, nil
}

// link makes every pair of nodes reachable over mocknet: latency the sum
// of both ends', bandwidth the smaller downlink (see the package comment).
func link(mn mocknet.Mocknet, ms []*member) error {
	for i, a := range ms {
		for _, b := range ms[:i] {
			if err := linkPair(mn, a, b); err != nil {
				return err
			}
		}
	}
	return nil
}

func linkPair(mn mocknet.Mocknet, a, b *member) error {
	l, err := mn.LinkPeers(a.n.P2P().ID(), b.n.P2P().ID())
	if err != nil {
		return fmt.Errorf("emulate: link nodes %d and %d: %w", a.idx, b.idx, err)
	}
	l.SetOptions(mocknet.LinkOptions{Latency: a.lat + b.lat, Bandwidth: min(a.down, b.down)})
	return nil
}

// farSides draws each partition's far side: Fraction of the honest
// nodes, never the publisher.
func farSides(ms []*member, parts []scenario.Partition, rng *rand.Rand) [][]bool {
	out := make([][]bool, len(parts))
	var honest []int
	for _, m := range ms[1:] {
		if m.bad == "" {
			honest = append(honest, m.idx)
		}
	}
	for i, p := range parts {
		out[i] = make([]bool, len(ms))
		k := max(1, int(math.Round(p.Fraction*float64(len(honest)+1))))
		for _, j := range rng.Perm(len(honest))[:min(k, len(honest))] {
			out[i][honest[j]] = true
		}
	}
	return out
}

// partition cuts, for each partition in turn, the links between its far
// side and the other nodes At after t0, with their connections, and links
// them again Duration later. Only the swarm is cut: the relay stays
// reachable from both sides (it is a server elsewhere on the internet).
// Partitions that overlap in time heal each other's links.
func partition(ctx context.Context, mn mocknet.Mocknet, ms []*member, parts []scenario.Partition, far [][]bool, t0 time.Time, log *slog.Logger) {
	type event struct {
		at  time.Time
		i   int
		cut bool
	}
	var evs []event
	for i, p := range parts {
		evs = append(evs, event{t0.Add(p.At.D()), i, true}, event{t0.Add(p.At.D() + p.Duration.D()), i, false})
	}
	slices.SortStableFunc(evs, func(a, b event) int { return a.at.Compare(b.at) })
	var wg sync.WaitGroup // dials at a heal
	defer wg.Wait()
	for _, ev := range evs {
		select {
		case <-time.After(time.Until(ev.at)):
		case <-ctx.Done():
			return
		}
		n := 0
		for _, a := range ms {
			if !far[ev.i][a.idx] {
				continue
			}
			var near []*member
			for _, b := range ms {
				if far[ev.i][b.idx] {
					continue
				}
				near = append(near, b)
				ida, idb := a.n.P2P().ID(), b.n.P2P().ID()
				var err error
				if ev.cut {
					if err = mn.UnlinkPeers(ida, idb); err == nil {
						err = mn.DisconnectPeers(ida, idb)
					}
				} else {
					err = linkPair(mn, a, b)
				}
				if err != nil {
					log.Warn("partition", "cut", ev.cut, "from", a.idx, "to", b.idx, "err", err)
				}
			}
			n++
			if !ev.cut {
				// The routing tables forgot the other side: dial a few
				// of it, as peering would on reading their announcements.
				redial(ctx, &wg, a, near)
			}
		}
		log.Info("partition", "index", ev.i, "cut", ev.cut, "far_nodes", n, "since_announce", time.Since(t0).Round(time.Millisecond))
	}
}

// churnEvent is a node leaving (all its links cut) or coming back.
type churnEvent struct {
	at    time.Duration // after the announcement
	node  int
	leave bool
}

// churnPlan draws, for Fraction of the honest nodes (never the
// publisher), sessions and downtimes until the horizon, in time order.
func churnPlan(ms []*member, c *scenario.Churn, horizon time.Duration, rng *rand.Rand) []churnEvent {
	if c == nil {
		return nil
	}
	var evs []churnEvent
	for _, m := range ms[1:] {
		if m.bad != "" || rng.Float64() >= c.Fraction {
			continue
		}
		var at time.Duration
		for at < horizon {
			at += time.Duration(c.Session.Sample(rng) * float64(time.Second))
			evs = append(evs, churnEvent{at, m.idx, true})
			at += time.Duration(c.Downtime.Sample(rng) * float64(time.Second))
			evs = append(evs, churnEvent{at, m.idx, false})
		}
	}
	slices.SortStableFunc(evs, func(a, b churnEvent) int { return cmp.Compare(a.at, b.at) })
	return evs
}

// churn plays the plan: a node leaving loses its links to every node
// and its connections (its process runs on, as a laptop that went
// offline: a fetch under way fails and is asked for again); coming back,
// it is linked to the nodes online and dials Degree of them.
func churn(ctx context.Context, mn mocknet.Mocknet, ms []*member, evs []churnEvent, t0 time.Time, played *atomic.Int64, log *slog.Logger) {
	var wg sync.WaitGroup // dials of nodes coming back
	defer wg.Wait()
	online := make([]bool, len(ms))
	for i := range online {
		online[i] = true
	}
	for _, ev := range evs {
		select {
		case <-time.After(time.Until(t0.Add(ev.at))):
		case <-ctx.Done():
			return
		}
		a := ms[ev.node]
		online[a.idx] = !ev.leave
		var back []*member
		for _, b := range ms {
			if b == a || !online[b.idx] {
				continue
			}
			ida, idb := a.n.P2P().ID(), b.n.P2P().ID()
			var err error
			if ev.leave {
				if err = mn.UnlinkPeers(ida, idb); err == nil {
					err = mn.DisconnectPeers(ida, idb)
				}
			} else {
				err = linkPair(mn, a, b)
				back = append(back, b)
			}
			if err != nil {
				log.Warn("churn", "leave", ev.leave, "node", a.idx, "peer", b.idx, "err", err)
			}
		}
		redial(ctx, &wg, a, back)
		played.Add(1)
		log.Info("churn", "node", a.idx, "leave", ev.leave, "since_announce", time.Since(t0).Round(time.Millisecond))
	}
}

// redial has a dial Degree random nodes of to, in the background.
func redial(ctx context.Context, wg *sync.WaitGroup, a *member, to []*member) {
	to = slices.Clone(to)
	rand.Shuffle(len(to), func(i, j int) { to[i], to[j] = to[j], to[i] })
	for _, b := range to[:min(Degree, len(to))] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			_ = a.n.P2P().Connect(dctx, peer.AddrInfo{ID: b.n.P2P().ID()})
		}()
	}
}

// join dials, for each node, the earlier ones dials names, a few dials at
// once (each waits out its link's latency for the handshakes). A dial that
// fails (a handshake starved of CPU) is tried again, then given up: the
// DHT makes up for it, so long as every node has one connection.
func join(ctx context.Context, ms []*member, dials [][]int32, log *slog.Logger) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	connected := make([]atomic.Int32, len(ms))
	connected[0].Store(1)
	for _, m := range ms[1:] {
		for _, k := range dials[m.idx] {
			o := ms[k]
			g.Go(func() error {
				var err error
				for range 3 {
					if err = m.n.P2P().Connect(ctx, peer.AddrInfo{ID: o.n.P2P().ID()}); err == nil {
						connected[m.idx].Add(1)
						return nil
					}
					if ctx.Err() != nil {
						return ctx.Err()
					}
				}
				log.Warn("dial failed", "from", m.idx, "to", o.idx, "err", err)
				return nil
			})
		}
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("emulate: join: %w", err)
	}
	for i := range connected {
		if connected[i].Load() == 0 {
			return fmt.Errorf("emulate: join: node %d reached none of the nodes it dialled", i)
		}
	}
	return nil
}

// release is what the publisher announces.
type release struct {
	v   *registry.Verified
	env []byte
	key *did.Key
	// next is the update, announced nextAt after this release.
	next   *release
	nextAt time.Duration
}

// publish adds the image through the publisher's API (stored, named by
// its sum, pinned and provided, as `archy publish` does), signs a
// manifest pinning it and hands the envelope to the API.
func publish(ctx context.Context, cl *http.Client, pub *member, img *image, app, version string, key *did.Key) (*release, error) {
	sum, err := postBlob(ctx, cl, pub.n, img.path)
	if err != nil {
		return nil, fmt.Errorf("emulate: publish the image: %w", err)
	}
	if sum != img.sum.CID.String() {
		return nil, fmt.Errorf("emulate: publish the image: the node named it %s, want %s", sum, img.sum.CID)
	}
	if key == nil {
		if key, err = did.Generate(); err != nil {
			return nil, fmt.Errorf("emulate: publisher key: %w", err)
		}
	}
	rel, err := sign(img, app, version, key)
	if err != nil {
		return nil, err
	}
	if _, err := call(ctx, cl, pub.n, http.MethodPost, "/api/v1/manifests", bytes.NewReader(rel.env)); err != nil {
		return nil, fmt.Errorf("emulate: publish the manifest: %w", err)
	}
	return rel, nil
}

// sign makes key's signed release of app at version pinning img.
func sign(img *image, app, version string, key *did.Key) (*release, error) {
	m := &registry.Manifest{Schema: registry.Schema, ID: app, Name: app, Version: version, Publisher: key.DID(),
		Containers: []registry.Container{{Name: "app", Image: registry.Image{Ref: img.ref, CID: img.sum.CID.String(),
			Digest: img.sum.Digest, Size: img.size}}}}
	env, _, err := registry.Sign(m, key)
	if err != nil {
		return nil, fmt.Errorf("emulate: sign the release: %w", err)
	}
	envJSON, err := env.Marshal()
	if err != nil {
		return nil, fmt.Errorf("emulate: encode the release: %w", err)
	}
	v, err := registry.VerifyEnvelope(envJSON)
	if err != nil {
		return nil, fmt.Errorf("emulate: verify the release: %w", err)
	}
	return &release{v: v, env: envJSON, key: key}, nil
}

// collect collects the nodes' shared heap before an announcement: one
// collection of all of it (hundreds of MiB, a second of a core) falling
// in the few ms of discovery is an artefact of the emulation, as each
// real node collects its own small heap; what discovery allocates is a
// sliver of the heap, so its own share of collection is too.
func collect() { runtime.GC() }

// roundWait bounds one discovery round (a hang guard: a round takes tens
// of ms); roundGap is the quiet between rounds.
const (
	roundWait = 10 * time.Second
	roundGap  = 200 * time.Millisecond
)

// probeRound announces release 0.0.k of app's probe (key's, pinning img)
// and returns each fetching node's discovery time of it, -1 for a node
// that did not store it within roundWait.
func probeRound(ctx context.Context, ms []*member, img *image, app string, k int, key *did.Key) ([]time.Duration, error) {
	rel, err := sign(img, app+"-probe", fmt.Sprintf("0.0.%d", k+1), key)
	if err != nil {
		return nil, err
	}
	collect()
	t0, err := announce(ctx, ms[0].relay, rel)
	if err != nil {
		return nil, fmt.Errorf("emulate: discovery round %d: %w", k+1, err)
	}
	c := rel.v.CID
	deadline := time.Now().Add(roundWait)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		left := false
		for _, m := range ms {
			if m.fetch && m.seenAt(c) == 0 {
				left = true
				break
			}
		}
		if !left {
			break
		}
		select {
		case <-ms[0].stored:
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
		}
	}
	var out []time.Duration
	for _, m := range ms {
		if !m.fetch {
			continue
		}
		d := time.Duration(-1)
		if at := m.seenAt(c); at != 0 {
			d = time.Unix(0, at).Sub(t0)
		}
		out = append(out, d)
	}
	time.Sleep(roundGap)
	return out, nil
}

// postBlob adds the file at path through n's API and returns its sum.
func postBlob(ctx context.Context, cl *http.Client, n *node.Node, path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	b, err := call(ctx, cl, n, http.MethodPost, "/api/v1/blobs", f)
	if err != nil {
		return "", err
	}
	var out struct{ Sum string }
	if err := json.Unmarshal(b, &out); err != nil {
		return "", fmt.Errorf("read the blob's answer: %w", err)
	}
	return out.Sum, nil
}

// announce publishes the release's events on the relay under a Nostr key
// bound to the publisher's DID, and returns when they were sent: the
// publisher's connection to the relay is up before (a node keeps its
// own), so discovery is timed from the events leaving the publisher.
func announce(ctx context.Context, relayURL string, rel *release) (time.Time, error) {
	sk := nostr.GeneratePrivateKey()
	pk, _ := nostr.GetPublicKey(sk)
	bind, err := discovery.Binding(rel.key, pk)
	if err != nil {
		return time.Time{}, fmt.Errorf("emulate: bind the announcing key: %w", err)
	}
	evs, err := (&discovery.Announcement{Manifest: rel.v, Envelope: rel.env, Binding: bind, CreatedAt: time.Now()}).Events(sk)
	if err != nil {
		return time.Time{}, fmt.Errorf("emulate: announcement: %w", err)
	}
	// A relay busy serving hundreds of subscribers on a starved CPU may
	// take long to answer: wait, and try again.
	var sent time.Time
	for try := 1; ; try++ {
		sent, err = publishOnce(ctx, relayURL, evs)
		if err == nil || try == 3 || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("emulate: announce on the relay: %w", err)
	}
	return sent, nil
}

// publishOnce connects to the relay, sends evs at once and waits for
// the relay to accept each; it returns when they were sent.
func publishOnce(ctx context.Context, relayURL string, evs []nostr.Event) (time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := discovery.Dial(ctx, relayURL, 30*time.Second)
	if err != nil {
		return time.Time{}, err
	}
	defer c.Close()
	sent := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	for _, ev := range evs {
		g.Go(func() error { return c.Publish(gctx, ev) })
	}
	return sent, g.Wait()
}

// pollEvery is how often the emulator looks at the nodes' progress.
const pollEvery = 20 * time.Millisecond

// retryAfter is how long a node's owner waits to ask again for an
// install that failed (no peer reachable in a partition, say), until the
// horizon.
const retryAfter = 2 * time.Second

// crowd waits for each crowd node to discover the release, asks for the
// install after its delay, and records when it ended, until every crowd
// node is done or the horizon passes.
func crowd(ctx context.Context, cl *http.Client, ms []*member, rel *release, t0 time.Time, horizon time.Duration, log *slog.Logger) error {
	want := rel.v.CID
	deadline := t0.Add(horizon)
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	pending := 0
	for _, m := range ms {
		if m.fetch {
			pending++
		}
	}
	var mu sync.Mutex
	left := pending
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	lastLog := time.Now()
	for {
		for _, m := range ms {
			if !m.fetch || m.found >= 0 {
				continue
			}
			if at := m.foundAt.Load(); at != 0 {
				foundAt := time.Unix(0, at)
				m.found = foundAt.Sub(t0)
				wg.Add(1)
				go func() {
					defer wg.Done()
					select {
					case <-time.After(time.Until(foundAt.Add(m.delay))):
					case <-ctx.Done():
					}
					m.done, m.fetched, m.failed = install(ctx, cl, m, want.String(), t0)
					if next := rel.next; next != nil && m.done >= 0 {
						if waitFor(ctx, m, next.v.CID) {
							m.updDone, _, m.failed = install(ctx, cl, m, next.v.CID.String(), t0.Add(rel.nextAt))
						}
					}
					mu.Lock()
					left--
					mu.Unlock()
				}()
			}
		}
		mu.Lock()
		l := left
		mu.Unlock()
		if l == 0 {
			return nil
		}
		if time.Since(lastLog) > 10*time.Second {
			lastLog = time.Now()
			log.Info("crowd", "pending", l, "of", pending, "since_announce", time.Since(t0).Round(time.Second))
		}
		select {
		case <-ctx.Done():
			if time.Now().After(deadline) {
				log.Warn("horizon reached", "pending", l)
				return nil
			}
			return fmt.Errorf("emulate: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// settle waits until the process used less than frac of one core over
// a window, or for at most max, and returns how long it waited.
func settle(ctx context.Context, frac float64, window, max time.Duration) time.Duration {
	start := time.Now()
	cpu := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			return 0
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	for time.Since(start) < max && ctx.Err() == nil {
		c0, t0 := cpu(), time.Now()
		time.Sleep(window)
		if float64(cpu()-c0) < frac*float64(time.Since(t0)) {
			break
		}
	}
	return time.Since(start)
}

// watchDiscovery records in each crowd node's foundAt when it was first
// seen to hold release c, looking each time a node stored a release (a
// poll every millisecond woke a core a thousand times a second in the
// few ms discovery takes), until every one does or ctx ends.
func watchDiscovery(ctx context.Context, ms []*member, c cid.Cid) {
	if len(ms) == 0 {
		return
	}
	stored := ms[0].stored
	for {
		left := false
		for _, m := range ms {
			if !m.fetch || m.foundAt.Load() != 0 {
				continue
			}
			if at := m.seenAt(c); at != 0 {
				m.foundAt.Store(at)
			} else {
				left = true
			}
		}
		if !left {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-stored:
		}
	}
}

// discovered records when the node stored release r (its OnDiscovered):
// the time is the node's own, not that of a poll that a busy CPU may
// delay.
func (m *member) discovered(r *discovery.Release) {
	now := time.Now().UnixNano()
	m.seenMu.Lock()
	defer m.seenMu.Unlock()
	if m.seen == nil {
		m.seen = map[string]int64{}
	}
	if _, ok := m.seen[r.CID.KeyString()]; !ok {
		m.seen[r.CID.KeyString()] = now
		select {
		case m.stored <- struct{}{}:
		default: // a wake-up is pending already
		}
	}
}

// seenAt is when the node stored release c (Unix ns), 0 if it has not.
func (m *member) seenAt(c cid.Cid) int64 {
	m.seenMu.Lock()
	defer m.seenMu.Unlock()
	return m.seen[c.KeyString()]
}

// waitFor waits until m discovered release c.
func waitFor(ctx context.Context, m *member, c cid.Cid) bool {
	for {
		if m.seenAt(c) != 0 {
			return true
		}
		select {
		case <-time.After(pollEvery):
		case <-ctx.Done():
			return false
		}
	}
}

// install asks m's API for release c, as its owner would, follows the
// operation, and asks again after a failure until ctx ends. It returns
// when the install ended after t0 (-1 if it never did), when its fetch
// stage ended (-1 if unknown) and the last error.
func install(ctx context.Context, cl *http.Client, m *member, c string, t0 time.Time) (done, fetched time.Duration, failed string) {
	body, _ := json.Marshal(node.InstallRequest{CID: c})
	for {
		d, f, err := installOnce(ctx, cl, m, body, t0)
		if err == nil {
			return d, f, ""
		}
		failed = err.Error()
		// A try whose answer was lost may have installed it all the same.
		if installed(ctx, cl, m, c) {
			return time.Since(t0), -1, ""
		}
		select {
		case <-time.After(retryAfter):
		case <-ctx.Done():
			return -1, -1, failed
		}
	}
}

// installed reports whether m runs release c (its installed app's CID).
func installed(ctx context.Context, cl *http.Client, m *member, c string) bool {
	as, err := apps(ctx, cl, m)
	if err != nil {
		return false
	}
	for _, a := range as {
		if a.CID == c {
			return true
		}
	}
	return false
}

// apps is m's installed apps, as its API lists them.
func apps(ctx context.Context, cl *http.Client, m *member) ([]node.AppView, error) {
	b, err := call(ctx, cl, m.n, http.MethodGet, "/api/v1/apps", nil)
	if err != nil {
		return nil, err
	}
	var as []node.AppView
	if err := json.Unmarshal(b, &as); err != nil {
		return nil, fmt.Errorf("node %d: read its apps: %w", m.idx, err)
	}
	return as, nil
}

// installOnce asks for the install and follows the operation to its
// end. A request that fails (a kept-alive connection the API closed
// meanwhile) fails the try, and the install is asked for again.
func installOnce(ctx context.Context, cl *http.Client, m *member, body []byte, t0 time.Time) (ended, fetched time.Duration, err error) {
	b, err := call(ctx, cl, m.n, http.MethodPost, "/api/v1/apps", bytes.NewReader(body))
	if err != nil {
		return -1, -1, err
	}
	var op node.Operation
	if err := json.Unmarshal(b, &op); err != nil || op.URL == "" {
		return -1, -1, fmt.Errorf("install answer %q: %v", b, err)
	}
	for op.State == node.OpRunning || op.State == "" {
		select {
		case <-time.After(pollEvery):
		case <-ctx.Done():
			return -1, -1, ctx.Err()
		}
		b, err := call(ctx, cl, m.n, http.MethodGet, op.URL, nil)
		if err != nil {
			// The operation goes on: ask again at the next poll.
			continue
		}
		if err := json.Unmarshal(b, &op); err != nil {
			return -1, -1, fmt.Errorf("operation %s: %w", op.URL, err)
		}
	}
	if op.State == node.OpSucceeded {
		return op.Ended.Sub(t0), fetchEnded(ctx, cl, m, op, t0), nil
	}
	if op.Last != nil {
		return -1, -1, errors.New(op.Last.Error)
	}
	return -1, -1, fmt.Errorf("operation %s: %s", op.URL, op.State)
}

// fetchEnded reads an ended operation's events and returns when its
// first stage past the fetch began (the image held and verified), after
// t0; -1 if the events do not say. The model's completion is this
// moment: it has no runtime to load and start the app.
func fetchEnded(ctx context.Context, cl *http.Client, m *member, op node.Operation, t0 time.Time) time.Duration {
	b, err := call(ctx, cl, m.n, http.MethodGet, op.Events, nil)
	if err != nil {
		return -1
	}
	for line := range strings.Lines(string(b)) {
		data, ok := strings.CutPrefix(strings.TrimSpace(line), "data: ")
		if !ok {
			continue
		}
		var ev node.OpEvent
		if json.Unmarshal([]byte(data), &ev) != nil || ev.Stage == "" || ev.Stage == string(orchestrator.StageFetch) {
			continue
		}
		return ev.Time.Sub(t0)
	}
	return -1
}

// call makes one API request with the node's token and returns the body
// of a 2xx answer.
func call(ctx context.Context, cl *http.Client, n *node.Node, method, path string, body io.Reader) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	url := path
	if !strings.HasPrefix(path, "http") {
		url = n.APIURL() + path
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+n.Token())
	resp, err := cl.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(b))
	}
	return b, nil
}

// metrics reads the node's p2p counters (archy_p2p_*) from its metrics.
func metrics(ctx context.Context, cl *http.Client, n *node.Node) (map[string]int64, error) {
	b, err := call(ctx, cl, n, http.MethodGet, "/metrics", nil)
	if err != nil {
		return nil, fmt.Errorf("emulate: metrics: %w", err)
	}
	out := map[string]int64{}
	for line := range strings.Lines(string(b)) {
		name, v, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok || !strings.HasPrefix(name, "archy_p2p_") {
			continue
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return nil, fmt.Errorf("emulate: metrics: %q: %w", line, err)
		}
		out[name] = int64(f)
	}
	if _, ok := out["archy_p2p_block_bytes_sent_total"]; !ok {
		return nil, errors.New("emulate: metrics: no archy_p2p_block_bytes_sent_total")
	}
	return out, nil
}

// holdsImage reports whether the archive the node installed hashes to
// the release's sum: the check that no wrong byte was kept.
func holdsImage(n *node.Node, img *image) (bool, error) {
	f, err := os.Open(filepath.Join(n.DataDir(), "images", img.sum.CID.String()+".tar"))
	if err != nil {
		return false, fmt.Errorf("emulate: installed image: %w", err)
	}
	defer f.Close()
	got, _, err := cas.SumReader(f)
	if err != nil {
		return false, fmt.Errorf("emulate: installed image: %w", err)
	}
	return got.Equals(img.sum.CID), nil
}

// scratch is where a run that needs about need bytes of disk keeps its
// nodes' data: memory (/dev/shm) when it has room for twice that, where
// the nodes' fsyncs cost nothing (on a disk shared with other work they
// measure the disk, not the swarm); else the temporary folder.
func scratch(need int64) string {
	var st syscall.Statfs_t
	if err := syscall.Statfs("/dev/shm", &st); err == nil && int64(st.Bavail)*st.Bsize > 2*need {
		return "/dev/shm"
	}
	return os.TempDir()
}

// resetPeak resets the process's resident high-water mark (Linux), so a
// run's PeakBytes is its own.
func resetPeak() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// peakBytes is the process's resident high-water mark (VmHWM), 0 where
// /proc does not say.
func peakBytes() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
