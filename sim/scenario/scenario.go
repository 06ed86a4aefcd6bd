// Package scenario is the simulator's input: one YAML file describes a
// swarm (its size, links, churn, partitions), what happens in it (a
// release, an update, a flash crowd) and who attacks it (malicious peers,
// sybil publishers). Both simulator modes, emulation and model, read the
// same Scenario and return the same Result, so their figures can be
// compared.
package scenario

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Scenario is one simulation. Durations are YAML strings ("150ms", "2m").
type Scenario struct {
	// Name identifies the scenario in reports.
	Name string `yaml:"name"`
	// Description says what it shows, for the report page.
	Description string `yaml:"description"`
	// Seeds: each seed is one run; model mode is deterministic per seed.
	Seeds []uint64 `yaml:"seeds"`
	// Nodes is the swarm's size, the publisher's node included.
	Nodes int `yaml:"nodes"`
	// Links are drawn per node: one-way latency to the core, uplink and
	// downlink in bytes per second. A link's latency between two nodes is
	// the sum of both nodes' latencies.
	Links Links `yaml:"links"`
	// Relays is how many Nostr relays the swarm reads (each node reads
	// all). Default 1.
	Relays int `yaml:"relays"`
	// Release is the app the publisher (node 0) releases at time 0.
	Release Release `yaml:"release"`
	// Update, when set, is a second release replacing some layers.
	Update *Update `yaml:"update"`
	// Crowd is which nodes want the app and when they start.
	Crowd Crowd `yaml:"crowd"`
	// Churn, when set, makes nodes leave and rejoin.
	Churn *Churn `yaml:"churn"`
	// Partitions split the swarm for a while.
	Partitions []Partition `yaml:"partitions"`
	// Malicious peers, by behaviour.
	Malicious []Malicious `yaml:"malicious"`
	// Sybil, when set, adds sybil publishers cloning the app.
	Sybil *Sybil `yaml:"sybil"`
	// Horizon ends the run; nodes not done by then count as incomplete.
	// Default 1h.
	Horizon Duration `yaml:"horizon"`
	// SharedCores, when > 0, has the model's nodes share that many
	// processor cores for their CPU work (verifying an announcement), as
	// the emulation's nodes share the machine's; 0 (the default, a real
	// network) gives each node its own. The emulation shares the
	// machine's cores whatever this says; the calibration sets it to them.
	SharedCores int `yaml:"shared_cores"`
}

// Links draws each node's network.
type Links struct {
	Latency  Dist `yaml:"latency"`  // one-way, seconds
	Uplink   Dist `yaml:"uplink"`   // bytes/s
	Downlink Dist `yaml:"downlink"` // bytes/s
	// PublisherUplink overrides node 0's uplink (bytes/s) when > 0.
	PublisherUplink float64 `yaml:"publisher_uplink"`
}

// Release is a published app image.
type Release struct {
	App        string   `yaml:"app"`         // app id, default "hello"
	ImageBytes int64    `yaml:"image_bytes"` // total image size
	Layers     int      `yaml:"layers"`      // layers it is split into, default 1
	BlockBytes int64    `yaml:"block_bytes"` // block size, default 1 MiB
	At         Duration `yaml:"at"`          // when it is announced
}

// Update replaces Changed of the release's layers at At.
type Update struct {
	At      Duration `yaml:"at"`
	Changed int      `yaml:"changed_layers"`
}

// Crowd says which nodes fetch: Fraction of the non-publisher nodes, each
// starting at a time drawn uniformly in [0, Window] after discovering it.
type Crowd struct {
	Fraction float64  `yaml:"fraction"`
	Window   Duration `yaml:"window"`
}

// Churn makes nodes leave after a session drawn from Session (seconds)
// and come back after Downtime (seconds); Fraction of nodes churn.
type Churn struct {
	Fraction float64 `yaml:"fraction"`
	Session  Dist    `yaml:"session"`
	Downtime Dist    `yaml:"downtime"`
}

// Partition cuts the swarm in two (Fraction of the nodes on the far
// side, never the publisher) from At for Duration.
type Partition struct {
	At       Duration `yaml:"at"`
	Duration Duration `yaml:"duration"`
	Fraction float64  `yaml:"fraction"`
}

// Behaviours a malicious peer can have.
const (
	Corrupt      = "corrupt"       // serves blocks with wrong bytes
	LieNames     = "lie-names"     // announces the app's name for its own content
	DAGBomb      = "dag-bomb"      // serves a DAG far larger than the signed size
	Slow         = "slow"          // accepts requests and trickles
	StaleCatalog = "stale-catalog" // serves an old, validly signed catalog
	JunkEvents   = "junk-events"   // floods relays with invalid events
)

var behaviours = []string{Corrupt, LieNames, DAGBomb, Slow, StaleCatalog, JunkEvents}

// Malicious adds Count peers (or Fraction of the swarm) with a behaviour.
// They are extra nodes, not drawn from the honest ones.
type Malicious struct {
	Behaviour string  `yaml:"behaviour"`
	Count     int     `yaml:"count"`
	Fraction  float64 `yaml:"fraction"`
}

// Sybil adds the trust harness's attack: Accounts sybil identities
// following each other, Publishers of them cloning the app at a higher
// version, and AttackEdges honest accounts following sybils.
type Sybil struct {
	Accounts    int   `yaml:"accounts"`
	Publishers  int   `yaml:"publishers"`
	AttackEdges []int `yaml:"attack_edges"`
	// Honest is the honest social graph's size. Default 10 × Nodes,
	// capped at 3000.
	Honest int `yaml:"honest"`
}

// Load reads and validates a scenario file.
func Load(path string) (*Scenario, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read scenario: %w", err)
	}
	s, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("scenario %s: %w", path, err)
	}
	return s, nil
}

// Parse decodes and validates a scenario; unknown fields are errors.
func Parse(b []byte) (*Scenario, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var s Scenario
	if err := dec.Decode(&s); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty scenario")
		}
		return nil, err
	}
	s.SetDefaults()
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

// SetDefaults fills what the file left out.
func (s *Scenario) SetDefaults() {
	if len(s.Seeds) == 0 {
		s.Seeds = []uint64{1}
	}
	if s.Relays == 0 {
		s.Relays = 1
	}
	if s.Release.App == "" {
		s.Release.App = "hello"
	}
	if s.Release.Layers == 0 {
		s.Release.Layers = 1
	}
	if s.Release.BlockBytes == 0 {
		s.Release.BlockBytes = 1 << 20
	}
	if s.Crowd.Fraction == 0 {
		s.Crowd.Fraction = 1
	}
	if s.Horizon == 0 {
		s.Horizon = Duration(time.Hour)
	}
	if s.Links.Latency.Kind == "" {
		s.Links.Latency = Dist{Kind: "const", Value: 0.02}
	}
	if s.Links.Uplink.Kind == "" {
		s.Links.Uplink = Dist{Kind: "const", Value: 10 << 20}
	}
	if s.Links.Downlink.Kind == "" {
		s.Links.Downlink = Dist{Kind: "const", Value: 50 << 20}
	}
	if s.Sybil != nil && s.Sybil.Honest == 0 {
		s.Sybil.Honest = min(10*s.Nodes, 3000)
	}
}

// Validate names the first bad field.
func (s *Scenario) Validate() error {
	bad := func(field, format string, a ...any) error {
		return fmt.Errorf("field %s: %s", field, fmt.Sprintf(format, a...))
	}
	switch {
	case s.Name == "":
		return bad("name", "required")
	case s.Nodes < 2:
		return bad("nodes", "%d: at least 2 (a publisher and a fetcher)", s.Nodes)
	case s.Nodes > 10_000_000:
		return bad("nodes", "%d: at most 10,000,000", s.Nodes)
	case s.Relays < 1:
		return bad("relays", "%d: at least 1", s.Relays)
	case s.Release.ImageBytes <= 0:
		return bad("release.image_bytes", "%d: must be positive", s.Release.ImageBytes)
	case s.Release.Layers < 1 || int64(s.Release.Layers) > s.Release.ImageBytes:
		return bad("release.layers", "%d: between 1 and image_bytes", s.Release.Layers)
	case s.Release.BlockBytes < 1024 || s.Release.BlockBytes > 4<<20:
		return bad("release.block_bytes", "%d: between 1 KiB and 4 MiB", s.Release.BlockBytes)
	case s.Release.At < 0:
		return bad("release.at", "negative")
	case s.Crowd.Fraction <= 0 || s.Crowd.Fraction > 1:
		return bad("crowd.fraction", "%g: in (0, 1]", s.Crowd.Fraction)
	case s.Crowd.Window < 0:
		return bad("crowd.window", "negative")
	case s.Horizon <= 0:
		return bad("horizon", "must be positive")
	case s.SharedCores < 0:
		return bad("shared_cores", "%d: 0 (a core a node) or more", s.SharedCores)
	}
	for name, d := range map[string]Dist{"links.latency": s.Links.Latency, "links.uplink": s.Links.Uplink, "links.downlink": s.Links.Downlink} {
		if err := d.validate(); err != nil {
			return bad(name, "%v", err)
		}
	}
	if s.Links.PublisherUplink < 0 {
		return bad("links.publisher_uplink", "negative")
	}
	if u := s.Update; u != nil {
		if u.At <= s.Release.At {
			return bad("update.at", "%s: after release.at", u.At)
		}
		if u.Changed < 1 || u.Changed > s.Release.Layers {
			return bad("update.changed_layers", "%d: between 1 and release.layers (%d)", u.Changed, s.Release.Layers)
		}
	}
	if c := s.Churn; c != nil {
		if c.Fraction <= 0 || c.Fraction > 1 {
			return bad("churn.fraction", "%g: in (0, 1]", c.Fraction)
		}
		if err := c.Session.validate(); err != nil {
			return bad("churn.session", "%v", err)
		}
		if err := c.Downtime.validate(); err != nil {
			return bad("churn.downtime", "%v", err)
		}
	}
	for i, p := range s.Partitions {
		f := fmt.Sprintf("partitions[%d]", i)
		if p.At < 0 || p.Duration <= 0 {
			return bad(f+".duration", "must be positive, from a non-negative at")
		}
		if p.Fraction <= 0 || p.Fraction >= 1 {
			return bad(f+".fraction", "%g: in (0, 1)", p.Fraction)
		}
	}
	for i, m := range s.Malicious {
		f := fmt.Sprintf("malicious[%d]", i)
		known := false
		for _, b := range behaviours {
			known = known || m.Behaviour == b
		}
		if !known {
			return bad(f+".behaviour", "%q: one of %s", m.Behaviour, strings.Join(behaviours, ", "))
		}
		if (m.Count > 0) == (m.Fraction > 0) || m.Count < 0 || m.Fraction < 0 || m.Fraction >= 1 {
			return bad(f+".count", "give exactly one of count (≥1) or fraction (in (0, 1))")
		}
	}
	if y := s.Sybil; y != nil {
		switch {
		case y.Accounts < 1:
			return bad("sybil.accounts", "%d: at least 1", y.Accounts)
		case y.Publishers < 1 || y.Publishers > y.Accounts:
			return bad("sybil.publishers", "%d: between 1 and sybil.accounts", y.Publishers)
		case len(y.AttackEdges) == 0:
			return bad("sybil.attack_edges", "at least one count")
		case y.Honest < 2:
			return bad("sybil.honest", "%d: at least 2", y.Honest)
		}
		for i, e := range y.AttackEdges {
			if e < 0 {
				return bad(fmt.Sprintf("sybil.attack_edges[%d]", i), "%d: negative", e)
			}
		}
	}
	return nil
}

// MaliciousCount is how many malicious peers m adds to a swarm of nodes.
func (m Malicious) MaliciousCount(nodes int) int {
	if m.Count > 0 {
		return m.Count
	}
	return max(1, int(math.Round(m.Fraction*float64(nodes))))
}

// Dist is a distribution of a positive quantity.
//
//	const:     Value
//	uniform:   between Min and Max
//	normal:    Mean, Std (truncated at Min, default 0)
//	lognormal: Median and Sigma (of the log)
//	pareto:    Min (scale) and Alpha (shape)
//	choice:    one of Values, equally likely
type Dist struct {
	Kind   string    `yaml:"kind"`
	Value  float64   `yaml:"value"`
	Min    float64   `yaml:"min"`
	Max    float64   `yaml:"max"`
	Mean   float64   `yaml:"mean"`
	Std    float64   `yaml:"std"`
	Median float64   `yaml:"median"`
	Sigma  float64   `yaml:"sigma"`
	Alpha  float64   `yaml:"alpha"`
	Values []float64 `yaml:"values"`
}

func (d Dist) validate() error {
	switch d.Kind {
	case "const":
		if d.Value < 0 {
			return fmt.Errorf("const value %g is negative", d.Value)
		}
	case "uniform":
		if d.Min < 0 || d.Max < d.Min {
			return fmt.Errorf("uniform needs 0 ≤ min ≤ max, got %g and %g", d.Min, d.Max)
		}
	case "normal":
		if d.Std < 0 || d.Mean < 0 {
			return fmt.Errorf("normal needs mean ≥ 0 and std ≥ 0")
		}
	case "lognormal":
		if d.Median <= 0 || d.Sigma < 0 {
			return fmt.Errorf("lognormal needs median > 0 and sigma ≥ 0")
		}
	case "pareto":
		if d.Min <= 0 || d.Alpha <= 0 {
			return fmt.Errorf("pareto needs min > 0 and alpha > 0")
		}
	case "choice":
		if len(d.Values) == 0 {
			return fmt.Errorf("choice needs values")
		}
		for _, v := range d.Values {
			if v < 0 {
				return fmt.Errorf("choice value %g is negative", v)
			}
		}
	default:
		return fmt.Errorf("kind %q: one of const, uniform, normal, lognormal, pareto, choice", d.Kind)
	}
	return nil
}

// Sample draws one value.
func (d Dist) Sample(r *rand.Rand) float64 {
	switch d.Kind {
	case "uniform":
		return d.Min + r.Float64()*(d.Max-d.Min)
	case "normal":
		return max(d.Min, d.Mean+d.Std*r.NormFloat64())
	case "lognormal":
		return d.Median * math.Exp(d.Sigma*r.NormFloat64())
	case "pareto":
		return d.Min / math.Pow(1-r.Float64(), 1/d.Alpha)
	case "choice":
		return d.Values[r.IntN(len(d.Values))]
	default:
		return d.Value
	}
}

// Duration is a time.Duration written as a Go duration string in YAML.
type Duration time.Duration

// D returns it as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// UnmarshalYAML reads "150ms", "2m" or a number of seconds.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if v, err := time.ParseDuration(n.Value); err == nil {
		*d = Duration(v)
		return nil
	}
	var secs float64
	if err := n.Decode(&secs); err != nil {
		return fmt.Errorf("line %d: %q is not a duration (like 150ms or 2m)", n.Line, n.Value)
	}
	*d = Duration(secs * float64(time.Second))
	return nil
}

// MarshalYAML writes the Go duration string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }
