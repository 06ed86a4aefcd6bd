package discovery

import "testing"

// TestSeenSetBounded: the set grows as ids arrive, remembers the last n,
// forgets older ones, and never holds more than n.
func TestSeenSetBounded(t *testing.T) {
	const n = 1000
	s := newSeenSet(n)
	if cap(s.ring) != 0 {
		t.Fatalf("a new set holds a ring of %d", cap(s.ring))
	}
	id := func(i int) (b [32]byte) { b[0], b[1], b[2] = byte(i), byte(i>>8), byte(i>>16); return }
	for i := range 3 * n {
		if !s.add(id(i)) {
			t.Fatalf("id %d reported seen before it was added", i)
		}
		if s.add(id(i)) {
			t.Fatalf("id %d reported new twice", i)
		}
		if len(s.set) > n || cap(s.ring) > n {
			t.Fatalf("after %d ids: %d in the map, ring of %d (bound %d)", i+1, len(s.set), cap(s.ring), n)
		}
	}
	for i := range 3 * n {
		if want := i >= 2*n; s.has(id(i)) != want {
			t.Fatalf("id %d: has %v, want %v", i, !want, want)
		}
	}
}
