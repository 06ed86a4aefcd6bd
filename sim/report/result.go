// Package report holds what a simulation run measured (one Result per
// scenario, mode and seed, the same shape for emulation and model), the
// headline figures computed from it, and the files a run writes:
// report.json, the plots and index.html.
package report

import (
	"math"
	"slices"
	"time"
)

// Modes of the simulator.
const (
	Emulation = "emulation" // the real node code over a simulated network
	Model     = "model"     // the discrete-event model
)

// Result is one run of one scenario at one seed.
type Result struct {
	Scenario string `json:"scenario"`
	Mode     string `json:"mode"`
	Seed     uint64 `json:"seed"`
	Nodes    int    `json:"nodes"` // honest nodes, publisher included

	// ImageBytes is the release's size; OriginBytes what the publisher's
	// node uploaded of it (and of the update) in all.
	ImageBytes  int64 `json:"image_bytes"`
	OriginBytes int64 `json:"origin_bytes"`
	// Completion is, per fetching honest node, the time from the release
	// being announced to the node holding the whole image; -1 if it never
	// did before the horizon.
	Completion []time.Duration `json:"completion_ns"`
	// Fetched is, per fetching honest node in Completion's order, the
	// time from the announcement to the node holding the whole image,
	// verified; -1 if never. In the model it is Completion; in the
	// emulation the install's fetch stage ending, before the runtime
	// loads, creates and starts the app (which the model leaves out).
	Fetched []time.Duration `json:"fetched_ns,omitempty"`
	// LowerBound is the shortest completion the uplinks allow for the last
	// node (the bandwidth bound of the whole swarm), when the mode knows
	// it.
	LowerBound time.Duration `json:"lower_bound_ns,omitempty"`
	// Discovery is, per fetching node, the time from the announcement to
	// the node knowing the release.
	Discovery []time.Duration `json:"discovery_ns"`
	// DiscoveryRounds are, when the emulation timed announcements of a
	// probe app before the release (emulate.Options.DiscoveryRounds), each
	// round's discovery times per fetching node (-1 if not in time).
	DiscoveryRounds [][]time.Duration `json:"discovery_rounds_ns,omitempty"`
	// LookupHops are the hops of the DHT lookups made (provider lookups).
	LookupHops []int `json:"lookup_hops,omitempty"`
	// Uploaded is, per honest node, the bytes it uploaded.
	Uploaded []int64 `json:"uploaded_bytes"`
	// CorruptAccepted counts wrong bytes a node kept (must be 0).
	CorruptAccepted int `json:"corrupt_accepted"`
	// Installs of a sybil's clone per attack-edge count, and decisions
	// made, when the scenario has sybils.
	Sybil []SybilRow `json:"sybil,omitempty"`

	// UpdateCompletion is, per fetching node, the time from the update
	// being announced to the node holding the updated image; -1 if never
	// (only when the scenario has an update).
	UpdateCompletion []time.Duration `json:"update_completion_ns,omitempty"`
	// Refused counts what nodes and relays refused, by reason (corrupt
	// blocks, DAGs past the signed size, badly signed names, stale
	// catalogs, junk events, abandoned slow requests, super-seeding
	// refusals).
	Refused map[string]int64 `json:"refused,omitempty"`
	// Banned counts bans of peers for bad blocks (node, peer pairs).
	Banned int `json:"banned,omitempty"`
	// LastResorts counts pieces the origin served as a last resort (its
	// super-seeding bypassed because the peers it named were gone).
	LastResorts int64 `json:"last_resorts,omitempty"`
	// Events is how many events the model processed (model mode).
	Events int64 `json:"events,omitempty"`

	WallTime  time.Duration `json:"wall_ns"`
	PeakBytes uint64        `json:"peak_bytes"` // process memory high-water mark
}

// SybilRow is the outcome at one attack-edge count.
type SybilRow struct {
	AttackEdges int `json:"attack_edges"`
	Decisions   int `json:"decisions"`
	Malicious   int `json:"malicious"` // installs of a sybil clone
}

// Figures are the headline numbers compared across modes.
type Figures struct {
	Completed     float64 `json:"completed"` // fraction of fetchers done
	CompletionP50 float64 `json:"completion_p50_s"`
	CompletionP90 float64 `json:"completion_p90_s"`
	CompletionMax float64 `json:"completion_max_s"`
	OriginCopies  float64 `json:"origin_copies"`  // origin bytes / image bytes
	BytesPerNode  float64 `json:"bytes_per_node"` // mean uploaded bytes per honest node
	DiscoveryP50  float64 `json:"discovery_p50_s"`
	DiscoveryP90  float64 `json:"discovery_p90_s"`
	LastVsOptimal float64 `json:"last_vs_optimal,omitempty"`
}

// Figures computes the headline figures.
func (r *Result) Figures() Figures {
	var f Figures
	done := make([]float64, 0, len(r.Completion))
	for _, c := range r.Completion {
		if c >= 0 {
			done = append(done, c.Seconds())
		}
	}
	if len(r.Completion) > 0 {
		f.Completed = float64(len(done)) / float64(len(r.Completion))
	}
	slices.Sort(done)
	f.CompletionP50, f.CompletionP90 = Quantile(done, 0.5), Quantile(done, 0.9)
	if len(done) > 0 {
		f.CompletionMax = done[len(done)-1]
	}
	if r.ImageBytes > 0 {
		f.OriginCopies = float64(r.OriginBytes) / float64(r.ImageBytes)
	}
	var up float64
	for _, u := range r.Uploaded {
		up += float64(u)
	}
	if len(r.Uploaded) > 0 {
		f.BytesPerNode = up / float64(len(r.Uploaded))
	}
	disc := make([]float64, 0, len(r.Discovery))
	for _, d := range r.Discovery {
		if d >= 0 {
			disc = append(disc, d.Seconds())
		}
	}
	slices.Sort(disc)
	f.DiscoveryP50, f.DiscoveryP90 = Quantile(disc, 0.5), Quantile(disc, 0.9)
	if r.LowerBound > 0 && f.Completed == 1 {
		f.LastVsOptimal = f.CompletionMax / r.LowerBound.Seconds()
	}
	return f
}

// Quantile of sorted values, linearly interpolated; NaN when empty.
func Quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	pos := q * float64(len(sorted)-1)
	i := int(pos)
	if i >= len(sorted)-1 {
		return sorted[len(sorted)-1]
	}
	return sorted[i] + (pos-float64(i))*(sorted[i+1]-sorted[i])
}

// Refusal reasons counted in Result.Refused.
const (
	RefusedCorrupt   = "corrupt-block"     // block failed BLAKE3 verification
	RefusedDAGBomb   = "dag-over-size"     // DAG past the signed size
	RefusedLieName   = "bad-name-sig"      // announcement not signed by the name's key
	RefusedStale     = "stale-catalog"     // catalog older than the one held
	RefusedJunk      = "junk-event"        // relay refused an invalid event
	RefusedSlowAbort = "slow-request"      // request abandoned below MinRate
	RefusedSuperSeed = "super-seed-refuse" // a seed named peers instead of serving
	RefusedBusy      = "busy"              // every upload slot of the asked peer was taken
)
