package report

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"
)

// CalibrationCell is one figure at one size.
type CalibrationCell struct {
	Nodes    int     `json:"nodes"`
	Figure   string  `json:"figure"`
	Compared bool    `json:"compared"`
	Gap      bool    `json:"gap,omitempty"` // a known gap: not held to Tolerance
	Model    float64 `json:"model"`
	// Emulation is the mean over the emulation's seeds; Spread half its
	// range across them, relative to the mean.
	Emulation float64 `json:"emulation"`
	Spread    float64 `json:"spread"`
	// Error is (Model − Emulation) / Emulation.
	Error float64 `json:"error"`
}

// MarshalJSON writes a figure that could not be measured (NaN: the model
// has no such figure, or no run gave a value) as null.
func (c CalibrationCell) MarshalJSON() ([]byte, error) {
	type plain CalibrationCell
	num := func(v float64) *float64 {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil
		}
		return &v
	}
	return json.Marshal(struct {
		plain
		Model     *float64 `json:"model"`
		Emulation *float64 `json:"emulation"`
		Spread    *float64 `json:"spread"`
		Error     *float64 `json:"error"`
	}{plain(c), num(c.Model), num(c.Emulation), num(c.Spread), num(c.Error)})
}

// Calibration is the model held to the emulation (sim/calibrate): per
// swarm size and headline figure, the model's value, the emulation's and
// the model's error.
type Calibration struct {
	Scenario string            `json:"scenario"`
	Seeds    []uint64          `json:"seeds"`
	Cells    []CalibrationCell `json:"cells"`
	// Tolerance is the largest error the calibration accepts.
	Tolerance float64         `json:"tolerance"`
	Wall      []time.Duration `json:"emulation_wall_ns"` // per size, the emulation's runs together
}

// Worst is the compared cell with the largest relative error.
func (t *Calibration) Worst() CalibrationCell {
	var w CalibrationCell
	for _, c := range t.Cells {
		if c.Compared && !(math.Abs(c.Error) <= math.Abs(w.Error)) {
			w = c
		}
	}
	return w
}

// Markdown is the table, one row per size and figure.
func (t *Calibration) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "| nodes | figure | model | emulation (±spread over %d seeds) | error |\n|---|---|---:|---:|---:|\n", len(t.Seeds))
	for _, c := range t.Cells {
		model, errs := fmt.Sprintf("%.3g", c.Model), fmt.Sprintf("%+.0f %%", 100*c.Error)
		if !c.Compared {
			model, errs = "–", "not compared"
		} else if c.Gap {
			errs += " (known gap)"
		}
		fmt.Fprintf(&b, "| %d | %s | %s | %.3g (±%.0f %%) | %s |\n", c.Nodes, c.Figure, model, c.Emulation, 100*c.Spread, errs)
	}
	return b.String()
}
