package trust

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/archy-node/archy/p2p/discovery"
)

// Crawler gathers the trust graph from relays: a bounded breadth-first
// crawl from the owner's roots over follows and endorsements.
type Crawler struct {
	Relays []string
	// Hops is how far from the roots authors are read (default 2: the
	// roots, their follows, and those follows' follows).
	Hops int
	// MaxAuthors bounds the authors read per crawl (default 20,000).
	MaxAuthors int
	// PerAuthor bounds the events kept per author per crawl (default 200).
	PerAuthor int
	// PerRelay bounds the events read from one relay per crawl (default
	// 200,000).
	PerRelay int
	// Batch is how many authors one REQ names (default 50); a batch that
	// fills the relay's limit is split until it does not, down to one
	// author, whose events are then cut at the limit.
	Batch int
	// Limit is the limit sent in each REQ (default 500, the embedded
	// relay's most).
	Limit int
	// Timeout bounds each connection and query (default 10 s).
	Timeout time.Duration
	Logger  *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// CrawlStats says what a crawl did.
type CrawlStats struct {
	Authors  int `json:"authors"`
	Events   int `json:"events"`
	Changed  int `json:"changed"`
	Rejected int `json:"rejected"`
	Capped   int `json:"capped"`
	Failed   int `json:"failed_queries"`
}

func (c *Crawler) defaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.Hops, 2)
	def(&c.MaxAuthors, 20000)
	def(&c.PerAuthor, 200)
	def(&c.PerRelay, 200000)
	def(&c.Batch, 50)
	def(&c.Limit, 500)
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// crawlKinds are the event kinds the crawl reads.
var crawlKinds = []int{KindFollows, KindLabel, KindReport, discovery.KindAppData}

// refreshSkew is how far before an author's last crawl a refresh asks
// from, for events that reached relays late.
const refreshSkew = time.Hour

// Crawl reads the events of the roots and of the keys they follow or
// endorse, Hops deep, into st's graph. An author crawled before is asked
// only for events since its last crawl (less refreshSkew): a refresh is
// incremental. Relays that fail are logged and skipped.
func (c *Crawler) Crawl(ctx context.Context, st *Store, roots []string) (CrawlStats, error) {
	c.defaults()
	var stats CrawlStats
	conns := make([]*discovery.Client, 0, len(c.Relays))
	urls := make([]string, 0, len(c.Relays))
	for _, u := range c.Relays {
		cctx, cancel := context.WithTimeout(ctx, c.Timeout)
		r, err := discovery.Dial(cctx, u, c.Timeout)
		cancel()
		if err != nil {
			c.Logger.Warn("trust crawl: connect", "relay", u, "err", err)
			continue
		}
		conns = append(conns, r)
		urls = append(urls, u)
	}
	defer func() {
		for _, r := range conns {
			r.Close()
		}
	}()
	if len(conns) == 0 {
		return stats, fmt.Errorf("trust crawl: no relay of %d reachable", len(c.Relays))
	}
	g := st.Graph
	perRelay := make([]int, len(conns))
	perAuthor := map[string]int{}
	visited := map[string]bool{}
	front := slices.Clone(roots)
	start := c.Now().Unix()
	for hop := 0; hop <= c.Hops && len(front) > 0; hop++ {
		slices.Sort(front)
		front = slices.Compact(front)
		var authors []string
		for _, a := range front {
			if !visited[a] && nostr.IsValidPublicKey(a) && len(visited) < c.MaxAuthors {
				visited[a] = true
				authors = append(authors, a)
			}
		}
		stats.Authors += len(authors)
		failed := stats.Failed
		// Authors crawled before are refreshed from their last crawl.
		var fresh, old []string
		for _, a := range authors {
			if _, ok := st.Crawled[a]; ok {
				old = append(old, a)
			} else {
				fresh = append(fresh, a)
			}
		}
		for ri, r := range conns {
			for _, group := range [][]string{fresh, old} {
				for i := 0; i < len(group); i += c.Batch {
					batch := group[i:min(i+c.Batch, len(group))]
					// The batch is asked from its least recently crawled author on.
					var since *nostr.Timestamp
					for _, a := range batch {
						at, ok := st.Crawled[a]
						if !ok {
							since = nil
							break
						}
						ts := nostr.Timestamp(at - int64(refreshSkew/time.Second))
						if since == nil || ts < *since {
							since = &ts
						}
					}
					if err := c.query(ctx, r, urls[ri], batch, since, &perRelay[ri], perAuthor, g, &stats); err != nil {
						return stats, err
					}
				}
			}
		}
		// Only a hop every query of which succeeded counts as crawled: a
		// refresh must not skip what a failed query missed.
		if stats.Failed == failed {
			for _, a := range authors {
				st.Crawled[a] = start
			}
		}
		var next []string
		for _, a := range authors {
			next = append(next, g.Out(a)...)
		}
		front = next[:0:0]
		for _, n := range next {
			if KindOf(n) == KindKey && !visited[n] {
				front = append(front, n)
			}
		}
	}
	return stats, nil
}

// query reads batch's events from r, splitting the batch while a reply
// fills the limit.
func (c *Crawler) query(ctx context.Context, r *discovery.Client, url string, batch []string, since *nostr.Timestamp, relayCount *int, perAuthor map[string]int, g *Graph, stats *CrawlStats) error {
	if len(batch) == 0 || *relayCount >= c.PerRelay {
		if len(batch) > 0 {
			stats.Capped++
		}
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	evs, err := c.fetch(ctx, r, nostr.Filter{Authors: batch, Kinds: crawlKinds, Since: since, Limit: c.Limit})
	if err != nil {
		stats.Failed++
		c.Logger.Warn("trust crawl: query", "relay", url, "authors", len(batch), "err", err)
		return nil
	}
	if len(evs) >= c.Limit && len(batch) > 1 {
		h := len(batch) / 2
		if err := c.query(ctx, r, url, batch[:h], since, relayCount, perAuthor, g, stats); err != nil {
			return err
		}
		return c.query(ctx, r, url, batch[h:], since, relayCount, perAuthor, g, stats)
	}
	if len(evs) >= c.Limit {
		stats.Capped++
	}
	now := c.Now()
	for _, ev := range evs {
		if *relayCount >= c.PerRelay {
			stats.Capped++
			break
		}
		*relayCount++
		stats.Events++
		if !slices.Contains(batch, ev.PubKey) {
			stats.Rejected++ // the relay answered with someone else's event
			continue
		}
		if perAuthor[ev.PubKey] >= c.PerAuthor {
			stats.Capped++
			continue
		}
		perAuthor[ev.PubKey]++
		changed, err := Ingest(g, ev, now)
		if err != nil {
			stats.Rejected++
			c.Logger.Debug("trust crawl: event dropped", "relay", url, "err", err)
			continue
		}
		if changed {
			stats.Changed++
		}
	}
	return nil
}

// fetch returns the stored events matching f, up to EOSE. (archy's own
// client: go-nostr v0.38.2's Relay.Close races with its connection
// goroutine, and its QuerySync leaves a goroutine spinning per call.)
func (c *Crawler) fetch(ctx context.Context, r *discovery.Client, f nostr.Filter) ([]*nostr.Event, error) {
	qctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	sub, err := r.Subscribe(qctx, nostr.Filters{f})
	if err != nil {
		return nil, err
	}
	defer sub.Unsub(qctx)
	var evs []*nostr.Event
	add := func(ev *nostr.Event) {
		if len(evs) < f.Limit {
			evs = append(evs, ev)
		}
	}
	for {
		select {
		case ev, ok := <-sub.Events:
			if !ok {
				return evs, errors.New("connection ended before the relay's EOSE")
			}
			add(ev)
		case <-sub.EOSE:
			// Stored events were queued before the EOSE: take them all.
			for {
				select {
				case ev, ok := <-sub.Events:
					if !ok {
						return evs, nil
					}
					add(ev)
				default:
					return evs, nil
				}
			}
		case reason := <-sub.Closed:
			return evs, fmt.Errorf("relay closed the query: %s", reason)
		case <-qctx.Done():
			return evs, fmt.Errorf("query: %w", qctx.Err())
		}
	}
}
