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

// TestDeliveryLatency checks that publish to delivery on loopback takes
// well under 100 ms.
func TestDeliveryLatency(t *testing.T) {
	lat := deliveryLatencies(t, 200)
	p50, p99 := percentile(lat, 0.50), percentile(lat, 0.99)
	t.Logf("publish -> live delivery over loopback, 200 events, fsync per event: p50 %v, p99 %v, max %v", p50, p99, lat[len(lat)-1])
	if p50 > 50*time.Millisecond {
		t.Fatalf("median publish -> delivery %v, want well under 100ms", p50)
	}
}

// BenchmarkDelivery reports publish -> live delivery latency.
//
//	go test -run XXX -bench Delivery ./relay/
func BenchmarkDelivery(b *testing.B) {
	lat := deliveryLatencies(b, max(b.N, 10))
	b.ReportMetric(float64(percentile(lat, 0.50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(percentile(lat, 0.99).Microseconds())/1000, "p99-ms")
}
