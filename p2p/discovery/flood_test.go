//go:build !race

// The flood runs without the race detector (it would take minutes under
// it); `make test` runs it in a separate pass without -race.

package discovery

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	cid "github.com/ipfs/go-cid"
	"github.com/nbd-wtf/go-nostr"

	"github.com/archy-node/archy/did"
	"github.com/archy-node/archy/registry"
	"github.com/archy-node/archy/relay"
	"github.com/archy-node/archy/relay/relaytest"
)

// TestJunkFloodBoundedMemory sends 10,000 junk events (valid Nostr
// signatures, not archy releases) to a subscribed node, then a real
// release, and checks that the release is discovered behind them, that
// the junk left nothing in the store, and that the node's heap grew by
// far less than the junk it took in: the node keeps only its bounded
// seen-set per junk event. The junk events replace one another at one
// address, so the relay (in this process) holds one of them at a time and
// its heap does not count. How long the release waits behind the junk is
// a timing for benchmarks, not asserted here.
func TestJunkFloodBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("flood test in -short mode")
	}
	const n = 10000
	url := relaytest.Start(t, relay.Config{EventRate: 10000, EventBurst: 20000})
	node := startNode(t, []string{url})
	junkKey := nostr.GeneratePrivateKey()
	now := time.Now()
	padding := strings.Repeat("junk ", 400) // 2 KB of content each
	junk := make([]nostr.Event, n+1)
	junkBytes := 0
	for i := range junk {
		ev := nostr.Event{Kind: KindAppData, CreatedAt: nostr.Timestamp(now.Add(-3*time.Hour).Unix() + int64(i)), Content: padding,
			Tags: nostr.Tags{{"d", "junk"}, {"t", Topic}, {"i", "x"}}}
		if err := ev.Sign(junkKey); err != nil {
			t.Fatal(err)
		}
		junk[i] = ev
		junkBytes += len(ev.String())
	}
	// The first one shows the node's subscription is live; the rest are
	// the flood.
	publishEvents(t, url, junk[0])
	waitHandled(t, node, 1)
	storeBefore := node.store.Stats()
	heapBefore := heapAfterGC()

	publishInOrder(t, url, junk[1:])
	f := newFixture(t, "1.0.0")
	publishEvents(t, url, f.events(t, now)...)
	waitRelease(t, node, "hello-web", "1.0.0", true)
	waitHandled(t, node, n+1)
	heapAfter := heapAfterGC()
	runtime.KeepAlive(junk)

	if d := node.disc.Stats().Dropped[ErrTags.Error()]; d != n+1 {
		t.Fatalf("%d junk events dropped, want %d: %+v", d, n+1, node.disc.Stats())
	}
	if st := node.store.Stats(); st.Events != 2 || st.Publishers != 1 || storeBefore.Events != 0 || storeBefore.Bytes != 0 {
		t.Fatalf("store before the flood %+v, after it and one release %+v: want empty, then the release and its pointer", storeBefore, st)
	}
	grew := int64(heapAfter) - int64(heapBefore)
	t.Logf("heap grew by %.1f MiB over %d junk events of %.1f MiB", float64(grew)/(1<<20), n, float64(junkBytes)/(1<<20))
	if grew > int64(junkBytes)/4 {
		t.Fatalf("heap grew by %d bytes over %d bytes of junk: the node keeps junk it dropped", grew, junkBytes)
	}
}

// publishInOrder publishes evs one after another on one connection, each
// once the relay took the last: replaceable events must reach the relay
// oldest first, or it refuses the older ones.
func publishInOrder(t *testing.T, url string, evs []nostr.Event) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, err := Dial(ctx, url, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i, ev := range evs {
		if err := c.Publish(ctx, ev); err != nil {
			t.Fatalf("publish junk %d: %v", i, err)
		}
	}
}

// heapAfterGC is the live heap, in bytes, after a full collection.
func heapAfterGC() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// floodEvents signs, for each of dids throwaway publishers (a fresh DID
// and Nostr key each), apps×versions valid releases and each app's
// "latest" pointer, as `archy app publish` would; it returns them by
// publisher, in publishing order.
func floodEvents(t *testing.T, dids, apps, versions int, at time.Time) [][]nostr.Event {
	t.Helper()
	out := make([][]nostr.Event, dids)
	var wg sync.WaitGroup
	errs := make(chan error, dids)
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for p := range dids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			evs, err := publisherFlood(p, apps, versions, at)
			if err != nil {
				errs <- err
			}
			out[p] = evs
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	return out
}

func publisherFlood(p, apps, versions int, at time.Time) ([]nostr.Event, error) {
	key, err := did.Generate()
	if err != nil {
		return nil, err
	}
	sk := nostr.GeneratePrivateKey()
	pk, _ := nostr.GetPublicKey(sk)
	b, err := Binding(key, pk)
	if err != nil {
		return nil, err
	}
	var out []nostr.Event
	for a := range apps {
		for v := range versions {
			m := testManifest(key.DID(), fmt.Sprintf("1.0.%d", v))
			m.ID = fmt.Sprintf("flood-%d-%d", p, a)
			env, _, err := registry.Sign(m, key)
			if err != nil {
				return nil, err
			}
			envJSON, err := env.Marshal()
			if err != nil {
				return nil, err
			}
			ver, err := registry.VerifyEnvelope(envJSON)
			if err != nil {
				return nil, err
			}
			ann := &Announcement{Manifest: ver, Envelope: envJSON, Binding: b, CreatedAt: at.Add(time.Duration(v) * time.Second)}
			evs, err := ann.Events(sk)
			if err != nil {
				return nil, err
			}
			out = append(out, evs[0])
			if v == versions-1 {
				out = append(out, evs[1])
			}
		}
	}
	return out, nil
}

// dirSize is the bytes of the regular files in dir.
func dirSize(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err == nil {
			n += fi.Size()
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestReleaseFloodStaysBounded is discovery poisoning on the real relay
// over websockets: 100 throwaway DIDs publish 10,000 valid releases (with
// 1,000 "latest" pointers) to a node that has one release installed and
// knows one more publisher from before. The node's store must end within
// its default caps, in memory (by its own accounting) and on disk, and the
// installed release and the earlier publisher's release must survive. (A
// store that keeps everything keeps all 11,000 events.) How long the node
// takes is discoverbench's discovery-flood-s figure, not asserted here.
func TestReleaseFloodStaysBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("flood test in -short mode")
	}
	const dids, apps, versions = 100, 10, 10
	url := relaytest.Start(t, relay.Config{EventRate: 1e6, EventBurst: 1 << 20, SendBuffer: 256 << 20})
	n := startNode(t, []string{url})
	dir := filepath.Dir(n.store.cfg.Path)

	installed := newFixture(t, "1.0.0")
	known := newFixture(t, "2.0.0") // another publisher, not installed
	n.store.SetKeeper(KeepFunc(func() map[cid.Cid]bool { return map[cid.Cid]bool{installed.verified.CID: true} }))
	now := time.Now().Add(-time.Hour)
	publishEvents(t, url, installed.events(t, now)...)
	waitRelease(t, n, "hello-web", "1.0.0", true)
	publishEvents(t, url, known.events(t, now)...)
	waitRelease(t, n, "hello-web", "2.0.0", true)
	before := n.disc.Stats().Handled

	flood := floodEvents(t, dids, apps, versions, now.Add(time.Minute))
	total := 0
	for _, evs := range flood {
		total += len(evs)
	}
	if total != dids*apps*(versions+1) {
		t.Fatalf("signed %d events", total)
	}
	start := time.Now()
	var wg sync.WaitGroup
	for i := range 4 { // four publishing connections
		wg.Add(1)
		go func() {
			defer wg.Done()
			var evs []nostr.Event
			for p := i; p < dids; p += 4 {
				evs = append(evs, flood[p]...)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			if _, err := Publish(ctx, []string{url}, 2*time.Minute, evs...); err != nil {
				t.Errorf("publish the flood: %v", err)
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	waitHandled(t, n, before+int64(total))
	took := time.Since(start)
	if err := n.store.Sync(); err != nil {
		t.Fatal(err)
	}
	st := n.store.Stats()
	disk := dirSize(t, dir)
	t.Logf("flood of %d events handled in %v: store %+v, %d bytes on disk", total, took.Round(time.Millisecond), st, disk)

	if st.Events > DefaultMaxEvents || st.MaxPublisher > DefaultMaxPerPublisher || st.Bytes > DefaultMaxBytes {
		t.Fatalf("store past its caps: %+v", st)
	}
	if ds := n.disc.Stats(); ds.Accepted < int64(DefaultMaxEvents) {
		t.Fatalf("only %d events accepted: the flood did not fill the store (%+v)", ds.Accepted, ds)
	}
	// Disk: the snapshot of a full store, a journal at most as large, and
	// the cursors. Flood events are about 3 KiB of JSON each.
	if limit := int64(2*DefaultMaxEvents*4<<10) + DefaultCompactAt; disk > limit {
		t.Fatalf("%d bytes on disk after the flood, more than %d", disk, limit)
	}
	for _, want := range []string{"1.0.0", "2.0.0"} {
		found := false
		for _, r := range n.store.List() {
			found = found || (r.AppID == "hello-web" && r.Version == want && r.Latest && r.Manifest != nil)
		}
		if !found {
			t.Fatalf("hello-web %s was evicted by the flood", want)
		}
	}
	// What is on disk is what the node holds.
	back, err := NewStore(StoreConfig{Path: n.store.cfg.Path, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := back.Stats(); got.Events != st.Events {
		t.Fatalf("reopened store holds %d events, the node %d", got.Events, st.Events)
	}
}
