package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/nbd-wtf/go-nostr"
	"golang.org/x/time/rate"
)

// conn is one websocket client. Its reader runs in the HTTP handler's
// goroutine, its writer in a goroutine the handler starts and waits for.
type conn struct {
	r      *Relay
	remote string
	out    *outbox
	events *rate.Limiter
	reqs   *rate.Limiter

	mu     sync.Mutex
	subs   map[string]*subscription
	ws     *websocket.Conn    // set by serve
	cancel context.CancelFunc // ends the connection; set by serve
	dead   bool
}

// subscription is one REQ. Until its stored events and EOSE are queued it
// is not live: events that arrive meanwhile wait in pending, so that no
// live event overtakes the EOSE.
type subscription struct {
	id      string
	quoted  []byte // JSON of id, for building EVENT messages
	filters nostr.Filters

	mu           sync.Mutex
	live         bool
	pending      [][]byte
	pendingBytes int
}

func newConn(r *Relay, remote string) *conn {
	return &conn{
		r:      r,
		remote: remote,
		out:    newOutbox(r.cfg.SendBuffer),
		events: rate.NewLimiter(rate.Limit(r.cfg.EventRate), r.cfg.EventBurst),
		reqs:   rate.NewLimiter(rate.Limit(r.cfg.ReqRate), r.cfg.ReqBurst),
		subs:   make(map[string]*subscription),
	}
}

// kill ends the connection: the reader and writer stop and the socket is
// closed. It never blocks, so it is safe under any lock.
func (c *conn) kill() {
	c.mu.Lock()
	c.dead = true
	cancel := c.cancel
	c.mu.Unlock()
	c.out.close()
	if cancel != nil {
		cancel()
	}
}

// goAway closes the connection with a close handshake (1001, going
// away), waiting for the client's answer (coder/websocket bounds that
// wait); a kill cuts it short.
func (c *conn) goAway() {
	c.mu.Lock()
	ws, dead := c.ws, c.dead
	c.mu.Unlock()
	if ws != nil && !dead {
		_ = ws.Close(websocket.StatusGoingAway, "relay shutting down")
	}
}

// serve runs the connection until the client leaves, breaks a limit, or ctx
// ends.
func (c *conn) serve(ctx context.Context, ws *websocket.Conn) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c.mu.Lock()
	c.cancel, c.ws = cancel, ws
	dead := c.dead
	c.mu.Unlock()
	if dead {
		ws.CloseNow()
		return
	}
	log := c.r.log.With("remote", c.remote)
	log.Debug("client connected")

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer cancel()
		if err := c.write(ctx, ws); err != nil && ctx.Err() == nil {
			log.Debug("client write ended", "err", err)
		}
	}()
	err := c.read(ctx, ws)
	cancel()
	c.out.close()
	wg.Wait()
	ws.CloseNow()
	switch {
	case errors.Is(err, websocket.ErrMessageTooBig):
		log.Debug("client sent a message over the size limit; closed", "limit", c.r.cfg.MaxMessageSize)
	case err != nil && ctx.Err() == nil && websocket.CloseStatus(err) == -1:
		log.Debug("client read ended", "err", err)
	}
	log.Debug("client disconnected")
}

func (c *conn) read(ctx context.Context, ws *websocket.Conn) error {
	for {
		_, data, err := ws.Read(ctx)
		if err != nil {
			return err
		}
		if err := c.handle(ctx, data); err != nil {
			return err
		}
	}
}

// write sends queued messages, each with a deadline, and pings the client
// when it has been quiet for PingInterval.
func (c *conn) write(ctx context.Context, ws *websocket.Conn) error {
	ping := time.NewTimer(c.r.cfg.PingInterval)
	defer ping.Stop()
	for {
		msg, ok := c.out.pop()
		if !ok {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-c.out.ready:
				continue
			case <-ping.C:
				pctx, cancel := context.WithTimeout(ctx, c.r.cfg.WriteTimeout)
				err := ws.Ping(pctx)
				cancel()
				if err != nil {
					return fmt.Errorf("ping: %w", err)
				}
				ping.Reset(c.r.cfg.PingInterval)
				continue
			}
		}
		wctx, cancel := context.WithTimeout(ctx, c.r.cfg.WriteTimeout)
		err := ws.Write(wctx, websocket.MessageText, msg)
		cancel()
		if err != nil {
			return fmt.Errorf("write: %w", err)
		}
		ping.Reset(c.r.cfg.PingInterval)
	}
}

// handle answers one client message. It returns an error only when the
// connection must end.
func (c *conn) handle(ctx context.Context, data []byte) error {
	msg, err := parseClientMessage(data, c.r.cfg.MaxSubIDLength)
	if err != nil {
		var perr *parseError
		errors.As(err, &perr)
		switch {
		case perr.label == "EVENT" && perr.id != "":
			return c.send(ctx, okMessage(perr.id, false, "invalid: "+perr.msg))
		case perr.label == "REQ" && perr.subID != "":
			return c.send(ctx, closedMessage(perr.subID, "invalid: "+perr.msg))
		default:
			return c.send(ctx, noticeMessage("invalid: "+perr.msg))
		}
	}
	switch m := msg.(type) {
	case eventMessage:
		return c.handleEvent(ctx, &m.event)
	case reqMessage:
		return c.handleReq(ctx, m)
	case closeMessage:
		c.mu.Lock()
		delete(c.subs, m.subID)
		c.mu.Unlock()
	}
	return nil
}

func (c *conn) handleEvent(ctx context.Context, ev *nostr.Event) error {
	cfg := &c.r.cfg
	now := cfg.Now()
	if !c.events.AllowN(now, 1) {
		c.r.metrics.events.WithLabelValues(resultRateLimited).Inc()
		return c.send(ctx, okMessage(ev.ID, false, fmt.Sprintf("rate-limited: slow down, at most %g events a second", cfg.EventRate)))
	}
	if reason := c.r.check(ev, now); reason != "" {
		c.r.metrics.events.WithLabelValues(resultInvalid).Inc()
		return c.send(ctx, okMessage(ev.ID, false, reason))
	}
	if ev.IsEphemeral() {
		raw, err := encodeEvent(ev)
		if err != nil {
			c.r.metrics.events.WithLabelValues(resultError).Inc()
			return c.send(ctx, okMessage(ev.ID, false, "error: could not encode event"))
		}
		c.r.broadcast(ev, raw)
		c.r.metrics.events.WithLabelValues(resultEphemeral).Inc()
		return c.send(ctx, okMessage(ev.ID, true, ""))
	}
	res, err := c.r.store.put(ev, func(rec *record) { c.r.broadcast(rec.ev, rec.raw) })
	if err != nil {
		c.r.log.Error("could not store event", "err", err)
		c.r.metrics.events.WithLabelValues(resultError).Inc()
		return c.send(ctx, okMessage(ev.ID, false, "error: could not store the event; try again later"))
	}
	var result, reason string
	switch res {
	case accepted:
		c.r.metrics.events.WithLabelValues(resultAccepted).Inc()
		return c.send(ctx, okMessage(ev.ID, true, ""))
	case duplicate:
		result, reason = resultDuplicate, "duplicate: already have this event"
	case superseded:
		result, reason = resultSuperseded, "duplicate: already have a newer version of this replaceable event"
	case deleted:
		result, reason = resultDeleted, "blocked: this event was deleted by its author"
	case full:
		result, reason = resultFull, "error: relay storage is full"
	}
	c.r.metrics.events.WithLabelValues(result).Inc()
	return c.send(ctx, okMessage(ev.ID, false, reason))
}

// check verifies ev for storage: size limits, created_at, id and
// signature. It returns "" when ev may be stored, else the OK reason.
func (r *Relay) check(ev *nostr.Event, now time.Time) string {
	if len(ev.Tags) > r.cfg.MaxEventTags {
		return fmt.Sprintf("invalid: more than %d tags", r.cfg.MaxEventTags)
	}
	if ev.CreatedAt.Time().After(now.Add(r.cfg.MaxFutureSkew)) {
		return fmt.Sprintf("invalid: created_at is more than %s in the future", r.cfg.MaxFutureSkew)
	}
	if !ev.CheckID() {
		return "invalid: event id does not match the event"
	}
	if ok, err := ev.CheckSignature(); err != nil || !ok {
		return "invalid: bad signature"
	}
	return ""
}

func (c *conn) handleReq(ctx context.Context, m reqMessage) error {
	cfg := &c.r.cfg
	if !c.reqs.AllowN(cfg.Now(), 1) {
		return c.send(ctx, closedMessage(m.subID, fmt.Sprintf("rate-limited: slow down, at most %g subscriptions a second", cfg.ReqRate)))
	}
	if len(m.filters) > cfg.MaxFilters {
		return c.send(ctx, closedMessage(m.subID, fmt.Sprintf("invalid: too many filters, at most %d", cfg.MaxFilters)))
	}
	c.mu.Lock()
	_, replacing := c.subs[m.subID]
	tooMany := !replacing && len(c.subs) >= cfg.MaxSubscriptions
	c.mu.Unlock()
	if tooMany {
		return c.send(ctx, closedMessage(m.subID, fmt.Sprintf("blocked: too many open subscriptions, at most %d", cfg.MaxSubscriptions)))
	}
	quoted, _ := json.Marshal(m.subID)
	sub := &subscription{id: m.subID, quoted: quoted, filters: m.filters}

	refused := false
	limitOf := func(f *nostr.Filter) int {
		switch {
		case f.LimitZero:
			return 0
		case f.Limit > 0:
			return min(f.Limit, cfg.MaxLimit)
		}
		return cfg.MaxLimit
	}
	// Register under the store's read lock: every event stored later
	// reaches the subscription through broadcast, every one before is in
	// the query's result.
	stored := c.r.store.query(m.filters, limitOf, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if _, replacing := c.subs[m.subID]; !replacing && len(c.subs) >= cfg.MaxSubscriptions {
			refused = true
			return
		}
		c.subs[m.subID] = sub
	})
	if refused {
		return c.send(ctx, closedMessage(m.subID, fmt.Sprintf("blocked: too many open subscriptions, at most %d", cfg.MaxSubscriptions)))
	}
	for _, rec := range stored {
		if err := c.send(ctx, eventMessageFor(sub.quoted, rec.raw)); err != nil {
			return err
		}
	}
	if err := c.send(ctx, eoseMessage(m.subID)); err != nil {
		return err
	}
	sub.mu.Lock()
	ok := true
	for _, msg := range sub.pending {
		if ok = c.out.tryPush(msg); !ok {
			break
		}
	}
	sub.pending, sub.pendingBytes, sub.live = nil, 0, true
	sub.mu.Unlock()
	if !ok {
		c.r.metrics.dropped.Inc()
		c.kill()
		return errSlowClient
	}
	return nil
}

var errSlowClient = errors.New("client does not read fast enough")

// deliver queues ev for every subscription of c that matches it. It never
// blocks: a client that lets too much pile up is disconnected.
func (c *conn) deliver(ev *nostr.Event, raw []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead {
		return
	}
	for _, sub := range c.subs {
		if !sub.filters.Match(ev) {
			continue
		}
		msg := eventMessageFor(sub.quoted, raw)
		sub.mu.Lock()
		ok := true
		if sub.live {
			ok = c.out.tryPush(msg)
		} else if sub.pendingBytes+len(msg) <= c.r.cfg.SendBuffer {
			sub.pending = append(sub.pending, msg)
			sub.pendingBytes += len(msg)
		} else {
			ok = false
		}
		sub.mu.Unlock()
		if !ok {
			c.r.log.Debug("client does not read fast enough; disconnecting", "remote", c.remote)
			c.r.metrics.dropped.Inc()
			c.dead = true
			c.out.close()
			if c.cancel != nil {
				c.cancel()
			}
			return
		}
	}
}

// send queues msg, waiting while the client's queue is full.
func (c *conn) send(ctx context.Context, msg []byte) error {
	return c.out.push(ctx, msg)
}

func eventMessageFor(quotedSubID, raw []byte) []byte {
	b := make([]byte, 0, len(`["EVENT",,]`)+len(quotedSubID)+len(raw))
	b = append(b, `["EVENT",`...)
	b = append(b, quotedSubID...)
	b = append(b, ',')
	b = append(b, raw...)
	return append(b, ']')
}

func okMessage(id string, ok bool, reason string) []byte {
	b, _ := json.Marshal([]any{"OK", id, ok, reason})
	return b
}

func closedMessage(subID, reason string) []byte {
	b, _ := json.Marshal([]any{"CLOSED", subID, reason})
	return b
}

func eoseMessage(subID string) []byte {
	b, _ := json.Marshal([]any{"EOSE", subID})
	return b
}

func noticeMessage(text string) []byte {
	b, _ := json.Marshal([]any{"NOTICE", text})
	return b
}
