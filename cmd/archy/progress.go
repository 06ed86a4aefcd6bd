package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/archy-node/archy/node"
)

// progress shows long work: a bar on a terminal (stderr), plain lines
// on stderr when it is not one, or, with --json, the events as JSON
// lines on stdout (the result follows as the last line).
type progress struct {
	out, err io.Writer
	json     bool
	tty      bool
	bar      *progressbar.ProgressBar
	barBytes bool   // the bar counts bytes, not percent
	last     string // the last plain line, printed once
}

func newProgress(cmd *cobra.Command, asJSON bool) *progress {
	p := &progress{out: cmd.OutOrStdout(), err: cmd.ErrOrStderr(), json: asJSON}
	if f, ok := p.err.(*os.File); ok && !asJSON {
		p.tty = term.IsTerminal(int(f.Fd()))
	}
	return p
}

// event shows one event of a node operation.
func (p *progress) event(ev node.OpEvent) {
	if p.json {
		ev.Result = nil // the command prints the result itself
		b, _ := json.Marshal(ev)
		fmt.Fprintf(p.out, "%s\n", b)
		return
	}
	if ev.Type == node.EventEnd {
		return // the command says how it ended
	}
	if p.tty {
		p.drawBar(false, 100, int64(ev.Fraction*100+0.5), progressLabel(ev))
		return
	}
	p.line(progressLine(ev))
}

// bytes shows an upload or a download: done of total bytes (total -1
// when unknown).
func (p *progress) bytes(what string, done, total int64) {
	frac := 0.0
	if total > 0 {
		frac = float64(done) / float64(total)
	}
	switch {
	case p.json:
		// One line per percent.
		line := fmt.Sprintf("%s %d", what, int(frac*100))
		if total <= 0 {
			line = fmt.Sprintf("%s %d", what, done>>20)
		}
		if line == p.last && done != total {
			return
		}
		p.last = line
		b, _ := json.Marshal(node.OpEvent{Type: node.EventProgress, Stage: what, Fraction: frac,
			Message: fmt.Sprintf("%d of %d bytes", done, total)})
		fmt.Fprintf(p.out, "%s\n", b)
	case p.tty:
		p.drawBar(true, total, done, what)
	default:
		// A line per tenth (per 10 MiB when the size is unknown).
		if total > 0 {
			p.line(fmt.Sprintf("%s %d%%", what, int(frac*10)*10))
		} else {
			p.line(fmt.Sprintf("%s %d MiB", what, (done>>20)/10*10))
		}
	}
}

func (p *progress) line(s string) {
	if s == "" || s == p.last {
		return
	}
	p.last = s
	fmt.Fprintln(p.err, s)
}

// drawBar moves the terminal's bar, starting a new one when the kind of
// count changes.
func (p *progress) drawBar(isBytes bool, max, n int64, label string) {
	if p.bar != nil && p.barBytes != isBytes {
		p.finish()
	}
	if p.bar == nil {
		opts := []progressbar.Option{progressbar.OptionSetWriter(p.err), progressbar.OptionSetWidth(30),
			progressbar.OptionSetDescription(label), progressbar.OptionClearOnFinish(),
			progressbar.OptionShowDescriptionAtLineEnd(), progressbar.OptionSetPredictTime(false),
			// No spinner ticking on its own: the bar moves when the work reports.
			progressbar.OptionSetSpinnerChangeInterval(0)}
		if isBytes {
			opts = append(opts, progressbar.OptionShowBytes(true), progressbar.OptionUseIECUnits(true))
		}
		p.bar, p.barBytes = progressbar.NewOptions64(max, opts...), isBytes
	}
	if p.barBytes && max > 0 {
		p.bar.ChangeMax64(max)
	}
	p.bar.Describe(label)
	_ = p.bar.Set64(n)
}

// finish clears the terminal's bar, if any.
func (p *progress) finish() {
	if p.bar != nil {
		_ = p.bar.Finish()
		_ = p.bar.Close()
		p.bar = nil
	}
}

// progressLabel is an event as a bar's label, the bar showing the
// percent: "install hello: fetch image of web".
func progressLabel(ev node.OpEvent) string { return describeEvent(ev, false) }

// progressLine is an event as a plain line:
// "install hello: fetch 40% image of web".
func progressLine(ev node.OpEvent) string {
	if ev.Type == node.EventEnd {
		return ""
	}
	return describeEvent(ev, true)
}

func describeEvent(ev node.OpEvent, percent bool) string {
	var b strings.Builder
	if ev.Op != "" {
		b.WriteString(ev.Op + " ")
	}
	if ev.App != "" {
		b.WriteString(ev.App + ": ")
	}
	if ev.Stage != "" {
		b.WriteString(ev.Stage)
		if percent {
			fmt.Fprintf(&b, " %d%%", int(ev.Fraction*100+0.5))
		}
	}
	if ev.Message != "" {
		if ev.Stage != "" {
			b.WriteString(" ")
		}
		b.WriteString(ev.Message)
	}
	if ev.Error != "" {
		b.WriteString(": " + ev.Error)
	}
	return strings.TrimSuffix(strings.TrimSpace(b.String()), ":")
}
