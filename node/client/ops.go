package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/archy-node/archy/node"
)

// How the client follows an operation's event stream: the node sends a
// keep-alive at least every 15 s, so a stream silent for StreamIdle is
// dead; a broken stream is reopened where it stopped, up to
// ReconnectTries times in a row without an event.
const (
	StreamIdle     = 45 * time.Second
	ReconnectTries = 8
	reconnectWait  = time.Second
)

// OpError is an operation that ended in failure: its end event.
type OpError struct{ End node.OpEvent }

func (e *OpError) Error() string { return "the node refused: " + e.End.Error }

// ErrOpGone is returned when the node does not know the operation (it
// ended too long ago, or the node restarted).
var ErrOpGone = errors.New("operation gone")

// Follow reads the events of the operation at loc until its end event,
// calling onEvent (if not nil) with each, and reopens the stream from
// the last event it saw when the connection breaks. The operation runs
// on the node whatever happens to the connection. A failed operation is
// an *OpError carrying its end event.
func (c *Client) Follow(ctx context.Context, loc string, onEvent func(node.OpEvent)) (*node.OpEvent, error) {
	return c.FollowAfter(ctx, loc, "", onEvent)
}

// FollowAfter is Follow from after the event with id last (a client
// coming back to an operation it followed before).
func (c *Client) FollowAfter(ctx context.Context, loc, last string, onEvent func(node.OpEvent)) (*node.OpEvent, error) {
	if onEvent == nil {
		onEvent = func(node.OpEvent) {}
	}
	fails := 0
	for {
		end, got, err := c.stream(ctx, loc, &last, onEvent)
		if end != nil {
			if end.OK {
				return end, nil
			}
			return end, &OpError{End: *end}
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("stopped following operation %s (it goes on in the node): %w", loc, ctx.Err())
		}
		if errors.Is(err, ErrOpGone) {
			return nil, err
		}
		if got {
			fails = 0
		}
		if fails++; fails > ReconnectTries {
			return nil, fmt.Errorf("lost operation %s (it may go on in the node; GET %s%s for its result): %w", loc, c.Base, loc, err)
		}
		t := time.NewTimer(reconnectWait)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
}

// stream reads one connection's worth of an operation's events after
// *last, updating it; it returns the end event when it came, and whether
// any event came. The connection is cut after StreamIdle without a byte.
func (c *Client) stream(ctx context.Context, loc string, last *string, onEvent func(node.OpEvent)) (*node.OpEvent, bool, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	h := http.Header{"Accept": {"text/event-stream"}}
	if *last != "" {
		h.Set("Last-Event-ID", *last)
	}
	idle := time.AfterFunc(StreamIdle, cancel)
	defer idle.Stop()
	resp, err := c.request(ctx, http.MethodGet, loc+"/events", nil, h, false)
	if err != nil {
		var ae *APIError
		if errors.As(err, &ae) && ae.Code == http.StatusNotFound {
			return nil, false, fmt.Errorf("%w: %s", ErrOpGone, ae.Message)
		}
		return nil, false, fmt.Errorf("follow operation: %w", err)
	}
	defer resp.Body.Close()
	got := false
	var id, typ string
	var data []byte
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		idle.Reset(StreamIdle)
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
			onEvent(ev)
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
