package report

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestWriteSybilAndSizes: a report with sybil rows and several sizes
// draws them (the CLI test covers a scenario without sybils).
func TestWriteSybilAndSizes(t *testing.T) {
	r := &Result{Scenario: "s", Mode: Model, Seed: 1, Nodes: 3, ImageBytes: 10, OriginBytes: 12,
		Completion: []time.Duration{time.Second, 2 * time.Second}, Discovery: []time.Duration{time.Millisecond, 2 * time.Millisecond},
		LookupHops: []int{2, 3}, Uploaded: []int64{12, 5, 3}, LowerBound: time.Second,
		Sybil: []SybilRow{{AttackEdges: 2, Decisions: 50}, {AttackEdges: 200, Decisions: 50, Malicious: 1}}}
	rep := &Report{Scenario: "s", Mode: Model, Runs: []*Result{r},
		Sizes: []SizePoint{{Nodes: 100, OriginCopies: 1.1, LookupHopsMean: 2}, {Nodes: 10, OriginCopies: 1, LookupHopsMean: 1}}}
	dir := t.TempDir()
	if err := Write(dir, rep); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil || len(back.Figures) != 1 || back.Figures[0].OriginCopies != 1.2 {
		t.Fatalf("report.json: %v, %+v", err, back.Figures)
	}
	svg, err := os.ReadFile(filepath.Join(dir, "sybil-installs.svg"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(svg), "no sybil attack") || strings.Count(string(svg), "<path") < 3 {
		t.Error("sybil-installs.svg does not draw the rows")
	}
	page, _ := os.ReadFile(filepath.Join(dir, "index.html"))
	if !strings.Contains(string(page), "<td>100</td>") {
		t.Error("index.html lacks the sizes table")
	}
}
