package report

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/archy-node/archy/internal/atomicfile"
)

// Report is what `archy sim run` writes: every run of one scenario in one
// mode, their headline figures, and the runs at other sizes behind the
// "vs N" plots.
type Report struct {
	Scenario    string    `json:"scenario"`
	Description string    `json:"description"`
	Mode        string    `json:"mode"`
	Runs        []*Result `json:"runs"`
	Figures     []Figures `json:"figures"` // per run, in Runs' order
	// Sizes are runs of the scenario at other node counts (first seed).
	Sizes []SizePoint `json:"sizes,omitempty"`
	// Notes say what the mode leaves out, for the page.
	Notes []string `json:"notes,omitempty"`
	// Calibration, when run with the report (archy sim run --calibrate),
	// is the model's measured error against the emulation.
	Calibration *Calibration `json:"calibration,omitempty"`
}

// SizePoint is one run at one node count.
type SizePoint struct {
	Nodes          int     `json:"nodes"`
	OriginCopies   float64 `json:"origin_copies"`
	LookupHopsMean float64 `json:"lookup_hops_mean"`
	CompletionMax  float64 `json:"completion_max_s"`
	LastVsOptimal  float64 `json:"last_vs_optimal,omitempty"`
	WallSeconds    float64 `json:"wall_s"`
	PeakMiB        float64 `json:"peak_mib"`
}

// Point summarises r for the "vs N" plots.
func Point(r *Result) SizePoint {
	f := r.Figures()
	hops := 0.0
	for _, h := range r.LookupHops {
		hops += float64(h)
	}
	if len(r.LookupHops) > 0 {
		hops /= float64(len(r.LookupHops))
	}
	return SizePoint{Nodes: r.Nodes, OriginCopies: f.OriginCopies, LookupHopsMean: hops, CompletionMax: f.CompletionMax,
		LastVsOptimal: f.LastVsOptimal, WallSeconds: r.WallTime.Seconds(), PeakMiB: float64(r.PeakBytes) / (1 << 20)}
}

// Plots are the plot files' base names, in page order, with their titles.
var Plots = []struct{ Name, Title string }{
	{"completion-cdf", "Completion time CDF"},
	{"origin-vs-n", "Origin egress vs N"},
	{"discovery-cdf", "Discovery latency CDF"},
	{"lookup-hops-vs-n", "DHT lookup hops vs N"},
	{"sybil-installs", "Malicious installs vs attack edges"},
	{"uploaded-per-node", "Bytes uploaded per node"},
}

//go:embed index.html.tmpl
var indexTmpl string

var page = template.Must(template.New("index").Funcs(template.FuncMap{
	"f3": func(v float64) string {
		if math.IsNaN(v) {
			return "–"
		}
		return fmt.Sprintf("%.3f", v)
	},
	"pct": func(v float64) string {
		if math.IsNaN(v) {
			return "–"
		}
		return fmt.Sprintf("%+.0f %%", 100*v)
	},
}).Parse(indexTmpl))

// Write writes report.json, every plot as PNG and SVG, and index.html
// into dir (created if needed).
func Write(dir string, rep *Report) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create report folder: %w", err)
	}
	if len(rep.Figures) != len(rep.Runs) {
		rep.Figures = rep.Figures[:0]
		for _, r := range rep.Runs {
			rep.Figures = append(rep.Figures, r.Figures())
		}
	}
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("encode report.json: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(dir, "report.json"), append(js, '\n'), 0o644); err != nil {
		return fmt.Errorf("write report.json: %w", err)
	}
	makers := map[string]func(*Report) (*plot.Plot, error){
		"completion-cdf":    completionCDF,
		"origin-vs-n":       originVsN,
		"discovery-cdf":     discoveryCDF,
		"lookup-hops-vs-n":  hopsVsN,
		"sybil-installs":    sybilInstalls,
		"uploaded-per-node": uploadedPerNode,
	}
	for _, pl := range Plots {
		p, err := makers[pl.Name](rep)
		if err != nil {
			return fmt.Errorf("plot %s: %w", pl.Name, err)
		}
		p.Title.Text = pl.Title + " — " + rep.Scenario + " (" + rep.Mode + ")"
		for _, ext := range []string{"png", "svg"} {
			if err := savePlot(p, filepath.Join(dir, pl.Name+"."+ext)); err != nil {
				return err
			}
		}
	}
	var buf bytes.Buffer
	if err := page.Execute(&buf, struct {
		*Report
		Plots any
	}{rep, Plots}); err != nil {
		return fmt.Errorf("render index.html: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(dir, "index.html"), buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write index.html: %w", err)
	}
	return nil
}

func savePlot(p *plot.Plot, path string) error {
	w, err := p.WriterTo(7*vg.Inch, 4.5*vg.Inch, filepath.Ext(path)[1:])
	if err != nil {
		return fmt.Errorf("render %s: %w", path, err)
	}
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		return fmt.Errorf("render %s: %w", path, err)
	}
	if err := atomicfile.Write(path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// cdf is the empirical CDF of the non-negative values, in seconds.
func cdf(ds []float64) plotter.XYs {
	slices.Sort(ds)
	xy := make(plotter.XYs, 0, len(ds)+1)
	for i, v := range ds {
		xy = append(xy, plotter.XY{X: v, Y: float64(i+1) / float64(len(ds))})
	}
	return thin(xy, 2000)
}

// thin keeps at most n points of a monotone curve (a million-node CDF
// would make a very large SVG).
func thin(xy plotter.XYs, n int) plotter.XYs {
	if len(xy) <= n {
		return xy
	}
	out := make(plotter.XYs, 0, n+1)
	step := float64(len(xy)-1) / float64(n)
	for i := 0; i < n; i++ {
		out = append(out, xy[int(float64(i)*step)])
	}
	return append(out, xy[len(xy)-1])
}

func addLine(p *plot.Plot, name string, i int, xy plotter.XYs, points bool) error {
	if len(xy) == 0 {
		return nil
	}
	l, err := plotter.NewLine(xy)
	if err != nil {
		return err
	}
	l.Color = plotutil.Color(i)
	l.Width = vg.Points(1.5)
	p.Add(l)
	p.Legend.Add(name, l)
	if points {
		s, err := plotter.NewScatter(xy)
		if err != nil {
			return err
		}
		s.Color = plotutil.Color(i)
		p.Add(s)
	}
	return nil
}

func durCDF(rep *Report, get func(*Result) []float64, xlabel string) (*plot.Plot, error) {
	p := plot.New()
	p.X.Label.Text, p.Y.Label.Text = xlabel, "fraction of fetching nodes"
	p.Legend.Top, p.Legend.Left = false, false
	for i, r := range rep.Runs {
		if err := addLine(p, fmt.Sprintf("seed %d, N=%d", r.Seed, r.Nodes), i, cdf(get(r)), false); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func completionCDF(rep *Report) (*plot.Plot, error) {
	p, err := durCDF(rep, func(r *Result) []float64 { return seconds(r.Completion) }, "seconds from the release's announcement to the whole image")
	if err != nil {
		return nil, err
	}
	// The uplinks' bound for the last node, per run.
	for i, r := range rep.Runs {
		if r.LowerBound > 0 {
			lb := r.LowerBound.Seconds()
			if err := addLine(p, fmt.Sprintf("bound, seed %d", r.Seed), i+len(rep.Runs), plotter.XYs{{X: lb, Y: 0}, {X: lb, Y: 1}}, false); err != nil {
				return nil, err
			}
		}
	}
	return p, nil
}

func discoveryCDF(rep *Report) (*plot.Plot, error) {
	return durCDF(rep, func(r *Result) []float64 { return seconds(r.Discovery) }, "seconds from the announcement to the node knowing it")
}

func seconds(ds []time.Duration) []float64 {
	out := make([]float64, 0, len(ds))
	for _, d := range ds {
		if d >= 0 {
			out = append(out, d.Seconds())
		}
	}
	return out
}

func sizes(rep *Report) []SizePoint {
	pts := slices.Clone(rep.Sizes)
	if len(pts) == 0 {
		for _, r := range rep.Runs {
			pts = append(pts, Point(r))
		}
	}
	slices.SortFunc(pts, func(a, b SizePoint) int { return a.Nodes - b.Nodes })
	return pts
}

func originVsN(rep *Report) (*plot.Plot, error) {
	p := plot.New()
	p.X.Label.Text, p.Y.Label.Text = "nodes (N)", "origin egress (copies of the image)"
	p.X.Scale, p.X.Tick.Marker = plot.LogScale{}, plot.LogTicks{}
	var xy plotter.XYs
	for _, s := range sizes(rep) {
		xy = append(xy, plotter.XY{X: float64(s.Nodes), Y: s.OriginCopies})
	}
	if err := addLine(p, "origin copies", 0, xy, true); err != nil {
		return nil, err
	}
	p.Y.Min = 0
	return p, nil
}

func hopsVsN(rep *Report) (*plot.Plot, error) {
	p := plot.New()
	p.X.Label.Text, p.Y.Label.Text = "nodes (N)", "mean hops per provider lookup"
	p.X.Scale, p.X.Tick.Marker = plot.LogScale{}, plot.LogTicks{}
	var xy plotter.XYs
	for _, s := range sizes(rep) {
		xy = append(xy, plotter.XY{X: float64(s.Nodes), Y: s.LookupHopsMean})
	}
	if err := addLine(p, "lookup hops", 0, xy, true); err != nil {
		return nil, err
	}
	p.Y.Min = 0
	return p, nil
}

func sybilInstalls(rep *Report) (*plot.Plot, error) {
	p := plot.New()
	p.X.Label.Text, p.Y.Label.Text = "attack edges", "malicious installs (% of decisions)"
	any := false
	for i, r := range rep.Runs {
		var xy plotter.XYs
		for _, row := range r.Sybil {
			xy = append(xy, plotter.XY{X: float64(row.AttackEdges), Y: 100 * float64(row.Malicious) / float64(max(row.Decisions, 1))})
		}
		any = any || len(xy) > 0
		if err := addLine(p, fmt.Sprintf("seed %d", r.Seed), i, xy, true); err != nil {
			return nil, err
		}
	}
	if !any {
		p.X.Label.Text = "attack edges (this scenario has no sybil attack)"
		p.X.Min, p.X.Max = 0, 1
	}
	// A percentage from 0; at least to 1% so that none reads as none.
	p.Y.Min, p.Y.Max = 0, max(p.Y.Max, 1)
	return p, nil
}

func uploadedPerNode(rep *Report) (*plot.Plot, error) {
	p := plot.New()
	p.X.Label.Text, p.Y.Label.Text = "nodes, by bytes uploaded (rank)", "uploaded (copies of the image)"
	for i, r := range rep.Runs {
		up := slices.Clone(r.Uploaded)
		slices.SortFunc(up, func(a, b int64) int { return int(b - a) })
		xy := make(plotter.XYs, len(up))
		for k, u := range up {
			xy[k] = plotter.XY{X: float64(k + 1), Y: float64(u) / float64(max(r.ImageBytes, 1))}
		}
		if err := addLine(p, fmt.Sprintf("seed %d", r.Seed), i, thin(xy, 2000), false); err != nil {
			return nil, err
		}
		if len(r.Uploaded) > 0 {
			s, err := plotter.NewScatter(plotter.XYs{{X: float64(1 + slices.Index(up, r.Uploaded[0])), Y: float64(r.Uploaded[0]) / float64(max(r.ImageBytes, 1))}})
			if err != nil {
				return nil, err
			}
			s.Color = color.RGBA{R: 200, A: 255}
			s.Radius = vg.Points(4)
			p.Add(s)
			if i == 0 {
				p.Legend.Add("publisher", s)
			}
		}
	}
	p.Y.Min = 0
	return p, nil
}
