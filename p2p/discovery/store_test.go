package discovery

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"
	"github.com/nbd-wtf/go-nostr"

	"github.com/archy-node/archy/cas"
)

func verified(t *testing.T, evs []nostr.Event, now time.Time) []*Release {
	t.Helper()
	var out []*Release
	for i := range evs {
		r, err := Verify(&evs[i], now)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func holds(s *Store) string {
	var v []string
	for _, r := range s.List() {
		v = append(v, fmt.Sprintf("%s/%v", r.Version, r.Latest))
	}
	sort.Strings(v)
	return fmt.Sprint(v)
}

// TestStoreWithdrawal checks NIP-09 withdrawal in the store: the release
// goes, the "latest" pointer goes only if it names that release, neither
// comes back from an older copy, and all of it survives a reopen.
func TestStoreWithdrawal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "discovered.json") // the folder is made on save
	s, err := OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, "1.0.0")
	t0 := time.Now().Add(-time.Minute)
	v1 := verified(t, f.events(t, t0), time.Now())
	for _, r := range v1 {
		if changed, err := s.Put(r); err != nil || !changed {
			t.Fatalf("Put: %v %v", changed, err)
		}
	}
	if got := holds(s); got != "[1.0.0/true]" {
		t.Fatalf("store holds %s", got)
	}

	del, err := Withdrawal(f.sk, "hello-web", "1.0.0", "", t0.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if changed, err := s.Delete(&del); err != nil || !changed {
		t.Fatalf("Delete: %v %v", changed, err)
	}
	if got := holds(s); got != "[]" {
		t.Fatalf("after withdrawing the latest release the store holds %s", got)
	}
	// Relays may still send the old events: they stay withdrawn.
	for i, r := range v1 {
		if changed, _ := s.Put(r); changed {
			t.Fatalf("event %d came back after its withdrawal", i)
		}
	}

	// A newer release is the latest; withdrawing 1.0.0 again leaves it.
	f2 := newFixtureWithKey(t, f.key, f.sk, "1.1.0")
	for _, r := range verified(t, f2.events(t, t0.Add(2*time.Second)), time.Now()) {
		if _, err := s.Put(r); err != nil {
			t.Fatal(err)
		}
	}
	del2, _ := Withdrawal(f.sk, "hello-web", "1.0.0", "", t0.Add(3*time.Second))
	if _, err := s.Delete(&del2); err != nil {
		t.Fatal(err)
	}
	// A withdrawal by another key names its own addresses only.
	other := newFixture(t, "1.1.0")
	del3, _ := Withdrawal(other.sk, "hello-web", "1.1.0", "", t0.Add(4*time.Second))
	if _, err := s.Delete(&del3); err != nil {
		t.Fatal(err)
	}
	if got := holds(s); got != "[1.1.0/true]" {
		t.Fatalf("store holds %s", got)
	}

	back, err := OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := holds(back); got != "[1.1.0/true]" {
		t.Fatalf("reopened store holds %s", got)
	}
	if changed, _ := back.Put(v1[1]); changed {
		t.Fatal("a withdrawn latest pointer came back after a reopen")
	}
}

func TestParseReleaseD(t *testing.T) {
	tests := []struct {
		d, id, version string
		ok             bool
	}{
		{ReleaseD("hello", "1.0.0"), "hello", "1.0.0", true},
		{ReleaseD("org.example.app", "2.0.0-rc.1+b5"), "org.example.app", "2.0.0-rc.1+b5", true},
		{LatestD("hello"), "", "", false},
		{"archy/v1/release/@1.0.0", "", "", false},
		{"archy/v1/release/hello@", "", "", false},
		{"archy/v1/release/hello", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.d, func(t *testing.T) {
			id, v, ok := parseReleaseD(tt.d)
			if id != tt.id || v != tt.version || ok != tt.ok {
				t.Fatalf("parseReleaseD = %q %q %v", id, v, ok)
			}
		})
	}
}

// synth is a CID-only release (no envelope, so nothing to verify on load)
// by publisher pub, for the store's bookkeeping tests.
func synth(pub, app, version string, at time.Time, latest bool) *Release {
	d := ReleaseD(app, version)
	if latest {
		d = LatestD(app)
	}
	return &Release{AppID: app, Version: version, Channel: "stable", Publisher: "did:key:" + pub, NostrPubKey: pub,
		EventID: fmt.Sprintf("%064x", cas.Digest([]byte(pub+d+at.String()))), D: d,
		CID: cas.Sum([]byte(pub + app + version)), CreatedAt: at, Latest: latest}
}

func mustPut(t *testing.T, s *Store, r *Release) bool {
	t.Helper()
	changed, err := s.Put(r)
	if err != nil {
		t.Fatal(err)
	}
	return changed
}

// TestStoreOneRowPerRelease checks that a release and its "latest"
// pointer list as one row marked latest, an older release as a row of its
// own, and a pointer whose release is not held as its own row.
func TestStoreOneRowPerRelease(t *testing.T) {
	s, err := NewStore(StoreConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1_700_000_000, 0)
	mustPut(t, s, synth("a", "app", "1.0.0", t0, false))
	mustPut(t, s, synth("a", "app", "1.0.0", t0, true))
	mustPut(t, s, synth("a", "app", "1.1.0", t0.Add(time.Second), false))
	mustPut(t, s, synth("a", "app", "1.1.0", t0.Add(time.Second), true)) // replaces the 1.0.0 pointer
	mustPut(t, s, synth("b", "other", "2.0.0", t0, true))                // pointer alone
	var rows []string
	for _, r := range s.List() {
		rows = append(rows, fmt.Sprintf("%s@%s/%v", r.AppID, r.Version, r.Latest))
	}
	if got := fmt.Sprint(rows); got != "[app@1.1.0/true app@1.0.0/false other@2.0.0/true]" {
		t.Fatalf("rows %s", got)
	}
	if st := s.Stats(); st.Events != 5-1 {
		t.Fatalf("stats %+v, want 4 events", st)
	}
}

// TestStoreBounds floods an in-memory store from many publishers and one
// established one, and checks the caps hold, the kept release and the
// established publisher's releases stay, the newest versions of a
// publisher stay, and a publisher new after the flood still gets in.
func TestStoreBounds(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	clock := now
	s, err := NewStore(StoreConfig{MaxPerPublisher: 8, MaxEvents: 100, Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	installed := synth("old", "web", "1.0.0", now, false)
	s.SetKeeper(KeepFunc(func() map[cid.Cid]bool { return map[cid.Cid]bool{installed.CID: true} }))
	mustPut(t, s, installed)
	mustPut(t, s, synth("old", "web", "1.0.0", now, true))
	mustPut(t, s, synth("old", "blog", "3.0.0", now, false))
	// 50 throwaway publishers, 40 releases each, in rounds; later
	// versions are newer. The "installed" flood release is kept too.
	floodKept := synth("sybil07", "app", "v0", now, false)
	s.SetKeeper(KeepFunc(func() map[cid.Cid]bool {
		return map[cid.Cid]bool{installed.CID: true, floodKept.CID: true}
	}))
	for v := range 40 {
		clock = clock.Add(time.Second)
		for p := range 50 {
			mustPut(t, s, synth(fmt.Sprintf("sybil%02d", p), "app", fmt.Sprintf("v%d", v), now.Add(time.Duration(v)*time.Second), false))
			if st := s.Stats(); st.Events > 100 || st.MaxPublisher > 8 {
				t.Fatalf("over the caps: %+v", st)
			}
		}
	}
	has := func(r *Release) bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		got, ok := s.releases[address(r.NostrPubKey, r.D)]
		return ok && got.EventID == r.EventID
	}
	for _, r := range []*Release{installed, synth("old", "web", "1.0.0", now, true), synth("old", "blog", "3.0.0", now, false), floodKept} {
		if !has(r) {
			t.Fatalf("%s@%s (latest %v) of %s was evicted", r.AppID, r.Version, r.Latest, r.NostrPubKey)
		}
	}
	// A flooder keeps its newest versions, not its first ones.
	if !has(synth("sybil03", "app", "v39", now.Add(39*time.Second), false)) || has(synth("sybil03", "app", "v0", now, false)) {
		t.Fatal("a publisher's newest version was evicted before its oldest")
	}
	clock = clock.Add(time.Second)
	late := synth("newcomer", "tool", "1.0.0", now, false)
	if !mustPut(t, s, late) || !has(late) {
		t.Fatal("a new publisher cannot get in after the flood")
	}
	if st := s.Stats(); st.Events != 100 || st.Evicted == 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestStoreByteCap checks MaxBytes: large envelopes evict.
func TestStoreByteCap(t *testing.T) {
	s, err := NewStore(StoreConfig{MaxBytes: 10 * (4096 + 512)})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1_700_000_000, 0)
	for i := range 30 {
		r := synth(fmt.Sprint("p", i), "app", "1.0.0", t0, false)
		r.Envelope = make([]byte, 4096)
		mustPut(t, s, r)
	}
	if st := s.Stats(); st.Events != 10 || st.Bytes > 10*(4096+512) {
		t.Fatalf("stats %+v", st)
	}
}

// TestStoreJournal checks incremental persistence: puts append to the
// journal (the snapshot is not rewritten), compaction folds the journal
// into the snapshot, a torn last line is cut, and a reopen sees the same
// rows, first-seen times and withdrawals.
func TestStoreJournal(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "discovery", "discovered.json")
	clock := time.Unix(1_700_000_000, 0)
	cfg := StoreConfig{Path: path, CompactAt: 64 << 10, MaxEvents: 50, Now: func() time.Time { return clock }}
	s, err := NewStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1_600_000_000, 0)
	mustPut(t, s, synth("a", "app", "1.0.0", t0, false))
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("a put rewrote the snapshot: %v", err)
	}
	j := filepath.Join(dir, "discovery", "discovered.journal")
	fi, err := os.Stat(j)
	if err != nil || fi.Size() == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("journal after a put: %v %v", fi, err)
	}
	compactions := 0
	for i := range 400 { // past CompactAt: at least one compaction
		clock = clock.Add(time.Second)
		before := s.Stats().JournalBytes
		mustPut(t, s, synth(fmt.Sprint("p", i%60), "app", fmt.Sprint("1.0.", i), t0.Add(time.Duration(i)*time.Second), false))
		// A put appends its own line (and an eviction's), whatever the store holds.
		switch after := s.Stats().JournalBytes; {
		case after < before:
			compactions++
		case after-before > 2<<10:
			t.Fatalf("put %d appended %d bytes", i, after-before)
		}
	}
	if compactions == 0 {
		t.Fatal("the journal was never compacted")
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("no snapshot after the journal outgrew CompactAt: %v", err)
	}
	if fi, _ := os.Stat(j); fi.Size() > 64<<10 {
		t.Fatalf("journal is %d bytes, past CompactAt", fi.Size())
	}
	del := nostr.Event{PubKey: "a", CreatedAt: nostr.Timestamp(t0.Unix() + 1),
		Tags: nostr.Tags{{"a", address("a", ReleaseD("app", "1.0.0"))}}}
	if _, err := s.Delete(&del); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	want := s.List()
	// A crash mid-append leaves half a line: it is cut on open.
	f, err := os.OpenFile(j, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"op":"put","r":{"app_id":`)
	f.Close()
	s2, err := NewStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	got := s2.List()
	if len(got) != len(want) || len(got) == 0 || len(got) > 50 {
		t.Fatalf("reopened store lists %d rows, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i].EventID != want[i].EventID {
			t.Fatalf("row %d: %s, want %s", i, got[i].EventID, want[i].EventID)
		}
	}
	if mustPut(t, s2, synth("a", "app", "1.0.0", t0, false)) {
		t.Fatal("a withdrawn release came back after a reopen")
	}
	s.mu.Lock()
	s2.mu.Lock()
	for did, p := range s.pubs {
		if q := s2.pubs[did]; q == nil || q.firstSeen != p.firstSeen {
			t.Errorf("publisher %s: first seen %v after reopen, want %d", did, q, p.firstSeen)
		}
	}
	s2.mu.Unlock()
	s.mu.Unlock()
	// The torn tail is gone: appends after it replay.
	mustPut(t, s2, synth("z", "app", "9.0.0", t0.Add(time.Hour), false))
	s2.Close()
	s3, err := NewStore(StoreConfig{Path: path, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(s3.List()); n != len(want)+1 {
		t.Fatalf("after the torn tail, reopened store lists %d rows, want %d", n, len(want)+1)
	}
}

// TestStoreRankerAndTombstones checks that a Ranker's higher rank keeps a
// publisher whatever its share, and that withdrawals are bounded per key
// and in all, the oldest forgotten first.
func TestStoreRankerAndTombstones(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	s, err := NewStore(StoreConfig{MaxPerPublisher: 3, MaxEvents: 6, MaxTombstones: 5})
	if err != nil {
		t.Fatal(err)
	}
	s.SetRanker(rankFunc(func(did string) int {
		if did == "did:key:trusted" {
			return 1
		}
		return 0
	}))
	for v := range 3 {
		mustPut(t, s, synth("trusted", "app", fmt.Sprint(v), t0.Add(time.Duration(v)*time.Second), false))
	}
	for p := range 6 {
		mustPut(t, s, synth(fmt.Sprint("sybil", p), "app", "1", t0, false))
	}
	st := s.Stats()
	if st.Events != 6 || st.MaxPublisher != 3 {
		t.Fatalf("stats %+v: the ranked publisher lost events", st)
	}

	del := func(pub string, at int64, versions ...string) {
		ev := nostr.Event{PubKey: pub, CreatedAt: nostr.Timestamp(at)}
		for _, v := range versions {
			ev.Tags = append(ev.Tags, nostr.Tag{"a", address(pub, ReleaseD("app", v))})
		}
		if _, err := s.Delete(&ev); err != nil {
			t.Fatal(err)
		}
	}
	del("x", 100, "1", "2", "3", "4") // four from one key: the oldest goes
	if st := s.Stats(); st.Tombstones != 3 {
		t.Fatalf("%d withdrawals kept for one key, want 3", st.Tombstones)
	}
	del("y", 200, "1", "2")
	del("z", 300, "1", "2")
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.tombstone) != 5 {
		t.Fatalf("%d withdrawals kept, want 5", len(s.tombstone))
	}
	xs := 0
	for a := range s.tombstone {
		if strings.Contains(a, ":x:") {
			xs++
		}
	}
	if xs != 1 { // 3 + 2 + 2 withdrawals: the two oldest (x's) go
		t.Fatalf("%d of x's withdrawals kept, want 1", xs)
	}
	if _, ok := s.tombstone[address("z", ReleaseD("app", "2"))]; !ok {
		t.Fatal("the newest withdrawal was forgotten")
	}
}

type rankFunc func(string) int

func (f rankFunc) Rank(did string) int { return f(did) }
