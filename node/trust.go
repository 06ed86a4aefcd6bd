package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/Masterminds/semver/v3"
	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip19"

	"github.com/archy-node/archy/internal/atomicfile"
	"github.com/archy-node/archy/orchestrator"
	"github.com/archy-node/archy/p2p/discovery"
	"github.com/archy-node/archy/registry"
	"github.com/archy-node/archy/trust"
)

// TrustConfig is the owner's trust root and install policy (issue 10).
// Zero values take the defaults.
type TrustConfig struct {
	// Owner is the owner's Nostr public key (npub or hex): the root the
	// trust graph is crawled and scored from. Without it the node trusts
	// only pinned publishers (installed apps), the Allow list and the
	// publishers the followed catalogs list, and says so.
	Owner string
	// AutoInstall installs, on its own, the release of an app id whose
	// publisher the trust decision selects (default off: the owner
	// installs).
	AutoInstall bool
	// AutoUpdate updates running apps to a higher version from their
	// pinned publisher (health-gated, rolled back on failure by the
	// orchestrator; an app the owner stopped is left alone). Default
	// off: updates change running apps, so the owner opts in.
	AutoUpdate bool
	// Floor and Margin: see trust.Policy (defaults 1e-5 and 3).
	Floor  float64
	Margin float64
	// Allow and Deny are publisher DIDs the owner trusts or refuses.
	Allow []string
	Deny  []string
	// Refresh is how often the graph is crawled again, incrementally
	// (default 30 min); CrawlTimeout bounds one crawl (default 5 min).
	Refresh      time.Duration
	CrawlTimeout time.Duration
	// Check is how often discovered releases are fed to the graph, the
	// decisions recomputed and the auto policies applied (default 1 min;
	// installs, uninstalls and crawls trigger one too).
	Check time.Duration
}

func (c *TrustConfig) setDefaults() {
	if c.Refresh <= 0 {
		c.Refresh = 30 * time.Minute
	}
	if c.CrawlTimeout <= 0 {
		c.CrawlTimeout = 5 * time.Minute
	}
	if c.Check <= 0 {
		c.Check = time.Minute
	}
}

// validate names the first bad trust setting.
func (c *TrustConfig) validate() error {
	if _, err := ownerKey(c.Owner); err != nil {
		return err
	}
	for _, l := range []struct {
		field string
		dids  []string
	}{{"Allow", c.Allow}, {"Deny", c.Deny}} {
		for _, d := range l.dids {
			if !strings.HasPrefix(d, "did:") {
				return fmt.Errorf("node config: Trust.%s: %q is not a DID", l.field, d)
			}
		}
	}
	if c.Floor < 0 || c.Margin < 0 {
		return fmt.Errorf("node config: Trust: floor %g and margin %g must not be negative", c.Floor, c.Margin)
	}
	return nil
}

// ownerKey turns an npub or hex key into hex ("" for none).
func ownerKey(s string) (string, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return "", nil
	case strings.HasPrefix(s, "npub1"):
		_, v, err := nip19.Decode(s)
		if pk, ok := v.(string); err == nil && ok && nostr.IsValidPublicKey(pk) {
			return pk, nil
		}
		return "", fmt.Errorf("node config: Trust.Owner %q: not a valid npub", s)
	case nostr.IsValidPublicKey(strings.ToLower(s)):
		return strings.ToLower(s), nil
	}
	return "", fmt.Errorf("node config: Trust.Owner %q: want an npub or a 64-hex-digit Nostr public key", s)
}

// Trust decisions a discovered row carries for its publisher.
const (
	// TrustSelected: the decision chose this publisher for the app id.
	TrustSelected = "selected"
	// TrustPinned: the app id is installed from this publisher; only its
	// releases (or a rotation's successor's) update it.
	TrustPinned = "pinned"
	// TrustAbstain: the node chose no publisher for the app id; the owner
	// chooses.
	TrustAbstain = "abstain"
	// TrustRefused: another publisher is chosen or pinned for the app id,
	// or the owner denied this one: the node will not install it on its
	// own, and an install over the pinned app is refused as a takeover.
	TrustRefused = "refused"
)

// TrustView is a publisher's standing for one app id, as discovered rows
// carry it.
type TrustView struct {
	Score    float64  `json:"score"`
	Decision string   `json:"decision"`
	Reasons  []string `json:"reasons"`
}

// TrustStatus is the trust part of GET /api/v1/status.
type TrustStatus struct {
	Owner string `json:"owner,omitempty"`
	// Note says what the node trusts without an owner key.
	Note        string    `json:"note,omitempty"`
	AutoInstall bool      `json:"auto_install"`
	AutoUpdate  bool      `json:"auto_update"`
	Nodes       int       `json:"graph_nodes"`
	Edges       int       `json:"graph_edges"`
	LastCrawl   time.Time `json:"last_crawl,omitzero"`
	CrawlError  string    `json:"crawl_error,omitempty"`
}

// noOwnerNote is what the node says when it has no owner key.
const noOwnerNote = "no owner key (archy node run --owner NPUB): only pinned publishers, the allow list and the publishers of followed catalogs are trusted"

// trustState is the node's trust engine and what it last decided.
type trustState struct {
	cfg   TrustConfig
	owner string
	// sem (a lock a caller can stop waiting for) guards st (graph reads)
	// and eng: a crawl holds it while it runs, so the API answers
	// discovered rows from the cache below, and other trust calls give
	// up after trustWait.
	sem chan struct{}
	st  *trust.Store
	eng *trust.Engine
	fed map[string]bool // appID did key already bound
	// decidedVer and decidedIn are the graph version and the inputs the
	// cached decisions were made from.
	decidedVer uint64
	decidedIn  string

	kick chan struct{}

	// vmu guards what follows; taken inside sem, never the other way.
	vmu       sync.Mutex
	decisions map[string]trust.Decision // by app id
	status    TrustStatus
	tried     map[string]time.Time // release CID → when it failed last (zero: it succeeded)
	// declined are the app ids the owner uninstalled: auto-install leaves
	// them alone (kept in <data>/trust/declined.json).
	declined     map[string]bool
	declinedPath string
}

// lock takes sem, or fails when ctx ends first.
func (t *trustState) lock(ctx context.Context) error {
	select {
	case t.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("the trust graph is busy (a crawl is under way): %w", ctx.Err())
	}
}

func (t *trustState) unlock() { <-t.sem }

// trustWait bounds how long an API call waits for the trust graph.
const trustWait = 20 * time.Second

// retryAfter is how long a release an automatic install or update failed
// on waits before it is tried again.
const retryAfter = time.Hour

// startTrust opens <data>/trust/graph.json with the owner from the config.
func (n *Node) startTrust() error {
	owner, err := ownerKey(n.cfg.Trust.Owner)
	if err != nil {
		return err
	}
	dir := filepath.Join(n.cfg.DataDir, "trust")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create trust folder: %w", err)
	}
	st, err := trust.Open(filepath.Join(dir, "graph.json"))
	if err != nil {
		return err
	}
	// The config names the owner; a graph crawled for another key is
	// rescored from this one.
	st.Owner = owner
	t := &trustState{cfg: n.cfg.Trust, owner: owner, st: st, eng: trust.NewEngine(st, trust.Params{}),
		fed: map[string]bool{}, kick: make(chan struct{}, 1), sem: make(chan struct{}, 1), decisions: map[string]trust.Decision{}, tried: map[string]time.Time{}}
	t.status = TrustStatus{Owner: owner, AutoInstall: t.cfg.AutoInstall, AutoUpdate: t.cfg.AutoUpdate,
		Nodes: st.Graph.Len(), Edges: st.Graph.Edges()}
	t.declinedPath = filepath.Join(dir, "declined.json")
	if t.declined, err = loadDeclined(t.declinedPath); err != nil {
		return err
	}
	if owner == "" {
		t.status.Note = noOwnerNote
		n.log.Warn(noOwnerNote)
	}
	n.trust = t
	return nil
}

// policy is the scoring half of the owner's policy, with the DIDs the
// followed catalogs list (their curators endorse them).
func (n *Node) policy() trust.Policy {
	p := trust.Policy{Floor: n.trust.cfg.Floor, Margin: n.trust.cfg.Margin, Allow: n.trust.cfg.Allow, Deny: n.trust.cfg.Deny}
	for _, fl := range n.followers {
		if cur := fl.store.Current(); cur != nil {
			for _, e := range cur.Entries {
				if e.Manifest != nil && !slices.Contains(p.Listed, e.Manifest.Manifest.Publisher) {
					p.Listed = append(p.Listed, e.Manifest.Manifest.Publisher)
				}
			}
		}
	}
	return p
}

// pins maps installed app ids to the DID each is pinned to.
func (n *Node) pins() map[string]string {
	out := map[string]string{}
	if n.orch != nil {
		for _, a := range n.orch.Apps() {
			if a.Publisher != "" {
				out[a.ID] = a.Publisher
			}
		}
	}
	return out
}

// kickTrust asks the trust loop for a check now (after an install, an
// uninstall, a crawl).
func (n *Node) kickTrust() {
	select {
	case n.trust.kick <- struct{}{}:
	default:
	}
}

// crawlLoop crawls the graph from the owner at start and every Refresh,
// each crawl bounded by CrawlTimeout (and each query by the crawler's).
func (n *Node) crawlLoop(ctx context.Context) error {
	t := n.trust
	if t.owner == "" {
		return nil
	}
	tick := time.NewTicker(t.cfg.Refresh)
	defer tick.Stop()
	for {
		n.crawlOnce(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

func (n *Node) crawlOnce(ctx context.Context) {
	t := n.trust
	ctx, cancel := context.WithTimeout(ctx, t.cfg.CrawlTimeout)
	defer cancel()
	cr := &trust.Crawler{Relays: n.relayURLs, Logger: n.log.With("part", "trust")}
	if err := t.lock(ctx); err != nil {
		return
	}
	stats, err := t.eng.Crawl(ctx, cr)
	if err == nil {
		err = t.st.Save()
	}
	nodes, edges := t.st.Graph.Len(), t.st.Graph.Edges()
	t.unlock()
	t.vmu.Lock()
	t.status.LastCrawl, t.status.Nodes, t.status.Edges, t.status.CrawlError = time.Now(), nodes, edges, ""
	if err != nil {
		t.status.CrawlError = err.Error()
	}
	t.vmu.Unlock()
	if err != nil {
		n.log.Warn("trust crawl failed", "err", err)
	} else {
		n.log.Info("trust crawl", "authors", stats.Authors, "events", stats.Events, "changed", stats.Changed, "failed_queries", stats.Failed, "nodes", nodes, "edges", edges)
	}
	n.kickTrust()
}

// trustLoop feeds discovery's verified bindings to the graph, recomputes
// the decisions the API shows, and applies the auto policies: every
// Check, and when kicked.
func (n *Node) trustLoop(ctx context.Context) error {
	tick := time.NewTicker(n.trust.cfg.Check)
	defer tick.Stop()
	for {
		n.checkTrust(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-n.trust.kick:
		}
	}
}

// checkTrust runs one round: feed, decide, auto-install, auto-update.
func (n *Node) checkTrust(ctx context.Context) {
	rows := n.store.List()
	decs, err := n.decide(ctx, rows)
	if err != nil || n.orch == nil || ctx.Err() != nil {
		return
	}
	if n.trust.cfg.AutoInstall {
		n.autoInstall(ctx, rows, decs)
	}
	if n.trust.cfg.AutoUpdate {
		n.autoUpdate(ctx, rows)
	}
}

// decide binds what discovery verified (each row's DID and the Nostr key
// that signed it, checked both ways by discovery.Verify) and decides every
// app id among its publishers; the decisions are cached for the API.
func (n *Node) decide(ctx context.Context, rows []*discovery.Release) (map[string]trust.Decision, error) {
	t := n.trust
	pins, pol := n.pins(), n.policy()
	byApp := map[string][]string{}
	for _, r := range rows {
		if !slices.Contains(byApp[r.AppID], r.Publisher) {
			byApp[r.AppID] = append(byApp[r.AppID], r.Publisher)
		}
	}
	for app, did := range pins {
		if !slices.Contains(byApp[app], did) {
			byApp[app] = append(byApp[app], did)
		}
	}
	// What the decisions depend on beside the graph: candidates, pins and
	// the catalogs' DIDs (the rest of the policy is fixed).
	var in strings.Builder
	for _, app := range sortedKeys(byApp) {
		slices.Sort(byApp[app])
		fmt.Fprintf(&in, "%s %v %s\n", app, byApp[app], pins[app])
	}
	slices.Sort(pol.Listed)
	fmt.Fprintf(&in, "%v", pol.Listed)
	decs := make(map[string]trust.Decision, len(byApp))
	if err := t.lock(ctx); err != nil {
		return nil, err
	}
	for _, r := range rows {
		k := r.AppID + " " + r.Publisher + " " + r.NostrPubKey
		if !t.fed[k] {
			t.eng.Bind(r.AppID, r.Publisher, r.NostrPubKey, r.CreatedAt)
			t.fed[k] = true
		}
	}
	// Deciding walks the graph once per first hop of the owner: skip it
	// when neither the graph nor its inputs changed.
	ver := t.st.Graph.Version()
	if ver == t.decidedVer && in.String() == t.decidedIn {
		t.unlock()
		t.vmu.Lock()
		defer t.vmu.Unlock()
		return t.decisions, nil
	}
	t.decidedVer, t.decidedIn = ver, in.String()
	for app, dids := range byApp {
		var cands []trust.Candidate
		for _, d := range dids {
			cands = append(cands, trust.Candidate{DID: d, Pinned: pins[app] == d})
		}
		decs[app] = t.eng.Decide(pol, app, cands)
	}
	// Cached before sem is let go: a decide that finds nothing changed
	// returns these.
	t.vmu.Lock()
	t.decisions = decs
	t.status.Nodes, t.status.Edges = t.st.Graph.Len(), t.st.Graph.Edges()
	t.vmu.Unlock()
	t.unlock()
	return decs, nil
}

// view is a publisher's row for appID from the cached decision (nil when
// none is made yet).
func (n *Node) view(appID, did string) *TrustView {
	t := n.trust
	t.vmu.Lock()
	d, ok := t.decisions[appID]
	t.vmu.Unlock()
	if !ok {
		return nil
	}
	return trustView(d, did, t.owner == "")
}

func trustView(d trust.Decision, did string, noOwner bool) *TrustView {
	v := &TrustView{Decision: TrustAbstain}
	var ch *trust.Choice
	for i := range d.Candidates {
		if d.Candidates[i].DID == did {
			ch = &d.Candidates[i]
		}
	}
	if ch == nil {
		return nil
	}
	v.Score = ch.Score
	switch {
	case d.Selected == did && ch.Pinned:
		v.Decision = TrustPinned
	case d.Selected == did:
		v.Decision = TrustSelected
	case ch.Denied:
		v.Decision = TrustRefused
	case d.Selected != "":
		v.Decision = TrustRefused
		how := "selected"
		if pinnedIn(d) {
			how = "pinned"
		}
		v.Reasons = append(v.Reasons, fmt.Sprintf("another publisher is %s for %s: %s", how, d.AppID, d.Selected))
	}
	v.Reasons = append(v.Reasons, ch.Reasons...)
	if d.Selected == did || d.Selected == "" {
		v.Reasons = append(v.Reasons, d.Reasons...)
	}
	if noOwner {
		v.Reasons = append(v.Reasons, noOwnerNote)
	}
	if v.Reasons == nil {
		v.Reasons = []string{}
	}
	return v
}

func pinnedIn(d trust.Decision) bool {
	for _, c := range d.Candidates {
		if c.DID == d.Selected {
			return c.Pinned
		}
	}
	return false
}

// bestRelease is did's highest version of appID among rows.
func bestRelease(rows []*discovery.Release, appID, did string) *discovery.Release {
	var best *discovery.Release
	var bv *semver.Version
	for _, r := range rows {
		if r.AppID != appID || r.Publisher != did {
			continue
		}
		v, err := semver.StrictNewVersion(r.Version)
		if err != nil {
			continue
		}
		if bv == nil || v.GreaterThan(bv) {
			best, bv = r, v
		}
	}
	return best
}

// autoInstall installs each app id the decision selected a publisher for
// and that is not installed, once per release (a failure is logged and
// shown as an operation, and tried again after retryAfter).
func (n *Node) autoInstall(ctx context.Context, rows []*discovery.Release, decs map[string]trust.Decision) {
	for _, app := range sortedKeys(decs) {
		d := decs[app]
		if d.Selected == "" {
			continue
		}
		if _, err := n.orch.Status(app); err == nil || n.declinedApp(app) {
			continue
		}
		r := bestRelease(rows, app, d.Selected)
		if r == nil || !n.tryOnce(r.CID.String()) {
			continue
		}
		n.log.Info("auto-install: the trust decision selected the publisher", "app", app, "version", r.Version, "publisher", d.Selected)
		n.autoOp(ctx, "install", app, r, func(ctx context.Context, v *registry.Verified) error {
			return n.orch.Install(ctx, v, nil)
		})
	}
}

// autoUpdate moves each running app to its pinned publisher's highest
// version when it is above the installed one.
func (n *Node) autoUpdate(ctx context.Context, rows []*discovery.Release) {
	for _, a := range n.orch.Apps() {
		// An update starts the app: one the owner stopped stays stopped.
		if a.Publisher == "" || a.Intent != orchestrator.IntentRunning || slices.Contains(n.trust.cfg.Deny, a.Publisher) {
			continue
		}
		r := bestRelease(rows, a.ID, a.Publisher)
		if r == nil {
			continue
		}
		nv, err1 := semver.StrictNewVersion(r.Version)
		cv, err2 := semver.StrictNewVersion(a.Version)
		if err1 != nil || err2 != nil || !nv.GreaterThan(cv) || !n.tryOnce(r.CID.String()) {
			continue
		}
		n.log.Info("auto-update from the pinned publisher", "app", a.ID, "from", a.Version, "to", r.Version)
		n.autoOp(ctx, "update", a.ID, r, func(ctx context.Context, v *registry.Verified) error {
			err := n.orch.Update(ctx, v, nil)
			if err == nil {
				n.pruneLater()
			}
			return err
		})
	}
}

// tryOnce reports whether release c may be tried now: never tried, or
// failed more than retryAfter ago. It notes the try as a failure until
// tried says otherwise.
func (n *Node) tryOnce(c string) bool {
	t := n.trust
	t.vmu.Lock()
	defer t.vmu.Unlock()
	if at, ok := t.tried[c]; ok && (at.IsZero() || time.Since(at) < retryAfter) {
		return false
	}
	t.tried[c] = time.Now()
	return true
}

// tried notes that release c was installed or updated to: never again.
func (n *Node) tried(c string) {
	n.trust.vmu.Lock()
	n.trust.tried[c] = time.Time{}
	n.trust.vmu.Unlock()
}

// decline remembers that the owner uninstalled app id, so auto-install
// does not bring it back.
func (n *Node) decline(id string) error {
	t := n.trust
	t.vmu.Lock()
	defer t.vmu.Unlock()
	if t.declined[id] {
		return nil
	}
	t.declined[id] = true
	ids := sortedKeys(t.declined)
	b, _ := json.Marshal(ids)
	if err := atomicfile.Write(t.declinedPath, b, 0o600); err != nil {
		return fmt.Errorf("remember that %s was uninstalled: %w", id, err)
	}
	return nil
}

// loadDeclined reads the declined app ids (none if the file is not there).
func loadDeclined(path string) (map[string]bool, error) {
	out := map[string]bool{}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	}
	var ids []string
	if err == nil {
		err = json.Unmarshal(b, &ids)
	}
	if err != nil {
		return nil, fmt.Errorf("read declined apps %s: %w", path, err)
	}
	for _, id := range ids {
		out[id] = true
	}
	return out, nil
}

func (n *Node) declinedApp(id string) bool {
	n.trust.vmu.Lock()
	defer n.trust.vmu.Unlock()
	return n.trust.declined[id]
}

// autoOp runs an automatic install or update as an operation (listed and
// followed like the owner's), waiting for it: the loop does one at a time.
func (n *Node) autoOp(loop context.Context, kind, app string, r *discovery.Release, fn func(context.Context, *registry.Verified) error) {
	o, err := n.ops.start(kind, app)
	if err != nil {
		n.log.Warn("auto "+kind+" not started", "app", app, "err", err)
		return
	}
	n.runOp(o, func(opCtx context.Context) error {
		// The operation carries the node's lifetime and its tracking;
		// it also ends with the loop's ctx, or a stopping node would
		// wait for it.
		ctx, cancel := context.WithCancel(opCtx)
		defer cancel()
		defer context.AfterFunc(loop, cancel)()
		env, err := n.releaseByCID(ctx, r.CID.String())
		if err != nil {
			return err
		}
		v, err := registry.VerifyEnvelope(env)
		if err != nil {
			return err
		}
		if v.Manifest.ID != app || v.Manifest.Publisher != r.Publisher {
			return fmt.Errorf("auto %s of %s: release %s is %s by %s", kind, app, r.CID, v.Manifest.ID, v.Manifest.Publisher)
		}
		trackApp(ctx, app)
		n.imgMu.RLock()
		defer n.imgMu.RUnlock()
		if err := fn(ctx, v); err != nil {
			return err
		}
		n.tried(r.CID.String())
		return nil
	})
	n.kickTrust() // the pin is new
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// discoveredRow is a discovered release with its publisher's trust for
// the release's app id.
type discoveredRow struct {
	*discovery.Release
	Trust *TrustView `json:"trust,omitempty"`
}

// discoveredRows are the discovered releases with their trust. A row the
// cached decisions do not cover yet (discovered since the last check)
// asks the trust loop for a check rather than wait for one here.
func (n *Node) discoveredRows() []discoveredRow {
	out := []discoveredRow{}
	stale := false
	for _, r := range n.store.List() {
		v := n.view(r.AppID, r.Publisher)
		stale = stale || v == nil
		out = append(out, discoveredRow{Release: r, Trust: v})
	}
	if stale {
		n.kickTrust()
	}
	return out
}

// TrustScore is GET /api/v1/trust/score: publishers by score and the
// decision for every app id the node knows (discovered or installed).
type TrustScore struct {
	Owner      string           `json:"owner"`
	Note       string           `json:"note,omitempty"`
	Publishers []PublisherScore `json:"publishers"`
	Apps       []trust.Decision `json:"apps"`
}

// PublisherScore is one DID's score from the owner.
type PublisherScore struct {
	DID   string  `json:"did"`
	Score float64 `json:"score"`
}

// TrustExplanation is GET /api/v1/trust/explain/{name}: the decision when
// name is an app id, and where each score came from.
type TrustExplanation struct {
	Decision     *trust.Decision     `json:"decision"`
	Explanations []trust.Explanation `json:"explanations"`
	Note         string              `json:"note,omitempty"`
}

// maxScored bounds the publishers GET /api/v1/trust/score lists.
const maxScored = 200

func (n *Node) trustHandlers(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/trust/score", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), trustWait)
		defer cancel()
		sc, err := n.trustScore(ctx)
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		writeJSON(w, sc)
	})
	mux.HandleFunc("GET /api/v1/trust/explain/{name}", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), trustWait)
		defer cancel()
		ex, err := n.trustExplain(ctx, r.PathValue("name"))
		switch {
		case errors.Is(err, errUnknownName):
			http.Error(w, err.Error(), http.StatusNotFound)
		case err != nil:
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		default:
			writeJSON(w, ex)
		}
	})
}

func (n *Node) trustScore(ctx context.Context) (TrustScore, error) {
	decs, err := n.decide(ctx, n.store.List())
	if err != nil {
		return TrustScore{}, err
	}
	t := n.trust
	out := TrustScore{Owner: t.owner, Publishers: []PublisherScore{}, Apps: []trust.Decision{}}
	if t.owner == "" {
		out.Note = noOwnerNote
	}
	if err := t.lock(ctx); err != nil {
		return TrustScore{}, err
	}
	for _, d := range t.st.Graph.DIDs() {
		out.Publishers = append(out.Publishers, PublisherScore{d, t.eng.Score(d)})
	}
	t.unlock()
	slices.SortStableFunc(out.Publishers, func(a, b PublisherScore) int {
		switch {
		case a.Score > b.Score:
			return -1
		case a.Score < b.Score:
			return 1
		}
		return strings.Compare(a.DID, b.DID)
	})
	out.Publishers = out.Publishers[:min(len(out.Publishers), maxScored)]
	for _, app := range sortedKeys(decs) {
		out.Apps = append(out.Apps, decs[app])
	}
	return out, nil
}

// errUnknownName is a name that is no DID, key or known app id.
var errUnknownName = errors.New("not a DID, an npub or hex Nostr key, or an app id the node knows")

func (n *Node) trustExplain(ctx context.Context, name string) (TrustExplanation, error) {
	t := n.trust
	ex := TrustExplanation{Explanations: []trust.Explanation{}}
	if t.owner == "" {
		ex.Note = noOwnerNote
	}
	var names []string
	switch key, err := ownerKey(name); {
	case strings.HasPrefix(name, "did:"):
		names = []string{name}
	case err == nil && key != "":
		names = []string{key}
	default:
		decs, err := n.decide(ctx, n.store.List())
		if err != nil {
			return ex, err
		}
		d, ok := decs[name]
		if !ok {
			return ex, fmt.Errorf("explain %q: %w", name, errUnknownName)
		}
		ex.Decision = &d
		for _, c := range d.Candidates {
			names = append(names, c.DID)
		}
	}
	if err := t.lock(ctx); err != nil {
		return ex, err
	}
	for _, nm := range names {
		ex.Explanations = append(ex.Explanations, t.eng.Explain(nm))
	}
	t.unlock()
	return ex, nil
}

func (n *Node) trustStatus() TrustStatus {
	n.trust.vmu.Lock()
	defer n.trust.vmu.Unlock()
	return n.trust.status
}

// saveTrust writes the graph (discovery's bindings since the last crawl)
// on the way out.
func (n *Node) saveTrust() {
	if n.trust == nil {
		return
	}
	// Run's loops have stopped: the lock is free.
	_ = n.trust.lock(context.Background())
	defer n.trust.unlock()
	if err := n.trust.st.Save(); err != nil {
		n.log.Warn("save trust graph", "err", err)
	}
}
