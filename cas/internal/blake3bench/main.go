// Command blake3bench measures BLAKE3 throughput, lukechampine.com/blake3
// against github.com/zeebo/blake3, and archy's own hot path (cas.Digest),
// with memcpy on the same buffer as the ceiling, all in one run, and prints
// one `figure <name> <value>` line per result for `make bench`:
//
//	figure blake3-lukechampine-gibps 3.10
//	figure blake3-zeebo-gibps 2.10
//	figure memcpy-gibps 3.40
//	figure blake3-cas-gibps 3.10
//	figure blake3-vs-memcpy 0.91
//	figure blake3-lukechampine-1cpu-gibps ...
//	figure blake3-zeebo-1cpu-gibps ...
//
// GiB/s is 2^30 bytes per second. blake3-vs-memcpy is cas.Digest's
// throughput over memcpy's. The -1cpu figures run with GOMAXPROCS=1:
// lukechampine hashes a large input on all cores, zeebo on one.
//
// The machine is shared, so each implementation is timed in short
// interleaved rounds (every implementation once per round, so load
// drifts hit all alike) and the best round is reported: interference only
// ever slows a run down.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"syscall"
	"time"

	zeebo "github.com/zeebo/blake3"
	"lukechampine.com/blake3"

	"github.com/archy-node/archy/cas"
)

type impl struct {
	name string
	cpus int // GOMAXPROCS while timing; 0 keeps the default
	fn   func(dst, src []byte)
}

var sink [32]byte

func main() {
	sizeMiB := flag.Int("size", 64, "buffer size in MiB")
	rounds := flag.Int("rounds", 8, "interleaved rounds; the best is reported")
	minTime := flag.Duration("min", 150*time.Millisecond, "shortest timing per implementation and round")
	single := flag.Bool("1cpu", true, "also time both libraries with GOMAXPROCS=1")
	flag.Parse()
	if err := run(os.Stdout, os.Stderr, *sizeMiB<<20, *rounds, *minTime, *single); err != nil {
		fmt.Fprintln(os.Stderr, "blake3bench:", err)
		os.Exit(1)
	}
}

func run(out, log io.Writer, size, rounds int, minTime time.Duration, single bool) error {
	if size <= 0 || rounds <= 0 || minTime <= 0 {
		return fmt.Errorf("size, rounds and min must be positive")
	}
	impls := []impl{
		{name: "blake3-lukechampine", fn: func(_, src []byte) { sink = blake3.Sum256(src) }},
		{name: "blake3-zeebo", fn: func(_, src []byte) { sink = zeebo.Sum256(src) }},
		{name: "memcpy", fn: func(dst, src []byte) { copy(dst, src) }},
		{name: "blake3-cas", fn: func(_, src []byte) { sink = cas.Digest(src) }},
	}
	if single {
		impls = append(impls,
			impl{name: "blake3-lukechampine-1cpu", cpus: 1, fn: impls[0].fn},
			impl{name: "blake3-zeebo-1cpu", cpus: 1, fn: impls[1].fn},
		)
	}
	src, dst := make([]byte, size), make([]byte, size)
	for i := range src {
		src[i] = byte(i % 251)
	}
	for _, im := range impls { // warm up: page in both buffers, start workers
		im.fn(dst, src)
	}

	best, bestCPU := make(map[string]float64), make(map[string]float64)
	for range rounds {
		for _, im := range impls {
			wall, cpu := gibps(im, dst, src, minTime)
			best[im.name] = max(best[im.name], wall)
			bestCPU[im.name] = max(bestCPU[im.name], cpu)
		}
	}
	for _, im := range impls[:4] {
		fmt.Fprintf(out, "figure %s-gibps %.2f\n", im.name, best[im.name])
	}
	fmt.Fprintf(out, "figure blake3-vs-memcpy %.2f\n", best["blake3-cas"]/best["memcpy"])
	for _, im := range impls[4:] {
		fmt.Fprintf(out, "figure %s-gibps %.2f\n", im.name, best[im.name])
	}
	for _, im := range impls {
		fmt.Fprintf(out, "figure %s-gib-per-cpu-s %.2f\n", im.name, bestCPU[im.name])
	}

	luke, zb := best["blake3-lukechampine"], best["blake3-zeebo"]
	faster, ratio := "lukechampine.com/blake3", luke/zb
	if zb > luke {
		faster, ratio = "github.com/zeebo/blake3", zb/luke
	}
	fmt.Fprintf(log, "# %d MiB buffers, best of %d rounds, GOMAXPROCS=%d: %s is %.2fx faster; cas.Digest runs at %.0f%% of memcpy\n",
		size>>20, rounds, runtime.GOMAXPROCS(0), faster, ratio, 100*best["blake3-cas"]/best["memcpy"])
	return nil
}

// gibps times im over src until minTime has passed and returns GiB/s of
// wall-clock time and GiB per second of process CPU time.
func gibps(im impl, dst, src []byte, minTime time.Duration) (wall, cpu float64) {
	if im.cpus > 0 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(im.cpus))
	}
	var n int
	cpu0 := cpuTime()
	start := time.Now()
	for n == 0 || time.Since(start) < minTime {
		im.fn(dst, src)
		n++
	}
	elapsed, used := time.Since(start), cpuTime()-cpu0
	gib := float64(n) * float64(len(src)) / (1 << 30)
	return gib / elapsed.Seconds(), gib / max(used.Seconds(), 1e-9)
}

// cpuTime is the user and system CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
