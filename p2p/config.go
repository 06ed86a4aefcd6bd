package p2p

import (
	"errors"
	"fmt"
	"time"

	"github.com/archy-node/archy/p2p/exchange"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"
)

// Config configures a Node. The zero value of every field but DataDir has a
// documented default, filled in by New.
type Config struct {
	// DataDir holds the identity key and the block store. Required.
	DataDir string
	// ListenAddrs are multiaddrs to listen on. Default: TCP and QUIC on
	// port 4001 of every interface.
	ListenAddrs []string
	// BootstrapPeers are multiaddrs with a /p2p/ part, dialled at start.
	// With PublicDHT and no peers given, the IPFS bootstrap peers are used.
	BootstrapPeers []string
	// PublicDHT joins the public IPFS (Amino) DHT instead of archy's own.
	PublicDHT bool
	// DHTPrefix is the protocol prefix of archy's own DHT. Default "/archy".
	DHTPrefix string
	// DHTClientOnly runs the DHT in client mode (the node answers no
	// queries). Default: server mode, so small home networks work.
	DHTClientOnly bool
	// MDNS finds peers on the local network.
	MDNS bool
	// DialTimeout bounds each connection attempt. Default 10s.
	DialTimeout time.Duration
	// RequestTimeout bounds each request to a peer (one DHT query, one
	// batch of blocks). Default 30s.
	RequestTimeout time.Duration
	// MinRate is the slowest a peer may send block bytes (bytes/second,
	// averaged over a request) before it is abandoned. Default 64 KiB/s.
	MinRate int64
	// MaxPeerBytes caps the bytes one peer may send per request. Default 64 MiB.
	MaxPeerBytes int64
	// UploadRate caps the bytes per second the piece exchange sends, over
	// all peers (a token bucket). Default: no cap.
	UploadRate int64
	// UploadSlots is how many askers the piece exchange sends pieces to
	// at once; others are answered busy and ask another holder, or this
	// node again about a second later. Default: exchange.Slots (from
	// UploadRate and MinRate: each asker gets at least 4·MinRate; 8 when
	// uploads are not capped).
	UploadSlots int
	// NoSuperSeed turns super-seeding off. By default a node, for files it
	// holds whole, sends each piece once and then points askers at the
	// connected peers it sent it to, unless they ask as a last resort: a
	// publisher's uplink carries about one copy of a release however many
	// nodes fetch it (flash-origin-copies in BENCHMARKS.md), and a node
	// that finished a fetch passes pieces on instead of serving them all.
	NoSuperSeed bool
	// MaxStrikes is how many bad blocks a peer may send before it is
	// disconnected and banned. Default 3.
	MaxStrikes int
	// BanTime is how long a banned peer is refused. Default 10m.
	BanTime time.Duration
	// Registerer receives the node's metrics. Default: none kept.
	Registerer prometheus.Registerer
	// ReprovideInterval is how often pinned content is announced again
	// in the DHT (provider records expire after 48 h). Default 12h; a
	// negative value turns reproviding off.
	ReprovideInterval time.Duration
	// GCInterval is how often blocks no pin needs are collected. Default
	// 1h; negative turns periodic collection off.
	GCInterval time.Duration
	// MaxProvidersPerPeer caps the DHT provider records one other peer
	// can make this node keep; its ADD_PROVIDERs past the cap are dropped
	// (refreshes of records it has are kept). Default 4096.
	MaxProvidersPerPeer int
	// MaxProviderRecords caps the provider records kept for all other
	// peers together. Default 262144 (about 50 MiB).
	MaxProviderRecords int
	// reprovideDelay is the wait before the first reprovide (1 min;
	// tests shorten it).
	reprovideDelay time.Duration
	// Host, when set, is the libp2p host the node runs on instead of one
	// of its own (the simulator and benchmarks pass go-libp2p's mocknet
	// hosts). ListenAddrs and the identity key in DataDir are then unused,
	// bans do not gate new connections (the host has no gater of ours),
	// and Close closes the host.
	Host host.Host
	// Bitswap also serves the node's blocks to IPFS clients (boxo
	// bitswap; archy's own exchange moves files without it). Off by
	// default: bitswap's decision engine wakes every 100 ms, which was
	// half of an idle node's CPU, and a simulator running hundreds of
	// nodes in one process saves its memory.
	Bitswap bool
	// Misbehave makes this node a malicious block server, for the
	// simulator's attacks and tests; never set it on a real node.
	Misbehave Misbehaviour
}

// Misbehaviour is how a simulated malicious peer serves pieces.
type Misbehaviour struct {
	Corrupt bool          // flip a byte of every piece sent
	Trickle time.Duration // pause before every 16 KiB of a piece sent
}

// Defaults.
const (
	DefaultDHTPrefix      = "/archy"
	DefaultDialTimeout    = 10 * time.Second
	DefaultRequestTimeout = 30 * time.Second
	DefaultMinRate        = 64 << 10
	DefaultMaxPeerBytes   = 64 << 20
	DefaultMaxStrikes     = 3
	DefaultBanTime        = 10 * time.Minute
	DefaultReprovide      = 12 * time.Hour
)

// Default caps on the DHT provider records kept for other peers.
const (
	DefaultProvidersPerPeer = 4096
	DefaultProviderRecords  = 1 << 18
)

// DefaultListenAddrs are used when Config.ListenAddrs is empty.
var DefaultListenAddrs = []string{
	"/ip4/0.0.0.0/tcp/4001",
	"/ip4/0.0.0.0/udp/4001/quic-v1",
}

// ErrConfig is wrapped by every error Validate returns.
var ErrConfig = errors.New("invalid p2p config")

func (c *Config) setDefaults() {
	if len(c.ListenAddrs) == 0 {
		c.ListenAddrs = DefaultListenAddrs
	}
	if c.DHTPrefix == "" {
		c.DHTPrefix = DefaultDHTPrefix
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.MinRate == 0 {
		c.MinRate = DefaultMinRate
	}
	if c.MaxStrikes == 0 {
		c.MaxStrikes = DefaultMaxStrikes
	}
	if c.BanTime == 0 {
		c.BanTime = DefaultBanTime
	}
	if c.ReprovideInterval == 0 {
		c.ReprovideInterval = DefaultReprovide
	}
	if c.GCInterval == 0 {
		c.GCInterval = time.Hour
	}
	if c.reprovideDelay == 0 {
		c.reprovideDelay = time.Minute
	}
	if c.MaxPeerBytes == 0 {
		c.MaxPeerBytes = DefaultMaxPeerBytes
	}
	if c.UploadSlots == 0 {
		c.UploadSlots = exchange.Slots(c.UploadRate, c.MinRate)
	}
	if c.MaxProvidersPerPeer == 0 {
		c.MaxProvidersPerPeer = DefaultProvidersPerPeer
	}
	if c.MaxProviderRecords == 0 {
		c.MaxProviderRecords = DefaultProviderRecords
	}
}

// Validate names the first bad field.
func (c *Config) Validate() error {
	if c.DataDir == "" {
		return fmt.Errorf("%w: DataDir is required", ErrConfig)
	}
	for _, a := range c.ListenAddrs {
		if _, err := ma.NewMultiaddr(a); err != nil {
			return fmt.Errorf("%w: ListenAddrs: %q: %v", ErrConfig, a, err)
		}
	}
	if _, err := parsePeers(c.BootstrapPeers); err != nil {
		return fmt.Errorf("%w: BootstrapPeers: %v", ErrConfig, err)
	}
	if c.DialTimeout < 0 || c.RequestTimeout < 0 {
		return fmt.Errorf("%w: timeouts must be positive", ErrConfig)
	}
	if c.MaxProvidersPerPeer < 0 || c.MaxProviderRecords < 0 {
		return fmt.Errorf("%w: MaxProvidersPerPeer and MaxProviderRecords must be positive", ErrConfig)
	}
	if c.MinRate < 0 || c.MaxPeerBytes < 0 || c.UploadRate < 0 || c.UploadSlots < 0 || c.MaxStrikes < 0 {
		return fmt.Errorf("%w: MinRate, MaxPeerBytes, UploadRate, UploadSlots and MaxStrikes must be positive", ErrConfig)
	}
	return nil
}

func parsePeers(addrs []string) ([]peer.AddrInfo, error) {
	var mas []ma.Multiaddr
	for _, a := range addrs {
		m, err := ma.NewMultiaddr(a)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", a, err)
		}
		mas = append(mas, m)
	}
	infos, err := peer.AddrInfosFromP2pAddrs(mas...)
	if err != nil {
		return nil, err
	}
	return infos, nil
}
