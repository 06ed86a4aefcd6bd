package main

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"runtime"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"golang.org/x/sync/errgroup"

	"github.com/archy-node/archy/p2p/discovery"
	"github.com/archy-node/archy/relay"
)

type floodConfig struct {
	dids, apps, versions int
	dir                  string // as config.dir
}

// flood measures discovery poisoning: dids throwaway publishers have put
// apps×versions valid releases each (and each app's "latest" pointer) on
// the embedded relay (its event log on disk, as a node keeps it); one node
// with the default store configuration, on disk in a temporary folder,
// subscribes and takes them all in. It prints
// the time the node took, the store's size on disk, and the heap the node
// grew by (measured after a GC, against the heap with the relay already
// full and the node not yet started):
//
//	figure discovery-flood-s 15.78
//	figure discovery-flood-mib 9.53
//	figure discovery-flood-heap-mib 20.9
//
// The relay returns every stored event to the node's one REQ (its
// MaxLimit is raised for that); with the default 500 a relay would hand a
// starting node only the newest 500.
func flood(ctx context.Context, out, log io.Writer, cfg floodConfig) error {
	r, err := newRig(ctx, cfg.dir, relay.Config{EventRate: 1e6, EventBurst: 1 << 20, MaxLimit: 1 << 20, SendBuffer: 512 << 20})
	if err != nil {
		return err
	}
	defer r.close()
	ctx = r.ctx

	total, err := publishFlood(ctx, r.url, cfg)
	if err != nil {
		return err
	}

	heap0 := heapAfterGC()
	d, st, err := r.node("node", discovery.StoreConfig{}, discovery.Config{}) // the defaults
	if err != nil {
		return err
	}
	start := time.Now()
	r.run(func(ctx context.Context) { _ = d.Run(ctx) })
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for d.Stats().Handled < int64(total) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("the node took %d of %d flood events: %w", d.Stats().Handled, total, ctx.Err())
		case <-tick.C:
		}
	}
	took := time.Since(start)
	if err := st.Sync(); err != nil {
		return err
	}
	disk, err := dirSize(filepath.Dir(discovery.StorePath(filepath.Join(r.dir, "node"))))
	if err != nil {
		return err
	}
	heap1 := heapAfterGC()
	s := st.Stats()
	fmt.Fprintf(log, "discoverbench: flood of %d events (%d DIDs × %d apps × %d versions, and pointers) taken in by one node with the default store in %v: %d events kept from %d publishers (largest %d), %d evicted\n",
		total, cfg.dids, cfg.apps, cfg.versions, took.Round(time.Millisecond), s.Events, s.Publishers, s.MaxPublisher, s.Evicted)
	fmt.Fprintf(out, "figure discovery-flood-s %.2f\n", took.Seconds())
	fmt.Fprintf(out, "figure discovery-flood-mib %.2f\n", float64(disk)/(1<<20))
	fmt.Fprintf(out, "figure discovery-flood-heap-mib %.1f\n", float64(max(heap1, heap0)-heap0)/(1<<20))
	runtime.KeepAlive(st)
	return nil
}

func heapAfterGC() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// publishFlood signs the flood (in parallel) and publishes it, four
// connections at once; it returns the number of events.
func publishFlood(ctx context.Context, url string, cfg floodConfig) (int, error) {
	evs := make([][]nostr.Event, cfg.dids)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0))
	for p := range cfg.dids {
		g.Go(func() error {
			var err error
			evs[p], err = publisherEvents(p, cfg)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return 0, fmt.Errorf("sign the flood: %w", err)
	}
	total := 0
	g, gctx = errgroup.WithContext(ctx)
	for i := range 4 {
		var batch []nostr.Event
		for p := i; p < cfg.dids; p += 4 {
			batch = append(batch, evs[p]...)
		}
		total += len(batch)
		if len(batch) == 0 {
			continue
		}
		g.Go(func() error {
			_, err := discovery.Publish(gctx, []string{url}, 5*time.Minute, batch...)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return 0, fmt.Errorf("publish the flood: %w", err)
	}
	return total, nil
}

// publisherEvents is one throwaway publisher's part of the flood: a fresh
// DID and Nostr key, every release, and each app's last "latest" pointer.
func publisherEvents(p int, cfg floodConfig) ([]nostr.Event, error) {
	pub, err := newPublisher()
	if err != nil {
		return nil, err
	}
	at := time.Now().Add(-time.Hour)
	var out []nostr.Event
	for a := range cfg.apps {
		for v := range cfg.versions {
			evs, err := pub.announce(fmt.Sprintf("flood-%d-%d", p, a), fmt.Sprintf("1.0.%d", v), at.Add(time.Duration(v)*time.Second))
			if err != nil {
				return nil, err
			}
			out = append(out, evs[0])
			if v == cfg.versions-1 {
				out = append(out, evs[1])
			}
		}
	}
	return out, nil
}

func dirSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
		if err != nil || !e.Type().IsRegular() {
			return err
		}
		fi, err := e.Info()
		if err == nil {
			n += fi.Size()
		}
		return err
	})
	return n, err
}
