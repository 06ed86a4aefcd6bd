package relay

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nbd-wtf/go-nostr"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testTimeout bounds every wait in these tests; reaching it is a failure.
const testTimeout = 10 * time.Second

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// served is a relay serving on a loopback port for one test.
type served struct {
	*Relay
	stop func() // stops the relay and waits for Serve to return
}

// start builds a relay from cfg and serves it on 127.0.0.1:0 until stop
// or the end of the test.
func start(t testing.TB, cfg Config) *served {
	t.Helper()
	return startOn(t, cfg, nil)
}

// startOn is start with the listener wrapped by wrap, if given.
func startOn(t testing.TB, cfg Config, wrap func(net.Listener) net.Listener) *served {
	t.Helper()
	r, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		r.Close()
		t.Fatalf("listen: %v", err)
	}
	if wrap != nil {
		ln = wrap(ln)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Serve(ctx, ln) }()
	stopped := false
	s := &served{Relay: r}
	s.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}
	t.Cleanup(s.stop)
	// Serve stores the address before it serves; the listener accepts
	// from now on either way.
	s.addr.Store(ptr(ln.Addr()))
	return s
}

func ptr[T any](v T) *T { return &v }

// key is a test identity.
type key struct{ sk, pk string }

func newKey(t testing.TB) key {
	t.Helper()
	sk := nostr.GeneratePrivateKey()
	pk, err := nostr.GetPublicKey(sk)
	if err != nil {
		t.Fatal(err)
	}
	return key{sk, pk}
}

// sign makes a signed event.
func (k key) sign(t testing.TB, kind int, createdAt int64, tags nostr.Tags, content string) nostr.Event {
	t.Helper()
	if tags == nil {
		tags = nostr.Tags{}
	}
	ev := nostr.Event{Kind: kind, CreatedAt: nostr.Timestamp(createdAt), Tags: tags, Content: content}
	if err := ev.Sign(k.sk); err != nil {
		t.Fatal(err)
	}
	return ev
}

// publish sends ev and returns the relay's refusal, or nil on OK true.
func publish(t testing.TB, rl client, ev nostr.Event) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	return rl.Publish(ctx, ev)
}

func mustPublish(t testing.TB, rl client, evs ...nostr.Event) {
	t.Helper()
	for _, ev := range evs {
		if err := publish(t, rl, ev); err != nil {
			t.Fatalf("publish kind %d: %v", ev.Kind, err)
		}
	}
}

// refusedWith asserts that err is a refusal whose reason starts with prefix.
func refusedWith(t testing.TB, err error, prefix string) {
	t.Helper()
	if err == nil {
		t.Fatalf("event accepted, want refusal %q", prefix)
	}
	if !strings.HasPrefix(err.Error(), "msg: "+prefix) {
		t.Fatalf("refusal %q, want prefix %q", err, prefix)
	}
}

// query subscribes with filters, collects the stored events until EOSE,
// and closes the subscription. The result is sorted in NIP-01 order, since
// go-nostr's client does not keep the wire order.
func query(t testing.TB, rl client, filters ...nostr.Filter) []*nostr.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	sub, err := rl.Subscribe(ctx, filters)
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	defer sub.Unsub()
	var got []*nostr.Event
	for {
		select {
		case ev := <-sub.Events:
			got = append(got, ev)
		case <-sub.EOSE:
			// Events come before EOSE; take any still buffered.
			for drained := false; !drained; {
				select {
				case ev := <-sub.Events:
					got = append(got, ev)
				default:
					drained = true
				}
			}
			slices.SortFunc(got, func(a, b *nostr.Event) int { return nip01Cmp(*a, *b) })
			return got
		case reason := <-sub.Closed:
			t.Fatalf("subscription closed: %s", reason)
		case <-ctx.Done():
			t.Fatalf("no EOSE: %v", ctx.Err())
		}
	}
}

func ids(evs []*nostr.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.ID
	}
	return out
}

func idsOf(evs ...nostr.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.ID
	}
	return out
}

// nip01Order sorts events as NIP-01 wants results: newest first, ties by
// lowest id.
func nip01Order(evs []nostr.Event) []nostr.Event {
	out := slices.Clone(evs)
	slices.SortFunc(out, nip01Cmp)
	return out
}

func nip01Cmp(a, b nostr.Event) int {
	if a.CreatedAt != b.CreatedAt {
		return int(b.CreatedAt - a.CreatedAt)
	}
	return strings.Compare(a.ID, b.ID)
}

func sameIDs(t testing.TB, got []*nostr.Event, want ...nostr.Event) {
	t.Helper()
	g, w := ids(got), idsOf(nip01Order(want)...)
	if !slices.Equal(g, w) {
		t.Fatalf("got events\n  %v\nwant\n  %v", g, w)
	}
}

// rawClient speaks NIP-01 over a plain websocket, so tests can see the
// exact messages and their order.
type rawClient struct {
	t  testing.TB
	ws *websocket.Conn
}

func dialRaw(t testing.TB, s *served) *rawClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, s.URL(), &websocket.DialOptions{HTTPClient: &http.Client{}})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	ws.SetReadLimit(-1)
	t.Cleanup(func() { ws.CloseNow() })
	return &rawClient{t, ws}
}

func (c *rawClient) send(v ...any) {
	c.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		c.t.Fatal(err)
	}
	c.sendRaw(b)
}

func (c *rawClient) sendRaw(b []byte) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// next reads one message as a JSON array.
func (c *rawClient) next() []json.RawMessage {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	_, b, err := c.ws.Read(ctx)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	var msg []json.RawMessage
	if err := json.Unmarshal(b, &msg); err != nil || len(msg) == 0 {
		c.t.Fatalf("relay sent %q, not a JSON array", b)
	}
	return msg
}

func str(t testing.TB, raw json.RawMessage) string {
	t.Helper()
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("%s is not a string", raw)
	}
	return s
}

// reqIDs sends a REQ and returns the ids of the stored events, in the
// order they came, up to EOSE.
func (c *rawClient) reqIDs(subID string, filters ...any) []string {
	c.t.Helper()
	c.send(append([]any{"REQ", subID}, filters...)...)
	var got []string
	for {
		msg := c.next()
		switch label := str(c.t, msg[0]); label {
		case "EVENT":
			if str(c.t, msg[1]) != subID {
				c.t.Fatalf("EVENT for %s, want %s", msg[1], subID)
			}
			var ev nostr.Event
			if err := json.Unmarshal(msg[2], &ev); err != nil {
				c.t.Fatal(err)
			}
			got = append(got, ev.ID)
		case "EOSE":
			return got
		default:
			c.t.Fatalf("unexpected %s before EOSE: %s", label, msg)
		}
	}
}
