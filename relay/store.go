package relay

import (
	"cmp"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/google/btree"
	"github.com/mailru/easyjson"
	"github.com/mailru/easyjson/jwriter"
	"github.com/nbd-wtf/go-nostr"
)

// record is one stored event: the parsed event for matching, and its JSON
// as sent to clients.
type record struct {
	ev  *nostr.Event
	raw []byte
	seq uint64 // order of acceptance, kept when the log is compacted
}

// cmpStored orders records the way lists keep them: the reverse of the
// NIP-01 result order (newest created_at first, ties lowest id first), so
// that new events are appended at the end and queries walk backwards.
func cmpStored(a, b *record) int {
	if c := cmp.Compare(a.ev.CreatedAt, b.ev.CreatedAt); c != 0 {
		return c
	}
	return strings.Compare(b.ev.ID, a.ev.ID)
}

// resultOrder is the NIP-01 order of query results.
func resultOrder(a, b *record) int { return cmpStored(b, a) }

// list is a set of records in cmpStored order. It is a B-tree, so that
// storing an event costs O(log n) whatever its created_at: with a sorted
// slice, an event older than most shifts the whole index under the lock.
// The zero list is empty; addTo creates its tree.
type list struct{ t *btree.BTreeG[entry] }

// entry is a record in a list, with its created_at at hand: most
// comparisons then end without reading the record, which keeps a walk down
// a large tree to one cache miss per node rather than two per comparison.
type entry struct {
	createdAt nostr.Timestamp
	r         *record
}

func entryOf(r *record) entry { return entry{r.ev.CreatedAt, r} }

func lessEntry(a, b entry) bool {
	if a.createdAt != b.createdAt {
		return a.createdAt < b.createdAt
	}
	return a.r.ev.ID > b.r.ev.ID // cmpStored: on a tie the lowest id sorts last
}

// listDegree is the B-tree degree: nodes hold up to 2*listDegree-1 records.
const listDegree = 16

func (l list) len() int {
	if l.t == nil {
		return 0
	}
	return l.t.Len()
}

func (l list) add(r *record) { l.t.ReplaceOrInsert(entryOf(r)) }

func (l list) delete(r *record) { l.t.Delete(entryOf(r)) }

// descend calls fn on the records created at or before until (all of them
// when until is nil), in NIP-01 order, until fn returns false.
func (l list) descend(until *nostr.Timestamp, fn func(*record) bool) {
	if l.t == nil {
		return
	}
	iter := func(e entry) bool { return fn(e.r) }
	if until == nil {
		l.t.Descend(iter)
		return
	}
	// Within one created_at the lowest id sorts last, and the empty id is
	// below every id: this pivot sorts after every record created at until.
	l.t.DescendLessOrEqual(entry{*until, &record{ev: &nostr.Event{CreatedAt: *until}}}, iter)
}

// tagKey is an indexed tag: a single-letter name and the tag's first value.
type tagKey struct {
	name  byte
	value string
}

// putResult says what became of an event given to put.
type putResult int

const (
	accepted   putResult = iota
	duplicate            // an event with this id is stored
	superseded           // a newer version of this replaceable event is stored
	deleted              // its author deleted it (NIP-09)
	full                 // the store holds MaxEvents events
)

// store holds the events in memory, indexed, and in the event log on disk.
// All its state is guarded by mu; the indexes are rebuilt from the log on
// open by accepting its events again in order.
type store struct {
	mu        sync.RWMutex
	log       *slog.Logger
	j         *journal // nil: memory only
	unlock    func()   // releases the data folder lock
	maxEvents int
	maxBytes  int
	bytes     int // JSON bytes of the stored events
	// tombstones are the entries of deletedIDs and deletedAddr, and
	// tombBytes what they are charged (tombstoneCost each). Both count
	// against maxEvents and maxBytes with the events: one deletion request
	// can name some 2,000 events, and its tombstones outlive them.
	tombstones int
	tombBytes  int
	seq        uint64
	dead       int // records in the log that are no longer stored
	compactMin int // dead records below which the log is never compacted

	free     *btree.FreeListG[entry] // shared by the lists' trees
	byID     map[string]*record
	byAddr   map[string]*record // replaceable and addressable: kind:pubkey:d
	all      list
	byAuthor map[string]list
	byKind   map[int]list
	byTag    map[tagKey]list

	deletedIDs  map[string]struct{}        // id + pubkey that asked for its deletion
	deletedAddr map[string]nostr.Timestamp // address -> deleted up to this created_at
}

func newStore(maxEvents, maxBytes int) *store {
	s := &store{
		free:        btree.NewFreeListG[entry](btree.DefaultFreeListSize),
		maxEvents:   maxEvents,
		maxBytes:    maxBytes,
		compactMin:  defaultCompactMin,
		byID:        make(map[string]*record),
		byAddr:      make(map[string]*record),
		byAuthor:    make(map[string]list),
		byKind:      make(map[int]list),
		byTag:       make(map[tagKey]list),
		deletedIDs:  make(map[string]struct{}),
		deletedAddr: make(map[string]nostr.Timestamp),
	}
	s.all = s.newList()
	return s
}

func (s *store) newList() list {
	return list{btree.NewWithFreeListG(listDegree, lessEntry, s.free)}
}

// defaultCompactMin is the number of dead records below which the log is
// never compacted.
const defaultCompactMin = 1000

// storeOption changes how a store is opened; tests use them.
type storeOption func(*store)

// withCompactMin sets the number of dead records below which the log is
// never compacted (default defaultCompactMin).
func withCompactMin(n int) storeOption { return func(s *store) { s.compactMin = n } }

// openStore opens the store in dir (created 0700 if missing), replaying its
// event log; an empty dir gives a store in memory only. The log is
// compacted on open when more of it is dead than alive.
func openStore(dir string, maxEvents, maxBytes int, log *slog.Logger, opts ...storeOption) (*store, error) {
	s := newStore(maxEvents, maxBytes)
	s.log = log
	for _, o := range opts {
		o(s)
	}
	if dir == "" {
		return s, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create relay data folder: %w", err)
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	j, cut, err := openJournal(dir, func(payload []byte) error {
		var ev nostr.Event
		if err := easyjson.Unmarshal(payload, &ev); err != nil {
			return fmt.Errorf("decode event: %w", err)
		}
		if s.decide(&ev, 0, false) != accepted {
			s.dead++
			return nil
		}
		s.apply(&record{ev: &ev, raw: slices.Clone(payload)})
		return nil
	})
	if err != nil {
		unlock()
		return nil, err
	}
	s.j, s.unlock = j, unlock
	if cut > 0 {
		log.Warn("event log had a torn or corrupt end; cut it off and kept a copy beside it",
			"bytes", cut, "copy", j.f.Name()+".torn")
	}
	if s.shouldCompact() {
		if err := s.compact(); err != nil {
			s.close()
			return nil, err
		}
		log.Info("compacted event log", "events", len(s.byID))
	}
	return s, nil
}

// shouldCompact reports whether more of the log is dead than alive (and
// enough of it to bother). Compacting then costs at most the live bytes,
// once per doubling of the dead ones: amortised, a constant per event.
func (s *store) shouldCompact() bool {
	return s.j != nil && s.dead >= s.compactMin && s.dead > len(s.byID)
}

// compact rewrites the log with the stored events only, in the order they
// were accepted. Replaying it gives the same state.
func (s *store) compact() error {
	recs := make([]*record, 0, s.all.len())
	s.all.t.Ascend(func(e entry) bool {
		recs = append(recs, e.r)
		return true
	})
	slices.SortFunc(recs, func(a, b *record) int { return cmp.Compare(a.seq, b.seq) })
	err := s.j.rewrite(func(yield func([]byte) error) error {
		for _, r := range recs {
			if err := yield(r.raw); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.dead = 0
	return nil
}

func (s *store) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var err error
	if s.j != nil {
		err = s.j.close()
		s.j = nil
	}
	if s.unlock != nil {
		s.unlock()
		s.unlock = nil
	}
	return err
}

// put stores ev if NIP-01 and NIP-09 let it in, and then calls notify with
// the new record while still holding the lock, so that a subscription
// registered under the read lock sees each event exactly once: in its
// query or through notify. ev must be verified already.
func (s *store) put(ev *nostr.Event, notify func(*record)) (putResult, error) {
	raw, err := encodeEvent(ev)
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if res := s.decide(ev, len(raw), true); res != accepted {
		return res, nil
	}
	if s.j != nil {
		if err := s.j.append(raw); err != nil {
			return 0, err
		}
	}
	r := &record{ev: ev, raw: raw}
	s.apply(r)
	notify(r)
	if s.shouldCompact() {
		// The event is safe in the old log already; a failed rewrite
		// leaves that log in place.
		if err := s.compact(); err != nil {
			s.log.Warn("could not compact the event log; will try again", "err", err)
			s.dead = 0 // retry only after as many more dead records
		}
	}
	return accepted, nil
}

// encodeEvent is the JSON the relay stores and sends for ev: go-nostr's
// encoding, without escaping <, > and & (which would only make it longer).
func encodeEvent(ev *nostr.Event) ([]byte, error) {
	w := jwriter.Writer{NoEscapeHTML: true}
	ev.MarshalEasyJSON(&w)
	raw, err := w.BuildBytes()
	if err != nil {
		return nil, fmt.Errorf("encode event: %w", err)
	}
	return raw, nil
}

// decide says whether ev, size bytes of JSON, may be stored now, without
// changing anything. enforceMax applies the store's caps (not on replay).
func (s *store) decide(ev *nostr.Event, size int, enforceMax bool) putResult {
	if _, ok := s.byID[ev.ID]; ok {
		return duplicate
	}
	if _, ok := s.deletedIDs[ev.ID+ev.PubKey]; ok {
		return deleted
	}
	count, bytes := 1, size // what storing ev adds
	if addr, ok := address(ev); ok {
		if t, ok := s.deletedAddr[addr]; ok && ev.CreatedAt <= t {
			return deleted
		}
		if old := s.byAddr[addr]; old != nil {
			if !newer(ev, old.ev) {
				return superseded
			}
			count, bytes = 0, size-len(old.raw)
		}
	}
	if !enforceMax {
		return accepted
	}
	if ev.Kind == nostr.KindDeletion {
		tombs, tombBytes, freed, freedBytes := s.deletionCost(ev)
		count += tombs - freed
		bytes += tombBytes - freedBytes
	}
	if (count > 0 && len(s.byID)+s.tombstones+count > s.maxEvents) ||
		(bytes > 0 && s.bytes+s.tombBytes+bytes > s.maxBytes) {
		return full
	}
	return accepted
}

// tombstoneCost is what one tombstone is charged against maxBytes: its key
// and about what a map entry of it costs besides.
func tombstoneCost(key string) int { return len(key) + 64 }

// deletionCost is what carrying out the deletion request del would change,
// without changing anything: the tombstones it adds and their cost, and the
// stored events it removes and their bytes. It follows applyDeletion.
func (s *store) deletionCost(del *nostr.Event) (tombs, tombBytes, freed, freedBytes int) {
	newTombs := make(map[string]struct{})
	removed := make(map[*record]struct{})
	for _, tag := range del.Tags {
		if len(tag) < 2 {
			continue
		}
		var key string
		var victim *record
		switch tag[0] {
		case "e":
			id := tag[1]
			if !isHex64(id) {
				continue
			}
			key = id + del.PubKey
			if _, ok := s.deletedIDs[key]; ok {
				key = ""
			}
			if t := s.byID[id]; t != nil && t.ev.PubKey == del.PubKey && t.ev.Kind != nostr.KindDeletion {
				victim = t
			}
		case "a":
			kind, pubkey, _, ok := parseAddress(tag[1])
			if !ok || pubkey != del.PubKey || kind == nostr.KindDeletion {
				continue
			}
			key = tag[1]
			if _, ok := s.deletedAddr[key]; ok {
				key = ""
			}
			if t := s.byAddr[tag[1]]; t != nil && t.ev.CreatedAt <= del.CreatedAt {
				victim = t
			}
		default:
			continue
		}
		if _, ok := newTombs[key]; key != "" && !ok {
			newTombs[key] = struct{}{}
			tombs++
			tombBytes += tombstoneCost(key)
		}
		if _, ok := removed[victim]; victim != nil && !ok {
			removed[victim] = struct{}{}
			freed++
			freedBytes += len(victim.raw)
		}
	}
	return tombs, tombBytes, freed, freedBytes
}

// newer reports whether a replaces b under NIP-01: the newest created_at
// wins, and on a tie the lowest id.
func newer(a, b *nostr.Event) bool {
	if a.CreatedAt != b.CreatedAt {
		return a.CreatedAt > b.CreatedAt
	}
	return a.ID < b.ID
}

// address is the key of a replaceable (kind:pubkey:) or addressable
// (kind:pubkey:d) event; ok is false for other kinds.
func address(ev *nostr.Event) (string, bool) {
	switch {
	case ev.IsReplaceable():
		return strconv.Itoa(ev.Kind) + ":" + ev.PubKey + ":", true
	case ev.IsAddressable():
		return strconv.Itoa(ev.Kind) + ":" + ev.PubKey + ":" + ev.Tags.GetD(), true
	}
	return "", false
}

// apply stores r, which decide accepted: it replaces an older version and
// carries out a deletion request.
func (s *store) apply(r *record) {
	s.seq++
	r.seq = s.seq
	ev := r.ev
	if addr, ok := address(ev); ok {
		if old := s.byAddr[addr]; old != nil {
			s.remove(old)
		}
		s.byAddr[addr] = r
	}
	if ev.Kind == nostr.KindDeletion {
		s.applyDeletion(ev)
	}
	s.byID[ev.ID] = r
	s.bytes += len(r.raw)
	s.all.add(r)
	addTo(s, s.byAuthor, ev.PubKey, r)
	addTo(s, s.byKind, ev.Kind, r)
	for _, k := range indexedTags(ev) {
		addTo(s, s.byTag, k, r)
	}
}

// applyDeletion carries out a NIP-09 deletion request: events named by e
// tags, and versions of addresses named by a tags up to its created_at,
// are removed if del's author wrote them, and will not be accepted again.
// Deletion requests themselves cannot be deleted.
func (s *store) applyDeletion(del *nostr.Event) {
	for _, tag := range del.Tags {
		if len(tag) < 2 {
			continue
		}
		switch tag[0] {
		case "e":
			id := tag[1]
			if !isHex64(id) {
				continue
			}
			if key := id + del.PubKey; !has(s.deletedIDs, key) {
				s.deletedIDs[key] = struct{}{}
				s.addTombstone(key)
			}
			if t := s.byID[id]; t != nil && t.ev.PubKey == del.PubKey && t.ev.Kind != nostr.KindDeletion {
				s.remove(t)
			}
		case "a":
			kind, pubkey, _, ok := parseAddress(tag[1])
			if !ok || pubkey != del.PubKey || kind == nostr.KindDeletion {
				continue
			}
			addr := tag[1]
			if t, ok := s.deletedAddr[addr]; !ok || del.CreatedAt > t {
				if !ok {
					s.addTombstone(addr)
				}
				s.deletedAddr[addr] = del.CreatedAt
			}
			if t := s.byAddr[addr]; t != nil && t.ev.CreatedAt <= del.CreatedAt {
				s.remove(t)
			}
		}
	}
}

func (s *store) addTombstone(key string) {
	s.tombstones++
	s.tombBytes += tombstoneCost(key)
}

func has[K comparable, V any](m map[K]V, k K) bool {
	_, ok := m[k]
	return ok
}

// parseAddress splits kind:pubkey:d, where kind is replaceable or
// addressable (d is empty for a replaceable kind).
func parseAddress(a string) (kind int, pubkey, d string, ok bool) {
	k, rest, ok1 := strings.Cut(a, ":")
	pk, d, ok2 := strings.Cut(rest, ":")
	if !ok1 || !ok2 || !isHex64(pk) {
		return 0, "", "", false
	}
	kind, err := strconv.Atoi(k)
	if err != nil || strconv.Itoa(kind) != k {
		return 0, "", "", false
	}
	probe := nostr.Event{Kind: kind}
	switch {
	case probe.IsReplaceable():
		return kind, pk, d, d == ""
	case probe.IsAddressable():
		return kind, pk, d, true
	}
	return 0, "", "", false
}

func (s *store) remove(r *record) {
	ev := r.ev
	delete(s.byID, ev.ID)
	s.bytes -= len(r.raw)
	if addr, ok := address(ev); ok && s.byAddr[addr] == r {
		delete(s.byAddr, addr)
	}
	s.all.delete(r)
	removeFrom(s.byAuthor, ev.PubKey, r)
	removeFrom(s.byKind, ev.Kind, r)
	for _, k := range indexedTags(ev) {
		removeFrom(s.byTag, k, r)
	}
	s.dead++
}

func addTo[K comparable](s *store, m map[K]list, k K, r *record) {
	l, ok := m[k]
	if !ok {
		l = s.newList()
		m[k] = l
	}
	l.add(r)
}

func removeFrom[K comparable](m map[K]list, k K, r *record) {
	l, ok := m[k]
	if !ok {
		return
	}
	l.delete(r)
	if l.t.Len() == 0 {
		delete(m, k)
	}
}

// indexedTags lists the distinct single-letter tags of ev, the ones NIP-01
// filters can ask for.
func indexedTags(ev *nostr.Event) []tagKey {
	var keys []tagKey
	for _, tag := range ev.Tags {
		if len(tag) < 2 || len(tag[0]) != 1 || !isASCIILetter(tag[0][0]) {
			continue
		}
		k := tagKey{tag[0][0], tag[1]}
		if !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	return keys
}

// len is the number of stored events.
func (s *store) len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.byID)
}

// usage is what the store holds against its caps: events and tombstones,
// and the bytes charged for both.
func (s *store) usage() (events, tombstones, bytes int) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.byID), s.tombstones, s.bytes + s.tombBytes
}

// query runs filters, each with its own limit (from limitOf), and returns
// the union in NIP-01 order. Under the same read lock it then calls then,
// so that whatever then registers misses no event stored after the query.
func (s *store) query(filters nostr.Filters, limitOf func(*nostr.Filter) int, then func()) []*record {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []*record
	for i := range filters {
		f := &filters[i]
		out = append(out, s.queryOne(f, limitOf(f))...)
	}
	if len(filters) > 1 {
		slices.SortFunc(out, resultOrder)
		out = slices.Compact(out)
	}
	if then != nil {
		then()
	}
	return out
}

func (s *store) queryOne(f *nostr.Filter, limit int) []*record {
	if limit <= 0 {
		return nil
	}
	if f.IDs != nil {
		var out []*record
		for _, id := range f.IDs {
			if r := s.byID[id]; r != nil && f.Matches(r.ev) && !slices.Contains(out, r) {
				out = append(out, r)
			}
		}
		slices.SortFunc(out, resultOrder)
		return out[:min(limit, len(out))]
	}
	lists := s.candidates(f)
	var out []*record
	for _, l := range lists {
		out = append(out, scan(l, f, limit)...)
	}
	if len(lists) > 1 {
		slices.SortFunc(out, resultOrder)
		out = slices.Compact(out)
	}
	return out[:min(limit, len(out))]
}

// candidates picks the smallest set of index lists that holds every event
// f can match.
func (s *store) candidates(f *nostr.Filter) []list {
	best := []list{s.all}
	bestN := s.all.len()
	consider := func(ls []list) {
		n := 0
		for _, l := range ls {
			n += l.len()
		}
		if n < bestN {
			best, bestN = ls, n
		}
	}
	if f.Authors != nil {
		ls := make([]list, 0, len(f.Authors))
		for _, a := range f.Authors {
			ls = append(ls, s.byAuthor[a])
		}
		consider(ls)
	}
	if f.Kinds != nil {
		ls := make([]list, 0, len(f.Kinds))
		for _, k := range f.Kinds {
			ls = append(ls, s.byKind[k])
		}
		consider(ls)
	}
	for name, values := range f.Tags {
		if len(name) != 1 {
			continue
		}
		ls := make([]list, 0, len(values))
		for _, v := range values {
			ls = append(ls, s.byTag[tagKey{name[0], v}])
		}
		consider(ls)
	}
	return best
}

// scan walks l newest first within since..until and returns up to limit
// records that match f.
func scan(l list, f *nostr.Filter, limit int) []*record {
	var out []*record
	l.descend(f.Until, func(r *record) bool {
		if f.Since != nil && r.ev.CreatedAt < *f.Since {
			return false
		}
		if f.Matches(r.ev) {
			out = append(out, r)
		}
		return len(out) < limit
	})
	return out
}
