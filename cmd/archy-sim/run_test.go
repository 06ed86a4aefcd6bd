package main

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/archy-node/archy/sim/report"
)

// TestSimRun runs a shipped scenario at a small size through the CLI and
// checks the report, the plots (decoded, not one colour) and the page.
func TestSimRun(t *testing.T) {
	out := t.TempDir()
	var stdout bytes.Buffer
	err := run(context.Background(), []string{"run", "flash-crowd", "--out", out, "--nodes", "24", "--seeds", "1,2", "--sizes", "8,12"}, &stdout, &stdout)
	if err != nil {
		t.Fatalf("archy-sim run: %v\n%s", err, stdout.String())
	}
	if !strings.Contains(stdout.String(), "index.html") {
		t.Errorf("output does not name the page:\n%s", stdout.String())
	}
	b, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep report.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("report.json: %v", err)
	}
	if rep.Scenario != "flash-crowd" || len(rep.Runs) != 2 || len(rep.Figures) != 2 || len(rep.Sizes) != 3 || rep.Runs[0].Nodes != 24 {
		t.Errorf("report: scenario %q, %d runs, %d figures, %d sizes, %d nodes; want flash-crowd, 2, 2, 3, 24",
			rep.Scenario, len(rep.Runs), len(rep.Figures), len(rep.Sizes), rep.Runs[0].Nodes)
	}
	page, err := os.ReadFile(filepath.Join(out, "index.html"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range report.Plots {
		if !bytes.Contains(page, []byte(p.Name+".svg")) {
			t.Errorf("index.html does not show %s", p.Name)
		}
		f, err := os.Open(filepath.Join(out, p.Name+".png"))
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s.png: %v", p.Name, err)
		}
		if oneColour(img) {
			t.Errorf("%s.png is one colour", p.Name)
		}
		svg, err := os.ReadFile(filepath.Join(out, p.Name+".svg"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(svg, []byte("<svg")) || !bytes.Contains(svg, []byte("<path")) {
			t.Errorf("%s.svg has no drawing", p.Name)
		}
	}
}

func oneColour(img image.Image) bool {
	b := img.Bounds()
	r0, g0, b0, _ := img.At(b.Min.X, b.Min.Y).RGBA()
	for y := b.Min.Y; y < b.Max.Y; y += 3 {
		for x := b.Min.X; x < b.Max.X; x += 3 {
			if r, g, bl, _ := img.At(x, y).RGBA(); r != r0 || g != g0 || bl != b0 {
				return false
			}
		}
	}
	return true
}

func TestSimRunBadScenario(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"run", "no-such-scenario", "--out", t.TempDir()}, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "flash-crowd") {
		t.Errorf("unknown scenario: error %v, want one listing the shipped ones", err)
	}

}
