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

// --calibrate puts the model's measured error against the emulation into
// report.json and the page: here at 6 nodes, one emulation seed.
func TestSimRunCalibrates(t *testing.T) {
	out := t.TempDir()
	var stdout bytes.Buffer
	err := run(context.Background(), []string{"run", "flash-crowd", "--out", out, "--nodes", "16", "--seeds", "1", "--sizes", "none",
		"--calibrate", "6", "--calibrate-seeds", "1"}, &stdout, &stdout)
	if err != nil {
		t.Fatalf("archy-sim run --calibrate: %v\n%s", err, stdout.String())
	}
	if !strings.Contains(stdout.String(), "calibration: worst") {
		t.Errorf("output does not give the calibration's worst error:\n%s", stdout.String())
	}
	b, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Calibration *struct {
			Cells []struct {
				Nodes     int      `json:"nodes"`
				Figure    string   `json:"figure"`
				Compared  bool     `json:"compared"`
				Model     *float64 `json:"model"`
				Emulation *float64 `json:"emulation"`
				Error     *float64 `json:"error"`
			} `json:"cells"`
		} `json:"calibration"`
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("report.json: %v", err)
	}
	if rep.Calibration == nil || len(rep.Calibration.Cells) == 0 {
		t.Fatalf("report.json has no calibration:\n%s", b)
	}
	compared := 0
	for _, c := range rep.Calibration.Cells {
		if c.Nodes != 6 {
			t.Errorf("cell %s at %d nodes, want 6", c.Figure, c.Nodes)
		}
		if c.Compared {
			compared++
			if c.Model == nil || c.Emulation == nil || c.Error == nil || *c.Emulation <= 0 {
				t.Errorf("compared cell %s: model %v emulation %v error %v, want all measured", c.Figure, c.Model, c.Emulation, c.Error)
			}
		}
	}
	if compared < 6 {
		t.Errorf("%d compared figures, want completion (3), origin copies, bytes per node, discovery", compared)
	}
	page, err := os.ReadFile(filepath.Join(out, "index.html"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(page, []byte("Calibration: the model against the emulation")) || !bytes.Contains(page, []byte("bytes-per-node-mib")) {
		t.Error("index.html does not show the calibration")
	}
}
