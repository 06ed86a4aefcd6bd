// Package trust owns attestations, the trust graph, scores with
// explanations, and the install policy: who a node believes may publish an
// app id. Nodes of the graph are Nostr public keys (64 hex digits) and
// publisher DIDs; edges are follows (kind 3), endorsements (NIP-32 labels,
// kind 1985, namespace "archy.trust"), NIP-56 reports (kind 1984) and
// DID↔Nostr-key bindings. Scores are personalized PageRank from the
// owner's key with early-terminated walks, kept up to date incrementally;
// Decide picks a publisher for an app id only with a margin over the
// runner-up, a floor, and per-first-hop-branch caps, and says why.
package trust

import (
	"slices"
	"strings"
	"time"
)

// Kind tells keys from DIDs.
type Kind uint8

const (
	// KindKey is a Nostr public key (64 lower-case hex digits).
	KindKey Kind = iota
	// KindDID is a publisher DID.
	KindDID
)

// Report types that count against a publisher (NIP-56).
const (
	ReportMalware       = "malware"
	ReportImpersonation = "impersonation"
)

// follows is one author's latest follow list (NIP-01: kind 3 is
// replaceable; the newest created_at wins, ties go to the lowest id).
type follows struct {
	at      int64
	id      string
	targets []int32
}

// label is one author's latest endorsement (or revocation) of a target.
type label struct {
	at      int64
	id      string
	revoked bool
}

// Report is a NIP-56 report of a key or DID.
type Report struct {
	Reporter string `json:"reporter"`
	Target   string `json:"target"`
	Type     string `json:"type"`
	EventID  string `json:"event_id"`
	At       int64  `json:"created_at"`
}

// change is an out-list replaced since the scores were last brought up to
// date: what the incremental rescoring needs.
type change struct {
	node int32
	old  []int32
}

// Graph is the trust graph. It is not safe for concurrent use; Engine
// wraps it with a lock.
type Graph struct {
	index   map[string]int32
	names   []string
	kinds   []Kind
	out     [][]int32 // trust edges (follows ∪ endorsements), sorted, unique
	follows map[int32]*follows
	labels  map[int32]map[int32]*label  // author → target → latest label
	reports map[int32]map[int32]*Report // target → reporter → latest report
	// bindings hold the DID↔key pairs seen verified both ways: the DID
	// signed a statement naming the key, and the key signed the event that
	// carried it.
	didKeys   map[int32][]int32
	keyDIDs   map[int32][]int32
	firstSeen map[int32]int64
	apps      map[string][]int32 // app id → DIDs seen announcing it
	changes   []change
	version   uint64
}

// NewGraph returns an empty graph.
func NewGraph() *Graph {
	return &Graph{
		index:     make(map[string]int32),
		follows:   make(map[int32]*follows),
		labels:    make(map[int32]map[int32]*label),
		reports:   make(map[int32]map[int32]*Report),
		didKeys:   make(map[int32][]int32),
		keyDIDs:   make(map[int32][]int32),
		firstSeen: make(map[int32]int64),
		apps:      make(map[string][]int32),
	}
}

// AddRelease records that did announced a release of appID (verified by
// the caller): it is then a candidate for appID.
func (g *Graph) AddRelease(appID, did string) {
	d := g.id(did)
	if !slices.Contains(g.apps[appID], d) {
		g.apps[appID] = append(g.apps[appID], d)
		slices.Sort(g.apps[appID])
		g.version++
	}
}

// Publishers returns the DIDs seen announcing appID.
func (g *Graph) Publishers(appID string) []string { return g.namesOf(g.apps[appID]) }

// Apps returns the app ids seen, sorted.
func (g *Graph) Apps() []string {
	ids := make([]string, 0, len(g.apps))
	for a := range g.apps {
		ids = append(ids, a)
	}
	slices.Sort(ids)
	return ids
}

// DIDs returns every DID in the graph, sorted.
func (g *Graph) DIDs() []string {
	var ds []string
	for i, k := range g.kinds {
		if k == KindDID {
			ds = append(ds, g.names[i])
		}
	}
	slices.Sort(ds)
	return ds
}

// KindOf says whether name is a DID or a Nostr key.
func KindOf(name string) Kind {
	if strings.HasPrefix(name, "did:") {
		return KindDID
	}
	return KindKey
}

// id interns name.
func (g *Graph) id(name string) int32 {
	if i, ok := g.index[name]; ok {
		return i
	}
	i := int32(len(g.names))
	g.index[name] = i
	g.names = append(g.names, name)
	g.kinds = append(g.kinds, KindOf(name))
	g.out = append(g.out, nil)
	return i
}

// Lookup returns name's node, if the graph has it.
func (g *Graph) Lookup(name string) (int32, bool) {
	i, ok := g.index[name]
	return i, ok
}

// Name returns node i's key or DID.
func (g *Graph) Name(i int32) string { return g.names[i] }

// Len is the number of nodes.
func (g *Graph) Len() int { return len(g.names) }

// Edges is the number of trust edges (follows and endorsements).
func (g *Graph) Edges() int {
	n := 0
	for _, o := range g.out {
		n += len(o)
	}
	return n
}

// Version changes whenever the graph does.
func (g *Graph) Version() uint64 { return g.version }

// Out returns the trust edges of name (its follows and endorsements).
func (g *Graph) Out(name string) []string {
	i, ok := g.index[name]
	if !ok {
		return nil
	}
	s := make([]string, len(g.out[i]))
	for k, j := range g.out[i] {
		s[k] = g.names[j]
	}
	return s
}

// newer reports whether (at, id) replaces (oldAt, oldID) under NIP-01.
func newer(at int64, id string, oldAt int64, oldID string) bool {
	return at > oldAt || (at == oldAt && id < oldID)
}

// SetFollows records author's follow list from a kind 3 event; an older
// list than the one held is ignored (it returns false).
func (g *Graph) SetFollows(author string, at int64, eventID string, targets []string) bool {
	a := g.id(author)
	if f := g.follows[a]; f != nil && !newer(at, eventID, f.at, f.id) {
		return false
	}
	ids := make([]int32, 0, len(targets))
	for _, t := range targets {
		if t == author || KindOf(t) != KindKey {
			continue
		}
		ids = append(ids, g.id(t))
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	g.follows[a] = &follows{at: at, id: eventID, targets: ids}
	g.rebuild(a)
	return true
}

// SetLabel records author's endorsement of target (a DID or key), or its
// revocation; an older label than the one held is ignored.
func (g *Graph) SetLabel(author, target string, at int64, eventID string, revoked bool) bool {
	if author == target {
		return false
	}
	a, t := g.id(author), g.id(target)
	m := g.labels[a]
	if m == nil {
		m = make(map[int32]*label)
		g.labels[a] = m
	}
	if l := m[t]; l != nil && !newer(at, eventID, l.at, l.id) {
		return false
	}
	m[t] = &label{at: at, id: eventID, revoked: revoked}
	g.rebuild(a)
	return true
}

// AddReport records a NIP-56 report; a reporter's newer report of the same
// target replaces the older one.
func (g *Graph) AddReport(r Report) bool {
	if r.Reporter == r.Target {
		return false
	}
	rep, t := g.id(r.Reporter), g.id(r.Target)
	m := g.reports[t]
	if m == nil {
		m = make(map[int32]*Report)
		g.reports[t] = m
	}
	if old := m[rep]; old != nil && !newer(r.At, r.EventID, old.At, old.EventID) {
		return false
	}
	m[rep] = &r
	g.version++
	return true
}

// Bind records that did and the Nostr key are bound both ways (the caller
// checked the DID-signed statement naming the key, carried in an event the
// key signed: discovery.Verify does both). at is when it was first seen.
func (g *Graph) Bind(did, key string, at int64) {
	d, k := g.id(did), g.id(key)
	if !slices.Contains(g.didKeys[d], k) {
		g.didKeys[d] = append(g.didKeys[d], k)
		g.keyDIDs[k] = append(g.keyDIDs[k], d)
		slices.Sort(g.didKeys[d])
		slices.Sort(g.keyDIDs[k])
		g.version++
	}
	g.Seen(did, at)
}

// Seen records when a publisher was first seen (the earliest time wins).
func (g *Graph) Seen(name string, at int64) {
	i := g.id(name)
	if old, ok := g.firstSeen[i]; !ok || at < old {
		g.firstSeen[i] = at
		g.version++
	}
}

// FirstSeen returns when name was first seen, if it was.
func (g *Graph) FirstSeen(name string) (time.Time, bool) {
	i, ok := g.index[name]
	if !ok {
		return time.Time{}, false
	}
	at, ok := g.firstSeen[i]
	return time.Unix(at, 0).UTC(), ok
}

// Keys returns the Nostr keys bound to did.
func (g *Graph) Keys(did string) []string {
	i, ok := g.index[did]
	if !ok {
		return nil
	}
	return g.namesOf(g.didKeys[i])
}

func (g *Graph) namesOf(ids []int32) []string {
	s := make([]string, len(ids))
	for k, i := range ids {
		s[k] = g.names[i]
	}
	return s
}

// rebuild recomputes a's out-list from its follows and live labels, and
// records the change for the incremental rescoring.
func (g *Graph) rebuild(a int32) {
	var next []int32
	if f := g.follows[a]; f != nil {
		next = append(next, f.targets...)
	}
	for t, l := range g.labels[a] {
		if !l.revoked {
			next = append(next, t)
		}
	}
	slices.Sort(next)
	next = slices.Compact(next)
	old := g.out[a]
	g.version++
	if slices.Equal(old, next) {
		return
	}
	g.out[a] = next
	g.changes = append(g.changes, change{node: a, old: old})
}

// takeChanges hands the pending out-list changes to the scorer.
func (g *Graph) takeChanges() []change {
	c := g.changes
	g.changes = nil
	return c
}
