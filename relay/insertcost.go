package relay

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"time"

	"github.com/nbd-wtf/go-nostr"
)

// InsertCost measures what storing one event costs a store that holds n
// events: it fills an in-memory store with n kind-1 events from 1,000
// authors, created over the past year, then times rounds storing one event
// with a created_at inside that year (old) and one created now (new), and
// returns the median of each. It is the relay's insert path as a client's
// EVENT takes it, under the store's lock, without the signature check (the
// events are not signed). For `make bench` (relay/internal/insertbench).
func InsertCost(n, rounds int) (old, new time.Duration, err error) {
	if n < 1 || rounds < 1 {
		return 0, 0, fmt.Errorf("insert cost: n and rounds must be positive, got %d and %d", n, rounds)
	}
	s := newStore(n+2*rounds, 1<<40)
	now := time.Now().Unix()
	const year = 365 * 24 * 3600
	authors := make([]string, 1000)
	for i := range authors {
		authors[i] = randHex(32)
	}
	event := func(createdAt int64) *nostr.Event {
		return &nostr.Event{
			ID: randHex(32), PubKey: authors[mrand.IntN(len(authors))],
			CreatedAt: nostr.Timestamp(createdAt), Kind: 1,
			Tags: nostr.Tags{}, Content: "insert cost", Sig: randHex(64),
		}
	}
	nop := func(*record) {}
	for range n {
		if _, err := s.put(event(now-1-mrand.Int64N(year)), nop); err != nil {
			return 0, 0, fmt.Errorf("insert cost: fill: %w", err)
		}
	}
	olds := make([]time.Duration, 0, rounds)
	news := make([]time.Duration, 0, rounds)
	for i := range rounds {
		ev := event(now - 1 - mrand.Int64N(year))
		t0 := time.Now()
		res, err := s.put(ev, nop)
		olds = append(olds, time.Since(t0))
		if err != nil || res != accepted {
			return 0, 0, fmt.Errorf("insert cost: old event %d: result %d, %v", i, res, err)
		}
		ev = event(now + int64(i))
		t0 = time.Now()
		res, err = s.put(ev, nop)
		news = append(news, time.Since(t0))
		if err != nil || res != accepted {
			return 0, 0, fmt.Errorf("insert cost: new event %d: result %d, %v", i, res, err)
		}
	}
	slices.Sort(olds)
	slices.Sort(news)
	return olds[rounds/2], news[rounds/2], nil
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
