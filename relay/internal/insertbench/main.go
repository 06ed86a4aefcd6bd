// Command insertbench measures what storing one event costs the embedded
// relay when it holds 400,000 events, and prints `make bench` figures:
//
//	figure relay-insert-old-us 3.4   an event with a created_at inside the past year (median)
//	figure relay-insert-new-us 2.0   an event created now (median)
//
// Both are the store's insert under its lock (relay.InsertCost), without
// the signature check every EVENT also pays. The goal is old within 3× of
// new: an event's created_at must not decide what it costs the relay.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/archy-node/archy/relay"
)

func main() {
	n := flag.Int("events", 400_000, "events stored before measuring")
	rounds := flag.Int("rounds", 301, "inserts of each kind measured")
	flag.Parse()
	old, new, err := relay.InsertCost(*n, *rounds)
	if err != nil {
		fmt.Fprintln(os.Stderr, "insertbench:", err)
		os.Exit(1)
	}
	fmt.Printf("figure relay-insert-old-us %.1f\n", float64(old.Nanoseconds())/1e3)
	fmt.Printf("figure relay-insert-new-us %.1f\n", float64(new.Nanoseconds())/1e3)
}
