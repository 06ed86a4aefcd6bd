package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/archy-node/archy/internal/atomicfile"
	"github.com/archy-node/archy/node"
)

// How the client follows an operation's event stream: the node sends a
// keep-alive at least every 15 s, so a stream silent for streamIdle is
// dead; a broken stream is reopened where it stopped, up to
// reconnectTries times in a row without an event.
const (
	streamIdle     = 45 * time.Second
	reconnectTries = 8
	reconnectWait  = time.Second
)

// nodeClient is a running node's API with its token.
type nodeClient struct {
	base, token string
	// json prints the operation's events as JSON lines on stdout instead
	// of progress lines on stderr.
	json bool
}

func newNodeClient(dataDir string) (*nodeClient, error) {
	base, err := nodeAPI("", dataDir)
	if err != nil {
		return nil, err
	}
	dir, err := resolveDataDir(dataDir)
	if err != nil {
		return nil, err
	}
	tok, err := atomicfile.ReadPrivate(filepath.Join(dir, "api.token"), 4096)
	if err != nil {
		return nil, fmt.Errorf("read the node's API token %s: %w", filepath.Join(dir, "api.token"), err)
	}
	return &nodeClient{base: base, token: strings.TrimSpace(string(tok))}, nil
}

// do asks the node for a change and, when the node runs it as an
// operation (202), follows it to its end: the error is the operation's.
func (c *nodeClient) do(cmd *cobra.Command, method, path string, body any) error {
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("ask the node: %w", err)
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return nil
	case http.StatusAccepted:
		loc := resp.Header.Get("Location")
		if loc == "" {
			return errors.New("the node started an operation but named no Location")
		}
		return c.follow(cmd, loc)
	}
	return fmt.Errorf("the node refused: %s", strings.TrimSpace(string(msg)))
}

// follow reads an operation's events until its end event, printing
// them, and reopens the stream from the last event it saw when the
// connection breaks. The operation runs on the node whatever happens to
// the connection.
func (c *nodeClient) follow(cmd *cobra.Command, loc string) error {
	p := newProgressPrinter(cmd, c.json)
	var last string
	fails := 0
	for {
		end, got, err := c.stream(cmd.Context(), loc, &last, p)
		if end != nil {
			p.finish()
			if end.OK {
				return nil
			}
			return fmt.Errorf("the node refused: %s", end.Error)
		}
		if cmd.Context().Err() != nil {
			p.finish()
			return fmt.Errorf("stopped following operation %s (it goes on in the node): %w", loc, cmd.Context().Err())
		}
		var gone *goneError
		if errors.As(err, &gone) {
			p.finish()
			return err
		}
		if got {
			fails = 0
		}
		if fails++; fails > reconnectTries {
			p.finish()
			return fmt.Errorf("lost operation %s (it may go on in the node; GET %s%s for its result): %w", loc, c.base, loc, err)
		}
		t := time.NewTimer(reconnectWait)
		select {
		case <-cmd.Context().Done():
			t.Stop()
		case <-t.C:
		}
	}
}

// goneError: the node does not know the operation (it ended too long
// ago, or the node restarted).
type goneError struct{ msg string }

func (e *goneError) Error() string { return e.msg }

// stream reads one connection's worth of an operation's events after
// *last, updating it; it returns the end event when it came, and whether
// any event came.
func (c *nodeClient) stream(ctx context.Context, loc string, last *string, p *progressPrinter) (*node.OpEvent, bool, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+loc+"/events", nil)
	if err != nil {
		return nil, false, err
	}
	req.Header.Set("Accept", "text/event-stream")
	if *last != "" {
		req.Header.Set("Last-Event-ID", *last)
	}
	idle := time.AfterFunc(streamIdle, cancel)
	defer idle.Stop()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, false, fmt.Errorf("follow operation: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return nil, false, &goneError{strings.TrimSpace(string(msg))}
	}
	if resp.StatusCode != http.StatusOK {
		return nil, false, fmt.Errorf("follow operation: %s", resp.Status)
	}
	got := false
	var id, typ string
	var data []byte
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		idle.Reset(streamIdle)
		line := sc.Text()
		switch {
		case line == "":
			if typ == "" {
				continue
			}
			var ev node.OpEvent
			if err := json.Unmarshal(data, &ev); err != nil {
				return nil, got, fmt.Errorf("follow operation: event %s: %w", id, err)
			}
			got = true
			if id != "" {
				*last = id
			}
			p.event(ev)
			if typ == node.EventEnd {
				return &ev, got, nil
			}
			id, typ, data = "", "", nil
		case strings.HasPrefix(line, ":"): // keep-alive
		case strings.HasPrefix(line, "id:"):
			id = strings.TrimSpace(line[3:])
		case strings.HasPrefix(line, "event:"):
			typ = strings.TrimSpace(line[6:])
		case strings.HasPrefix(line, "data:"):
			data = append(data, strings.TrimPrefix(line[5:], " ")...)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, got, fmt.Errorf("follow operation: %w", err)
	}
	return nil, got, errors.New("follow operation: the stream ended before the operation")
}

// progressPrinter shows an operation's events: JSON lines on stdout
// (--json), one line rewritten in place on a terminal, else plain lines
// on stderr, each printed once.
type progressPrinter struct {
	out, err io.Writer
	json     bool
	tty      bool
	last     string
	open     bool // a terminal line is waiting for its newline
}

func newProgressPrinter(cmd *cobra.Command, asJSON bool) *progressPrinter {
	p := &progressPrinter{out: cmd.OutOrStdout(), err: cmd.ErrOrStderr(), json: asJSON}
	if f, ok := p.err.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

func (p *progressPrinter) event(ev node.OpEvent) {
	if p.json {
		b, _ := json.Marshal(ev)
		fmt.Fprintf(p.out, "%s\n", b)
		return
	}
	line := progressLine(ev)
	if line == "" || line == p.last {
		return
	}
	p.last = line
	if p.tty {
		fmt.Fprintf(p.err, "\r\033[K%s", line)
		p.open = true
		return
	}
	fmt.Fprintln(p.err, line)
}

func (p *progressPrinter) finish() {
	if p.open {
		fmt.Fprintln(p.err)
		p.open = false
	}
}

// progressLine is an event as people read it:
// "install hello: fetch 40% verifying image of web".
func progressLine(ev node.OpEvent) string {
	if ev.Type == node.EventEnd {
		return "" // the command says how it ended
	}
	var b strings.Builder
	if ev.Op != "" {
		b.WriteString(ev.Op + " ")
	}
	if ev.App != "" {
		b.WriteString(ev.App + ": ")
	}
	if ev.Stage != "" {
		fmt.Fprintf(&b, "%s %d%%", ev.Stage, int(ev.Fraction*100+0.5))
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
	return strings.TrimSuffix(b.String(), ": ")
}
