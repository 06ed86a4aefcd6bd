package scenario

import (
	"math/rand/v2"
	"os"
	"path/filepath"
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
