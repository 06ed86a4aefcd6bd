package relay

import (
	"fmt"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
)

// TestTombstonesCount: a deletion request names events that do not exist;
// each name is a tombstone the relay keeps for good, so it must count
// against MaxEvents like an event, or a few requests make the relay
// remember without bound.
func TestTombstonesCount(t *testing.T) {
	const capacity = 10
	s := start(t, Config{MaxEvents: capacity})
	c := connectWire(t, s)
	k := newKey(t)
	now := time.Now().Unix()

	// A request naming 20 made-up events does not fit in 10 places.
	tags := make(nostr.Tags, 20)
	for i := range tags {
		tags[i] = nostr.Tag{"e", randomHex(32)}
	}
	refusedWith(t, publish(t, c, k.sign(t, nostr.KindDeletion, now, tags, "")), "error: relay storage is full")

	// One naming 5 takes 6 places (itself and 5 tombstones); 3 notes
	// take 3 more.
	mustPublish(t, c, k.sign(t, nostr.KindDeletion, now, tags[:5], ""))
	for i := range 3 {
		mustPublish(t, c, k.sign(t, 1, now, nil, fmt.Sprint("note ", i)))
	}
	// Deleting a stored note trades it for a tombstone, plus the request:
	// the tenth place.
	notes := query(t, c, nostr.Filter{Kinds: []int{1}})
	mustPublish(t, c, k.sign(t, nostr.KindDeletion, now, nostr.Tags{{"e", notes[0].ID}}, ""))
	if st := s.Stats(); st.Events != 4 || st.Tombstones != 6 {
		t.Fatalf("stats %+v, want 4 events (2 requests, 2 notes) and 6 tombstones", st)
	}
	refusedWith(t, publish(t, c, k.sign(t, 1, now, nil, "one too many")), "error: relay storage is full")
}

// TestTombstonesCountBytes: tombstones are charged against MaxStoredBytes
// too, more than their tag in the request's JSON, since each is kept as
// a map entry.
func TestTombstonesCountBytes(t *testing.T) {
	s := start(t, Config{MaxStoredBytes: 16 << 10, MaxMessageSize: 64 << 10})
	c := connectWire(t, s)
	k := newKey(t)
	tags := make(nostr.Tags, 100) // about 7.5 KiB of JSON, charged about 19 KiB
	for i := range tags {
		tags[i] = nostr.Tag{"e", randomHex(32)}
	}
	refusedWith(t, publish(t, c, k.sign(t, nostr.KindDeletion, time.Now().Unix(), tags, "")), "error: relay storage is full")
	mustPublish(t, c, k.sign(t, nostr.KindDeletion, time.Now().Unix(), tags[:40], ""))
	if st := s.Stats(); st.StoredBytes > 16<<10 || st.Tombstones != 40 {
		t.Fatalf("stats %+v: want 40 tombstones within 16 KiB", st)
	}
}
