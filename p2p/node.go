// Package p2p owns archy's place in the swarm: the libp2p host (TCP and
// QUIC, TLS and Noise), the Kademlia DHT, the on-disk BLAKE3 block store,
// block exchange (boxo bitswap for IPFS clients, archy's own piece
// exchange for files, in package exchange), files as BLAKE3 DAGs, and
// catalog gossip. The node composition
// embeds a Node; nothing here knows about manifests or catalogs' rules.
package p2p

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/archy-node/archy/p2p/blockstore"
	"github.com/archy-node/archy/p2p/dag"
	"github.com/archy-node/archy/p2p/exchange"
	"github.com/ipfs/boxo/bitswap"
	"github.com/ipfs/boxo/bitswap/network/bsnet"
	cid "github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	noise "github.com/libp2p/go-libp2p/p2p/security/noise"
	tls "github.com/libp2p/go-libp2p/p2p/security/tls"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	_ "github.com/multiformats/go-multihash/register/blake3" // BLAKE3 for go-cid users
)

// mdnsService is the mDNS service name archy nodes announce on a LAN.
const mdnsService = "archy"

// Node is a running archy peer. Create it with New and stop it with Close.
type Node struct {
	cfg   Config
	log   *slog.Logger
	host  host.Host
	dht   *dht.IpfsDHT
	bs    *bitswap.Bitswap
	store *blockstore.Store
	mdns  mdns.Service
	ex    pieces
	names *nameBook
	bans  *banList
	ps    *pubsub.PubSub
	provs *providerStore
	score *gossipScores
	met   *metrics

	// life is the node's lifetime, cancelled by Close: the base context of
	// work the node does on its own (serving peers, background provides),
	// as http.Server's BaseContext is.
	life   context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	close  sync.Once
}

// New starts a node: identity from cfg.DataDir, a host listening on
// cfg.ListenAddrs, the DHT, the block store and exchange, bootstrap dials
// and (if asked) mDNS. ctx bounds start-up only; Close stops the node.
func New(ctx context.Context, cfg Config, logger *slog.Logger) (*Node, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	store, err := blockstore.Open(filepath.Join(cfg.DataDir, "blocks"))
	if err != nil {
		return nil, err
	}
	store.SetLogger(logger)
	boot, _ := parsePeers(cfg.BootstrapPeers)
	if cfg.PublicDHT && len(boot) == 0 {
		boot = dht.GetDefaultBootstrapPeerAddrInfos()
	}

	bans := newBanList(cfg.BanTime)
	h := cfg.Host
	if h == nil {
		if h, err = newHost(cfg, bans); err != nil {
			_ = store.Close()
			return nil, err
		}
	}
	// The node's lifetime: values of ctx, but not its cancellation.
	life, cancel := context.WithCancel(context.WithoutCancel(ctx))
	n := &Node{cfg: cfg, log: logger, host: h, store: store, life: life, cancel: cancel, bans: bans}
	n.met = newMetrics(cfg.Registerer)

	fail := func(err error) (*Node, error) {
		_ = n.Close()
		return nil, err
	}
	n.provs = newProviderStore(h.ID(), cfg.MaxProvidersPerPeer, cfg.MaxProviderRecords)
	dopts := []dht.Option{dht.BootstrapPeers(boot...), dht.ProviderDatastore(n.provs)}
	if cfg.DHTClientOnly {
		dopts = append(dopts, dht.Mode(dht.ModeClient))
	} else {
		dopts = append(dopts, dht.Mode(dht.ModeServer))
	}
	if !cfg.PublicDHT {
		dopts = append(dopts, dht.ProtocolPrefix(protocolID(cfg.DHTPrefix)))
	}
	n.dht, err = dht.New(h, dopts...)
	if err != nil {
		return fail(fmt.Errorf("start dht: %w", err))
	}
	if cfg.Bitswap {
		n.bs = bitswap.New(life, bsnet.NewFromIpfsHost(h), n.dht, store)
	}
	n.ex = exchange.New(life, h, store, swarm{n}, exchange.Config{
		DialTimeout: cfg.DialTimeout, RequestTimeout: cfg.RequestTimeout,
		MinRate: cfg.MinRate, MaxPeerBytes: cfg.MaxPeerBytes, UploadRate: cfg.UploadRate,
		UploadSlots: cfg.UploadSlots, NoSuperSeed: cfg.NoSuperSeed, MaxStrikes: cfg.MaxStrikes,
	}, n.met.exchange(), logger)
	misbehave(n, cfg.Misbehave)
	if n.names, err = openNameBook(filepath.Join(cfg.DataDir, "names")); err != nil {
		return fail(err)
	}
	h.SetStreamHandler(NameProtocol, n.handleName)
	n.score = &gossipScores{}
	popts := append([]pubsub.Option{pubsub.WithMaxMessageSize(MaxCatalogSize + 4<<10)}, scoreOptions(n.score)...)
	n.ps, err = pubsub.NewGossipSub(life, h, popts...)
	if err != nil {
		return fail(fmt.Errorf("start gossip: %w", err))
	}

	if cfg.MDNS {
		n.mdns = mdns.NewMdnsService(h, mdnsService, mdnsNotifee{n: n, ctx: life})
		if err := n.mdns.Start(); err != nil {
			return fail(fmt.Errorf("start mdns: %w", err))
		}
	}
	for _, pi := range boot {
		if err := n.Connect(ctx, pi); err != nil {
			n.log.Warn("bootstrap peer unreachable", "peer", pi.ID, "err", err)
		}
	}
	if err := n.dht.Bootstrap(life); err != nil {
		return fail(fmt.Errorf("bootstrap dht: %w", err))
	}
	if cfg.ReprovideInterval > 0 {
		n.wg.Add(1)
		go n.reprovideLoop()
	}
	if cfg.GCInterval > 0 {
		n.wg.Add(1)
		go n.gcLoop()
	}
	n.log.Info("p2p node started", "peer", h.ID(), "addrs", h.Addrs())
	return n, nil
}

// newHost starts the node's own libp2p host: its identity from the data
// folder, TCP and QUIC, TLS and Noise, bans enforced at connection time.
func newHost(cfg Config, bans *banList) (host.Host, error) {
	key, err := loadOrCreateKey(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	h, err := libp2p.New(
		libp2p.Identity(key),
		libp2p.ConnectionGater(bans),
		libp2p.ListenAddrStrings(cfg.ListenAddrs...),
		libp2p.Security(tls.ID, tls.New),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
	)
	if err != nil {
		return nil, fmt.Errorf("start libp2p host: %w", err)
	}
	return h, nil
}

// Close stops the node and waits for its goroutines.
func (n *Node) Close() error {
	var errs []error
	n.close.Do(func() {
		n.cancel()
		if n.mdns != nil {
			errs = append(errs, n.mdns.Close())
		}
		if n.ex != nil {
			n.ex.Close()
		}
		n.host.RemoveStreamHandler(NameProtocol)
		if n.bs != nil {
			errs = append(errs, n.bs.Close())
		}
		if n.dht != nil {
			errs = append(errs, n.dht.Close())
		}
		errs = append(errs, n.host.Close())
		n.wg.Wait()
		errs = append(errs, n.store.Close())
	})
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close p2p node: %w", err)
	}
	return nil
}

// ID is the node's peer ID.
func (n *Node) ID() peer.ID { return n.host.ID() }

// Host is the libp2p host, for other protocols of the node.
func (n *Node) Host() host.Host { return n.host }

// Store is the node's block store.
func (n *Node) Store() *blockstore.Store { return n.store }

// Addrs returns the node's dialable addresses with its /p2p/ part.
func (n *Node) Addrs() []ma.Multiaddr {
	out, _ := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: n.host.ID(), Addrs: n.host.Addrs()})
	return out
}

// AddrInfo returns the node's ID and addresses.
func (n *Node) AddrInfo() peer.AddrInfo {
	return peer.AddrInfo{ID: n.host.ID(), Addrs: n.host.Addrs()}
}

// Connect dials a peer within the configured dial timeout.
func (n *Node) Connect(ctx context.Context, pi peer.AddrInfo) error {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.DialTimeout)
	defer cancel()
	if err := n.host.Connect(ctx, pi); err != nil {
		return fmt.Errorf("connect to %s: %w", pi.ID, err)
	}
	return nil
}

// Provide announces in the DHT that this node holds c.
func (n *Node) Provide(ctx context.Context, c cid.Cid) error {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
	defer cancel()
	if err := n.dht.Provide(ctx, c, true); err != nil {
		return fmt.Errorf("provide %s: %w", c, err)
	}
	return nil
}

// FindProviders returns up to max peers that announced c, within the
// request timeout.
func (n *Node) FindProviders(ctx context.Context, c cid.Cid, max int) ([]peer.AddrInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
	defer cancel()
	var out []peer.AddrInfo
	for pi := range n.dht.FindProvidersAsync(ctx, c, max) {
		if pi.ID != n.host.ID() {
			out = append(out, pi)
		}
	}
	if len(out) == 0 && ctx.Err() != nil {
		return nil, fmt.Errorf("find providers of %s: %w", c, ctx.Err())
	}
	return out, nil
}

// Pin keeps root's DAG through garbage collection.
func (n *Node) Pin(ctx context.Context, root cid.Cid) error { return n.store.Pin(ctx, root) }

// Unpin lets GC take root's blocks unless something else pins them.
func (n *Node) Unpin(ctx context.Context, root cid.Cid) error { return n.store.Unpin(ctx, root) }

// GC removes blocks that no pin and no fetch in progress needs.
func (n *Node) GC(ctx context.Context) (blockstore.GCResult, error) {
	return n.store.GC(ctx, dag.Links)
}

type mdnsNotifee struct {
	n   *Node
	ctx context.Context // the node's lifetime; mdns gives none
}

func (m mdnsNotifee) HandlePeerFound(pi peer.AddrInfo) {
	if pi.ID == m.n.host.ID() {
		return
	}
	m.n.wg.Add(1)
	go func() {
		defer m.n.wg.Done()
		if err := m.n.Connect(m.ctx, pi); err != nil {
			m.n.log.Debug("mdns peer unreachable", "peer", pi.ID, "err", err)
		}
	}()
}

// PieceProtocol is archy's piece exchange (see package exchange).
const PieceProtocol = exchange.Protocol

// ErrNoPeers is returned when no reachable peer holds what a fetch needs.
var ErrNoPeers = exchange.ErrNoPeers

// pieces is what the node uses of its piece exchange.
type pieces interface {
	Fetch(ctx context.Context, root cid.Cid, lim dag.Limit) (exchange.Fetched, error)
	// Credit, Served: peers that sent files that proved good.
	Credit(sent map[peer.ID]int64)
	Served(p peer.ID) bool
	Progress(root cid.Cid) (done, total int64, ok bool)
	HeldWhole(ctx context.Context, root cid.Cid) (size uint64, ok bool)
	Stats() exchange.Stats
	Strikes(p peer.ID) int
	Close()
}

var _ pieces = (*exchange.Exchange)(nil)

// swarm is the node as its exchange sees it (exchange.Swarm).
type swarm struct{ n *Node }

var _ exchange.Swarm = swarm{}

func (s swarm) Connect(ctx context.Context, pi peer.AddrInfo) error { return s.n.Connect(ctx, pi) }
func (s swarm) ProvideAsync(c cid.Cid)                              { s.n.provideAsync(c) }
func (s swarm) Banned(p peer.ID) bool                               { return s.n.isBanned(p) }
func (s swarm) Ban(p peer.ID, why string)                           { s.n.ban(p, why) }

func (s swarm) Providers(ctx context.Context, c cid.Cid, max int) <-chan peer.AddrInfo {
	return s.n.dht.FindProvidersAsync(ctx, c, max)
}

// isBanned reports whether p is banned now, by its ID or by the address
// it is connected from.
func (n *Node) isBanned(p peer.ID) bool {
	if n.bans.has(p) {
		return true
	}
	for _, c := range n.host.Network().ConnsToPeer(p) {
		if n.bans.hasAddr(c.RemoteMultiaddr()) {
			return true
		}
	}
	return false
}

// provideAsync announces c in the background, on the node's lifetime.
func (n *Node) provideAsync(c cid.Cid) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := n.Provide(n.life, c); err != nil {
			n.log.Debug("provide failed", "cid", c, "err", err)
		}
	}()
}
