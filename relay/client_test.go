package relay

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/nbd-wtf/go-nostr"
)

// client is what the conformance suite needs from a Nostr client. Two
// implementations run the suite: wireClient (always) and go-nostr's
// nostr.Relay (builds without -race only: go-nostr v0.38.2's Relay.Close
// races with its own connection goroutine, relay.go:516 against :172).
type client interface {
	// Publish sends an EVENT and waits for OK; a refusal is an error
	// reading "msg: <reason>", as go-nostr words it.
	Publish(ctx context.Context, ev nostr.Event) error
	Subscribe(ctx context.Context, filters nostr.Filters) (*testSub, error)
	// Done is closed when the connection has ended.
	Done() <-chan struct{}
}

// testSub is one subscription as a client sees it.
type testSub struct {
	Events <-chan *nostr.Event
	EOSE   <-chan struct{}
	Closed <-chan string
	Unsub  func()
}

type connectFunc func(t testing.TB, s *served) client

// clients are the implementations the suite runs with.
var clients = map[string]connectFunc{
	"wire": connectWire,
}

// forEachClient runs test once per client implementation.
func forEachClient(t *testing.T, test func(t *testing.T, connect connectFunc)) {
	for name, connect := range clients {
		t.Run(name, func(t *testing.T) { test(t, connect) })
	}
}

// wireClient is a Nostr client built from go-nostr's wire pieces: its
// websocket Connection (gobwas/ws with permessage-deflate, the code
// nostr.Relay dials with) and its envelopes. One goroutine reads and
// dispatches in wire order; it checks every EVENT it gets, as a careful
// client would, and the test fails on any event with a bad id or
// signature or that does not match its subscription.
type wireClient struct {
	t    testing.TB
	conn *nostr.Connection
	done chan struct{}
	wg   sync.WaitGroup

	writeMu sync.Mutex
	nextSub atomic.Int64

	mu   sync.Mutex
	oks  map[string]chan nostr.OKEnvelope
	subs map[string]*wireSub
}

type wireSub struct {
	filters nostr.Filters
	events  chan *nostr.Event
	eose    chan struct{}
	eosed   bool
	closed  chan string
}

func connectWire(t testing.TB, s *served) client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	conn, err := nostr.NewConnection(ctx, s.URL(), http.Header{}, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	c := &wireClient{
		t: t, conn: conn, done: make(chan struct{}),
		oks: make(map[string]chan nostr.OKEnvelope), subs: make(map[string]*wireSub),
	}
	c.wg.Add(1)
	go c.read()
	t.Cleanup(func() {
		conn.Close()
		c.wg.Wait()
	})
	return c
}

func (c *wireClient) Done() <-chan struct{} { return c.done }

func (c *wireClient) read() {
	defer c.wg.Done()
	defer close(c.done)
	var buf bytes.Buffer
	for {
		buf.Reset()
		if err := c.conn.ReadMessage(context.Background(), &buf); err != nil {
			return
		}
		switch env := nostr.ParseMessage(buf.Bytes()).(type) {
		case *nostr.OKEnvelope:
			c.mu.Lock()
			ch := c.oks[env.EventID]
			c.mu.Unlock()
			if ch != nil {
				ch <- *env
			}
		case *nostr.EventEnvelope:
			if env.SubscriptionID == nil {
				c.t.Errorf("relay sent an EVENT without a subscription id")
				continue
			}
			c.mu.Lock()
			sub := c.subs[*env.SubscriptionID]
			c.mu.Unlock()
			if sub == nil {
				continue // closed meanwhile
			}
			ev := env.Event
			if !ev.CheckID() {
				c.t.Errorf("relay sent event %s whose id does not match", ev.ID)
			} else if ok, _ := ev.CheckSignature(); !ok {
				c.t.Errorf("relay sent event %s with a bad signature", ev.ID)
			}
			if !sub.filters.Match(&ev) {
				c.t.Errorf("relay sent event %s that does not match %v", ev.ID, sub.filters)
			}
			select {
			case sub.events <- &ev:
			default:
				c.t.Errorf("test did not read subscription events")
			}
		case *nostr.EOSEEnvelope:
			c.mu.Lock()
			if sub := c.subs[string(*env)]; sub != nil && !sub.eosed {
				sub.eosed = true
				close(sub.eose)
			}
			c.mu.Unlock()
		case *nostr.ClosedEnvelope:
			c.mu.Lock()
			sub := c.subs[env.SubscriptionID]
			delete(c.subs, env.SubscriptionID)
			c.mu.Unlock()
			if sub != nil {
				sub.closed <- env.Reason
			}
		case *nostr.NoticeEnvelope:
			c.t.Logf("NOTICE %s", string(*env))
		default:
			c.t.Errorf("relay sent a message go-nostr cannot parse: %q", buf.Bytes())
		}
	}
}

func (c *wireClient) write(ctx context.Context, env nostr.Envelope) error {
	b, err := env.MarshalJSON()
	if err != nil {
		return err
	}
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	return c.conn.WriteMessage(ctx, b)
}

func (c *wireClient) Publish(ctx context.Context, ev nostr.Event) error {
	ch := make(chan nostr.OKEnvelope, 1)
	c.mu.Lock()
	c.oks[ev.ID] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.oks, ev.ID)
		c.mu.Unlock()
	}()
	if err := c.write(ctx, &nostr.EventEnvelope{Event: ev}); err != nil {
		return err
	}
	select {
	case ok := <-ch:
		if !ok.OK {
			return fmt.Errorf("msg: %s", ok.Reason)
		}
		return nil
	case <-c.done:
		return fmt.Errorf("connection closed before OK")
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *wireClient) Subscribe(ctx context.Context, filters nostr.Filters) (*testSub, error) {
	id := "sub:" + strconv.FormatInt(c.nextSub.Add(1), 10)
	sub := &wireSub{
		filters: filters,
		events:  make(chan *nostr.Event, 10000),
		eose:    make(chan struct{}),
		closed:  make(chan string, 1),
	}
	c.mu.Lock()
	c.subs[id] = sub
	c.mu.Unlock()
	if err := c.write(ctx, &nostr.ReqEnvelope{SubscriptionID: id, Filters: filters}); err != nil {
		return nil, err
	}
	return &testSub{
		Events: sub.events, EOSE: sub.eose, Closed: sub.closed,
		Unsub: func() {
			c.mu.Lock()
			_, open := c.subs[id]
			delete(c.subs, id)
			c.mu.Unlock()
			if open {
				closeEnv := nostr.CloseEnvelope(id)
				_ = c.write(context.Background(), &closeEnv)
			}
		},
	}, nil
}
