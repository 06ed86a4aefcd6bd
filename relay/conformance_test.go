package relay

// The relay conformance suite: NIP-01, NIP-09 and NIP-11 behaviour, checked
// through real websockets with go-nostr's client (and a plain websocket
// client where the exact wire order matters).

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip11"
)

func TestEOSE(t *testing.T) { forEachClient(t, testEOSE) }

func testEOSE(t *testing.T, connect connectFunc) {
	s := start(t, Config{})
	rl := connect(t, s)
	if got := query(t, rl, nostr.Filter{Kinds: []int{1}}); len(got) != 0 {
		t.Fatalf("empty relay returned %d events", len(got))
	}
	k := newKey(t)
	base := time.Now().Unix() - 100
	evs := []nostr.Event{
		k.sign(t, 1, base, nil, "a"),
		k.sign(t, 1, base+1, nil, "b"),
	}
	mustPublish(t, rl, evs...)
	sameIDs(t, query(t, rl, nostr.Filter{Kinds: []int{1}}), evs...)

	// EOSE comes after the stored events, and live events after EOSE.
	c := dialRaw(t, s)
	if got := c.reqIDs("s", map[string]any{"kinds": []int{1}}); len(got) != 2 {
		t.Fatalf("got %d stored events before EOSE, want 2", len(got))
	}
	live := k.sign(t, 1, base+2, nil, "c")
	mustPublish(t, rl, live)
	msg := c.next()
	if str(t, msg[0]) != "EVENT" || str(t, msg[1]) != "s" {
		t.Fatalf("after EOSE got %s, want the live EVENT", msg)
	}
}

func TestFilters(t *testing.T) { forEachClient(t, testFilters) }

func testFilters(t *testing.T, connect connectFunc) {
	s := start(t, Config{})
	rl := connect(t, s)
	alice, bob := newKey(t), newKey(t)
	base := time.Now().Unix() - 1000
	a1 := alice.sign(t, 1, base+1, nostr.Tags{{"t", "archy-app"}}, "a1")
	a2 := alice.sign(t, 7, base+2, nostr.Tags{{"e", a1.ID}, {"p", bob.pk}}, "+")
	b1 := bob.sign(t, 1, base+3, nostr.Tags{{"t", "other"}, {"t", "archy-app"}}, "b1")
	b2 := bob.sign(t, 1, base+4, nostr.Tags{{"p", alice.pk}, {"emoji", "x"}}, "b2")
	b3 := bob.sign(t, 4, base+5, nostr.Tags{{"T", "upper"}}, "b3")
	all := []nostr.Event{a1, a2, b1, b2, b3}
	mustPublish(t, rl, all...)

	ts := func(v int64) *nostr.Timestamp { x := nostr.Timestamp(v); return &x }
	cases := []struct {
		name    string
		filters []nostr.Filter
		want    []nostr.Event
	}{
		{"empty filter", []nostr.Filter{{}}, all},
		{"ids", []nostr.Filter{{IDs: []string{a2.ID, b3.ID}}}, []nostr.Event{a2, b3}},
		{"unknown id", []nostr.Filter{{IDs: []string{strings.Repeat("0", 64)}}}, nil},
		{"authors", []nostr.Filter{{Authors: []string{alice.pk}}}, []nostr.Event{a1, a2}},
		{"kinds", []nostr.Filter{{Kinds: []int{1}}}, []nostr.Event{a1, b1, b2}},
		{"kinds and authors", []nostr.Filter{{Kinds: []int{1}, Authors: []string{bob.pk}}}, []nostr.Event{b1, b2}},
		{"#t", []nostr.Filter{{Tags: nostr.TagMap{"t": {"archy-app"}}}}, []nostr.Event{a1, b1}},
		{"#t any of", []nostr.Filter{{Tags: nostr.TagMap{"t": {"other", "nope"}}}}, []nostr.Event{b1}},
		{"#e", []nostr.Filter{{Tags: nostr.TagMap{"e": {a1.ID}}}}, []nostr.Event{a2}},
		{"#p", []nostr.Filter{{Tags: nostr.TagMap{"p": {alice.pk, bob.pk}}}}, []nostr.Event{a2, b2}},
		{"#T is not #t", []nostr.Filter{{Tags: nostr.TagMap{"T": {"upper"}}}}, []nostr.Event{b3}},
		{"two tags both required", []nostr.Filter{{Tags: nostr.TagMap{"e": {a1.ID}, "p": {alice.pk}}}}, nil},
		{"since", []nostr.Filter{{Since: ts(base + 4)}}, []nostr.Event{b2, b3}},
		{"until", []nostr.Filter{{Until: ts(base + 2)}}, []nostr.Event{a1, a2}},
		{"since and until", []nostr.Filter{{Since: ts(base + 2), Until: ts(base + 3)}}, []nostr.Event{a2, b1}},
		{"limit", []nostr.Filter{{Limit: 2}}, []nostr.Event{b3, b2}},
		{"limit with kinds", []nostr.Filter{{Kinds: []int{1}, Limit: 1}}, []nostr.Event{b2}},
		{"two filters are a union", []nostr.Filter{{Kinds: []int{4}}, {Authors: []string{alice.pk}}}, []nostr.Event{b3, a1, a2}},
		{"overlapping filters give each event once", []nostr.Filter{{Kinds: []int{1}}, {Authors: []string{bob.pk}}}, []nostr.Event{a1, b1, b2, b3}},
		{"each filter has its own limit", []nostr.Filter{{Kinds: []int{1}, Limit: 1}, {Kinds: []int{7}, Limit: 1}}, []nostr.Event{b2, a2}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sameIDs(t, query(t, rl, tc.filters...), tc.want...)
		})
	}

	t.Run("limit 0 gives only EOSE, then live events", func(t *testing.T) {
		c := dialRaw(t, s)
		if got := c.reqIDs("z", map[string]any{"limit": 0}); len(got) != 0 {
			t.Fatalf("limit 0 returned %d events", len(got))
		}
		ev := alice.sign(t, 1, time.Now().Unix(), nil, "live")
		mustPublish(t, rl, ev)
		msg := c.next()
		var got nostr.Event
		if str(t, msg[0]) != "EVENT" || json.Unmarshal(msg[2], &got) != nil || got.ID != ev.ID {
			t.Fatalf("got %s, want the live event", msg)
		}
	})
	t.Run("live events honour the filter", func(t *testing.T) {
		c := dialRaw(t, s)
		c.reqIDs("live", map[string]any{"authors": []string{bob.pk}, "#t": []string{"live"}})
		mustPublish(t, rl,
			alice.sign(t, 1, time.Now().Unix(), nostr.Tags{{"t", "live"}}, "wrong author"),
			bob.sign(t, 1, time.Now().Unix(), nostr.Tags{{"t", "dead"}}, "wrong tag"))
		want := bob.sign(t, 1, time.Now().Unix(), nostr.Tags{{"t", "live"}}, "right")
		mustPublish(t, rl, want)
		msg := c.next()
		var got nostr.Event
		if json.Unmarshal(msg[2], &got) != nil || got.ID != want.ID {
			t.Fatalf("got %s, want only the matching live event", msg)
		}
	})
}

func TestLimitOrdering(t *testing.T) { forEachClient(t, testLimitOrdering) }

func testLimitOrdering(t *testing.T, connect connectFunc) {
	s := start(t, Config{MaxLimit: 4})
	rl := connect(t, s)
	k := newKey(t)
	base := time.Now().Unix() - 1000
	// Several events share a created_at so the id tie-break shows.
	var evs []nostr.Event
	for i := range 9 {
		evs = append(evs, k.sign(t, 1, base+int64(i/3), nil, fmt.Sprint("n", i)))
	}
	mustPublish(t, rl, evs...)
	want := idsOf(nip01Order(evs)...)

	c := dialRaw(t, s)
	if got := c.reqIDs("all", map[string]any{"limit": 9}); !slices.Equal(got, want[:4]) {
		t.Fatalf("limit above MaxLimit:\n got %v\nwant %v", got, want[:4])
	}
	if got := c.reqIDs("three", map[string]any{"limit": 3}); !slices.Equal(got, want[:3]) {
		t.Fatalf("limit 3:\n got %v\nwant %v", got, want[:3])
	}
	if got := c.reqIDs("nolimit", map[string]any{"kinds": []int{1}}); !slices.Equal(got, want[:4]) {
		t.Fatalf("no limit gives MaxLimit:\n got %v\nwant %v", got, want[:4])
	}
	until := base + 1
	if got := c.reqIDs("until", map[string]any{"until": until, "limit": 4}); !slices.Equal(got, want[3:7]) {
		t.Fatalf("until+limit:\n got %v\nwant %v", got, want[3:7])
	}
	if got := c.reqIDs("union", map[string]any{"limit": 1}, map[string]any{"until": base, "limit": 2}); !slices.Equal(got, []string{want[0], want[6], want[7]}) {
		t.Fatalf("two filters:\n got %v\nwant %v", got, []string{want[0], want[6], want[7]})
	}
}

// twoWithSameTime signs two events with one created_at and returns them
// as (lower id, higher id).
func twoWithSameTime(t *testing.T, k key, kind int, at int64, tags nostr.Tags) (low, high nostr.Event) {
	a := k.sign(t, kind, at, tags, "first")
	b := k.sign(t, kind, at, tags, "second")
	if a.ID < b.ID {
		return a, b
	}
	return b, a
}

func TestReplaceable(t *testing.T) { forEachClient(t, testReplaceable) }

func testReplaceable(t *testing.T, connect connectFunc) {
	for _, kind := range []int{0, 3, 10002} {
		t.Run(fmt.Sprint("kind ", kind), func(t *testing.T) {
			s := start(t, Config{})
			rl := connect(t, s)
			k := newKey(t)
			base := time.Now().Unix() - 100
			f := nostr.Filter{Kinds: []int{kind}, Authors: []string{k.pk}}

			old := k.sign(t, kind, base, nil, "old")
			cur := k.sign(t, kind, base+10, nil, "new")
			mustPublish(t, rl, old, cur)
			sameIDs(t, query(t, rl, f), cur)
			refusedWith(t, publish(t, rl, old), "duplicate:")
			refusedWith(t, publish(t, rl, k.sign(t, kind, base+5, nil, "older")), "duplicate:")
			sameIDs(t, query(t, rl, f), cur)

			// Equal created_at: the lowest id wins, whatever the order of
			// arrival.
			low, high := twoWithSameTime(t, k, kind, base+20, nil)
			mustPublish(t, rl, high, low)
			sameIDs(t, query(t, rl, f), low)
			low2, high2 := twoWithSameTime(t, k, kind, base+30, nil)
			mustPublish(t, rl, low2)
			refusedWith(t, publish(t, rl, high2), "duplicate:")
			sameIDs(t, query(t, rl, f), low2)
			if got := query(t, rl, nostr.Filter{IDs: idsOf(old, cur, low, high, high2)}); len(got) != 0 {
				t.Fatalf("replaced versions still served: %v", ids(got))
			}

			// Another author's event of the same kind is separate.
			other := newKey(t).sign(t, kind, base, nil, "x")
			mustPublish(t, rl, other)
			sameIDs(t, query(t, rl, nostr.Filter{Kinds: []int{kind}}), low2, other)
		})
	}
}

func TestAddressable(t *testing.T) { forEachClient(t, testAddressable) }

func testAddressable(t *testing.T, connect connectFunc) {
	s := start(t, Config{})
	rl := connect(t, s)
	k := newKey(t)
	base := time.Now().Unix() - 100
	d := func(v string) nostr.Tags { return nostr.Tags{{"d", v}, {"t", "archy-app"}} }
	f := nostr.Filter{Kinds: []int{30078}, Authors: []string{k.pk}}

	x1 := k.sign(t, 30078, base, d("archy/v1/app/x"), "x1")
	y1 := k.sign(t, 30078, base, d("archy/v1/app/y"), "y1")
	x2 := k.sign(t, 30078, base+1, d("archy/v1/app/x"), "x2")
	mustPublish(t, rl, x1, y1, x2)
	sameIDs(t, query(t, rl, f), x2, y1)
	refusedWith(t, publish(t, rl, x1), "duplicate:")

	// The tie-break, both orders of arrival.
	low, high := twoWithSameTime(t, k, 30078, base+5, d("archy/v1/app/x"))
	mustPublish(t, rl, high, low)
	sameIDs(t, query(t, rl, f), low, y1)
	low2, high2 := twoWithSameTime(t, k, 30078, base+6, d("archy/v1/app/y"))
	mustPublish(t, rl, low2)
	refusedWith(t, publish(t, rl, high2), "duplicate:")
	sameIDs(t, query(t, rl, f), low, low2)

	// No d tag is the empty d; another kind is another address.
	nod := k.sign(t, 30078, base, nil, "no d")
	empty := k.sign(t, 30078, base+1, nostr.Tags{{"d", ""}}, "empty d")
	other := k.sign(t, 30079, base, d("archy/v1/app/x"), "other kind")
	mustPublish(t, rl, nod, empty, other)
	sameIDs(t, query(t, rl, nostr.Filter{Authors: []string{k.pk}}), low, low2, empty, other)
	sameIDs(t, query(t, rl, nostr.Filter{Tags: nostr.TagMap{"d": {"archy/v1/app/x"}}}), low, other)
}

func TestDeletionByID(t *testing.T) { forEachClient(t, testDeletionByID) }

func testDeletionByID(t *testing.T, connect connectFunc) {
	s := start(t, Config{})
	rl := connect(t, s)
	alice, mallory := newKey(t), newKey(t)
	base := time.Now().Unix() - 100
	keep := alice.sign(t, 1, base, nil, "keep")
	gone := alice.sign(t, 1, base+1, nil, "gone")
	notYet := alice.sign(t, 1, base+2, nil, "deleted before it arrives")
	mustPublish(t, rl, keep, gone)

	// Someone else's deletion request is stored but deletes nothing.
	forged := mallory.sign(t, 5, base+3, nostr.Tags{{"e", keep.ID}}, "")
	mustPublish(t, rl, forged)
	del := alice.sign(t, 5, base+4, nostr.Tags{{"e", gone.ID}, {"e", notYet.ID}, {"k", "1"}}, "oops")
	mustPublish(t, rl, del)

	sameIDs(t, query(t, rl, nostr.Filter{Kinds: []int{1}}), keep)
	sameIDs(t, query(t, rl, nostr.Filter{IDs: []string{gone.ID}}))
	sameIDs(t, query(t, rl, nostr.Filter{Kinds: []int{5}}), forged, del)
	refusedWith(t, publish(t, rl, gone), "blocked:")
	refusedWith(t, publish(t, rl, notYet), "blocked:")

	// A deletion request cannot be deleted.
	mustPublish(t, rl, alice.sign(t, 5, base+5, nostr.Tags{{"e", del.ID}}, ""))
	if got := query(t, rl, nostr.Filter{IDs: []string{del.ID}}); len(got) != 1 {
		t.Fatal("a deletion request was deleted")
	}
	// Mallory's request does not stop the same id from another author:
	// it only ever applies to mallory's own events.
	mustPublish(t, rl, mallory.sign(t, 5, base+6, nostr.Tags{{"e", notYet.ID}}, ""))
}

func TestDeletionByAddress(t *testing.T) { forEachClient(t, testDeletionByAddress) }

func testDeletionByAddress(t *testing.T, connect connectFunc) {
	s := start(t, Config{})
	rl := connect(t, s)
	alice, mallory := newKey(t), newKey(t)
	base := time.Now().Unix() - 100
	d := nostr.Tags{{"d", "archy/v1/release/x@1.0.0"}}
	addr := "30078:" + alice.pk + ":archy/v1/release/x@1.0.0"
	v1 := alice.sign(t, 30078, base, d, "v1")
	v2 := alice.sign(t, 30078, base+10, d, "v2")
	profile := alice.sign(t, 0, base, nil, `{"name":"alice"}`)
	mustPublish(t, rl, v1, v2, profile)

	mustPublish(t, rl, mallory.sign(t, 5, base+20, nostr.Tags{{"a", addr}}, ""))
	sameIDs(t, query(t, rl, nostr.Filter{Authors: []string{alice.pk}}), v2, profile)

	// Deletes versions up to the request's created_at, before or after it.
	mustPublish(t, rl, alice.sign(t, 5, base+15, nostr.Tags{{"a", addr}, {"a", "0:" + alice.pk + ":"}}, "withdrawn"))
	sameIDs(t, query(t, rl, nostr.Filter{Authors: []string{alice.pk}, Kinds: []int{0, 30078}}))
	refusedWith(t, publish(t, rl, v2), "blocked:")
	refusedWith(t, publish(t, rl, alice.sign(t, 30078, base+15, d, "same second")), "blocked:")
	refusedWith(t, publish(t, rl, alice.sign(t, 0, base+1, nil, "{}")), "blocked:")
	v3 := alice.sign(t, 30078, base+16, d, "v3")
	mustPublish(t, rl, v3)
	sameIDs(t, query(t, rl, nostr.Filter{Kinds: []int{30078}}), v3)

	// A request older than the stored version leaves it alone.
	mustPublish(t, rl, alice.sign(t, 5, base+12, nostr.Tags{{"a", addr}}, "late"))
	sameIDs(t, query(t, rl, nostr.Filter{Kinds: []int{30078}}), v3)
}

func TestEphemeral(t *testing.T) { forEachClient(t, testEphemeral) }

func testEphemeral(t *testing.T, connect connectFunc) {
	s := start(t, Config{})
	pub, subConn := connect(t, s), connect(t, s)
	k := newKey(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	sub, err := subConn.Subscribe(ctx, nostr.Filters{{Kinds: []int{20001}}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsub()
	select {
	case <-sub.EOSE:
	case <-ctx.Done():
		t.Fatal("no EOSE")
	}
	ev := k.sign(t, 20001, time.Now().Unix(), nil, "ephemeral")
	mustPublish(t, pub, ev)
	select {
	case got := <-sub.Events:
		if got.ID != ev.ID {
			t.Fatalf("got %s, want the ephemeral event", got.ID)
		}
	case <-ctx.Done():
		t.Fatal("ephemeral event not delivered live")
	}
	if got := query(t, pub, nostr.Filter{Kinds: []int{20001}}); len(got) != 0 {
		t.Fatalf("ephemeral event was stored: %v", ids(got))
	}
	if s.store.len() != 0 {
		t.Fatalf("store holds %d events, want 0", s.store.len())
	}
}

func TestOKPrefixes(t *testing.T) { forEachClient(t, testOKPrefixes) }

func testOKPrefixes(t *testing.T, connect connectFunc) {
	s := start(t, Config{})
	rl := connect(t, s)
	k := newKey(t)
	now := time.Now().Unix()
	ev := k.sign(t, 1, now, nil, "hello")
	mustPublish(t, rl, ev)

	badID := ev
	badID.Content = "hellO"
	badSig := k.sign(t, 1, now, nil, "signed")
	badSig.Sig = flipHex(badSig.Sig, 10)
	otherKey := k.sign(t, 1, now, nil, "whose?")
	otherKey.PubKey = newKey(t).pk
	otherKey.ID = otherKey.GetID()

	cases := []struct {
		name   string
		ev     nostr.Event
		prefix string
	}{
		{"duplicate", ev, "duplicate:"},
		{"id does not match", badID, "invalid:"},
		{"bad signature", badSig, "invalid:"},
		{"signed by another key", otherKey, "invalid:"},
		{"created_at 16 minutes ahead", k.sign(t, 1, now+16*60, nil, "future"), "invalid:"},
		{"too many tags", k.sign(t, 1, now, manyTags(DefaultMaxEventTags+1), ""), "invalid:"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			refusedWith(t, publish(t, rl, tc.ev), tc.prefix)
		})
	}
	t.Run("created_at 14 minutes ahead is fine", func(t *testing.T) {
		mustPublish(t, rl, k.sign(t, 1, now+14*60, nil, "soon"))
	})

	t.Run("malformed events", func(t *testing.T) {
		c := dialRaw(t, s)
		good := map[string]any{
			"id": ev.ID, "pubkey": ev.PubKey, "created_at": ev.CreatedAt,
			"kind": ev.Kind, "tags": ev.Tags, "content": ev.Content, "sig": ev.Sig,
		}
		for _, mutate := range []func(m map[string]any){
			func(m map[string]any) { delete(m, "tags") },
			func(m map[string]any) { delete(m, "content") },
			func(m map[string]any) { m["kind"] = "1" },
			func(m map[string]any) { m["kind"] = 70000 },
			func(m map[string]any) { m["created_at"] = 1.5 },
			func(m map[string]any) { m["tags"] = [][]any{{"e", 1}} },
			func(m map[string]any) { m["pubkey"] = strings.ToUpper(ev.PubKey) },
			func(m map[string]any) { m["sig"] = ev.Sig[:100] },
		} {
			m := map[string]any{}
			for k, v := range good {
				m[k] = v
			}
			mutate(m)
			c.send("EVENT", m)
			msg := c.next()
			if str(t, msg[0]) != "OK" || str(t, msg[1]) != ev.ID || string(msg[2]) != "false" || !strings.HasPrefix(str(t, msg[3]), "invalid:") {
				t.Fatalf("%v: got %s, want OK false invalid:", m, msg)
			}
		}
		for _, raw := range []string{`not json`, `{}`, `[]`, `["EVENTS",{}]`, `["EVENT"]`, `["REQ"]`, `["CLOSE"]`, `[1,2]`} {
			c.sendRaw([]byte(raw))
			msg := c.next()
			if str(t, msg[0]) != "NOTICE" || !strings.HasPrefix(str(t, msg[1]), "invalid:") {
				t.Fatalf("%s: got %s, want NOTICE invalid:", raw, msg)
			}
		}
		for _, raw := range []string{
			`["REQ","x",{"ids":["abc"]}]`,
			`["REQ","x",{"kinds":["1"]}]`,
			`["REQ","x",{"#emoji":["x"]}]`,
			`["REQ","x",{"search":"x"}]`,
			`["REQ","x",{"limit":-1}]`,
			`["REQ","x",1]`,
			`["REQ","x"]`,
			`["REQ","` + strings.Repeat("x", 65) + `",{}]`,
		} {
			c.sendRaw([]byte(raw))
			msg := c.next()
			if str(t, msg[0]) != "CLOSED" || !strings.HasPrefix(str(t, msg[2]), "invalid:") {
				t.Fatalf("%s: got %s, want CLOSED invalid:", raw, msg)
			}
		}
	})
}

func manyTags(n int) nostr.Tags {
	tags := make(nostr.Tags, n)
	for i := range tags {
		tags[i] = nostr.Tag{"t", fmt.Sprint(i)}
	}
	return tags
}

// flipHex changes the hex digit at i.
func flipHex(s string, i int) string {
	b := []byte(s)
	if b[i] == '0' {
		b[i] = '1'
	} else {
		b[i] = '0'
	}
	return string(b)
}

func TestSubscriptionLimits(t *testing.T) { forEachClient(t, testSubscriptionLimits) }

func testSubscriptionLimits(t *testing.T, connect connectFunc) {
	s := start(t, Config{MaxSubscriptions: 2, MaxFilters: 2})
	rl := connect(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	var subs []*testSub
	for range 2 {
		sub, err := rl.Subscribe(ctx, nostr.Filters{{Kinds: []int{1}}})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsub()
		<-sub.EOSE
		subs = append(subs, sub)
	}
	closedWith := func(filters nostr.Filters, prefix string) {
		t.Helper()
		sub, err := rl.Subscribe(ctx, filters)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsub()
		select {
		case reason := <-sub.Closed:
			if !strings.HasPrefix(reason, prefix) {
				t.Fatalf("CLOSED %q, want prefix %q", reason, prefix)
			}
		case <-sub.EOSE:
			t.Fatalf("subscription accepted, want CLOSED %s", prefix)
		case <-ctx.Done():
			t.Fatal("no CLOSED")
		}
	}
	closedWith(nostr.Filters{{Kinds: []int{1}}}, "blocked:")

	// Closing one makes room for another.
	subs[0].Unsub()
	sub, err := rl.Subscribe(ctx, nostr.Filters{{Kinds: []int{1}}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsub()
	select {
	case <-sub.EOSE:
	case reason := <-sub.Closed:
		t.Fatalf("CLOSED %q after a CLOSE made room", reason)
	case <-ctx.Done():
		t.Fatal("no EOSE")
	}

	// Reusing an id replaces that subscription rather than adding one.
	c := dialRaw(t, s)
	c.reqIDs("same", map[string]any{"kinds": []int{1}})
	c.reqIDs("other", map[string]any{"kinds": []int{1}})
	c.reqIDs("same", map[string]any{"kinds": []int{2}})

	c.send("REQ", "many", map[string]any{}, map[string]any{}, map[string]any{})
	msg := c.next()
	if str(t, msg[0]) != "CLOSED" || !strings.HasPrefix(str(t, msg[2]), "invalid:") {
		t.Fatalf("three filters: got %s, want CLOSED invalid:", msg)
	}
}

func TestRateLimit(t *testing.T) { forEachClient(t, testRateLimit) }

func testRateLimit(t *testing.T, connect connectFunc) {
	// The relay's clock stands still unless the test moves it, so the
	// buckets refill only when told.
	frozen := time.Now()
	var ahead atomic.Int64 // nanoseconds past frozen
	now := func() time.Time { return frozen.Add(time.Duration(ahead.Load())) }
	s := start(t, Config{EventRate: 1, EventBurst: 3, ReqRate: 1, ReqBurst: 2, Now: now})
	rl := connect(t, s)
	k := newKey(t)
	for i := range 3 {
		mustPublish(t, rl, k.sign(t, 1, frozen.Unix(), nil, fmt.Sprint(i)))
	}
	refusedWith(t, publish(t, rl, k.sign(t, 1, frozen.Unix(), nil, "one too many")), "rate-limited:")
	// A second later the bucket holds one token: one more event, no more.
	ahead.Add(int64(time.Second))
	mustPublish(t, rl, k.sign(t, 1, frozen.Unix(), nil, "a second later"))
	refusedWith(t, publish(t, rl, k.sign(t, 1, frozen.Unix(), nil, "and one more")), "rate-limited:")
	// The bucket is per connection.
	mustPublish(t, connect(t, s), k.sign(t, 1, frozen.Unix(), nil, "other connection"))

	c := dialRaw(t, s)
	c.reqIDs("a", map[string]any{"limit": 0})
	c.reqIDs("b", map[string]any{"limit": 0})
	c.send("REQ", "c", map[string]any{"limit": 0})
	msg := c.next()
	if str(t, msg[0]) != "CLOSED" || !strings.HasPrefix(str(t, msg[2]), "rate-limited:") {
		t.Fatalf("third REQ: got %s, want CLOSED rate-limited:", msg)
	}
}

func TestMessageSizeLimit(t *testing.T) { forEachClient(t, testMessageSizeLimit) }

func testMessageSizeLimit(t *testing.T, connect connectFunc) {
	s := start(t, Config{MaxMessageSize: 4096})
	rl := connect(t, s)
	k := newKey(t)
	mustPublish(t, rl, k.sign(t, 1, time.Now().Unix(), nil, strings.Repeat("x", 3000)))
	big := k.sign(t, 1, time.Now().Unix(), nil, strings.Repeat("x", 5000))
	// go-nostr's Publish returns nil when the connection drops before an
	// OK; what matters is that nothing is stored and the socket closes.
	_ = publish(t, rl, big)
	select {
	case <-rl.Done():
	case <-time.After(testTimeout):
		t.Fatal("connection not closed after an oversized message")
	}
	// The relay carries on for others.
	other := connect(t, s)
	if got := query(t, other, nostr.Filter{Kinds: []int{1}}); len(got) != 1 {
		t.Fatalf("got %d events, want 1", len(got))
	}
}

func TestPersistence(t *testing.T) { forEachClient(t, testPersistence) }

func testPersistence(t *testing.T, connect connectFunc) {
	dir := t.TempDir()
	alice := newKey(t)
	base := time.Now().Unix() - 100
	regular := alice.sign(t, 1, base, nostr.Tags{{"t", "archy-app"}}, "regular")
	gone := alice.sign(t, 1, base+1, nil, "gone")
	p1 := alice.sign(t, 0, base, nil, "p1")
	p2 := alice.sign(t, 0, base+1, nil, "p2")
	addr1 := alice.sign(t, 30078, base, nostr.Tags{{"d", "x"}}, "a1")
	addr2 := alice.sign(t, 30078, base+1, nostr.Tags{{"d", "x"}}, "a2")
	del := alice.sign(t, 5, base+2, nostr.Tags{{"e", gone.ID}}, "")
	eph := alice.sign(t, 20000, base, nil, "ephemeral")

	s := start(t, Config{DataDir: dir})
	rl := connect(t, s)
	mustPublish(t, rl, regular, gone, p1, p2, addr1, addr2, del, eph)
	want := query(t, rl, nostr.Filter{})
	sameIDs(t, want, regular, p2, addr2, del)
	s.stop()

	s = start(t, Config{DataDir: dir})
	rl = connect(t, s)
	got := query(t, rl, nostr.Filter{})
	sameIDs(t, got, regular, p2, addr2, del)
	for i := range got {
		if got[i].String() != want[i].String() {
			t.Fatalf("event changed across restart:\n got %s\nwant %s", got[i], want[i])
		}
	}
	sameIDs(t, query(t, rl, nostr.Filter{Tags: nostr.TagMap{"t": {"archy-app"}}}), regular)
	refusedWith(t, publish(t, rl, gone), "blocked:")
	refusedWith(t, publish(t, rl, p1), "duplicate:")
	refusedWith(t, publish(t, rl, regular), "duplicate:")

	// A second relay on the same folder is refused while the first runs.
	if _, err := New(Config{DataDir: dir}, nil); err == nil {
		t.Fatal("two relays opened one data folder")
	}
}

func TestNIP11(t *testing.T) {
	s := start(t, Config{Name: "test relay", MaxSubscriptions: 7, MaxFilters: 3, MaxLimit: 99, MaxMessageSize: 4096})
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	info, err := nip11.Fetch(ctx, s.URL())
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	http.DefaultClient.CloseIdleConnections()
	if info.Name != "test relay" || !slices.Contains(info.SupportedNIPs, 1) || !slices.Contains(info.SupportedNIPs, 9) || !slices.Contains(info.SupportedNIPs, 11) {
		t.Fatalf("information document: %+v", info)
	}
	lim := info.Limitation
	if lim == nil || lim.MaxSubscriptions != 7 || lim.MaxFilters != 3 || lim.MaxLimit != 99 || lim.MaxMessageLength != 4096 || lim.MaxSubidLength != 64 {
		t.Fatalf("limitation: %+v", lim)
	}

	// Headers, and the fields go-nostr's type does not carry.
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.Addr().String(), nil)
	req.Header.Set("Accept", "application/nostr+json")
	client := &http.Client{}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/nostr+json" {
		t.Fatalf("Content-Type %q", ct)
	}
	if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatal("no CORS header")
	}
	var doc struct {
		Limitation map[string]any `json:"limitation"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Limitation["created_at_upper_limit"] != float64(900) || doc.Limitation["auth_required"] != false {
		t.Fatalf("limitation: %v", doc.Limitation)
	}

	// A plain GET is not NIP-11.
	resp, err = client.Get("http://" + s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); strings.Contains(ct, "nostr") {
		t.Fatalf("plain GET answered with %q", ct)
	}
}

// TestShutdownGoingAway: stopping the relay closes an open subscription's
// connection with 1001 going away at once, rather than waiting out the
// ShutdownTimeout (an hour here: returning at all shows it did not wait).
func TestShutdownGoingAway(t *testing.T) {
	s := start(t, Config{ShutdownTimeout: time.Hour})
	c := dialRaw(t, s)
	c.reqIDs("s", map[string]any{"limit": 0})
	readErr := make(chan error, 1)
	go func() {
		_, _, err := c.ws.Read(context.Background())
		readErr <- err
	}()
	stopped := make(chan struct{})
	go func() { s.stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(time.Minute):
		t.Fatal("shutdown waited for the ShutdownTimeout with a client connected")
	}
	err := <-readErr
	if status := websocket.CloseStatus(err); status != websocket.StatusGoingAway {
		t.Fatalf("client saw %v (status %d), want a close with 1001 going away", err, status)
	}
}
