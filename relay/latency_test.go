package relay

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
)

// deliveryLatencies publishes n events on one connection and measures, for
// each, the time from the start of Publish to its arrival on a live
// subscription on another connection. The relay stores to disk (fsync per
// event), as in production.
func deliveryLatencies(tb testing.TB, n int) []time.Duration {
	s := start(tb, Config{DataDir: tb.TempDir(), EventRate: 1e6, EventBurst: 1e6})
	pub, subConn := connectWire(tb, s), connectWire(tb, s)
	k := newKey(tb)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sub, err := subConn.Subscribe(ctx, nostr.Filters{{Kinds: []int{1}, Authors: []string{k.pk}}})
	if err != nil {
		tb.Fatal(err)
	}
	defer sub.Unsub()
	<-sub.EOSE
	evs := make([]nostr.Event, n)
	for i := range evs {
		evs[i] = k.sign(tb, 1, time.Now().Unix(), nostr.Tags{{"t", "archy-app"}}, fmt.Sprint("event ", i))
	}
	out := make([]time.Duration, 0, n)
	for _, ev := range evs {
		t0 := time.Now()
		if err := pub.Publish(ctx, ev); err != nil {
			tb.Fatal(err)
		}
		select {
		case got := <-sub.Events:
			if got.ID != ev.ID {
				tb.Fatalf("got %s, want %s", got.ID, ev.ID)
			}
		case <-ctx.Done():
			tb.Fatal("event not delivered")
		}
		out = append(out, time.Since(t0))
	}
	slices.Sort(out)
	return out
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))]
}

// TestLiveDelivery: every event published on one connection reaches a
// live subscription on another, in order. How long it takes is
// BenchmarkDelivery's figure, not asserted here: a wall-clock bound fails
// on a loaded machine under -race without saying anything about the relay.
func TestLiveDelivery(t *testing.T) {
	if got := deliveryLatencies(t, 50); len(got) != 50 {
		t.Fatalf("%d of 50 events timed", len(got))
	}
}

// BenchmarkDelivery prints publish -> live delivery latency over loopback,
// fsync per event, as `make bench` figures:
//
//	figure relay-delivery-p50-ms 0.9
//	figure relay-delivery-p99-ms 3.1
//
//	go test -run '^$' -bench Delivery -benchtime 1x ./relay/
func BenchmarkDelivery(b *testing.B) {
	lat := deliveryLatencies(b, max(b.N, 200))
	figure(b, "relay-delivery-p50-ms", float64(percentile(lat, 0.50).Microseconds())/1000)
	figure(b, "relay-delivery-p99-ms", float64(percentile(lat, 0.99).Microseconds())/1000)
}

// figure prints a `make bench` figure line and reports it as a metric.
func figure(b *testing.B, name string, v float64) {
	b.Helper()
	fmt.Printf("figure %s %.3f\n", name, v)
	b.ReportMetric(v, name)
}

// BenchmarkFanout is a relay's cost per subscriber of one live event: it
// publishes events to subs live subscriptions, each on its own connection
// (plain readers, no verification), and prints the time from publish to
// the last subscriber's copy, over subs. The simulator's model charges
// this per delivery when its nodes share cores with the relay, as the
// emulation's do (sim/model: fanoutCPU).
//
//	go test -run '^$' -bench Fanout -benchtime 20x ./relay/
func BenchmarkFanout(b *testing.B) {
	const subs = 64
	s := start(b, Config{DataDir: b.TempDir(), EventRate: 1e6, EventBurst: 1e6, MaxConnectionsPerIP: 1000})
	pub := connectWire(b, s)
	k := newKey(b)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var chans []<-chan *nostr.Event
	for range subs {
		sub, err := connectWire(b, s).Subscribe(ctx, nostr.Filters{{Kinds: []int{1}, Authors: []string{k.pk}}})
		if err != nil {
			b.Fatal(err)
		}
		<-sub.EOSE
		chans = append(chans, sub.Events)
	}
	var total time.Duration
	i := 0
	for b.Loop() {
		ev := k.sign(b, 1, time.Now().Unix(), nostr.Tags{{"t", "archy-app"}}, fmt.Sprint("event ", i))
		i++
		t0 := time.Now()
		if err := pub.Publish(ctx, ev); err != nil {
			b.Fatal(err)
		}
		for _, ch := range chans {
			select {
			case <-ch:
			case <-ctx.Done():
				b.Fatal("event not delivered")
			}
		}
		total += time.Since(t0)
	}
	per := total / time.Duration(i) / subs
	fmt.Printf("figure relay-fanout-us-per-sub %.1f\n", float64(per.Nanoseconds())/1000)
	b.ReportMetric(float64(per.Nanoseconds())/1000, "us/sub")
}
