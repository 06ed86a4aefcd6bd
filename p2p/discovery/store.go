package discovery

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	cid "github.com/ipfs/go-cid"
	"github.com/nbd-wtf/go-nostr"

	"github.com/archy-node/archy/internal/atomicfile"
	"github.com/archy-node/archy/registry"
)

// Store defaults. Discovery is a cache in front of catalogs, not a source
// of truth, so it keeps what a node can use and sheds the rest: a signed
// manifest is 1–3 KiB, so 4096 events are about 10 MiB in memory and as
// much again on disk at worst between two compactions. A real publisher
// has a few apps with a few live versions; 128 events is 64 releases with
// their "latest" pointers, and keeps any one key from holding more than
// 1/32 of the store. Throwaway DIDs are cheap, so the total cap, not the
// per-publisher one, is what bounds a flood; eviction then decides who
// stays (see Store).
const (
	DefaultMaxPerPublisher = 128
	DefaultMaxEvents       = 4096
	DefaultMaxBytes        = 32 << 20
	DefaultMaxTombstones   = 4096
	DefaultCompactAt       = 1 << 20
)

// StoreConfig says where a Store lives and bounds it. Zero fields take the
// defaults above.
type StoreConfig struct {
	// Path is the snapshot (StorePath); the journal sits next to it, with
	// the extension .journal. Empty keeps the store in memory only.
	Path string
	// MaxPerPublisher bounds the events (a release, or an app's "latest"
	// pointer) kept per publisher DID.
	MaxPerPublisher int
	// MaxEvents bounds the events kept in all.
	MaxEvents int
	// MaxBytes bounds the bytes of signed envelopes kept in all.
	MaxBytes int64
	// MaxTombstones bounds the withdrawn addresses remembered, in all
	// (and MaxPerPublisher per Nostr key); the oldest go first.
	MaxTombstones int
	// CompactAt: the journal is folded into the snapshot once it is larger
	// than both this and the last snapshot, so a put costs O(release)
	// amortized.
	CompactAt int64
	// ReadOnly opens the store to read it while a node may be writing it
	// (the CLI): nothing is ever written, a torn journal tail is skipped.
	ReadOnly bool
	// Now is the clock of first-seen times (default time.Now).
	Now func() time.Time
}

func (c *StoreConfig) setDefaults() {
	if c.MaxPerPublisher <= 0 {
		c.MaxPerPublisher = DefaultMaxPerPublisher
	}
	if c.MaxEvents <= 0 {
		c.MaxEvents = DefaultMaxEvents
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	if c.MaxTombstones <= 0 {
		c.MaxTombstones = DefaultMaxTombstones
	}
	if c.CompactAt <= 0 {
		c.CompactAt = DefaultCompactAt
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Keeper names the releases a Store keeps whatever its caps say.
type Keeper interface {
	// Kept returns the manifest CIDs of the releases installed or pinned
	// on this node. The store calls it on every change, without holding
	// its lock.
	Kept() map[cid.Cid]bool
}

// KeepFunc is a Keeper from a function.
type KeepFunc func() map[cid.Cid]bool

// Kept calls f.
func (f KeepFunc) Kept() map[cid.Cid]bool { return f() }

// Ranker ranks publishers for eviction: a higher rank stays longer. The
// trust engine fills it in; without one every publisher ranks the same.
// It is called under the store's lock: it must not call the store.
type Ranker interface {
	Rank(publisher string) int
}

// Store keeps the verified releases a node has discovered, one per Nostr
// address (kind:pubkey:d), replaced exactly as NIP-01 says: the newest
// created_at wins, and on a tie the lowest event id. Withdrawn addresses
// (NIP-09) are remembered so an older copy cannot come back.
//
// The store is bounded (StoreConfig). Past a cap it evicts, never a
// release the Keeper names: within a publisher its oldest events first
// (so newer versions and "latest" pointers stay); across publishers, from
// the lowest-ranked publisher (Ranker), among equals from the one holding
// the most events not kept, among those from the one first seen last. So
// a flood of throwaway DIDs evicts itself down to an equal share each; a
// publisher seen before it keeps whatever fits in that share (all of it,
// for one with a few releases), and a new publisher after it still gets
// in. (Evicting by first-seen alone would lock every newcomer out of a
// full store.)
//
// It persists incrementally: each change is a line appended to a journal
// (a write, no fsync; Sync makes it durable, and the discoverer syncs
// before it saves a relay cursor past it), and the journal is folded into
// an atomically replaced snapshot once it outgrows it.
type Store struct {
	cfg         StoreConfig
	journalPath string

	mu        sync.Mutex
	releases  map[string]*Release // by address
	pubs      map[string]*publisher
	byCID     map[cid.Cid]map[string]struct{} // manifest CID → addresses
	bytes     int64
	tombstone map[string]int64 // address → deletion created_at
	keeper    Keeper
	ranker    Ranker
	evicted   int64

	journal  *os.File
	jsize    int64 // journal bytes
	snapSize int64 // bytes of the last snapshot
	unsynced bool
}

type publisher struct {
	firstSeen int64 // unix seconds, node clock
	addrs     map[string]struct{}
}

type storeFile struct {
	Version   int              `json:"version"`
	Releases  []*Release       `json:"releases"`
	Tombstone map[string]int64 `json:"tombstones,omitempty"`
	FirstSeen map[string]int64 `json:"first_seen,omitempty"` // publisher DID → unix seconds
}

// journalEntry is one line of the journal. Replaying sets and removes
// keys, so replaying a journal already folded into the snapshot (a crash
// between the snapshot's rename and the journal's truncation) is harmless.
type journalEntry struct {
	Op   string   `json:"op"` // put, drop, tomb, untomb, seen
	Addr string   `json:"a,omitempty"`
	R    *Release `json:"r,omitempty"`
	At   int64    `json:"at,omitempty"`
	DID  string   `json:"did,omitempty"`
}

const storeVersion = 2 // 1: a snapshot rewritten on every change, no journal

// OpenStore opens the store at path with the default bounds.
func OpenStore(path string) (*Store, error) {
	return NewStore(StoreConfig{Path: path})
}

// NewStore loads the store cfg names (empty if it does not exist). Every
// stored envelope is verified again on load: the files are a cache, never
// a source of trust.
func NewStore(cfg StoreConfig) (*Store, error) {
	cfg.setDefaults()
	s := &Store{cfg: cfg, releases: map[string]*Release{}, pubs: map[string]*publisher{}, byCID: map[cid.Cid]map[string]struct{}{}, tombstone: map[string]int64{}}
	if cfg.Path == "" {
		return s, nil
	}
	s.journalPath = strings.TrimSuffix(cfg.Path, filepath.Ext(cfg.Path)) + ".journal"
	var firstSeen map[string]int64
	var version int
	for attempt := 0; ; attempt++ {
		before, _ := os.Stat(cfg.Path)
		var err error
		if firstSeen, version, err = s.read(); err != nil {
			return nil, err
		}
		// A reader racing the node's compaction may have read the old
		// snapshot and the new, empty journal: read again.
		after, _ := os.Stat(cfg.Path)
		if !cfg.ReadOnly || sameVersion(before, after) || attempt == 2 {
			break
		}
	}
	for addr, r := range s.releases {
		if r == nil || address(r.NostrPubKey, r.D) != addr {
			delete(s.releases, addr)
			continue
		}
		r.Latest = r.D == LatestD(r.AppID)
		if len(r.Envelope) > 0 {
			v, err := registry.VerifyEnvelope(r.Envelope)
			if err != nil || v.CID != r.CID {
				delete(s.releases, addr)
				continue
			}
			r.Manifest = v
		}
		fs := firstSeen[r.Publisher]
		if fs == 0 {
			fs = r.CreatedAt.Unix() // a store older than first-seen times
		}
		if p := s.pubs[r.Publisher]; p != nil && fs < p.firstSeen {
			p.firstSeen = fs
		}
		s.index(addr, r, fs)
	}
	if cfg.ReadOnly {
		return s, nil
	}
	if err := os.MkdirAll(filepath.Dir(cfg.Path), 0o700); err != nil {
		return nil, fmt.Errorf("open discovery store: %w", err)
	}
	var err error
	if s.journal, err = os.OpenFile(s.journalPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600); err != nil {
		return nil, fmt.Errorf("open discovery store journal: %w", err)
	}
	if version != storeVersion {
		if err := s.compactLocked(); err != nil {
			s.journal.Close()
			return nil, err
		}
	}
	return s, nil
}

// read loads the snapshot and replays the journal into s.
func (s *Store) read() (firstSeen map[string]int64, version int, err error) {
	s.releases, s.tombstone, firstSeen, version = map[string]*Release{}, map[string]int64{}, map[string]int64{}, storeVersion
	data, err := os.ReadFile(s.cfg.Path)
	switch {
	case os.IsNotExist(err):
	case err != nil:
		return nil, 0, fmt.Errorf("open discovery store: %w", err)
	default:
		var f storeFile
		if err := json.Unmarshal(data, &f); err != nil || (f.Version != 1 && f.Version != storeVersion) {
			return nil, 0, fmt.Errorf("open discovery store %s: unreadable or unknown version; remove it to rediscover from relays", s.cfg.Path)
		}
		version = f.Version
		s.snapSize = int64(len(data))
		for _, r := range f.Releases {
			s.releases[address(r.NostrPubKey, r.D)] = r
		}
		if f.Tombstone != nil {
			s.tombstone = f.Tombstone
		}
		if f.FirstSeen != nil {
			firstSeen = f.FirstSeen
		}
	}
	return firstSeen, version, s.replay(firstSeen)
}

// sameVersion reports whether two stats of the snapshot show the same file.
func sameVersion(a, b os.FileInfo) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

// replay applies the journal to what the snapshot loaded. A line that
// does not parse ends the journal (a write torn by a crash); unless the
// store is read-only the journal is cut there, so appends start clean.
func (s *Store) replay(firstSeen map[string]int64) error {
	f, err := os.Open(s.journalPath)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open discovery store journal: %w", err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 64<<10)
	var good int64
	for {
		line, err := br.ReadBytes('\n')
		if err == io.EOF && len(line) == 0 {
			break
		}
		var e journalEntry
		if err != nil || json.Unmarshal(line, &e) != nil {
			break // torn or corrupt tail
		}
		good += int64(len(line))
		switch e.Op {
		case "put":
			if e.R != nil {
				s.releases[address(e.R.NostrPubKey, e.R.D)] = e.R
			}
		case "drop":
			delete(s.releases, e.Addr)
		case "tomb":
			s.tombstone[e.Addr] = e.At
		case "untomb":
			delete(s.tombstone, e.Addr)
		case "seen":
			firstSeen[e.DID] = e.At
		}
	}
	s.jsize = good
	if s.cfg.ReadOnly {
		return nil
	}
	if st, err := f.Stat(); err == nil && st.Size() > good {
		if err := os.Truncate(s.journalPath, good); err != nil {
			return fmt.Errorf("cut torn discovery store journal: %w", err)
		}
	}
	return nil
}

// SetKeeper sets what the store keeps whatever its caps say.
func (s *Store) SetKeeper(k Keeper) {
	s.mu.Lock()
	s.keeper = k
	s.mu.Unlock()
}

// SetRanker sets how the store ranks publishers for eviction.
func (s *Store) SetRanker(r Ranker) {
	s.mu.Lock()
	s.ranker = r
	s.mu.Unlock()
}

// parseReleaseD splits a release `d` tag into app id and version.
func parseReleaseD(d string) (appID, version string, ok bool) {
	rest, ok := strings.CutPrefix(d, releasePrefix)
	i := strings.LastIndexByte(rest, '@')
	if !ok || i <= 0 || i == len(rest)-1 {
		return "", "", false
	}
	return rest[:i], rest[i+1:], true
}

// StorePath is where a node keeps its discovered releases inside its
// data folder.
func StorePath(dataDir string) string {
	return filepath.Join(dataDir, "discovery", "discovered.json")
}

// CursorPath is where a node keeps its per-relay cursors.
func CursorPath(dataDir string) string {
	return filepath.Join(dataDir, "discovery", "cursors.json")
}

func address(pubkey, d string) string {
	return strconv.Itoa(KindAppData) + ":" + pubkey + ":" + d
}

// cost is what one stored event counts against MaxBytes: its envelope and
// a fixed allowance for the rest.
func cost(r *Release) int64 { return int64(len(r.Envelope)) + 512 }

// index adds r at addr to the per-publisher index and the byte count;
// firstSeen is the publisher's if it is new to the index.
func (s *Store) index(addr string, r *Release, firstSeen int64) {
	p := s.pubs[r.Publisher]
	if p == nil {
		p = &publisher{firstSeen: firstSeen, addrs: map[string]struct{}{}}
		s.pubs[r.Publisher] = p
	}
	p.addrs[addr] = struct{}{}
	s.bytes += cost(r)
	if s.byCID[r.CID] == nil {
		s.byCID[r.CID] = map[string]struct{}{}
	}
	s.byCID[r.CID][addr] = struct{}{}
}

// unindex removes what is held at addr.
func (s *Store) unindex(addr string) {
	r, ok := s.releases[addr]
	if !ok {
		return
	}
	delete(s.releases, addr)
	s.bytes -= cost(r)
	if m := s.byCID[r.CID]; m != nil {
		delete(m, addr)
		if len(m) == 0 {
			delete(s.byCID, r.CID)
		}
	}
	if p := s.pubs[r.Publisher]; p != nil {
		delete(p.addrs, addr)
		if len(p.addrs) == 0 {
			delete(s.pubs, r.Publisher)
		}
	}
}

// Put stores r if it replaces what is held at its address and the caps
// leave room for it; it reports whether the store changed.
func (s *Store) Put(r *Release) (bool, error) {
	if latest := r.D == LatestD(r.AppID); r.Latest != latest {
		c := *r // a List row: Latest says what the pointer names
		c.Latest = latest
		r = &c
	}
	addr := address(r.NostrPubKey, r.D)
	kept := s.kept()
	s.mu.Lock()
	defer s.mu.Unlock()
	if del, ok := s.tombstone[addr]; ok && r.CreatedAt.Unix() <= del {
		return false, nil
	}
	// A "latest" pointer naming a withdrawn release is withdrawn with it
	// (the publisher announces the release that is latest now again).
	if r.Latest {
		if del, ok := s.tombstone[address(r.NostrPubKey, ReleaseD(r.AppID, r.Version))]; ok && r.CreatedAt.Unix() <= del {
			return false, nil
		}
	}
	old, had := s.releases[addr]
	if had && !newer(r, old) {
		return false, nil
	}
	firstSeen, fresh := s.cfg.Now().Unix(), true
	if p := s.pubs[r.Publisher]; p != nil {
		firstSeen, fresh = p.firstSeen, false
	}
	s.unindex(addr)
	s.releases[addr] = r
	s.index(addr, r, firstSeen)
	evicted := s.enforceLocked(r.Publisher, kept)
	var entries []journalEntry
	stored := true
	for _, a := range evicted {
		if a == addr {
			stored = false
			continue
		}
		entries = append(entries, journalEntry{Op: "drop", Addr: a})
	}
	switch {
	case stored && fresh:
		entries = append(entries, journalEntry{Op: "seen", DID: r.Publisher, At: firstSeen}, journalEntry{Op: "put", R: r})
	case stored:
		entries = append(entries, journalEntry{Op: "put", R: r})
	case had:
		entries = append(entries, journalEntry{Op: "drop", Addr: addr})
	}
	return stored, s.appendLocked(entries...)
}

// kept asks the Keeper, outside the lock (it may take locks of its own).
func (s *Store) kept() map[cid.Cid]bool {
	s.mu.Lock()
	k := s.keeper
	s.mu.Unlock()
	if k == nil {
		return nil
	}
	return k.Kept()
}

// enforceLocked evicts until the store is within its caps, first within
// publisher pub (who just added an event), then across publishers, never
// an event whose manifest is kept; it returns the evicted addresses.
func (s *Store) enforceLocked(pub string, kept map[cid.Cid]bool) []string {
	var out []string
	for p := s.pubs[pub]; p != nil && len(p.addrs) > s.cfg.MaxPerPublisher; p = s.pubs[pub] {
		a := s.worstOf(p, kept)
		if a == "" {
			break
		}
		s.unindex(a)
		out = append(out, a)
	}
	if len(s.releases) > s.cfg.MaxEvents || s.bytes > s.cfg.MaxBytes {
		// Kept events do not count towards a publisher's share.
		keptBy := map[string]int{}
		for c := range kept {
			for a := range s.byCID[c] {
				keptBy[s.releases[a].Publisher]++
			}
		}
		for len(s.releases) > s.cfg.MaxEvents || s.bytes > s.cfg.MaxBytes {
			victim := s.victimPublisher(keptBy)
			if victim == "" {
				break // everything left is kept
			}
			a := s.worstOf(s.pubs[victim], kept)
			s.unindex(a)
			out = append(out, a)
		}
	}
	s.evicted += int64(len(out))
	return out
}

// worstOf is p's event to evict first: the oldest by created_at (a
// release before a "latest" pointer, then by address) that is not kept.
func (s *Store) worstOf(p *publisher, kept map[cid.Cid]bool) string {
	var worst string
	var wr *Release
	for a := range p.addrs {
		r := s.releases[a]
		if kept[r.CID] {
			continue
		}
		if wr == nil || evictBefore(r, a, wr, worst) {
			worst, wr = a, r
		}
	}
	return worst
}

func evictBefore(a *Release, aAddr string, b *Release, bAddr string) bool {
	if !a.CreatedAt.Equal(b.CreatedAt) {
		return a.CreatedAt.Before(b.CreatedAt)
	}
	if a.Latest != b.Latest {
		return !a.Latest
	}
	return aAddr < bAddr
}

// victimPublisher is the publisher to evict from: the lowest rank, then
// the most events that are not kept, then the one first seen last.
func (s *Store) victimPublisher(keptBy map[string]int) string {
	var victim string
	var vfirst int64
	vrank, vn := 0, 0
	for did, p := range s.pubs {
		n := len(p.addrs) - keptBy[did]
		if n <= 0 {
			continue
		}
		rank := 0
		if s.ranker != nil {
			rank = s.ranker.Rank(did)
		}
		if victim == "" || rank < vrank ||
			(rank == vrank && (n > vn || (n == vn && (p.firstSeen > vfirst || (p.firstSeen == vfirst && did > victim))))) {
			victim, vfirst, vrank, vn = did, p.firstSeen, rank, n
		}
	}
	return victim
}

// Complete puts c, the completed form of a CID-only release (see
// Release.Complete), in place of the release it completes, if that is
// still what the store holds at its address, and completes the
// publisher's other events for the same manifest (the app's "latest"
// pointer) each against its own tags; it reports whether the store
// changed.
func (s *Store) Complete(c *Release) (bool, error) {
	if c.Manifest == nil || len(c.Envelope) == 0 {
		return false, errors.New("complete release: no verified envelope")
	}
	addr := address(c.NostrPubKey, c.D)
	kept := s.kept()
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.releases[addr]
	if !ok || old.EventID != c.EventID || len(old.Envelope) > 0 {
		return false, nil
	}
	cc := *c
	cc.Latest = cc.D == LatestD(cc.AppID) // c may be a List row
	done := []*Release{&cc}
	if p := s.pubs[c.Publisher]; p != nil {
		for a := range p.addrs {
			o := s.releases[a]
			if a != addr && o.CID.Equals(c.CID) && len(o.Envelope) == 0 {
				if oc, err := o.Complete(c.Envelope); err == nil {
					done = append(done, oc)
				}
			}
		}
	}
	var entries []journalEntry
	for _, r := range done {
		a := address(r.NostrPubKey, r.D)
		s.bytes += cost(r) - cost(s.releases[a]) // same address, same publisher
		s.releases[a] = r
		entries = append(entries, journalEntry{Op: "put", R: r})
	}
	// A completed envelope counts against MaxBytes like any other.
	for _, a := range s.enforceLocked(c.Publisher, kept) {
		entries = append(entries, journalEntry{Op: "drop", Addr: a})
	}
	return true, s.appendLocked(entries...)
}

// newer reports whether a replaces b under NIP-01.
func newer(a, b *Release) bool {
	if !a.CreatedAt.Equal(b.CreatedAt) {
		return a.CreatedAt.After(b.CreatedAt)
	}
	return a.EventID < b.EventID
}

// Delete applies a verified NIP-09 deletion: each `a` tag naming an archy
// address of the deletion's own author removes what is held there up to
// the deletion's created_at.
func (s *Store) Delete(ev *nostr.Event) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var entries []journalEntry
	prefix := strconv.Itoa(KindAppData) + ":" + ev.PubKey + ":"
	for _, t := range ev.Tags {
		if len(t) < 2 || t[0] != "a" || !strings.HasPrefix(t[1], prefix) {
			continue
		}
		addr := t[1]
		at := int64(ev.CreatedAt)
		if old, ok := s.tombstone[addr]; !ok || at > old {
			s.tombstone[addr] = at
			entries = append(entries, journalEntry{Op: "tomb", Addr: addr, At: at})
		}
		if r, ok := s.releases[addr]; ok && r.CreatedAt.Unix() <= at {
			s.unindex(addr)
			entries = append(entries, journalEntry{Op: "drop", Addr: addr})
		}
		// The app's "latest" pointer goes too if it names this release.
		if appID, version, ok := parseReleaseD(strings.TrimPrefix(addr, prefix)); ok {
			latest := address(ev.PubKey, LatestD(appID))
			if r, ok := s.releases[latest]; ok && r.Version == version && r.CreatedAt.Unix() <= at {
				s.unindex(latest)
				entries = append(entries, journalEntry{Op: "drop", Addr: latest})
			}
		}
	}
	if len(entries) == 0 {
		return false, nil
	}
	for _, a := range s.trimTombstonesLocked(ev.PubKey) {
		entries = append(entries, journalEntry{Op: "untomb", Addr: a})
	}
	return true, s.appendLocked(entries...)
}

// trimTombstonesLocked forgets the oldest withdrawals past the caps (of
// key pub, then in all). A forgotten withdrawal only lets an older copy
// of a withdrawn event back in if a relay still serves it.
func (s *Store) trimTombstonesLocked(pub string) []string {
	var out []string
	prefix := strconv.Itoa(KindAppData) + ":" + pub + ":"
	oldest := func(prefix string) (string, int) {
		var addr string
		var at int64
		n := 0
		for a, t := range s.tombstone {
			if !strings.HasPrefix(a, prefix) {
				continue
			}
			n++
			if addr == "" || t < at || (t == at && a < addr) {
				addr, at = a, t
			}
		}
		return addr, n
	}
	for {
		a, n := oldest(prefix)
		if n <= s.cfg.MaxPerPublisher {
			break
		}
		delete(s.tombstone, a)
		out = append(out, a)
	}
	for len(s.tombstone) > s.cfg.MaxTombstones {
		a, _ := oldest("")
		delete(s.tombstone, a)
		out = append(out, a)
	}
	return out
}

// List returns the stored releases, one row per release, sorted by app
// id, then newest first. A release is marked Latest when its publisher's
// "latest" pointer for the app names it (same version and manifest); a
// pointer whose release event is not held is a row of its own.
func (s *Store) List() []*Release {
	s.mu.Lock()
	out := make([]*Release, 0, len(s.releases))
	for _, r := range s.releases {
		if r.Latest {
			if rel, ok := s.releases[address(r.NostrPubKey, ReleaseD(r.AppID, r.Version))]; ok && rel.CID.Equals(r.CID) {
				continue // shown as its release's Latest flag
			}
			c := *r
			out = append(out, &c)
			continue
		}
		c := *r
		if p, ok := s.releases[address(r.NostrPubKey, LatestD(r.AppID))]; ok && p.Version == r.Version && p.CID.Equals(r.CID) {
			c.Latest = true
		}
		out = append(out, &c)
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].AppID != out[j].AppID {
			return out[i].AppID < out[j].AppID
		}
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.After(out[j].CreatedAt)
		}
		return out[i].EventID < out[j].EventID
	})
	return out
}

// StoreStats describes what a Store holds, for tests, metrics and the
// flood figure.
type StoreStats struct {
	Events       int   `json:"events"` // releases and "latest" pointers
	Publishers   int   `json:"publishers"`
	Bytes        int64 `json:"bytes"` // counted against MaxBytes
	Tombstones   int   `json:"tombstones"`
	Evicted      int64 `json:"evicted"` // since the store was opened
	JournalBytes int64 `json:"journal_bytes"`
	MaxPublisher int   `json:"max_publisher"` // events of the largest publisher
}

// Stats returns what the store holds now.
func (s *Store) Stats() StoreStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := StoreStats{Events: len(s.releases), Publishers: len(s.pubs), Bytes: s.bytes, Tombstones: len(s.tombstone),
		Evicted: s.evicted, JournalBytes: s.jsize}
	for _, p := range s.pubs {
		st.MaxPublisher = max(st.MaxPublisher, len(p.addrs))
	}
	return st
}

// appendLocked writes entries to the journal in one write, and compacts
// when the journal has outgrown the snapshot.
func (s *Store) appendLocked(entries ...journalEntry) error {
	if s.journal == nil || len(entries) == 0 {
		return nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf) // one line per entry
	for i := range entries {
		if err := enc.Encode(&entries[i]); err != nil {
			return fmt.Errorf("save discovery store: %w", err)
		}
	}
	n, err := s.journal.Write(buf.Bytes())
	s.jsize += int64(n)
	s.unsynced = true
	if err != nil {
		return fmt.Errorf("save discovery store: append to %s: %w", s.journalPath, err)
	}
	if s.jsize > max(s.cfg.CompactAt, s.snapSize) {
		return s.compactLocked()
	}
	return nil
}

// compactLocked writes the whole store as the snapshot (atomically:
// temporary file, fsync, rename) and empties the journal.
func (s *Store) compactLocked() error {
	f := storeFile{Version: storeVersion, Tombstone: s.tombstone, FirstSeen: map[string]int64{}}
	for _, r := range s.releases {
		f.Releases = append(f.Releases, r)
	}
	for did, p := range s.pubs {
		f.FirstSeen[did] = p.firstSeen
	}
	sort.Slice(f.Releases, func(i, j int) bool { return f.Releases[i].EventID < f.Releases[j].EventID })
	data, err := json.Marshal(&f)
	if err != nil {
		return fmt.Errorf("save discovery store: %w", err)
	}
	if err := atomicfile.Write(s.cfg.Path, data, 0o600); err != nil {
		return fmt.Errorf("save discovery store: %w", err)
	}
	s.snapSize = int64(len(data))
	// The snapshot holds everything now; a crash before the truncation
	// only replays entries it already holds.
	if err := s.journal.Truncate(0); err != nil {
		return fmt.Errorf("save discovery store: empty %s: %w", s.journalPath, err)
	}
	s.jsize = 0
	if err := s.journal.Sync(); err != nil {
		return fmt.Errorf("save discovery store: sync %s: %w", s.journalPath, err)
	}
	s.unsynced = false
	return nil
}

// Sync makes every change so far durable.
func (s *Store) Sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.syncLocked()
}

func (s *Store) syncLocked() error {
	if s.journal == nil || !s.unsynced {
		return nil
	}
	if err := s.journal.Sync(); err != nil {
		return fmt.Errorf("sync discovery store journal %s: %w", s.journalPath, err)
	}
	s.unsynced = false
	return nil
}

// Close syncs the journal and closes it; the store must not change after.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.journal == nil {
		return nil
	}
	err := s.syncLocked()
	if cerr := s.journal.Close(); err == nil {
		err = cerr
	}
	s.journal = nil
	return err
}
