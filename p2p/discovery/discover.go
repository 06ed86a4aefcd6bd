package discovery

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"golang.org/x/sync/errgroup"

	"github.com/archy-node/archy/internal/atomicfile"
)

// Config configures a Discoverer. Zero durations take the documented defaults.
type Config struct {
	// Relays are the websocket URLs to subscribe to.
	Relays []string
	// CursorPath persists, per relay, the created_at to resume from.
	CursorPath string
	// ConnectTimeout bounds one connection attempt (default 10s).
	ConnectTimeout time.Duration
	// MinBackoff and MaxBackoff bound reconnect delays (defaults 500ms, 30s).
	MinBackoff, MaxBackoff time.Duration
	// SeenCapacity bounds the event ids remembered for de-duplication
	// across relays (default 65536).
	SeenCapacity int
	// Now is the clock (default time.Now).
	Now func() time.Time
	// OnRelease, if set, is called with every release that changed the
	// store (the trust engine and marketplace hook in here).
	OnRelease func(*Release)
}

// Validate names the first bad field.
func (c *Config) Validate() error {
	if len(c.Relays) == 0 {
		return errors.New("discovery config: Relays: at least one relay is required")
	}
	for i, r := range c.Relays {
		if !nostr.IsValidRelayURL(r) {
			return fmt.Errorf("discovery config: Relays[%d]: %q is not a ws:// or wss:// URL", i, r)
		}
	}
	return nil
}

func (c *Config) setDefaults() {
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = 10 * time.Second
	}
	if c.MinBackoff == 0 {
		c.MinBackoff = 500 * time.Millisecond
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = 30 * time.Second
	}
	if c.SeenCapacity == 0 {
		c.SeenCapacity = 1 << 16
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Stats counts what the discoverer did, for tests and metrics.
type Stats struct {
	Received, Duplicate, Accepted, Deleted int64
	// Handled counts events fully dealt with (stored, refused or dropped).
	Handled int64
	Dropped map[string]int64 // by reason
}

// Discoverer subscribes to relays and feeds verified releases to a Store.
type Discoverer struct {
	cfg   Config
	store *Store
	log   *slog.Logger

	mu      sync.Mutex
	seen    *seenSet
	cursors map[string]int64
	dirty   bool
	stats   Stats
}

// New returns a Discoverer; Run starts it.
func New(cfg Config, store *Store, log *slog.Logger) (*Discoverer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	d := &Discoverer{cfg: cfg, store: store, log: log, seen: newSeenSet(cfg.SeenCapacity),
		cursors: map[string]int64{}, stats: Stats{Dropped: map[string]int64{}}}
	if cfg.CursorPath != "" {
		if data, err := os.ReadFile(cfg.CursorPath); err == nil {
			if err := json.Unmarshal(data, &d.cursors); err != nil {
				log.Warn("discovery cursors unreadable; reading relays from the start", "path", cfg.CursorPath)
				d.cursors = map[string]int64{}
			}
		}
	}
	return d, nil
}

// Stats returns a copy of the counters.
func (d *Discoverer) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.stats
	s.Dropped = make(map[string]int64, len(d.stats.Dropped))
	for k, v := range d.stats.Dropped {
		s.Dropped[k] = v
	}
	return s
}

// Run subscribes to every relay until ctx ends, reconnecting with backoff.
func (d *Discoverer) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	for _, url := range d.cfg.Relays {
		g.Go(func() error { d.follow(ctx, url); return nil })
	}
	g.Go(func() error {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				d.saveCursors()
				return nil
			case <-t.C:
				d.saveCursors()
			}
		}
	})
	return g.Wait()
}

func (d *Discoverer) follow(ctx context.Context, url string) {
	backoff := d.cfg.MinBackoff
	for ctx.Err() == nil {
		started := time.Now()
		err := d.subscribeOnce(ctx, url)
		if ctx.Err() != nil {
			return
		}
		if time.Since(started) > d.cfg.MaxBackoff {
			backoff = d.cfg.MinBackoff // it was up for a while: start over
		}
		d.log.Info("relay subscription ended; reconnecting", "relay", url, "err", err, "in", backoff)
		wait := backoff + time.Duration(rand.Int64N(int64(backoff)/4+1))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		backoff = min(backoff*2, d.cfg.MaxBackoff)
	}
}

func (d *Discoverer) subscribeOnce(ctx context.Context, url string) error {
	cctx, cancel := context.WithTimeout(ctx, d.cfg.ConnectTimeout)
	c, err := Dial(cctx, url, d.cfg.ConnectTimeout)
	cancel()
	if err != nil {
		return err
	}
	defer c.Close()
	d.mu.Lock()
	since := nostr.Timestamp(d.cursors[url])
	d.mu.Unlock()
	f := nostr.Filter{Kinds: []int{KindAppData, nostr.KindDeletion}, Tags: nostr.TagMap{"t": {Topic}}}
	if since > 0 {
		// Re-read a margin: events may be stamped up to MaxFutureSkew
		// ahead, and duplicates are dropped cheaply.
		s := since - nostr.Timestamp(MaxFutureSkew/time.Second)
		f.Since = &s
	}
	sub, err := c.Subscribe(ctx, nostr.Filters{f})
	if err != nil {
		return err
	}
	defer sub.Unsub(context.WithoutCancel(ctx))
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case reason := <-sub.Closed:
			return fmt.Errorf("relay %s closed the subscription: %.200q", url, reason)
		case ev, ok := <-sub.Events:
			if !ok {
				return fmt.Errorf("relay %s: connection ended: %v", url, c.Err())
			}
			d.handle(url, ev)
		}
	}
}

// handle verifies one event and applies it. Cheap checks come first so a
// flood of junk costs little; nothing from the event reaches the log.
func (d *Discoverer) handle(relay string, ev *nostr.Event) {
	defer func() {
		d.mu.Lock()
		d.stats.Handled++
		d.mu.Unlock()
	}()
	sigOK := false
	d.mu.Lock()
	d.stats.Received++
	var id [32]byte
	if n, err := hex.Decode(id[:], []byte(ev.ID)); err != nil || n != 32 {
		d.mu.Unlock()
		d.drop(relay, ErrSignature)
		return
	}
	if d.seen.has(id) {
		d.stats.Duplicate++
		d.mu.Unlock()
		return
	}
	d.mu.Unlock()
	// Remember an id only once its signature holds, so a forged copy
	// cannot shadow the real event arriving from another relay.
	defer func() {
		if sigOK {
			d.mu.Lock()
			d.seen.add(id)
			d.mu.Unlock()
		}
	}()

	now := d.cfg.Now()
	if ev.Kind == nostr.KindDeletion {
		sigOK = d.handleDeletion(relay, ev, now)
		return
	}
	r, err := Verify(ev, now)
	sigOK = !errors.Is(err, ErrSignature)
	if err != nil {
		d.drop(relay, err)
		return
	}
	changed, err := d.store.Put(r)
	if err != nil {
		d.log.Error("store discovered release", "app", r.AppID, "err", err)
		return
	}
	d.advance(relay, ev.CreatedAt, now)
	d.mu.Lock()
	if changed {
		d.stats.Accepted++
	}
	d.mu.Unlock()
	if changed {
		d.log.Info("discovered release", "app", r.AppID, "version", r.Version, "cid", r.CID, "publisher", r.Publisher, "relay", relay)
		if d.cfg.OnRelease != nil {
			d.cfg.OnRelease(r)
		}
	}
}

// handleDeletion applies a NIP-09 withdrawal; it reports whether the
// event's signature held.
func (d *Discoverer) handleDeletion(relay string, ev *nostr.Event, now time.Time) bool {
	if !ev.CheckID() {
		d.drop(relay, ErrSignature)
		return false
	}
	if ok, _ := ev.CheckSignature(); !ok {
		d.drop(relay, ErrSignature)
		return false
	}
	if ev.CreatedAt.Time().After(now.Add(MaxFutureSkew)) {
		d.drop(relay, ErrFuture)
		return true
	}
	changed, err := d.store.Delete(ev)
	if err != nil {
		d.log.Error("apply withdrawal", "err", err)
		return true
	}
	d.advance(relay, ev.CreatedAt, now)
	if changed {
		d.mu.Lock()
		d.stats.Deleted++
		d.mu.Unlock()
		d.log.Info("release withdrawn", "author", ev.PubKey, "relay", relay)
	}
	return true
}

func (d *Discoverer) drop(relay string, err error) {
	reason := err.Error()
	for _, e := range []error{ErrSignature, ErrFuture, ErrNotArchy, ErrTags, ErrBinding, ErrEnvelope, ErrCID, ErrManifest} {
		if errors.Is(err, e) {
			reason = e.Error()
		}
	}
	d.mu.Lock()
	d.stats.Dropped[reason]++
	d.mu.Unlock()
	d.log.Debug("dropped event", "relay", relay, "reason", reason)
}

// advance moves the relay's cursor, never past now: a future-dated event
// must not make the node skip what is published meanwhile.
func (d *Discoverer) advance(relay string, at nostr.Timestamp, now time.Time) {
	t := min(int64(at), now.Unix())
	d.mu.Lock()
	if t > d.cursors[relay] {
		d.cursors[relay] = t
		d.dirty = true
	}
	d.mu.Unlock()
}

// saveCursors makes the store durable, then the cursors taken before it:
// a saved cursor is never ahead of what the store holds after a power cut
// (and a reconnect re-reads MaxFutureSkew before it besides).
func (d *Discoverer) saveCursors() {
	d.mu.Lock()
	if !d.dirty || d.cfg.CursorPath == "" {
		d.mu.Unlock()
		return
	}
	data, err := json.Marshal(d.cursors)
	d.dirty = false
	d.mu.Unlock()
	if err == nil {
		err = d.store.Sync()
	}
	if err == nil {
		err = atomicfile.Write(d.cfg.CursorPath, data, 0o600)
	}
	if err != nil {
		d.mu.Lock()
		d.dirty = true // try again next time
		d.mu.Unlock()
		d.log.Warn("save discovery cursors", "err", err)
	}
}

// seenSet remembers the last n event ids (a ring plus a map), so memory
// stays bounded whatever a relay sends. Both grow as ids arrive instead of
// being sized for n up front: at the default capacity that was 8 MiB of
// heap on every idle node that had seen a handful of events.
type seenSet struct {
	ring [][32]byte
	n    int
	next int
	set  map[[32]byte]struct{}
}

func newSeenSet(n int) *seenSet {
	return &seenSet{n: n, set: make(map[[32]byte]struct{})}
}

func (s *seenSet) has(id [32]byte) bool {
	_, ok := s.set[id]
	return ok
}

// add records id and reports whether it was new.
func (s *seenSet) add(id [32]byte) bool {
	if _, ok := s.set[id]; ok {
		return false
	}
	if len(s.ring) < s.n {
		if len(s.ring) == cap(s.ring) { // grow, never past n
			s.ring = append(make([][32]byte, 0, min(max(2*cap(s.ring), 64), s.n)), s.ring...)
		}
		s.ring = append(s.ring, id)
	} else {
		delete(s.set, s.ring[s.next])
		s.ring[s.next] = id
		s.next = (s.next + 1) % len(s.ring)
	}
	s.set[id] = struct{}{}
	return true
}
