package scenario

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestShippedScenariosLoad(t *testing.T) {
	files, _ := filepath.Glob("../scenarios/*.yaml")
	if len(files) == 0 {
		t.Fatal("no shipped scenarios in sim/scenarios")
	}
	for _, f := range files {
		s, err := Load(f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if want := strings.TrimSuffix(filepath.Base(f), ".yaml"); s.Name != want {
			t.Errorf("%s: name %q, want the file's name %q", f, s.Name, want)
		}
	}
}

func TestErrorsNameTheField(t *testing.T) {
	base := "name: x\nnodes: 4\nrelease: {image_bytes: 1048576}\n"
	for in, field := range map[string]string{
		"name: x\nnodes: 1\nrelease: {image_bytes: 10}\n":                     "nodes",
		"name: x\nnodes: 4\n":                                                 "release.image_bytes",
		base + "crowd: {fraction: 2}\n":                                       "crowd.fraction",
		base + "links: {uplink: {kind: zipf}}\n":                              "links.uplink",
		base + "malicious: [{behaviour: eat-cpu, count: 1}]\n":                "malicious[0].behaviour",
		base + "malicious: [{behaviour: corrupt, count: 1, fraction: 0.1}]\n": "malicious[0].count",
		base + "update: {at: 0s, changed_layers: 1}\n":                        "update.at",
		base + "sybil: {accounts: 5, publishers: 9, attack_edges: [1]}\n":     "sybil.publishers",
		base + "partitions: [{at: 1s, duration: 1m, fraction: 1}]\n":          "partitions[0].fraction",
		base + "nodse: 4\n":                                                   "nodse",
		base + "horizon: soon\n":                                              "soon",
		base + "shared_cores: -1\n":                                           "shared_cores",
	} {
		_, err := Parse([]byte(in))
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("%q: error %v does not name %s", in, err, field)
		}
	}
	s, err := Parse([]byte(base + "horizon: 90\n"))
	if err != nil || s.Horizon.D() != 90*time.Second || s.Release.Layers != 1 || s.Seeds[0] != 1 {
		t.Fatalf("defaults: %+v %v", s, err)
	}
}

func TestLoadNamesTheFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(p, []byte("name: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("error %v does not name %s", err, p)
	}
}

func TestDistSample(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, d := range []Dist{
		{Kind: "const", Value: 3}, {Kind: "uniform", Min: 1, Max: 2}, {Kind: "normal", Mean: 5, Std: 1},
		{Kind: "lognormal", Median: 2, Sigma: 0.5}, {Kind: "pareto", Min: 1, Alpha: 2}, {Kind: "choice", Values: []float64{7, 8}},
	} {
		if err := d.validate(); err != nil {
			t.Fatal(err)
		}
		var sum float64
		for range 10000 {
			v := d.Sample(r)
			if v < 0 {
				t.Fatalf("%s sampled %g", d.Kind, v)
			}
			sum += v
		}
		mean := sum / 10000
		want := map[string]float64{"const": 3, "uniform": 1.5, "normal": 5, "lognormal": 2 * 1.133, "pareto": 2, "choice": 7.5}[d.Kind]
		if mean < want*0.9 || mean > want*1.1 {
			t.Errorf("%s: mean %g, want about %g", d.Kind, mean, want)
		}
	}
}

// Draw gives one network a seed, whichever mode asks: the same seed
// draws the same links, crowd, relay latency and joins; another seed
// others. Joins name distinct earlier nodes, JoinDegree of them once
// there are that many; the publisher's uplink is the scenario's; a crowd
// of a small fraction still has one fetcher.
func TestDraw(t *testing.T) {
	s, err := Parse([]byte("name: x\nnodes: 40\nrelease: {image_bytes: 1048576}\ncrowd: {fraction: 0.01, window: 10s}\n" +
		"links: {publisher_uplink: 12345, latency: {kind: uniform, min: 0.001, max: 0.1}}\nmalicious: [{behaviour: corrupt, count: 2}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	a, b, c := s.Draw(7), s.Draw(7), s.Draw(8)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("seed 7 drew two networks")
	}
	if reflect.DeepEqual(a.Latency, c.Latency) || reflect.DeepEqual(a.Dials, c.Dials) {
		t.Fatal("seeds 7 and 8 drew the same latencies or joins")
	}
	if len(a.Latency) != 42 || len(a.Fetch) != 40 || len(a.Dials) != 42 || len(a.RelayLatency) != 1 {
		t.Fatalf("%d links, %d crowd flags, %d join lists, %d relays; want 42, 40, 42, 1", len(a.Latency), len(a.Fetch), len(a.Dials), len(a.RelayLatency))
	}
	if a.Uplink[0] != 12345 {
		t.Errorf("publisher uplink %g, want 12345", a.Uplink[0])
	}
	fetchers := 0
	for i, f := range a.Fetch {
		if f {
			fetchers++
			if i == 0 || a.Delay[i] < 0 || a.Delay[i] > 10 {
				t.Errorf("node %d fetches after %g s", i, a.Delay[i])
			}
		}
	}
	if fetchers == 0 {
		t.Error("no fetcher")
	}
	for i, ds := range a.Dials {
		if want := min(i, JoinDegree); len(ds) != want {
			t.Errorf("node %d dials %d nodes, want %d", i, len(ds), want)
		}
		seen := map[int32]bool{}
		for _, d := range ds {
			if d < 0 || int(d) >= i || seen[d] {
				t.Errorf("node %d dials %v: not distinct earlier nodes", i, ds)
				break
			}
			seen[d] = true
		}
	}
}
