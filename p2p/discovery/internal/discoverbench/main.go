// Command discoverbench measures publish → discovered latency: one
// publisher announces releases on the embedded relay (on loopback, with
// its event log on disk as a node runs it), three nodes subscribed to it
// verify them and store them in their discovery stores on disk, and the
// time from sending a release's event to each node's store taking it is
// one sample. It prints `figure` lines for `make bench`:
//
//	figure discover-p50-ms 2.1
//	figure discover-p99-ms 6.3
//	figure discover-max-ms 9.0
//
// The defaults (200 releases, one every 10 ms, 3 nodes: 600 samples) are
// the figure make bench prints; the goal is p99 ≤ 1000 ms on loopback. Every sample
// goes through the whole path a node runs, with the parts a node runs:
// the relay package over websockets, its journal written (fsync per event)
// before the fan-out; event id and Schnorr signature, DID binding, DSSE
// envelope, CID, strict parse and validation; the discovery store's NIP-01
// replacement and its journal on disk. Only the node's other parts (the
// libp2p host, the trust engine fed by OnRelease) are left out.
//
// Then how long a release waits behind 10,000 junk events (see
// behindJunk):
//
//	figure discover-behind-junk-ms 120.0
//
// Then it measures discovery poisoning (see flood): 10,000 releases from
// 100 throwaway DIDs taken in by a node with the default store, its time,
// disk and heap afterwards (2 shared cores, loaded):
//
//	figure discovery-flood-s 15.78
//	figure discovery-flood-mib 9.53
//	figure discovery-flood-heap-mib 20.9
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/archy-node/archy/did"
	"github.com/archy-node/archy/p2p/discovery"
	"github.com/archy-node/archy/registry"
	"github.com/archy-node/archy/relay"
)

func main() {
	var cfg config
	flag.IntVar(&cfg.releases, "releases", 200, "releases to publish")
	flag.IntVar(&cfg.nodes, "nodes", 3, "subscribing nodes")
	flag.DurationVar(&cfg.interval, "interval", 10*time.Millisecond, "time between two releases (open loop)")
	flag.DurationVar(&cfg.timeout, "timeout", 2*time.Minute, "give up on the latency part after this long")
	var fc floodConfig
	flag.IntVar(&fc.dids, "flood-dids", 100, "throwaway publishers in the flood (0: no flood)")
	flag.IntVar(&fc.apps, "flood-apps", 10, "apps per flood publisher")
	flag.IntVar(&fc.versions, "flood-versions", 10, "versions per flood app")
	floodTimeout := flag.Duration("flood-timeout", 5*time.Minute, "give up on the flood (signing included) after this long")
	var jc junkConfig
	flag.IntVar(&jc.events, "junk", 10000, "junk events sent before a release (0: not measured)")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), cfg.timeout)
	defer cancel()
	if err := run(ctx, os.Stdout, os.Stderr, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "discoverbench:", err)
		os.Exit(1)
	}
	if jc.events > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), cfg.timeout)
		defer cancel()
		if err := behindJunk(ctx, os.Stdout, os.Stderr, jc); err != nil {
			fmt.Fprintln(os.Stderr, "discoverbench: junk:", err)
			os.Exit(1)
		}
	}
	if fc.dids <= 0 {
		return
	}
	ctx, cancel = context.WithTimeout(context.Background(), *floodTimeout)
	defer cancel()
	if err := flood(ctx, os.Stdout, os.Stderr, fc); err != nil {
		fmt.Fprintln(os.Stderr, "discoverbench: flood:", err)
		os.Exit(1)
	}
}

type config struct {
	releases, nodes int
	interval        time.Duration
	timeout         time.Duration
	dir             string // where the relay's log and the stores go; empty: a temporary folder, removed after
}

// arrivals records when each node's store took each release.
type arrivals struct {
	mu   sync.Mutex
	at   map[string][]time.Time // release d → one time per node that has it
	done chan struct{}
	want int // releases × nodes
	n    int
}

func (a *arrivals) add(d string, t time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.at[d] = append(a.at[d], t)
	a.n++
	if a.n == a.want {
		close(a.done)
	}
}

func run(ctx context.Context, out, log io.Writer, cfg config) error {
	if cfg.releases <= 0 || cfg.nodes <= 0 || cfg.interval < 0 {
		return errors.New("-releases and -nodes must be positive, -interval not negative")
	}
	// The embedded relay with room for the publisher's burst.
	r, err := newRig(ctx, cfg.dir, relay.Config{EventRate: 10000, EventBurst: 10000})
	if err != nil {
		return err
	}
	defer r.close() // everything started here stops before run returns (and the folder goes)
	ctx = r.ctx

	// The releases, signed before the clock starts.
	evs, err := releases(cfg.releases)
	if err != nil {
		return err
	}

	arr := &arrivals{at: map[string][]time.Time{}, done: make(chan struct{}), want: cfg.releases * cfg.nodes}
	var discs []*discovery.Discoverer
	for i := range cfg.nodes {
		// Each node's store and cursors where a node keeps them.
		d, _, err := r.node(fmt.Sprint("node", i), discovery.StoreConfig{}, discovery.Config{MinBackoff: 50 * time.Millisecond,
			OnRelease: func(rel *discovery.Release) {
				if !rel.Latest {
					arr.add(rel.D, time.Now())
				}
			}})
		if err != nil {
			return err
		}
		discs = append(discs, d)
		r.run(func(ctx context.Context) { _ = d.Run(ctx) })
	}
	if err := waitSubscribed(ctx, r.url, discs); err != nil {
		return err
	}

	c, err := discovery.Dial(ctx, r.url, 10*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	sent := make(map[string]time.Time, len(evs))
	tick := time.NewTicker(max(cfg.interval, time.Microsecond))
	defer tick.Stop()
	start := time.Now()
	for _, pair := range evs {
		sent[tagD(&pair[0])] = time.Now()
		for _, ev := range pair {
			if err := c.Publish(ctx, ev); err != nil {
				return fmt.Errorf("publish: %w", err)
			}
		}
		if cfg.interval > 0 {
			select {
			case <-tick.C:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	select {
	case <-arr.done:
	case <-ctx.Done():
		arr.mu.Lock()
		n := arr.n
		arr.mu.Unlock()
		return fmt.Errorf("only %d of %d releases discovered: %w", n, arr.want, ctx.Err())
	}
	total := time.Since(start)

	arr.mu.Lock()
	var ms []float64
	for d, times := range arr.at {
		for _, t := range times {
			ms = append(ms, float64(t.Sub(sent[d]))/float64(time.Millisecond))
		}
	}
	arr.mu.Unlock()
	sort.Float64s(ms)
	fmt.Fprintf(log, "discoverbench: %d releases to %d nodes over the embedded relay on loopback (relay log and stores on disk), one every %v; %d samples in %v\n",
		cfg.releases, cfg.nodes, cfg.interval, len(ms), total.Round(time.Millisecond))
	fmt.Fprintf(out, "figure discover-p50-ms %.1f\n", percentile(ms, 0.50))
	fmt.Fprintf(out, "figure discover-p99-ms %.1f\n", percentile(ms, 0.99))
	fmt.Fprintf(out, "figure discover-max-ms %.1f\n", ms[len(ms)-1])
	return nil
}

// newRelay opens the relay package's Relay with its event log in dir, as a
// node's embedded relay keeps it; cfg gives the rest.
func newRelay(dir string, cfg relay.Config) (*relay.Relay, error) {
	cfg.DataDir = dir
	rl, err := relay.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, fmt.Errorf("open relay in %s: %w", dir, err)
	}
	return rl, nil
}

// percentile is the nearest-rank percentile of sorted samples.
func percentile(sorted []float64, q float64) float64 {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// waitSubscribed publishes a junk event until every node has received one,
// so the clock starts with every subscription live.
func waitSubscribed(ctx context.Context, url string, discs []*discovery.Discoverer) error {
	c, err := discovery.Dial(ctx, url, 10*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	sk := nostr.GeneratePrivateKey()
	for i := 0; ; i++ {
		ev := nostr.Event{Kind: discovery.KindAppData, CreatedAt: nostr.Now(), Tags: nostr.Tags{{"d", fmt.Sprint("warm-up-", i)}, {"t", discovery.Topic}}}
		if err := ev.Sign(sk); err != nil {
			return err
		}
		if err := c.Publish(ctx, ev); err != nil {
			return fmt.Errorf("warm up: %w", err)
		}
		ready := true
		for _, d := range discs {
			ready = ready && d.Stats().Received > 0
		}
		if ready {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("nodes did not subscribe: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// publisher is a throwaway publisher: a fresh DID and a Nostr key bound
// to it.
type publisher struct {
	key     *did.Key
	sk      string
	binding []byte
}

func newPublisher() (*publisher, error) {
	key, err := did.Generate()
	if err != nil {
		return nil, err
	}
	sk := nostr.GeneratePrivateKey()
	pk, err := nostr.GetPublicKey(sk)
	if err != nil {
		return nil, err
	}
	binding, err := discovery.Binding(key, pk)
	if err != nil {
		return nil, err
	}
	return &publisher{key: key, sk: sk, binding: binding}, nil
}

// announce signs version of app id and returns its announcement: the
// release's event and its "latest" pointer, created at at.
func (p *publisher) announce(id, version string, at time.Time) ([]nostr.Event, error) {
	env, _, err := registry.Sign(benchManifest(p.key.DID(), id, version), p.key)
	if err != nil {
		return nil, err
	}
	envJSON, err := env.Marshal()
	if err != nil {
		return nil, err
	}
	v, err := registry.VerifyEnvelope(envJSON)
	if err != nil {
		return nil, err
	}
	a := &discovery.Announcement{Manifest: v, Envelope: envJSON, Binding: p.binding, CreatedAt: at}
	return a.Events(p.sk)
}

// releases signs n versions of one app and returns each release's event
// and "latest" pointer.
func releases(n int) ([][]nostr.Event, error) {
	p, err := newPublisher()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	out := make([][]nostr.Event, 0, n)
	for i := range n {
		// Increasing created_at, so each latest pointer replaces the last.
		evs, err := p.announce("bench-app", fmt.Sprintf("1.0.%d", i), now.Add(time.Duration(i-n)*time.Second))
		if err != nil {
			return nil, err
		}
		out = append(out, evs)
	}
	return out, nil
}

func benchManifest(publisher, id, version string) *registry.Manifest {
	return &registry.Manifest{
		Schema: registry.Schema, ID: id, Name: "Bench", Version: version, Publisher: publisher,
		Containers: []registry.Container{{
			Name: "web",
			Image: registry.Image{
				Ref:    "localhost/bench:1",
				CID:    "bafkr4ihkr4ld3m4gqkjf4reryxsy2s5tkbxprqkow6fin2iiyvreuzzab4",
				Digest: "sha256:0000000000000000000000000000000000000000000000000000000000000001",
			},
			Command: []string{"httpd", "-f", "-p", "8080"},
		}},
	}
}

func tagD(ev *nostr.Event) string {
	if t := ev.Tags.GetFirst([]string{"d", ""}); t != nil {
		return (*t)[1]
	}
	return ""
}

// rig is what each measurement runs on: a data folder (removed at the
// end unless given), the embedded relay as a node configures it (its log
// in the folder) serving on loopback, and the nodes' discoverers with
// their stores on disk, as a node keeps them. close stops everything
// started, then closes the stores.
type rig struct {
	ctx    context.Context
	cancel context.CancelFunc
	dir    string
	keep   bool
	url    string
	wg     sync.WaitGroup
	stores []*discovery.Store
}

func newRig(ctx context.Context, dir string, rc relay.Config) (*rig, error) {
	r := &rig{dir: dir, keep: dir != ""}
	if !r.keep {
		var err error
		if r.dir, err = os.MkdirTemp("", "discoverbench-"); err != nil {
			return nil, err
		}
	}
	r.ctx, r.cancel = context.WithCancel(ctx)
	rl, err := newRelay(filepath.Join(r.dir, "relay"), rc)
	if err != nil {
		r.close()
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		r.close()
		return nil, err
	}
	r.url = "ws://" + ln.Addr().String()
	r.run(func(ctx context.Context) { _ = rl.Serve(ctx, ln) })
	return r, nil
}

// run runs f until the rig closes.
func (r *rig) run(f func(ctx context.Context)) {
	r.wg.Add(1)
	go func() { defer r.wg.Done(); f(r.ctx) }()
}

// node makes a node's discoverer and store (with its cursors, in
// dir/name) reading the rig's relay; cfg.Relays and cfg.CursorPath are set
// here. It is not started.
func (r *rig) node(name string, sc discovery.StoreConfig, cfg discovery.Config) (*discovery.Discoverer, *discovery.Store, error) {
	nodeDir := filepath.Join(r.dir, name)
	sc.Path = discovery.StorePath(nodeDir)
	st, err := discovery.NewStore(sc)
	if err != nil {
		return nil, nil, err
	}
	r.stores = append(r.stores, st)
	cfg.Relays, cfg.CursorPath = []string{r.url}, discovery.CursorPath(nodeDir)
	d, err := discovery.New(cfg, st, slog.New(slog.DiscardHandler))
	return d, st, err
}

func (r *rig) close() {
	r.cancel()
	r.wg.Wait()
	for _, st := range r.stores { // once the discoverers writing them have stopped
		st.Close()
	}
	if !r.keep {
		os.RemoveAll(r.dir)
	}
}
