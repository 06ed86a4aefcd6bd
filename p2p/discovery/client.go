package discovery

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/nbd-wtf/go-nostr"
)

// Client is a NIP-01 client connection to one relay. archy uses its own
// small client rather than go-nostr's Relay, whose Close races with its
// connection goroutine (go-nostr v0.38.2 relay.go:516 against :172); the
// message types and their parsing still come from go-nostr.
type Client struct {
	url  string
	ws   *websocket.Conn
	done chan struct{}
	err  error // why the connection ended; set before done closes

	writeTimeout time.Duration
	wmu          sync.Mutex

	mu     sync.Mutex
	nextID int
	oks    map[string]chan nostr.OKEnvelope
	subs   map[string]*Subscription
}

// Subscription receives the events of one REQ. Events is closed when the
// subscription or the connection ends.
type Subscription struct {
	id     string
	c      *Client
	Events chan *nostr.Event
	// EOSE is closed when the relay has sent every stored event.
	EOSE chan struct{}
	// Closed receives the relay's reason if it ends the subscription.
	Closed chan string

	stop     chan struct{} // closed by Unsub
	once     sync.Once
	eoseOnce sync.Once
	stopOnce sync.Once
}

// MaxRelayMessage bounds one message read from a relay.
const MaxRelayMessage = 1 << 20

// dialer makes each relay connection on its own TCP connection and never
// pools one: the default client keeps the connection of a handshake whose
// ctx ended mid-dial as idle, and a relay shutting down then waits on it.
var dialer = &http.Client{Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, DisableKeepAlives: true}}

// Dial connects to a relay; ctx bounds the handshake only.
func Dial(ctx context.Context, url string, writeTimeout time.Duration) (*Client, error) {
	ws, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: dialer})
	if err != nil {
		return nil, fmt.Errorf("connect to relay %s: %w", url, err)
	}
	ws.SetReadLimit(MaxRelayMessage)
	if writeTimeout == 0 {
		writeTimeout = 10 * time.Second
	}
	c := &Client{url: url, ws: ws, done: make(chan struct{}), writeTimeout: writeTimeout,
		oks: map[string]chan nostr.OKEnvelope{}, subs: map[string]*Subscription{}}
	go c.readLoop()
	return c, nil
}

// Done is closed when the connection has ended; Err then says why.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err is why the connection ended (nil while it is up).
func (c *Client) Err() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

// Close ends the connection and waits for the reader to stop.
func (c *Client) Close() error {
	err := c.ws.Close(websocket.StatusNormalClosure, "")
	<-c.done
	return err
}

func (c *Client) readLoop() {
	var err error
	defer func() {
		c.mu.Lock()
		c.err = err
		for _, s := range c.subs {
			s.end()
		}
		c.subs = nil
		c.mu.Unlock()
		close(c.done)
	}()
	for {
		var data []byte
		_, data, err = c.ws.Read(context.Background())
		if err != nil {
			return
		}
		switch env := nostr.ParseMessage(data).(type) {
		case *nostr.EventEnvelope:
			if env.SubscriptionID == nil {
				continue
			}
			c.mu.Lock()
			s := c.subs[*env.SubscriptionID]
			c.mu.Unlock()
			if s != nil {
				ev := env.Event
				select {
				case s.Events <- &ev: // a slow consumer slows the relay down (TCP backpressure)
				case <-s.stop:
				}
			}
		case *nostr.EOSEEnvelope:
			c.mu.Lock()
			s := c.subs[string(*env)]
			c.mu.Unlock()
			if s != nil {
				s.eoseOnce.Do(func() { close(s.EOSE) })
			}
		case *nostr.ClosedEnvelope:
			c.mu.Lock()
			s := c.subs[env.SubscriptionID]
			delete(c.subs, env.SubscriptionID)
			c.mu.Unlock()
			if s != nil {
				select {
				case s.Closed <- env.Reason:
				default:
				}
				s.end()
			}
		case *nostr.OKEnvelope:
			c.mu.Lock()
			ch := c.oks[env.EventID]
			delete(c.oks, env.EventID)
			c.mu.Unlock()
			if ch != nil {
				ch <- *env
			}
		}
	}
}

func (c *Client) write(ctx context.Context, msg []byte) error {
	ctx, cancel := context.WithTimeout(ctx, c.writeTimeout)
	defer cancel()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.ws.Write(ctx, websocket.MessageText, msg)
}

// ErrRefused is returned when a relay answers OK false.
var ErrRefused = errors.New("relay refused the event")

// Publish sends an event and waits for the relay's OK.
func (c *Client) Publish(ctx context.Context, ev nostr.Event) error {
	ch := make(chan nostr.OKEnvelope, 1)
	c.mu.Lock()
	c.oks[ev.ID] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.oks, ev.ID)
		c.mu.Unlock()
	}()
	msg, err := nostr.EventEnvelope{Event: ev}.MarshalJSON()
	if err != nil {
		return fmt.Errorf("encode event: %w", err)
	}
	if err := c.write(ctx, msg); err != nil {
		return fmt.Errorf("send event to %s: %w", c.url, err)
	}
	select {
	case ok := <-ch:
		if !ok.OK {
			return fmt.Errorf("%w: %.200s", ErrRefused, ok.Reason)
		}
		return nil
	case <-c.done:
		return fmt.Errorf("relay %s: connection ended before OK", c.url)
	case <-ctx.Done():
		return fmt.Errorf("wait for OK from %s: %w", c.url, ctx.Err())
	}
}

// Subscribe sends a REQ. The subscription lasts until Unsub, a CLOSED from
// the relay, or the end of the connection.
func (c *Client) Subscribe(ctx context.Context, filters nostr.Filters) (*Subscription, error) {
	c.mu.Lock()
	if c.subs == nil {
		c.mu.Unlock()
		return nil, fmt.Errorf("subscribe on %s: connection ended", c.url)
	}
	c.nextID++
	s := &Subscription{id: "archy-" + strconv.Itoa(c.nextID), c: c,
		Events: make(chan *nostr.Event, 256), EOSE: make(chan struct{}), Closed: make(chan string, 1),
		stop: make(chan struct{})}
	c.subs[s.id] = s
	c.mu.Unlock()
	msg, err := nostr.ReqEnvelope{SubscriptionID: s.id, Filters: filters}.MarshalJSON()
	if err == nil {
		err = c.write(ctx, msg)
	}
	if err != nil {
		c.mu.Lock()
		delete(c.subs, s.id)
		c.mu.Unlock()
		return nil, fmt.Errorf("subscribe on %s: %w", c.url, err)
	}
	return s, nil
}

// Unsub sends CLOSE and stops delivery.
func (s *Subscription) Unsub(ctx context.Context) {
	s.stopOnce.Do(func() { close(s.stop) })
	s.c.mu.Lock()
	_, live := s.c.subs[s.id]
	delete(s.c.subs, s.id)
	s.c.mu.Unlock()
	if live {
		msg, _ := nostr.CloseEnvelope(s.id).MarshalJSON()
		_ = s.c.write(ctx, msg)
	}
}

// end closes Events once; the reader calls it with no send in flight.
func (s *Subscription) end() { s.once.Do(func() { close(s.Events) }) }
