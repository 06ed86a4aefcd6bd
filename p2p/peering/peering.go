// Package peering lets archy nodes find each other through the Nostr
// relays they read, with no bootstrap list: each node announces its libp2p
// peer record (its addresses, signed by its peer key, nothing personal) as
// an addressable NIP-78 event signed by a node Nostr key, and dials the
// peers it reads there. The DHT then fills its routing table from those
// connections.
package peering

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/record"
	"github.com/nbd-wtf/go-nostr"

	"github.com/archy-node/archy/p2p/discovery"
)

// The announcement: an addressable NIP-78 event (one per node key, the
// newest replacing the older) whose content is the base64 of a sealed
// libp2p peer record envelope.
const (
	Kind = discovery.KindAppData
	D    = "archy-peer"
)

// Limits on what a read announcement may carry.
const (
	MaxContent = 4 << 10 // bytes of base64 content
	MaxAddrs   = 16      // addresses kept from one record
)

// Config configures a Peering. Zero durations take the documented defaults.
type Config struct {
	// Relays are the ws:// or wss:// relays to announce on and read.
	Relays []string
	// Key signs this node's announcements (a node key, not the owner's).
	Key *discovery.Key
	// Host is the libp2p host whose record is announced and which dials.
	Host host.Host
	// Allow, when set, is asked before a peer is dialled (bans).
	Allow func(peer.ID) bool
	// Interval is how often the record is announced again. Default 10m.
	Interval time.Duration
	// MaxAge ignores announcements older than this. Default 1h.
	MaxAge time.Duration
	// DialTimeout bounds one dial. Default 10s.
	DialTimeout time.Duration
	// RelayTimeout bounds a relay connection's handshake and each write.
	// Default 10s.
	RelayTimeout time.Duration
	// MaxDials caps dials under way at once. Default 8.
	MaxDials int
	// DialAttempts is how many times a peer read once is dialled before
	// waiting for its next announcement. Default 4, a second apart and
	// doubling: a loaded peer or a dial racing the other way is not a
	// reason to wait the ten minutes until it announces again.
	DialAttempts int
}

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.Interval, 10*time.Minute)
	def(&c.MaxAge, time.Hour)
	def(&c.DialTimeout, 10*time.Second)
	def(&c.RelayTimeout, 10*time.Second)
	if c.MaxDials == 0 {
		c.MaxDials = 8
	}
	if c.DialAttempts == 0 {
		c.DialAttempts = 4
	}
}

// Peering announces this node on its relays and dials the peers it reads.
type Peering struct {
	cfg  Config
	log  *slog.Logger
	sem  chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex
	seen map[peer.ID]uint64 // peer record sequence last dialled
	st   Stats
	// last is the created_at of the newest announcement made: a relay
	// keeps one per key and refuses a second in the same second, so a
	// new one (addresses changed) is dated at least a second later.
	last int64
}

// Stats counts what a Peering did.
type Stats struct {
	Announced int // announcements a relay accepted
	Read      int // valid announcements of other peers read
	Refused   int // announcements refused (bad signature, record, age)
	Dialled   int // dials that connected
	Failed    int // dials that failed
}

// New checks cfg and returns a Peering; Run starts it.
func New(cfg Config, log *slog.Logger) (*Peering, error) {
	cfg.setDefaults()
	if cfg.Key == nil || cfg.Host == nil {
		return nil, errors.New("peering config: Key and Host are required")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Peering{cfg: cfg, log: log, sem: make(chan struct{}, cfg.MaxDials), seen: map[peer.ID]uint64{}}, nil
}

// Stats returns the counts so far.
func (p *Peering) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.st
}

// Run follows every relay until ctx ends, reconnecting with a backoff.
func (p *Peering) Run(ctx context.Context) error {
	for _, url := range p.cfg.Relays {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.follow(ctx, url)
		}()
	}
	<-ctx.Done()
	p.wg.Wait()
	return nil
}

func (p *Peering) follow(ctx context.Context, url string) {
	backoff := time.Second
	for ctx.Err() == nil {
		start := time.Now()
		err := p.session(ctx, url)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > time.Minute {
			backoff = time.Second
		}
		p.log.Debug("peering: relay session ended", "relay", url, "err", err, "retry", backoff)
		t := time.NewTimer(backoff + rand.N(backoff/2+1))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, 5*time.Minute)
	}
}

// session announces on one relay connection and reads announcements until
// the connection ends.
func (p *Peering) session(ctx context.Context, url string) error {
	dctx, cancel := context.WithTimeout(ctx, p.cfg.RelayTimeout)
	c, err := discovery.Dial(dctx, url, p.cfg.RelayTimeout)
	cancel()
	if err != nil {
		return err
	}
	defer c.Close()
	since := nostr.Timestamp(time.Now().Add(-p.cfg.MaxAge).Unix())
	sub, err := c.Subscribe(ctx, nostr.Filters{{Kinds: []int{Kind}, Tags: nostr.TagMap{"d": {D}}, Since: &since, Limit: 500}})
	if err != nil {
		return err
	}
	defer sub.Unsub(context.WithoutCancel(ctx))
	// A new address is announced at once, so peers never keep dialling
	// one the node no longer has.
	addrs, err := p.cfg.Host.EventBus().Subscribe(new(event.EvtLocalAddressesUpdated))
	if err != nil {
		return fmt.Errorf("watch local addresses: %w", err)
	}
	defer addrs.Close()
	// The announcement is retried every few seconds until a relay takes
	// it (a host may have no address yet just after it starts), then
	// renewed every Interval.
	const retry = 2 * time.Second
	next := retry
	if err := p.announce(ctx, c); err != nil {
		p.log.Debug("peering: announce", "relay", url, "err", err)
	} else {
		next = p.cfg.Interval
	}
	tick := time.NewTimer(next)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-c.Done():
			return c.Err()
		case <-addrs.Out():
			tick.Reset(0)
		case <-tick.C:
			next = p.cfg.Interval
			if err := p.announce(ctx, c); err != nil {
				if !errors.Is(err, errNoAddrs) {
					p.log.Warn("peering: announce", "relay", url, "err", err)
				}
				next = retry
			}
			tick.Reset(next)
		case ev, ok := <-sub.Events:
			if !ok {
				return errors.New("subscription ended")
			}
			p.handle(ctx, url, ev)
		}
	}
}

// Event returns this node's announcement, signed by key, at now.
func Event(h host.Host, key *discovery.Key, now time.Time) (nostr.Event, error) {
	priv := h.Peerstore().PrivKey(h.ID())
	if priv == nil {
		return nostr.Event{}, fmt.Errorf("announce peer %s: no private key in the peerstore", h.ID())
	}
	addrs := h.Addrs()
	if len(addrs) == 0 {
		return nostr.Event{}, fmt.Errorf("announce peer %s: %w", h.ID(), errNoAddrs)
	}
	if len(addrs) > MaxAddrs {
		addrs = addrs[:MaxAddrs]
	}
	rec := peer.PeerRecordFromAddrInfo(peer.AddrInfo{ID: h.ID(), Addrs: addrs})
	rec.Seq = uint64(now.UnixNano())
	env, err := record.Seal(rec, priv)
	if err != nil {
		return nostr.Event{}, fmt.Errorf("seal peer record: %w", err)
	}
	b, err := env.Marshal()
	if err != nil {
		return nostr.Event{}, fmt.Errorf("encode peer record: %w", err)
	}
	ev := nostr.Event{
		Kind:      Kind,
		CreatedAt: nostr.Timestamp(now.Unix()),
		Tags:      nostr.Tags{{"d", D}},
		Content:   base64.StdEncoding.EncodeToString(b),
	}
	if err := ev.Sign(key.SecretHex()); err != nil {
		return nostr.Event{}, fmt.Errorf("sign peer announcement: %w", err)
	}
	return ev, nil
}

func (p *Peering) announce(ctx context.Context, c *discovery.Client) error {
	now := time.Now()
	p.mu.Lock()
	if now.Unix() <= p.last {
		now = time.Unix(p.last+1, 0)
	}
	p.last = now.Unix()
	p.mu.Unlock()
	ev, err := Event(p.cfg.Host, p.cfg.Key, now)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.RelayTimeout)
	defer cancel()
	if err := c.Publish(ctx, ev); err != nil {
		return err
	}
	p.mu.Lock()
	p.st.Announced++
	p.mu.Unlock()
	return nil
}

// errNoAddrs: the host has no address to announce yet.
var errNoAddrs = errors.New("no listen address yet")

// ErrBadAnnouncement is wrapped by every refusal of Parse.
var ErrBadAnnouncement = errors.New("bad peer announcement")

// Parse checks an announcement read from a relay (its Nostr signature,
// kind and d tag, its age against now and maxAge, the peer record's
// signature by the peer's own key) and returns the peer's ID, addresses
// and record sequence.
func Parse(ev *nostr.Event, now time.Time, maxAge time.Duration) (peer.AddrInfo, uint64, error) {
	bad := func(format string, a ...any) (peer.AddrInfo, uint64, error) {
		return peer.AddrInfo{}, 0, fmt.Errorf("%w from %.16s: %s", ErrBadAnnouncement, ev.PubKey, fmt.Sprintf(format, a...))
	}
	if ev.Kind != Kind || ev.Tags.GetD() != D {
		return bad("kind %d, d %q: not a peer announcement", ev.Kind, ev.Tags.GetD())
	}
	if ok, err := ev.CheckSignature(); !ok || err != nil {
		return bad("event signature does not hold")
	}
	at := ev.CreatedAt.Time()
	if at.Before(now.Add(-maxAge)) || at.After(now.Add(10*time.Minute)) {
		return bad("created_at %s is outside the last %s", at.UTC().Format(time.RFC3339), maxAge)
	}
	if len(ev.Content) > MaxContent {
		return bad("content of %d bytes (at most %d)", len(ev.Content), MaxContent)
	}
	b, err := base64.StdEncoding.DecodeString(ev.Content)
	if err != nil {
		return bad("content is not base64")
	}
	env, r, err := record.ConsumeEnvelope(b, peer.PeerRecordEnvelopeDomain)
	if err != nil {
		return bad("peer record: %v", err)
	}
	rec, ok := r.(*peer.PeerRecord)
	if !ok {
		return bad("not a peer record")
	}
	// The envelope's key signed the record; it must be the peer's own.
	signer, err := peer.IDFromPublicKey(env.PublicKey)
	if err != nil || signer != rec.PeerID {
		return bad("record of %s signed by another key", rec.PeerID)
	}
	addrs := rec.Addrs
	if len(addrs) > MaxAddrs {
		addrs = addrs[:MaxAddrs]
	}
	if len(addrs) == 0 {
		return bad("record of %s has no addresses", rec.PeerID)
	}
	return peer.AddrInfo{ID: rec.PeerID, Addrs: addrs}, rec.Seq, nil
}

func (p *Peering) handle(ctx context.Context, relay string, ev *nostr.Event) {
	ai, seq, err := Parse(ev, time.Now(), p.cfg.MaxAge)
	if err != nil {
		p.mu.Lock()
		p.st.Refused++
		p.mu.Unlock()
		p.log.Debug("peering: refused", "relay", relay, "err", err)
		return
	}
	h := p.cfg.Host
	if ai.ID == h.ID() {
		return
	}
	p.mu.Lock()
	p.st.Read++
	stale := p.seen[ai.ID] >= seq
	if !stale {
		p.seen[ai.ID] = seq
	}
	p.mu.Unlock()
	if stale || h.Network().Connectedness(ai.ID) == network.Connected {
		return
	}
	if p.cfg.Allow != nil && !p.cfg.Allow(ai.ID) {
		return
	}
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return
	}
	p.wg.Add(1)
	go func() {
		defer func() { <-p.sem; p.wg.Done() }()
		h.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.TempAddrTTL)
		err := p.dial(ctx, ai)
		p.mu.Lock()
		if err != nil {
			p.st.Failed++
			// Let a newer record (or this one, read again) retry.
			delete(p.seen, ai.ID)
		} else {
			p.st.Dialled++
		}
		p.mu.Unlock()
		if err != nil {
			p.log.Debug("peering: dial", "peer", ai.ID, "err", err)
			return
		}
		p.log.Info("peering: connected to a peer read on a relay", "peer", ai.ID, "relay", relay)
	}()
}

// dial connects to ai, trying DialAttempts times with a doubling pause.
func (p *Peering) dial(ctx context.Context, ai peer.AddrInfo) error {
	h := p.cfg.Host
	wait := time.Second
	var err error
	for i := 0; i < p.cfg.DialAttempts; i++ {
		if i > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return err
			case <-t.C:
			}
			wait *= 2
			if h.Network().Connectedness(ai.ID) == network.Connected {
				return nil // it dialled us meanwhile
			}
		}
		dctx, cancel := context.WithTimeout(ctx, p.cfg.DialTimeout)
		err = h.Connect(dctx, ai)
		cancel()
		if err == nil || ctx.Err() != nil {
			return err
		}
	}
	return err
}
