package report

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
)

// A calibration's cells go into report.json: a figure the model has no
// value for (NaN) is written as null, not refused by encoding/json.
func TestCalibrationJSON(t *testing.T) {
	c := Calibration{Scenario: "x", Tolerance: 0.2, Cells: []CalibrationCell{
		{Nodes: 16, Figure: "completion-p50-s", Compared: true, Model: 10.5, Emulation: 9, Spread: 0.07, Error: 1.5 / 9},
		{Nodes: 16, Figure: "install-tail-p50-s", Model: math.NaN(), Emulation: 0.02, Error: math.NaN()},
	}}
	b, err := json.Marshal(&c)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{`"figure":"install-tail-p50-s","compared":false,"model":null,"emulation":0.02`, `"model":10.5,"emulation":9`, `"tolerance":0.2`} {
		if !strings.Contains(s, want) {
			t.Errorf("report.json's calibration %s lacks %s", s, want)
		}
	}
	if w := c.Worst(); w.Figure != "completion-p50-s" {
		t.Errorf("worst cell %q, want the compared one", w.Figure)
	}
}
