package relay

import (
	"testing"

	"github.com/mailru/easyjson"
	"github.com/nbd-wtf/go-nostr"
)

// knownEvents are real events published on Nostr relays in 2022-2023 (the
// first two by fiatjaf), as carried in the test files of go-nostr and
// other independent Nostr libraries.
var knownEvents = []string{
	`{"kind":1,"id":"dc90c95f09947507c1044e8f48bcf6350aa6bff1507dd4acfc755b9239b5c962","pubkey":"3bf0c63fcb93463407af97a5e5ee64fa883d107ef9e558472c4eb9aaaefa459d","created_at":1644271588,"tags":[],"content":"now that https://blueskyweb.org/blog/2-7-2022-overview was announced we can stop working on nostr?","sig":"230e9d8f0ddaf7eb70b5f7741ccfa37e87a455c9a469282e3464e2052d3192cd63a167e196e381ef9d7e69e9ea43af2443b839974dc85d8aaab9efe1d9296524"}`,
	`{"kind":3,"id":"9e662bdd7d8abc40b5b15ee1ff5e9320efc87e9274d8d440c58e6eed2dddfbe2","pubkey":"373ebe3d45ec91977296a178d9f19f326c70631d2a1b0bbba5c5ecc2eb53b9e7","created_at":1644844224,"tags":[["p","3bf0c63fcb93463407af97a5e5ee64fa883d107ef9e558472c4eb9aaaefa459d"],["p","75fc5ac2487363293bd27fb0d14fb966477d0f1dbc6361d37806a6a740eda91e"],["p","46d0dfd3a724a302ca9175163bdf788f3606b3fd1bb12d5fe055d1e418cb60ea"]],"content":"{\"wss://nostr-pub.wellorder.net\":{\"read\":true,\"write\":true},\"wss://nostr.bitcoiner.social\":{\"read\":false,\"write\":true},\"wss://expensive-relay.fiatjaf.com\":{\"read\":true,\"write\":true},\"wss://relayer.fiatjaf.com\":{\"read\":true,\"write\":true},\"wss://relay.bitid.nz\":{\"read\":true,\"write\":true},\"wss://nostr.rocks\":{\"read\":true,\"write\":true}}","sig":"811355d3484d375df47581cb5d66bed05002c2978894098304f20b595e571b7e01b2efd906c5650080ffe49cf1c62b36715698e9d88b9e8be43029a2f3fa66be"}`,
	`{"id":"5a127c9c931f392f6afc7fdb74e8be01c34035314735a6b97d2cf360d13cfb94","pubkey":"1d80e5588de010d137a67c42b03717595f5f510e73e42cfc48f31bae91844d59","created_at":1677033299,"kind":1,"tags":[["t","japan"]],"content":"If you like my art,I'd appreciate a coin or two!!\nZap is welcome!! Thanks.\n\n\n#japan #bitcoin #art #bananaart\nhttps://void.cat/d/CgM1bzDgHUCtiNNwfX9ajY.webp","sig":"828497508487ca1e374f6b4f2bba7487bc09fccd5cc0d1baa82846a944f8c5766918abf5878a580f1e6615de91f5b57a32e34c42ee2747c983aaf47dbf2a0255"}`,
}

func decodeKnown(t *testing.T, raw string) nostr.Event {
	t.Helper()
	var ev nostr.Event
	if err := easyjson.Unmarshal([]byte(raw), &ev); err != nil {
		t.Fatal(err)
	}
	return ev
}

// verifies is the relay's own check, at the events' own time.
func verifies(ev nostr.Event) bool {
	r := &Relay{cfg: DefaultConfig()}
	return r.check(&ev, ev.CreatedAt.Time()) == ""
}

func TestKnownEventsVerify(t *testing.T) {
	for _, raw := range knownEvents {
		ev := decodeKnown(t, raw)
		if !verifies(ev) {
			t.Fatalf("known event %s does not verify", ev.ID)
		}
	}
}

// TestKnownEventsOneByteChange flips every byte of every field that the id
// or signature covers, one at a time: each change must fail.
func TestKnownEventsOneByteChange(t *testing.T) {
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'a' {
			b[i] = 'b'
		} else {
			b[i] = 'a'
		}
		return string(b)
	}
	for _, raw := range knownEvents {
		orig := decodeKnown(t, raw)
		fields := []struct {
			name string
			get  func(*nostr.Event) *string
		}{
			{"id", func(e *nostr.Event) *string { return &e.ID }},
			{"pubkey", func(e *nostr.Event) *string { return &e.PubKey }},
			{"sig", func(e *nostr.Event) *string { return &e.Sig }},
			{"content", func(e *nostr.Event) *string { return &e.Content }},
		}
		for _, f := range fields {
			for i := range len(*f.get(&orig)) {
				ev := orig
				*f.get(&ev) = flip(*f.get(&ev), i)
				if verifies(ev) {
					t.Fatalf("event %s still verifies with byte %d of %s changed", orig.ID, i, f.name)
				}
			}
		}
		for _, change := range []func(*nostr.Event){
			func(e *nostr.Event) { e.CreatedAt++ },
			func(e *nostr.Event) { e.Kind ^= 1 },
			func(e *nostr.Event) { e.Tags = append(nostr.Tags{}, nostr.Tag{"t", "x"}) },
		} {
			ev := orig
			change(&ev)
			if verifies(ev) {
				t.Fatalf("event %s still verifies after a change to created_at, kind or tags", orig.ID)
			}
		}
	}
}

// TestKnownEventsThroughRelay publishes the known events and reads them
// back unchanged.
func TestKnownEventsThroughRelay(t *testing.T) { forEachClient(t, testKnownEventsThroughRelay) }

func testKnownEventsThroughRelay(t *testing.T, connect connectFunc) {
	s := start(t, Config{})
	rl := connect(t, s)
	var evs []nostr.Event
	for _, raw := range knownEvents {
		ev := decodeKnown(t, raw)
		evs = append(evs, ev)
		mustPublish(t, rl, ev)
		bad := ev
		bad.Content += " "
		refusedWith(t, publish(t, rl, bad), "invalid:")
	}
	got := query(t, rl, nostr.Filter{})
	sameIDs(t, got, evs...)
	for _, g := range got {
		for _, e := range evs {
			if g.ID == e.ID && g.String() != e.String() {
				t.Fatalf("event came back changed:\n got %s\nwant %s", g, e)
			}
		}
	}
}
