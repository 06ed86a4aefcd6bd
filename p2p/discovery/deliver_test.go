package discovery

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/archy-node/archy/did"
	"github.com/archy-node/archy/relay"
	"github.com/archy-node/archy/relay/relaytest"
	"github.com/nbd-wtf/go-nostr"
)

// BenchmarkDeliverAnnouncement is what one subscriber's discovery of a
// real announcement (both its events, the whole envelope in each) costs
// a machine that runs the relay and the subscribers together, as the
// simulator's emulation does: a relay in this process, 48 discoverers
// each with its own store on disk, one announcement at a time, until
// every discoverer has stored both events. It reports the wall time and
// the process's CPU time per subscriber; the model charges that CPU
// (deliverCPU) on the shared cores for each node's discovery when a
// scenario's nodes share cores (sim/model). Relay's BenchmarkFanout, a
// tiny event's copy, and BenchmarkVerifyAnnouncement, the checks alone,
// leave out the envelope's encoding, parsing and storing.
func BenchmarkDeliverAnnouncement(b *testing.B) {
	const subs, rounds = 48, 10
	url := relaytest.Start(b, relay.Config{DataDir: b.TempDir(), EventRate: 1e6, EventBurst: 1e6, MaxConnectionsPerIP: 1000})
	stored := make(chan struct{}, 2*subs)
	for range subs {
		startNodeWith(b, []string{url}, func(c *Config) {
			c.OnRelease = func(*Release) { stored <- struct{}{} }
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // a hang guard
	defer cancel()
	pub, err := Dial(ctx, url, time.Minute)
	if err != nil {
		b.Fatal(err)
	}
	defer pub.Close()
	k, err := did.Generate()
	if err != nil {
		b.Fatal(err)
	}
	sk := nostr.GeneratePrivateKey()
	base := time.Now().Add(-time.Hour)
	// deliver publishes announcement v and waits until every subscriber
	// stored both its events; it returns the wall and CPU time that took.
	deliver := func(v int) (wall, cpu time.Duration) {
		// A second apart: the "latest" pointer replaces the last one.
		evs := newFixtureWithKey(b, k, sk, fmt.Sprintf("1.0.%d", v)).events(b, base.Add(time.Duration(v)*time.Second))
		c0, t0 := cpuTime(), time.Now()
		for _, ev := range evs {
			if err := pub.Publish(ctx, ev); err != nil {
				b.Fatal(err)
			}
		}
		for range 2 * subs {
			select {
			case <-stored:
			case <-ctx.Done():
				b.Fatal("announcement not stored by every subscriber")
			}
		}
		return time.Since(t0), cpuTime() - c0
	}
	deliver(0) // the subscriptions are up once one reached all
	var wall, cpu time.Duration
	n := 0
	for b.Loop() {
		for range rounds {
			n++
			w, c := deliver(n)
			wall += w
			cpu += c
		}
	}
	wallPer := float64(wall.Nanoseconds()) / 1000 / float64(n*subs)
	cpuPer := float64(cpu.Nanoseconds()) / 1000 / float64(n*subs)
	fmt.Printf("figure discovery-deliver-us-per-sub %.0f\nfigure discovery-deliver-cpu-us-per-sub %.0f\n", wallPer, cpuPer)
	b.ReportMetric(wallPer, "us/sub")
	b.ReportMetric(cpuPer, "cpu-us/sub")
}

// cpuTime is the CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
