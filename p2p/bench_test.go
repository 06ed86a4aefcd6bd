package p2p

// Benchmarks behind `make bench`. Each prints `figure <name> <value>`, a
// ratio against a baseline measured in the same run. Run with
//
//	go test -run '^$' -bench . -benchtime 1x ./p2p/
//
// They use real libp2p hosts on loopback and the on-disk block store.

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/archy-node/archy/cas"
	cid "github.com/ipfs/go-cid"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
)

func figure(b *testing.B, name string, v float64) {
	b.Helper()
	fmt.Printf("figure %s %.3f\n", name, v)
	b.ReportMetric(v, name)
}

func benchNode(b *testing.B, addrs []string, mod func(*Config)) *Node {
	b.Helper()
	return benchNodeLog(b, addrs, mod, testLogger(b))
}

func benchNodeLog(b *testing.B, addrs []string, mod func(*Config), log *slog.Logger) *Node {
	b.Helper()
	cfg := Config{DataDir: b.TempDir(), ListenAddrs: addrs, RequestTimeout: 30 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	n, err := New(context.Background(), cfg, log)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = n.Close() })
	return n
}

// cpuTime is the CPU time the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// usage is what the process has used so far: CPU time, of which in the
// kernel, and page faults (memory touched for the first time, by the heap
// or the page cache: costly on this machine, a VM).
// It also counts the time its threads were ready to run but waited for a
// core (other jobs on the machine): a run that waited long says more about
// the machine than about the code.
type usage struct {
	cpu, sys, waited time.Duration
	faults           int64
}

func usageNow() usage {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return usage{
		cpu:    time.Duration(ru.Utime.Nano() + ru.Stime.Nano()),
		sys:    time.Duration(ru.Stime.Nano()),
		waited: runQueueWait(),
		faults: ru.Minflt + ru.Majflt,
	}
}

// runQueueWait sums, over the process's threads, the time spent runnable
// but not running (/proc/PID/task/TID/schedstat, second field); 0 where
// the kernel does not keep it.
func runQueueWait() time.Duration {
	tasks, _ := filepath.Glob("/proc/self/task/*/schedstat")
	var sum time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		var run, wait int64
		if _, err := fmt.Sscan(string(b), &run, &wait); err == nil {
			sum += time.Duration(wait)
		}
	}
	return sum
}

// String says what was used since u, and how large the Go heap is now.
func (u usage) String() string {
	v := usageNow()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return fmt.Sprintf("%s of CPU (%s in the kernel), %s waiting for a core, %d page faults, heap %d MiB",
		(v.cpu - u.cpu).Round(time.Millisecond), (v.sys - u.sys).Round(time.Millisecond),
		(v.waited - u.waited).Round(time.Millisecond), v.faults-u.faults, ms.HeapSys>>20)
}

func writeRandom(b *testing.B, size int) (string, []byte) {
	b.Helper()
	data := make([]byte, size)
	_, _ = rand.Read(data)
	p := filepath.Join(b.TempDir(), "in.bin")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		b.Fatal(err)
	}
	return p, data
}

// ingest-vs-limit: blob add throughput ÷ the slower of raw BLAKE3 hashing
// (cas.Digest, one core, the whole buffer in one call) and a plain
// sequential write (+fsync) of the same bytes on the same disk. The machine
// is shared, so each of the three runs three times, interleaved, and each
// counts its best run.
func BenchmarkIngest(b *testing.B) {
	const size = 256 << 20
	in, data := writeRandom(b, size)
	dir := b.TempDir()
	best := func(cur *time.Duration, d time.Duration) {
		if *cur == 0 || d < *cur {
			*cur = d
		}
	}
	var hashT, writeT, addT time.Duration
	var syncs syncLog
	for range 3 * b.N {
		t0 := time.Now()
		_ = cas.Digest(data)
		best(&hashT, time.Since(t0))

		t0 = time.Now()
		f, err := os.Create(filepath.Join(dir, "plain"))
		if err != nil {
			b.Fatal(err)
		}
		for o := 0; o < size; o += 1 << 20 {
			_, _ = f.Write(data[o : o+1<<20])
		}
		wrote := time.Since(t0)
		_ = f.Sync()
		_ = f.Close()
		d := time.Since(t0)
		best(&writeT, d)
		b.Logf("plain write: %s wall, of which fsync %s", d, d-wrote)
		_ = os.Remove(filepath.Join(dir, "plain"))

		n := benchNodeLog(b, []string{"/ip4/127.0.0.1/tcp/0"}, nil, slog.New(&syncs))
		cpu0 := cpuTime()
		t0 = time.Now()
		if _, err := n.AddFile(context.Background(), in); err != nil {
			b.Fatal(err)
		}
		d = time.Since(t0)
		best(&addT, d)
		b.Logf("blob add: %s wall, of which fsync %s; %s cpu (process)", d, syncs.last, cpuTime()-cpu0)
		_ = n.Close()
	}
	limit := max(hashT, writeT)
	mbps := func(d time.Duration) float64 { return float64(size) / d.Seconds() / (1 << 20) }
	b.Logf("best of 3: hash %.0f MiB/s, write %.0f MiB/s, blob add %.0f MiB/s", mbps(hashT), mbps(writeT), mbps(addT))
	figure(b, "ingest-vs-limit", limit.Seconds()/addT.Seconds())
}

// syncLog keeps the sync time of the last "file added" record, so the
// ingest benchmark can show how much of an import is the final fsync.
type syncLog struct{ last time.Duration }

func (l *syncLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *syncLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *syncLog) WithGroup(string) slog.Handler            { return l }
func (l *syncLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "file added" {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "sync" {
				l.last = a.Value.Duration()
			}
			return true
		})
	}
	return nil
}

// transfer-vs-http: a 100 MiB blob between two nodes on loopback (TCP, then
// QUIC), written to a file, ÷ a net/http download of the same file written
// and fsynced the same way.
func BenchmarkTransfer(b *testing.B) {
	const size = 100 << 20
	in, data := writeRandom(b, size)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, in)
	}))
	defer srv.Close()
	httpT := time.Duration(0)
	for range b.N {
		out := filepath.Join(b.TempDir(), "http.bin")
		t0 := time.Now()
		resp, err := http.Get(srv.URL)
		if err != nil {
			b.Fatal(err)
		}
		f, _ := os.Create(out)
		if _, err := io.Copy(f, resp.Body); err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		_ = f.Sync()
		_ = f.Close()
		httpT += time.Since(t0)
	}
	var tcpT time.Duration
	for _, tr := range []struct{ name, addr string }{
		{"transfer-vs-http", "/ip4/127.0.0.1/tcp/0"},
		{"transfer-vs-http-quic", "/ip4/127.0.0.1/udp/0/quic-v1"},
	} {
		var p2pT time.Duration
		for range b.N {
			a := benchNode(b, []string{tr.addr}, nil)
			c := benchNode(b, []string{tr.addr}, nil)
			root, err := a.AddFile(context.Background(), in)
			if err != nil {
				b.Fatal(err)
			}
			if err := c.Connect(context.Background(), a.AddrInfo()); err != nil {
				b.Fatal(err)
			}
			out := filepath.Join(b.TempDir(), "p2p.bin")
			t0 := time.Now()
			if err := c.GetFile(context.Background(), root, out); err != nil {
				b.Fatal(err)
			}
			p2pT += time.Since(t0)
			got, _ := os.ReadFile(out)
			if !bytes.Equal(got, data) {
				b.Fatal("transfer corrupted the file")
			}
			_ = a.Close()
			_ = c.Close()
		}
		b.Logf("%s: http %.0f MiB/s, archy %.0f MiB/s", tr.name,
			float64(size*b.N)/httpT.Seconds()/(1<<20), float64(size*b.N)/p2pT.Seconds()/(1<<20))
		figure(b, tr.name, httpT.Seconds()/p2pT.Seconds())
		if tcpT == 0 {
			tcpT = p2pT
		}
	}
	kuboFigure(b, in, data, tcpT)
}

// ociArchive builds an OCI image archive (the layout `podman save
// --format oci-archive` writes) around layers: oci-layout, the layer blobs,
// the config and manifest blobs, index.json.
func ociArchive(layers [][]byte) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name string, data []byte) {
		_ = tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg})
		_, _ = tw.Write(data)
	}
	blob := func(data []byte) string {
		d := sha256.Sum256(data)
		h := hex.EncodeToString(d[:])
		add("blobs/sha256/"+h, data)
		return "sha256:" + h
	}
	add("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`))
	var descs []string
	for _, l := range layers {
		descs = append(descs, fmt.Sprintf(`{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":%d}`, blob(l), len(l)))
	}
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers"}}`)
	cfgDigest := blob(cfg)
	man := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},"layers":[%s]}`,
		cfgDigest, len(cfg), strings.Join(descs, ",")))
	manDigest := blob(man)
	add("index.json", []byte(fmt.Sprintf(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":%q,"size":%d}]}`, manDigest, len(man))))
	_ = tw.Close()
	return buf.Bytes()
}

// cpuProfile writes a CPU profile of what follows to path, until stop.
func cpuProfile(b *testing.B, path string) (stop func()) {
	b.Helper()
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() { pprof.StopCPUProfile(); _ = f.Close() }
}

func randomLayers(n, size int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = make([]byte, size)
		_, _ = rand.Read(out[i])
	}
	return out
}

// flash-origin-copies, flash-last-vs-baseline: 1 origin (upload capped at
// 50 MiB/s by its token bucket, super-seeding) and 16 nodes fetch a 100 MiB
// OCI archive of 4 layers, all at once. Baseline: the origin serving 16
// copies alone (16 × 2 s). The 17 nodes run on go-libp2p's mocknet (1 ms
// links, no other cap): 17 TLS stacks in one process on 2 shared cores
// measure the CPU, not the swarm. ARCHY_FLASH_TCP=1 runs it again over
// real TCP hosts on loopback (flash-*-tcp figures).
func BenchmarkFlash(b *testing.B) {
	layerSize := 25 << 20
	if s := os.Getenv("ARCHY_FLASH_MIB"); s != "" {
		var mib int
		_, _ = fmt.Sscan(s, &mib)
		layerSize = mib << 20 / 4
	}
	img := ociArchive(randomLayers(4, layerSize))
	for range b.N {
		flash(b, img, "", true)
		if os.Getenv("ARCHY_FLASH_TCP") != "" {
			flash(b, img, "-tcp", false)
		}
	}
}

func flash(b *testing.B, img []byte, suffix string, mock bool) {
	const (
		peers  = 16
		rateBs = 50 << 20
	)
	size := len(img)
	var mn mocknet.Mocknet
	hostFor := func(c *Config) {}
	if mock {
		mn = mocknet.New()
		defer mn.Close()
		mn.SetLinkDefaults(mocknet.LinkOptions{Latency: time.Millisecond})
		hostFor = func(c *Config) {
			h, err := mn.GenPeer()
			if err != nil {
				b.Fatal(err)
			}
			c.Host = h
		}
	}
	addr := []string{"/ip4/127.0.0.1/tcp/0"}
	origin := benchNode(b, addr, func(c *Config) { hostFor(c); c.UploadRate = rateBs })
	root, err := origin.Add(context.Background(), bytes.NewReader(img))
	if err != nil {
		b.Fatal(err)
	}
	nodes := make([]*Node, peers)
	for i := range nodes {
		nodes[i] = benchNode(b, addr, hostFor)
	}
	// A full mesh, as the DHT and the provider records would give.
	if mock {
		if err := mn.LinkAll(); err != nil {
			b.Fatal(err)
		}
		if err := mn.ConnectAllButSelf(); err != nil {
			b.Fatal(err)
		}
	} else {
		all := append([]*Node{origin}, nodes...)
		for i := range all {
			for j := range i {
				if err := all[i].Connect(context.Background(), all[j].AddrInfo()); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	stopProfile := func() {}
	if p := os.Getenv("ARCHY_FLASH_CPUPROFILE"); p != "" {
		stopProfile = cpuProfile(b, p+suffix)
	}
	use := usageNow()
	start := time.Now()
	errc := make(chan error, peers)
	last := make(chan time.Duration, peers)
	for _, n := range nodes {
		go func() {
			_, _, err := n.Fetch(context.Background(), root)
			last <- time.Since(start)
			errc <- err
		}()
	}
	var lastT time.Duration
	var times []string
	for range nodes {
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
		t := <-last
		times = append(times, t.Round(10*time.Millisecond).String())
		lastT = max(lastT, t)
	}
	stopProfile()
	b.Logf("flash%s: nodes done after %s; %s in %s", suffix, strings.Join(times, " "), use, lastT.Round(time.Millisecond))
	baseline := time.Duration(float64(peers*size) / rateBs * float64(time.Second))
	b.Logf("%s: size %d MiB, last node done after %s, origin sent %d MiB (%d refusals, %d last-resort pieces)",
		"flash"+suffix, size>>20, lastT, origin.ex.Stats().Sent>>20, origin.ex.Stats().Refusals, origin.ex.Stats().LastResorts)
	figure(b, "flash-origin-copies"+suffix, float64(origin.ex.Stats().Sent)/float64(size))
	figure(b, "flash-last-vs-baseline"+suffix, lastT.Seconds()/baseline.Seconds())
	for _, n := range nodes {
		_ = n.Close()
	}
	_ = origin.Close()
}

// badpeer-slowdown: a fetch (GetFile) from 3 honest peers and 1 that
// corrupts every piece ÷ the same fetch from the 3 honest peers alone.
// Each seed's uploads are capped at 32 MiB/s (its UploadRate), so a run is
// bound by the seeds' uplinks, as on a real network, and not by how much
// of the shared machine's CPU the process gets: 256 MiB (ARCHY_BADPEER_MIB)
// take under 3 s when all goes well. The same four seeds serve every run,
// each run a new fetcher, after one run not counted (a warm-up). The runs
// go in pairs, one of each side in alternating order, and the figure is
// the median of the pairs' ratios: a swing of load on the machine moves
// both runs of a pair alike, and one disturbed pair does not move the
// median.
func BenchmarkBadPeer(b *testing.B) {
	const (
		pairs    = 7
		seedRate = 32 << 20
	)
	size := 256 << 20
	if s := os.Getenv("ARCHY_BADPEER_MIB"); s != "" {
		var mib int
		_, _ = fmt.Sscan(s, &mib)
		size = mib << 20
	}
	in, data := writeRandom(b, size)
	want := cas.Sum(data)
	data = nil
	// Written back now, not during the first runs' fsyncs.
	if f, err := os.Open(in); err == nil {
		_ = f.Sync()
		_ = f.Close()
	}
	addr := []string{"/ip4/127.0.0.1/tcp/0"}
	var seeds []*Node
	var root cid.Cid
	for range 4 {
		s := benchNode(b, addr, func(c *Config) { c.UploadRate = seedRate })
		r, err := s.AddFile(context.Background(), in)
		if err != nil {
			b.Fatal(err)
		}
		seeds, root = append(seeds, s), r
	}
	bad := seeds[3]
	serveThrough(bad, corruptPieces)
	run := func(withBad bool) time.Duration {
		f := benchNode(b, addr, nil)
		defer func() {
			_ = f.Close()
			_ = os.RemoveAll(f.cfg.DataDir) // a copy of the file, not needed again
		}()
		from := seeds[:3]
		if withBad {
			from = seeds
		}
		for _, s := range from {
			if err := f.Connect(context.Background(), s.AddrInfo()); err != nil {
				b.Fatal(err)
			}
		}
		out := filepath.Join(b.TempDir(), "out.bin")
		defer os.Remove(out)
		badSent := bad.ex.Stats().Sent
		use := usageNow()
		t0 := time.Now()
		if err := f.GetFile(context.Background(), root, out); err != nil {
			b.Fatal(err)
		}
		d := time.Since(t0)
		used := use.String()
		if got, err := sumFile(out); err != nil || got != want {
			b.Fatal("corrupt file", err)
		}
		if withBad {
			if !f.isBanned(bad.ID()) && f.ex.Strikes(bad.ID()) == 0 {
				b.Fatal("the corrupting peer went undetected")
			}
			b.Logf("with a corrupting peer: %s (%s); it sent %d KiB of bad pieces", d.Round(time.Millisecond), used, (bad.ex.Stats().Sent-badSent)>>10)
		} else {
			b.Logf("honest peers only: %s (%s)", d.Round(time.Millisecond), used)
		}
		return d
	}
	run(false) // warm-up: connections, buffers, the heap's growth
	for range b.N {
		var honest, withBad []time.Duration
		var ratios []float64
		for i := range pairs {
			var h, w time.Duration
			if i%2 == 0 {
				h, w = run(false), run(true)
			} else {
				w, h = run(true), run(false)
			}
			honest, withBad = append(honest, h), append(withBad, w)
			ratios = append(ratios, w.Seconds()/h.Seconds())
		}
		slices.Sort(honest)
		slices.Sort(withBad)
		slices.Sort(ratios)
		b.Logf("%d MiB, %d pairs: honest %s (median %s), with a corrupting peer %s (median %s); ratios %.3f",
			size>>20, pairs, honest, honest[pairs/2], withBad, withBad[pairs/2], ratios)
		figure(b, "badpeer-slowdown", ratios[pairs/2])
	}
}

// sumFile is the CID of the file at path as one raw block.
func sumFile(path string) (cid.Cid, error) {
	f, err := os.Open(path)
	if err != nil {
		return cid.Undef, err
	}
	defer f.Close()
	c, _, err := cas.SumReader(f)
	return c, err
}

// update-fetch-ratio: a node holding v1 of a 4-layer OCI archive fetches
// v2, in which one layer changed: bytes fetched ÷ bytes of the changed layer.
func BenchmarkUpdate(b *testing.B) {
	const layer = 16 << 20
	addr := []string{"/ip4/127.0.0.1/tcp/0"}
	for range b.N {
		layers := randomLayers(4, layer)
		v1 := ociArchive(layers)
		layers[2] = randomLayers(1, layer+12345)[0] // a new size shifts what follows
		v2 := ociArchive(layers)
		pub := benchNode(b, addr, nil)
		r1, err := pub.Add(context.Background(), bytes.NewReader(v1))
		if err != nil {
			b.Fatal(err)
		}
		r2, err := pub.Add(context.Background(), bytes.NewReader(v2))
		if err != nil {
			b.Fatal(err)
		}
		n := benchNode(b, addr, nil)
		if err := n.Connect(context.Background(), pub.AddrInfo()); err != nil {
			b.Fatal(err)
		}
		if _, _, err := n.Fetch(context.Background(), r1); err != nil {
			b.Fatal(err)
		}
		before := n.ex.Stats().RecvBytes
		leaves, _, err := n.Fetch(context.Background(), r2)
		if err != nil {
			b.Fatal(err)
		}
		fetched := n.ex.Stats().RecvBytes - before
		b.Logf("v2: %d leaves, fetched %d bytes for a %d-byte layer change", len(leaves), fetched, len(layers[2]))
		figure(b, "update-fetch-ratio", float64(fetched)/float64(len(layers[2])))
	}
}
