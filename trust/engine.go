package trust

import (
	"context"
	"sync"
	"time"

	"github.com/nbd-wtf/go-nostr"
)

// Engine is what the node holds: a Store, the Scorer that follows it, and
// a lock, so discovery, the API and the crawler can share them.
type Engine struct {
	mu sync.Mutex
	st *Store
	s  *Scorer
}

// NewEngine scores st's graph from st.Owner ("" for none).
func NewEngine(st *Store, p Params) *Engine {
	return &Engine{st: st, s: NewScorer(st.Graph, st.Owner, p)}
}

// Ingest adds one event from a relay (see the package's Ingest).
func (e *Engine) Ingest(ev *nostr.Event, now time.Time) (bool, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return Ingest(e.st.Graph, ev, now)
}

// Bind records a binding discovery verified, and the release's app id.
func (e *Engine) Bind(appID, did, key string, at time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.st.Graph.Bind(did, key, at.Unix())
	if appID != "" {
		e.st.Graph.AddRelease(appID, did)
	}
}

// Decide brings the scores up to date and chooses among cands for appID.
func (e *Engine) Decide(pol Policy, appID string, cands []Candidate) Decision {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.s.Rescore()
	return e.s.Decide(pol, appID, cands)
}

// Explain brings the scores up to date and explains name.
func (e *Engine) Explain(name string) Explanation {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.s.Rescore()
	return e.s.Explain(name)
}

// Score is name's score, up to date.
func (e *Engine) Score(name string) float64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.s.Rescore()
	return e.s.Score(name)
}

// Crawl refreshes the graph from c's relays, from the owner. It holds the
// lock while it runs: decisions wait for it (bounded by c's caps and
// timeouts).
func (e *Engine) Crawl(ctx context.Context, c *Crawler) (CrawlStats, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.st.Owner == "" {
		return CrawlStats{}, nil
	}
	return c.Crawl(ctx, e.st, []string{e.st.Owner})
}

// Save writes the graph to its file.
func (e *Engine) Save() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.st.Save()
}
