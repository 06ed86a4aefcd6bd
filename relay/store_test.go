package relay

import (
	"bytes"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
)

func openTestStore(t *testing.T, dir string, opts ...storeOption) *store {
	t.Helper()
	s, err := openStore(dir, DefaultMaxEvents, DefaultMaxStoredBytes, testLogger(t), opts...)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	return s
}

func put(t *testing.T, s *store, evs ...nostr.Event) {
	t.Helper()
	for _, ev := range evs {
		res, err := s.put(&ev, func(*record) {})
		if err != nil || res != accepted {
			t.Fatalf("put: %v %v", res, err)
		}
	}
}

func storedIDs(s *store) []string {
	recs := s.query(nostr.Filters{{}}, func(*nostr.Filter) int { return 1 << 30 }, nil)
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.ev.ID
	}
	return out
}

func TestJournalTornTail(t *testing.T) {
	dir := t.TempDir()
	k := newKey(t)
	base := time.Now().Unix()
	a, b := k.sign(t, 1, base, nil, "a"), k.sign(t, 1, base+1, nil, "b")
	s := openTestStore(t, dir)
	put(t, s, a, b)
	s.close()
	path := filepath.Join(dir, journalName)
	whole, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	// Every cut inside the last record, and garbage after it, must leave
	// exactly the first event, and a log that takes appends again.
	lastStart := len(whole) - (recordHeader + len(mustJSON(t, b)))
	for _, tail := range []struct {
		name string
		data []byte
	}{
		{"cut in header", whole[:lastStart+3]},
		{"cut in payload", whole[:lastStart+recordHeader+10]},
		{"bad checksum", flipByte(whole, len(whole)-5)},
		{"zero length", append(whole[:lastStart:lastStart], make([]byte, 12)...)},
		{"garbage length", append(whole[:lastStart:lastStart], 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4)},
	} {
		t.Run(tail.name, func(t *testing.T) {
			if err := os.WriteFile(path, tail.data, 0o600); err != nil {
				t.Fatal(err)
			}
			os.Remove(path + ".torn")
			s := openTestStore(t, dir)
			if got := storedIDs(s); len(got) != 1 || got[0] != a.ID {
				t.Fatalf("after a torn tail: %v, want [%s]", got, a.ID)
			}
			torn, err := os.ReadFile(path + ".torn")
			if err != nil || len(torn) != len(tail.data)-lastStart {
				t.Fatalf("torn copy: %d bytes, err %v; want %d", len(torn), err, len(tail.data)-lastStart)
			}
			put(t, s, b)
			s.close()
			s = openTestStore(t, dir)
			defer s.close()
			if got := storedIDs(s); len(got) != 2 {
				t.Fatalf("after append and reopen: %v", got)
			}
		})
	}
}

func TestJournalHeader(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, journalName)
	// A crash while the header was written: start afresh.
	if err := os.WriteFile(path, []byte(journalMagic[:4]), 0o600); err != nil {
		t.Fatal(err)
	}
	s := openTestStore(t, dir)
	s.close()
	// Not our file, or a version we do not read: refuse, touch nothing.
	for _, content := range []string{"something else entirely\n", journalMagic + "\x02"} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := openStore(dir, 10, DefaultMaxStoredBytes, testLogger(t)); err == nil {
			t.Fatalf("opened a log starting %q", content)
		}
		if got, _ := os.ReadFile(path); string(got) != content {
			t.Fatal("refused log was changed")
		}
	}
}

func TestStoreLock(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir)
	if _, err := openStore(dir, 10, DefaultMaxStoredBytes, testLogger(t)); !errors.Is(err, ErrDataDirInUse) {
		t.Fatalf("second open: %v, want ErrDataDirInUse", err)
	}
	s.close()
	openTestStore(t, dir).close()
}

// TestReplayEqualsLive checks that a store rebuilt from its log, and from
// the compacted log, answers like the store that wrote it; and that the
// log is compacted on open and while running.
func TestReplayEqualsLive(t *testing.T) {
	const compactMin = 100
	dir := t.TempDir()
	k := newKey(t)
	base := time.Now().Unix() - 10000
	s := openTestStore(t, dir, withCompactMin(1<<30)) // none while the dead-heavy log is written
	var gone []nostr.Event
	// Many versions of a few replaceable and addressable events, and
	// deleted notes: most of the log is dead.
	for i := range 300 {
		put(t, s, k.sign(t, 0, base+int64(i), nil, fmt.Sprint("profile ", i)))
		put(t, s, k.sign(t, 30078, base+int64(i), nostr.Tags{{"d", fmt.Sprint("app", i%3)}}, fmt.Sprint(i)))
		if i%50 == 0 {
			note := k.sign(t, 1, base+int64(i), nil, fmt.Sprint("note ", i))
			put(t, s, note)
			if i%100 == 0 {
				put(t, s, k.sign(t, 5, base+int64(i)+1, nostr.Tags{{"e", note.ID}}, ""))
				gone = append(gone, note)
			}
		}
	}
	put(t, s, k.sign(t, 5, base+5000, nostr.Tags{{"a", "30078:" + k.pk + ":app1"}}, ""))
	want := storedIDs(s)
	size := s.j.size
	s.close()

	s = openTestStore(t, dir, withCompactMin(compactMin))
	if got := storedIDs(s); !equal(got, want) {
		t.Fatalf("replayed store differs:\n got %v\nwant %v", got, want)
	}
	if s.j.size >= size/4 {
		t.Fatalf("log not compacted on open: %d bytes, was %d", s.j.size, size)
	}
	for _, ev := range gone {
		if res, _ := s.put(&ev, func(*record) {}); res != deleted {
			t.Fatalf("deleted event after compaction: %v, want deleted", res)
		}
	}
	s.close()
	s = openTestStore(t, dir, withCompactMin(compactMin))
	defer s.close()
	if got := storedIDs(s); !equal(got, want) {
		t.Fatalf("store from the compacted log differs:\n got %v\nwant %v", got, want)
	}

	// While running, the log is compacted as dead records pile up.
	for i := range 3 * compactMin {
		put(t, s, k.sign(t, 0, base+1000+int64(i), nil, fmt.Sprint("profile ", i)))
	}
	if s.dead > compactMin+len(s.byID) {
		t.Fatalf("%d dead records in the log: not compacted while running", s.dead)
	}
}

func TestStoreFull(t *testing.T) {
	s := newStore(2, DefaultMaxStoredBytes)
	k := newKey(t)
	base := time.Now().Unix()
	put(t, s, k.sign(t, 1, base, nil, "a"), k.sign(t, 0, base, nil, "p1"))
	ev := k.sign(t, 1, base, nil, "b")
	if res, _ := s.put(&ev, func(*record) {}); res != full {
		t.Fatalf("third event: %v, want full", res)
	}
	// Replacing an event does not need another slot.
	put(t, s, k.sign(t, 0, base+1, nil, "p2"))

	// The byte cap counts the JSON stored, and frees what is replaced.
	s = newStore(100, 2500)
	big := func(kind int, at int64) nostr.Event { return k.sign(t, kind, at, nil, strings.Repeat("x", 700)) }
	put(t, s, big(1, base), big(0, base))
	ev = big(1, base+1)
	if res, _ := s.put(&ev, func(*record) {}); res != full {
		t.Fatalf("event over the byte cap: %v, want full", res)
	}
	put(t, s, big(0, base+1))
}

func TestJournalFailureStopsAppends(t *testing.T) {
	dir := t.TempDir()
	k := newKey(t)
	base := time.Now().Unix()
	a, b, c := k.sign(t, 1, base, nil, "a"), k.sign(t, 1, base+1, nil, "b"), k.sign(t, 1, base+2, nil, "c")
	s := openTestStore(t, dir)
	put(t, s, a)
	s.j.f.Close() // the next write fails
	if _, err := s.put(&b, func(*record) {}); err == nil {
		t.Fatal("append to a closed file succeeded")
	}
	f, err := os.OpenFile(filepath.Join(dir, journalName), os.O_RDWR|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	s.j.f = f
	if _, err := s.put(&c, func(*record) {}); err == nil || !strings.Contains(err.Error(), "restart") {
		t.Fatalf("append after a failure: %v, want refused until restart", err)
	}
	s.close()
	s = openTestStore(t, dir)
	defer s.close()
	if got := storedIDs(s); len(got) != 1 || got[0] != a.ID {
		t.Fatalf("after reopen: %v, want only the event before the failure", got)
	}
	put(t, s, b)
}

func TestEncodeEventKeepsText(t *testing.T) {
	ev := newKey(t).sign(t, 1, 1700000000, nostr.Tags{{"t", "<&>"}}, "a <b> & c")
	raw, err := encodeEvent(&ev)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(raw, []byte(`"a <b> & c"`)) || !bytes.Contains(raw, []byte(`["t","<&>"]`)) {
		t.Fatalf("encoded %s", raw)
	}
	var back nostr.Event
	if err := back.UnmarshalJSON(raw); err != nil || back.Content != ev.Content || !back.CheckID() {
		t.Fatalf("round trip: %+v %v", back, err)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func mustJSON(t *testing.T, ev nostr.Event) []byte {
	t.Helper()
	b, err := encodeEvent(&ev)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func flipByte(b []byte, i int) []byte {
	out := bytes.Clone(b)
	out[i] ^= 0xff
	return out
}

// TestStoreOrderAnyInsertOrder: events stored in random created_at order
// (with many ties), some removed again, come back from queries in NIP-01
// order (newest first, ties lowest id first) within since, until and
// limit, as a sort of everything stored says.
func TestStoreOrderAnyInsertOrder(t *testing.T) {
	s := newStore(DefaultMaxEvents, DefaultMaxStoredBytes)
	authors := []string{randomHex(32), randomHex(32), randomHex(32)}
	rng := mrand.New(mrand.NewPCG(1, 2))
	var kept []*record
	for i := range 3000 {
		ev := &nostr.Event{
			ID: randomHex(32), PubKey: authors[rng.IntN(len(authors))], CreatedAt: nostr.Timestamp(1000 + rng.IntN(300)),
			Kind: 1 + rng.IntN(2), Tags: nostr.Tags{}, Content: fmt.Sprint(i), Sig: randomHex(64),
		}
		if _, err := s.put(ev, func(*record) {}); err != nil {
			t.Fatal(err)
		}
		kept = append(kept, s.byID[ev.ID])
	}
	for i := 0; i < len(kept); i += 3 {
		s.remove(kept[i])
		kept[i] = nil
	}
	kept = slices.DeleteFunc(kept, func(r *record) bool { return r == nil })
	slices.SortFunc(kept, resultOrder)

	for i := range 200 {
		f := nostr.Filter{}
		if rng.IntN(2) == 0 {
			f.Authors = []string{authors[rng.IntN(len(authors))]}
		}
		if rng.IntN(2) == 0 {
			f.Kinds = []int{1 + rng.IntN(2)}
		}
		if rng.IntN(2) == 0 {
			f.Since = ptr(nostr.Timestamp(1000 + rng.IntN(300)))
		}
		if rng.IntN(2) == 0 {
			f.Until = ptr(nostr.Timestamp(1000 + rng.IntN(300)))
		}
		limit := 1 + rng.IntN(500)
		var want []*record
		for _, r := range kept {
			if len(want) < limit && f.Matches(r.ev) {
				want = append(want, r)
			}
		}
		got := s.query(nostr.Filters{f}, func(*nostr.Filter) int { return limit }, nil)
		if !slices.Equal(got, want) {
			t.Fatalf("query %d (%+v, limit %d): got %d records, want %d, or a different order", i, f, limit, len(got), len(want))
		}
	}
	if n := s.all.len(); n != len(kept) {
		t.Fatalf("%d stored, want %d", n, len(kept))
	}
}
