package relay

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nbd-wtf/go-nostr"
)

// TestSlowClientDropped: a client that subscribes and stops reading is
// disconnected once its send buffer is full, rather than holding the
// relay's memory or slowing others.
func TestSlowClientDropped(t *testing.T) {
	// 100 events of 12 KiB: far more than the slow client's send buffer
	// plus what the kernel buffers (socket buffers are kept small here).
	const n = 100
	s := startOn(t, Config{MaxMessageSize: 16 << 10, SendBuffer: 64 << 10, EventRate: 1e6, EventBurst: 1e6}, smallSendBuffers)
	slow := dialRawSmallBuffer(t, s)
	slow.reqIDs("all", map[string]any{"kinds": []int{20000}})
	// slow reads nothing from now on.

	pub := connectWire(t, s)
	watcher := connectWire(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sub, err := watcher.Subscribe(ctx, nostr.Filters{{Kinds: []int{20000}}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsub()
	<-sub.EOSE
	k := newKey(t)
	content := strings.Repeat("x", 12<<10)
	for i := range n {
		mustPublish(t, pub, k.sign(t, 20000, time.Now().Unix(), nil, fmt.Sprint(i, content)))
		select {
		case <-sub.Events: // a client that reads gets every event
		case <-ctx.Done():
			t.Fatalf("event %d not delivered to the reading client", i)
		}
	}

	// The slow client finds what was buffered, then the end.
	got := 0
	for {
		_, _, err := slow.ws.Read(ctx)
		if err != nil {
			break
		}
		got++
	}
	if got >= n {
		t.Fatalf("slow client got all %d events; it should have been dropped", got)
	}
	t.Logf("slow client got %d of %d events before it was dropped", got, n)
	if c := s.Stats().Connections; c != 2 {
		t.Fatalf("%d connections, want 2 (the slow one dropped)", c)
	}
}

// TestJunkFlood: 10,000 invalid events pipelined on one connection are all
// refused and not stored, a valid event on another connection is accepted
// meanwhile, and the heap after the flood is bounded. How long the valid
// event waits is BenchmarkValidDuringJunkFlood's figure.
func TestJunkFlood(t *testing.T) {
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	s := junkFlood(t)
	if got := s.Stats().Events; got != 1 {
		t.Fatalf("%d events stored, want 1", got)
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if grew := int64(after.HeapInuse) - int64(before.HeapInuse); grew > 32<<20 {
		t.Fatalf("heap grew by %d MiB over the flood", grew>>20)
	}
}

// BenchmarkValidDuringJunkFlood prints how long a valid event takes to be
// accepted on one connection while another pipelines 10,000 invalid ones:
//
//	figure relay-valid-during-flood-ms 12.0
func BenchmarkValidDuringJunkFlood(b *testing.B) {
	var worst time.Duration
	for range b.N {
		var took time.Duration
		junkFlood(b, func(publish func()) {
			t0 := time.Now()
			publish()
			took = time.Since(t0)
		})
		worst = max(worst, took)
	}
	figure(b, "relay-valid-during-flood-ms", float64(worst.Microseconds())/1000)
}

// junkFlood starts a relay and pipelines 10,000 invalid events on one
// connection, while a valid event is published on another (through
// timed, if given); it checks every junk event was refused and returns
// the relay.
func junkFlood(tb testing.TB, timed ...func(publish func())) *served {
	tb.Helper()
	const n = 10000
	s := start(tb, Config{EventRate: 1e6, EventBurst: 1e6})
	k := newKey(tb)
	good := k.sign(tb, 1, time.Now().Unix(), nil, "valid")
	msgs := make([][]byte, n)
	for i := range msgs {
		var ev nostr.Event
		if i%50 == 0 {
			// Signed, then the signature broken: costs the relay a
			// signature check.
			ev = k.sign(tb, 1, time.Now().Unix(), nil, fmt.Sprint("junk ", i))
			ev.Sig = flipHex(ev.Sig, 5)
		} else {
			// Made up: the id check refuses it.
			ev = nostr.Event{
				ID: randomHex(32), PubKey: k.pk, CreatedAt: nostr.Now(), Kind: 1,
				Tags: nostr.Tags{}, Content: fmt.Sprint("junk ", i), Sig: randomHex(64),
			}
		}
		msgs[i], _ = json.Marshal([]any{"EVENT", ev})
	}

	flood := dialRaw(tb, s)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	refused := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		for refused < n {
			_, b, err := flood.ws.Read(ctx)
			if err != nil {
				return
			}
			if strings.HasPrefix(string(b), `["OK",`) && strings.Contains(string(b), `,false,"invalid:`) {
				refused++
			}
		}
	}()
	writeDone := make(chan error, 1)
	go func() {
		for _, m := range msgs {
			if err := flood.ws.Write(ctx, websocket.MessageText, m); err != nil {
				writeDone <- err
				return
			}
		}
		writeDone <- nil
	}()

	// Meanwhile a valid event goes through another connection.
	pub := connectWire(tb, s)
	publish := func() { mustPublish(tb, pub, good) }
	if len(timed) > 0 {
		timed[0](publish)
	} else {
		publish()
	}
	if err := <-writeDone; err != nil {
		tb.Fatal(err)
	}
	wg.Wait()
	if refused != n {
		tb.Fatalf("%d of %d junk events refused", refused, n)
	}
	return s
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// dialRawSmallBuffer dials like dialRaw with a small TCP receive buffer,
// so that what the kernel holds for a client that does not read is small.
func dialRawSmallBuffer(t testing.TB, s *served) *rawClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	transport := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err == nil {
			err = c.(*net.TCPConn).SetReadBuffer(16 << 10)
		}
		return c, err
	}}
	defer transport.CloseIdleConnections()
	ws, _, err := websocket.Dial(ctx, s.URL(), &websocket.DialOptions{HTTPClient: &http.Client{Transport: transport}})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	ws.SetReadLimit(-1)
	t.Cleanup(func() { ws.CloseNow() })
	return &rawClient{t, ws}
}

// smallSendBuffers makes the kernel buffer little for each accepted
// connection, so a client that does not read shows up soon.
func smallSendBuffers(ln net.Listener) net.Listener { return smallBufListener{ln} }

type smallBufListener struct{ net.Listener }

func (l smallBufListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		err = c.(*net.TCPConn).SetWriteBuffer(16 << 10)
	}
	return c, err
}
