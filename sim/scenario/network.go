package scenario

import (
	"math/rand/v2"
	"slices"
)

// Network is one draw of a scenario's nodes for one seed: their links,
// the relays' latencies, who joins the crowd and when. Both modes build
// a seed's swarm from it, so the model and the emulation of a seed run
// on the same network (the calibration compares them seed by seed: the
// publisher's and the relay's latencies are in every node's discovery).
type Network struct {
	// Per node: the honest nodes (0 the publisher), then the malicious
	// peers in the scenario's order. Latency is one-way, seconds; links
	// bytes/s (the publisher's uplink is PublisherUplink when set).
	Latency, Uplink, Downlink []float64
	// Fetch says which honest nodes want the release (never node 0), and
	// Delay how long after discovering it each asks for it, seconds.
	Fetch []bool
	Delay []float64
	// RelayLatency is each relay's one-way latency, seconds.
	RelayLatency []float64
	// Dials are, per node, the earlier nodes it connects to when it joins
	// the swarm (JoinDegree of them, as a bootstrap list or the relay's
	// peering would give it): the connections a node has before any
	// fetch, which the fetch watches from its start.
	Dials [][]int32
}

// JoinDegree is how many earlier nodes each node dials when it joins.
const JoinDegree = 6

// Dials draws, for each of n nodes, degree distinct earlier nodes (all of
// them when there are fewer).
func Dials(rng *rand.Rand, n, degree int) [][]int32 {
	out := make([][]int32, n)
	for i := 1; i < n; i++ {
		k := min(degree, i)
		ds := make([]int32, 0, k)
		for len(ds) < k {
			var d int32
			if k == i {
				d = int32(len(ds)) // every earlier node
			} else {
				d = int32(rng.IntN(i))
			}
			if !slices.Contains(ds, d) {
				ds = append(ds, d)
			}
		}
		out[i] = ds
	}
	return out
}

// Total is how many nodes a swarm of s has, malicious peers included.
func (s *Scenario) Total() int {
	n := s.Nodes
	for _, m := range s.Malicious {
		n += m.MaliciousCount(s.Nodes)
	}
	return n
}

// Draw draws s's network for seed, from a random stream of its own (the
// modes' other draws do not move it). At least one node fetches.
func (s *Scenario) Draw(seed uint64) *Network {
	rng := rand.New(rand.NewPCG(seed, 0x6e6574776f726b)) // "network"
	n := s.Total()
	net := &Network{
		Latency: make([]float64, n), Uplink: make([]float64, n), Downlink: make([]float64, n),
		Fetch: make([]bool, s.Nodes), Delay: make([]float64, s.Nodes), RelayLatency: make([]float64, s.Relays),
	}
	any := false
	for i := range n {
		net.Latency[i] = s.Links.Latency.Sample(rng)
		net.Uplink[i] = max(1, s.Links.Uplink.Sample(rng))
		net.Downlink[i] = max(1, s.Links.Downlink.Sample(rng))
		if i > 0 && i < s.Nodes {
			net.Fetch[i] = s.Crowd.Fraction >= 1 || rng.Float64() < s.Crowd.Fraction
			net.Delay[i] = rng.Float64() * s.Crowd.Window.D().Seconds()
			any = any || net.Fetch[i]
		}
	}
	if !any && s.Nodes > 1 {
		net.Fetch[1] = true
	}
	if s.Links.PublisherUplink > 0 {
		net.Uplink[0] = s.Links.PublisherUplink
	}
	for r := range net.RelayLatency {
		net.RelayLatency[r] = s.Links.Latency.Sample(rng)
	}
	net.Dials = Dials(rng, n, JoinDegree)
	return net
}
