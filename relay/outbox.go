package relay

import (
	"context"
	"errors"
	"sync"
)

// errClosed is returned by push once the connection is ending.
var errClosed = errors.New("connection closed")

// outbox is the queue of messages waiting to be written to one client,
// bounded in bytes. Replies and stored events are pushed by the client's
// own reader, which waits while the queue holds more than half the bound
// (backpressure on a client that asks faster than it reads). Live events
// are pushed by other clients' writes and never wait: when they would
// overflow the bound, the client is too slow and is disconnected. So a
// client costs at most the bound, however hard it or others push.
type outbox struct {
	ready chan struct{} // a message was queued (capacity 1)

	mu     sync.Mutex
	msgs   [][]byte
	head   int
	bytes  int
	max    int
	closed bool
	space  chan struct{} // closed when room is made, if a push waits on it
	waited bool          // a push waits on space
}

func newOutbox(max int) *outbox {
	return &outbox{ready: make(chan struct{}, 1), max: max, space: make(chan struct{})}
}

// push queues msg, waiting while the queue is over half full.
func (o *outbox) push(ctx context.Context, msg []byte) error {
	for {
		o.mu.Lock()
		if o.closed {
			o.mu.Unlock()
			return errClosed
		}
		if o.bytes < o.max/2 {
			o.add(msg)
			o.mu.Unlock()
			return nil
		}
		space := o.space
		o.waited = true
		o.mu.Unlock()
		select {
		case <-space:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// tryPush queues msg unless that would overflow the bound; it never waits.
func (o *outbox) tryPush(msg []byte) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed || o.bytes+len(msg) > o.max {
		return false
	}
	o.add(msg)
	return true
}

func (o *outbox) add(msg []byte) {
	o.msgs = append(o.msgs, msg)
	o.bytes += len(msg)
	select {
	case o.ready <- struct{}{}:
	default:
	}
}

// pop takes the oldest message, if any.
func (o *outbox) pop() ([]byte, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.head == len(o.msgs) {
		return nil, false
	}
	msg := o.msgs[o.head]
	o.msgs[o.head] = nil
	o.head++
	if o.head == len(o.msgs) {
		o.msgs, o.head = o.msgs[:0], 0
	}
	o.bytes -= len(msg)
	if o.waited && !o.closed {
		close(o.space)
		o.space, o.waited = make(chan struct{}), false
	}
	return msg, true
}

// close refuses further messages and wakes any waiting push.
func (o *outbox) close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.closed {
		o.closed = true
		close(o.space)
	}
}
