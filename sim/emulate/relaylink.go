package emulate

import (
	"context"
	"net"
	"sync"
	"time"
)

// relayLink is a node's link to the relay: a TCP proxy on a loopback
// port that delivers every byte d after it was sent, in each direction
// (d is the node's one-way latency plus the relay's, as the scenario
// defines a link's latency), so discovery crosses the scenario's network
// as the model has it.
type relayLink struct {
	ln     net.Listener
	target string
	d      time.Duration
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// newRelayLink listens on 127.0.0.1 and forwards to target with delay d.
func newRelayLink(target string, d time.Duration) (*relayLink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &relayLink{ln: ln, target: target, d: d, ctx: ctx, cancel: cancel}
	l.wg.Add(1)
	go l.serve()
	return l, nil
}

// URL is the relay's websocket URL through the link.
func (l *relayLink) URL() string { return "ws://" + l.ln.Addr().String() }

// Close stops the link and its connections and waits for them.
func (l *relayLink) Close() {
	l.cancel()
	_ = l.ln.Close()
	l.wg.Wait()
}

func (l *relayLink) serve() {
	defer l.wg.Done()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		var d net.Dialer
		up, err := d.DialContext(l.ctx, "tcp", l.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		// Either side ending (or the link closing) ends both.
		stop := context.AfterFunc(l.ctx, func() { _ = c.Close(); _ = up.Close() })
		var pair sync.WaitGroup
		pair.Add(2)
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			pair.Wait()
			stop()
			_ = c.Close()
			_ = up.Close()
		}()
		for _, dir := range [][2]net.Conn{{c, up}, {up, c}} {
			go func() {
				defer pair.Done()
				l.pump(dir[0], dir[1])
				// One direction over: close both so the other ends too.
				_ = dir[0].Close()
				_ = dir[1].Close()
			}()
		}
	}
}

// pump copies src to dst, each read delivered l.d after it was read.
func (l *relayLink) pump(src, dst net.Conn) {
	type chunk struct {
		b  []byte
		at time.Time
	}
	q := make(chan chunk, 256)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ch := range q {
			if w := time.Until(ch.at); w > 0 {
				time.Sleep(w)
			}
			if _, err := dst.Write(ch.b); err != nil {
				for range q { // drain, so the reader is not blocked
				}
				return
			}
		}
	}()
	for {
		buf := make([]byte, 32<<10)
		n, err := src.Read(buf)
		if n > 0 {
			q <- chunk{buf[:n], time.Now().Add(l.d)}
		}
		if err != nil { // EOF, a reset or the link closing
			break
		}
	}
	close(q)
	<-done
}
