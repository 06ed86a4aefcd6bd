// Package node composes an archy node from its parts: the libp2p swarm
// (p2p), the embedded Nostr relay (relay), discovery of announced apps
// (p2p/discovery), and the HTTP API on 127.0.0.1. It is the one wiring
// package: the binary, the integration tests and the simulator embed a
// node through New and Run; nothing but cmd/ and sim/ imports it.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	cid "github.com/ipfs/go-cid"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/archy-node/archy/cas"
	"github.com/archy-node/archy/orchestrator"
	"github.com/archy-node/archy/p2p"
	"github.com/archy-node/archy/p2p/discovery"
	"github.com/archy-node/archy/p2p/peering"
	"github.com/archy-node/archy/relay"
)

// Config is everything a node is built from. Zero values take the
// documented defaults, so Config{DataDir: dir} runs a node on embedded
// defaults.
type Config struct {
	// DataDir holds everything the node keeps: identity, blocks, the
	// relay's log, discovered apps, the API token.
	DataDir string
	// APIListen is the HTTP API's address (default 127.0.0.1:7780; port 0
	// picks one). The address actually bound is written to DataDir/api.addr.
	APIListen string
	// API tunes the HTTP API: who may reach it and its deadlines.
	API APIConfig
	// NoEmbeddedRelay leaves the node's own Nostr relay off (it then
	// needs Relays).
	NoEmbeddedRelay bool
	// RelayListen is the embedded relay's address (default 127.0.0.1:7447).
	RelayListen string
	// Relays are other Nostr relays to discover apps and peers on, beside
	// the embedded one.
	Relays []string
	// BrowseListen, when set, serves the marketplace page read-only on
	// that address (for other machines): every change is refused there,
	// and no secret is shown.
	BrowseListen string
	// NoPeering stops the node from announcing its addresses on its relays
	// and dialling the peers it reads there (p2p/peering). By default nodes
	// that read a common relay find each other with no bootstrap list.
	NoPeering bool
	// OnDiscovered, if set, is called as each release read on a relay is
	// verified and stored (the simulator times discovery with it). It runs
	// on the discovery loop: it must return at once.
	OnDiscovered func(*discovery.Release)
	// P2P configures the swarm; its DataDir defaults to DataDir/p2p.
	P2P p2p.Config
	// Podman is where the node runs apps.
	Podman PodmanConfig
	// Follow lists the curated registries whose signed catalogs the node
	// follows over gossip.
	Follow []Follow
	// ShutdownTimeout bounds a clean stop (default 10s).
	ShutdownTimeout time.Duration
	// Trust is the owner's key and install policy: who may publish an
	// app id (trust/, issue 10).
	Trust TrustConfig
}

// Validate names the first bad field.
func (c *Config) Validate() error {
	if c.DataDir == "" {
		return errors.New("node config: DataDir is required")
	}
	for _, a := range []struct{ field, v string }{{"APIListen", c.APIListen}, {"RelayListen", c.RelayListen}, {"BrowseListen", c.BrowseListen}} {
		if a.v == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a.v); err != nil {
			return fmt.Errorf("node config: %s %q: %v", a.field, a.v, err)
		}
	}
	if err := c.Trust.validate(); err != nil {
		return err
	}
	if c.NoEmbeddedRelay && len(c.Relays) == 0 {
		return errors.New("node config: Relays: with the embedded relay off, at least one relay is required")
	}
	return nil
}

func (c *Config) setDefaults() {
	if c.APIListen == "" {
		c.APIListen = "127.0.0.1:7780"
	}
	if c.RelayListen == "" {
		c.RelayListen = "127.0.0.1:7447"
	}
	if c.P2P.DataDir == "" {
		c.P2P.DataDir = filepath.Join(c.DataDir, "p2p")
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 10 * time.Second
	}
	c.API.setDefaults()
	c.Trust.setDefaults()
}

// Node is a running archy node.
type Node struct {
	// imgMu: installs and updates (which fetch images) hold it shared,
	// pruneImages exclusively.
	imgMu sync.RWMutex

	cfg     Config
	log     *slog.Logger
	reg     *prometheus.Registry
	started time.Time

	p2p        *p2p.Node
	relay      *relay.Relay
	relayLn    net.Listener
	apiLn      net.Listener
	browseLn   net.Listener // nil unless BrowseListen, and once Run serves it
	browseURL  string       // its address, for tests and the log
	disk       diskUsage
	store      *discovery.Store
	disc       *discovery.Discoverer
	peering    *peering.Peering // nil with NoPeering
	token      string
	relayURLs  []string
	followers  map[string]*follower
	ops        *opTable
	apiStop    chan struct{}              // closed when the API shuts down
	orch       *orchestrator.Orchestrator // nil when apps are off
	rt         orchestrator.Runtime       // the orchestrator's engine; nil when apps are off
	appsOff    string                     // why apps are off
	appsOffErr error                      // the same, typed
	trust      *trustState

	life   context.Context // the node's lifetime, for background work
	cancel context.CancelFunc
	wg     sync.WaitGroup // background work (provides)

	mu   sync.Mutex
	runs bool
}

// New builds a node: it opens the data folder, binds the relay and API
// listeners and starts the swarm. ctx bounds start-up only. Run serves;
// if Run is never called, Close releases what New took.
func New(ctx context.Context, cfg Config, log *slog.Logger) (_ *Node, err error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data folder: %w", err)
	}
	n := &Node{cfg: cfg, log: log, reg: prometheus.NewRegistry(), started: time.Now()}
	n.life, n.cancel = context.WithCancel(context.WithoutCancel(ctx))
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	n.reg.MustRegister(prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	if n.token, err = loadOrCreateToken(filepath.Join(cfg.DataDir, TokenFile)); err != nil {
		return nil, err
	}

	var lc net.ListenConfig
	if !cfg.NoEmbeddedRelay {
		n.relay, err = relay.New(relay.Config{Listen: cfg.RelayListen, DataDir: filepath.Join(cfg.DataDir, "relay"),
			Metrics: n.reg}, log.With("part", "relay"))
		if err != nil {
			return nil, fmt.Errorf("start embedded relay: %w", err)
		}
		if n.relayLn, err = lc.Listen(ctx, "tcp", cfg.RelayListen); err != nil {
			return nil, fmt.Errorf("embedded relay: listen on %s: %w", cfg.RelayListen, err)
		}
		n.relayURLs = append(n.relayURLs, "ws://"+n.relayLn.Addr().String())
	}
	n.relayURLs = append(n.relayURLs, cfg.Relays...)

	if n.apiLn, err = lc.Listen(ctx, "tcp", cfg.APIListen); err != nil {
		return nil, fmt.Errorf("API: listen on %s: %w", cfg.APIListen, err)
	}
	if cfg.BrowseListen != "" {
		if n.browseLn, err = lc.Listen(ctx, "tcp", cfg.BrowseListen); err != nil {
			return nil, fmt.Errorf("browse: listen on %s: %w", cfg.BrowseListen, err)
		}
		n.browseURL = "http://" + n.browseLn.Addr().String()
	}
	n.warnExposedAPI()
	n.ops = newOpTable(cfg.API.OperationTTL, time.Now)

	p2pCfg := cfg.P2P
	p2pCfg.Registerer = n.reg
	if n.p2p, err = p2p.New(ctx, p2pCfg, log.With("part", "p2p")); err != nil {
		return nil, fmt.Errorf("start swarm: %w", err)
	}

	if !cfg.NoPeering {
		if n.peering, err = n.startPeering(); err != nil {
			return nil, err
		}
	}

	if err := n.startApps(ctx); err != nil {
		return nil, err
	}

	n.followers = map[string]*follower{}
	for _, f := range cfg.Follow {
		if n.followers[f.Name] != nil {
			return nil, fmt.Errorf("node config: Follow: registry %q twice", f.Name)
		}
		fl, err := n.follow(f)
		if err != nil {
			return nil, err
		}
		n.followers[f.Name] = fl
	}

	ddir := filepath.Join(cfg.DataDir, "discovery")
	if err := os.MkdirAll(ddir, 0o700); err != nil {
		return nil, fmt.Errorf("create discovery folder: %w", err)
	}
	if n.store, err = discovery.OpenStore(filepath.Join(ddir, "discovered.json")); err != nil {
		return nil, err
	}
	n.store.SetKeeper(discovery.KeepFunc(n.keptManifests))
	if err := n.startTrust(); err != nil {
		return nil, err
	}
	n.disc, err = discovery.New(discovery.Config{Relays: n.relayURLs, CursorPath: filepath.Join(ddir, "cursors.json"), OnRelease: cfg.OnDiscovered},
		n.store, log.With("part", "discovery"))
	if err != nil {
		return nil, err
	}
	n.p2p.Host().SetStreamHandler(EnvelopeProtocol, n.handleEnvelope)
	return n, nil
}

// Files a node writes in its data folder for its clients.
const (
	// AddrFile holds the API's URL (http://127.0.0.1:7780), written once
	// Run starts.
	AddrFile = "api.addr"
	// TokenFile holds the token changes need (mode 0600).
	TokenFile = "api.token"
)

// Run serves until ctx ends, then stops every part within ShutdownTimeout.
func (n *Node) Run(ctx context.Context) error {
	n.mu.Lock()
	if n.runs {
		n.mu.Unlock()
		return errors.New("node is already running")
	}
	n.runs = true
	n.mu.Unlock()
	defer n.Close()

	if err := atomicWriteAddr(filepath.Join(n.cfg.DataDir, AddrFile), n.APIURL()); err != nil {
		return err
	}
	n.log.Info("node running", "peer", n.p2p.ID(), "api", n.APIURL(), "relays", n.relayURLs, "data", n.cfg.DataDir)

	g, ctx := errgroup.WithContext(ctx)
	if n.relay != nil {
		ln := n.relayLn
		n.relayLn = nil // Serve owns it now
		g.Go(func() error { return n.relay.Serve(ctx, ln) })
	}
	g.Go(func() error { return n.disc.Run(ctx) })
	if n.peering != nil {
		g.Go(func() error { return n.peering.Run(ctx) })
	}
	g.Go(func() error { return n.completeLoop(ctx) })
	g.Go(func() error { return n.crawlLoop(ctx) })
	g.Go(func() error { return n.trustLoop(ctx) })
	if n.orch != nil {
		g.Go(func() error { return n.orch.Run(ctx) })
	}
	for _, fl := range n.followers {
		g.Go(func() error { return fl.drain(ctx) })
	}
	g.Go(func() error { return n.serveAPI(ctx) })
	if n.browseLn != nil {
		ln := n.browseLn
		n.browseLn = nil // serveBrowse owns it now
		g.Go(func() error { return n.serveBrowse(ctx, ln) })
	}
	return g.Wait()
}

// Close releases everything New took that Run has not handed off, after
// the node's background work has stopped.
func (n *Node) Close() {
	n.cancel()
	n.wg.Wait()
	if n.relayLn != nil {
		n.relayLn.Close()
		n.relayLn = nil
		if n.relay != nil {
			n.relay.Close()
		}
	}
	if n.browseLn != nil {
		n.browseLn.Close()
		n.browseLn = nil
	}
	if n.apiLn != nil {
		n.apiLn.Close()
	}
	if n.p2p != nil {
		n.p2p.Close()
		n.p2p = nil
	}
	n.saveTrust()
	if n.store != nil {
		if err := n.store.Close(); err != nil {
			n.log.Warn("close discovery store", "err", err)
		}
	}
}

// APIURL is the base URL of the HTTP API.
func (n *Node) APIURL() string { return "http://" + n.apiLn.Addr().String() }

// RelayURLs are the relays the node discovers on, the embedded one first.
func (n *Node) RelayURLs() []string { return append([]string(nil), n.relayURLs...) }

// Token is the API token that changes need.
func (n *Node) Token() string { return n.token }

// P2P is the node's swarm.
func (n *Node) P2P() *p2p.Node { return n.p2p }

// Discovered is the node's store of verified releases.
func (n *Node) Discovered() *discovery.Store { return n.store }

// keptManifests are the discovered releases the store keeps whatever its
// caps say: the manifests of installed apps and of releases this node
// published (kept under manifests/).
func (n *Node) keptManifests() map[cid.Cid]bool {
	kept := map[cid.Cid]bool{}
	if n.orch != nil {
		for _, a := range n.orch.Apps() {
			if c, err := cas.Parse(a.CID); err == nil {
				kept[c] = true
			}
		}
	}
	entries, _ := os.ReadDir(filepath.Join(n.cfg.DataDir, "manifests"))
	for _, e := range entries {
		if c, err := cas.Parse(strings.TrimSuffix(e.Name(), ".json")); err == nil {
			kept[c] = true
		}
	}
	return kept
}

// DataDir is the node's data folder.
func (n *Node) DataDir() string { return n.cfg.DataDir }

// startPeering loads (or makes, on first start) the node's own Nostr key,
// which signs its peer announcements and nothing else, and readies the
// peering on the node's relays.
func (n *Node) startPeering() (*peering.Peering, error) {
	path := filepath.Join(n.cfg.DataDir, "peering.key")
	key, err := discovery.LoadKey(path)
	if errors.Is(err, os.ErrNotExist) {
		if key, err = discovery.GenerateKey(); err == nil {
			err = key.Save(path)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("peering key: %w", err)
	}
	return peering.New(peering.Config{Relays: n.relayURLs, Key: key, Host: n.p2p.Host()}, n.log.With("part", "peering"))
}
