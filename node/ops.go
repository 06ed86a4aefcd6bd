package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/archy-node/archy/did"
	"github.com/archy-node/archy/orchestrator"
)

// Long work (install, update, uninstall, start, stop, restart) runs on
// the node's lifetime, not on the request that asked for it: the request
// answers 202 with the operation's URL at once, the client follows its
// progress as Server-Sent Events, and the result stays readable for a
// while after the end. No request deadline can cut an install, and a
// client that lost its connection reads the result when it comes back.

// Bounds of the operation table.
const (
	// maxOpEvents is how many events one operation keeps; older progress
	// goes first (each event carries the whole state, and the end event
	// is always the last one kept).
	maxOpEvents = 256
	// maxEndedOps is how many ended operations are kept at most, whatever
	// their age.
	maxEndedOps = 256
	// maxRunningOps bounds the operations under way at once.
	maxRunningOps = 64
	// maxOpBody bounds a request body an operation takes (an install
	// request: an envelope and archive paths).
	maxOpBody = did.MaxEnvelopeSize + 2<<20
)

// Event types of an operation's stream.
const (
	EventProgress = "progress"
	EventEnd      = "end"
)

// OpEvent is one event of an operation. The stream sends it as an SSE
// event of its Type, with its Seq as the event id (send it back as
// Last-Event-ID to resume) and its JSON as data.
type OpEvent struct {
	Seq      uint64    `json:"seq"`
	Type     string    `json:"type"`
	Time     time.Time `json:"time"`
	App      string    `json:"app,omitempty"`
	Op       string    `json:"op,omitempty"` // the orchestrator's step: install, update, start...
	Stage    string    `json:"stage,omitempty"`
	Fraction float64   `json:"fraction"`
	Message  string    `json:"message,omitempty"`
	// The end event's outcome: OK, or Error with Code (the HTTP status
	// the error stands for: 400 bad request, 404 unknown, 409 conflict…)
	// and the orchestrator's Reason when it gave one.
	OK     bool   `json:"ok,omitempty"`
	Error  string `json:"error,omitempty"`
	Code   int    `json:"code,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Result is what a successful operation made, on its end event when
	// it has one (a fetch: Fetched).
	Result json.RawMessage `json:"result,omitempty"`
}

// Operation states.
const (
	OpRunning   = "running"
	OpSucceeded = "succeeded"
	OpFailed    = "failed"
)

// Operation is what GET /api/v1/operations/{id} reports.
type Operation struct {
	ID      string    `json:"id"`
	Kind    string    `json:"kind"`
	App     string    `json:"app,omitempty"`
	State   string    `json:"state"`
	Started time.Time `json:"started"`
	Ended   time.Time `json:"ended,omitzero"`
	// Last is the latest event: the end event once the operation ended.
	Last *OpEvent `json:"last,omitempty"`
	// URL is the operation's status; Events its event stream.
	URL    string `json:"url"`
	Events string `json:"events"`
}

// op is one operation; opTable.mu guards its fields.
type op struct {
	id, kind, app  string
	started, ended time.Time
	seq            uint64
	events         []OpEvent
	wake           chan struct{} // closed and replaced at every event
}

// opTable keeps the operations under way and, for ttl, the ended ones.
type opTable struct {
	ttl time.Duration
	now func() time.Time

	mu  sync.Mutex
	ops map[string]*op
}

func newOpTable(ttl time.Duration, now func() time.Time) *opTable {
	return &opTable{ttl: ttl, now: now, ops: map[string]*op{}}
}

// ErrTooManyOps is returned when maxRunningOps operations are under way.
var ErrTooManyOps = errors.New("too many operations under way; wait for one to end")

func (t *opTable) start(kind, app string) (*op, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("start %s: %w", kind, err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sweepLocked()
	running := 0
	for _, o := range t.ops {
		if o.ended.IsZero() {
			running++
		}
	}
	if running >= maxRunningOps {
		return nil, fmt.Errorf("start %s: %w", kind, ErrTooManyOps)
	}
	o := &op{id: hex.EncodeToString(b[:]), kind: kind, app: app, started: t.now(), wake: make(chan struct{})}
	t.ops[o.id] = o
	return o, nil
}

// sweepLocked forgets ended operations older than ttl, and the oldest
// ended ones beyond maxEndedOps.
func (t *opTable) sweepLocked() {
	now := t.now()
	var ended []*op
	for id, o := range t.ops {
		switch {
		case o.ended.IsZero():
		case now.Sub(o.ended) > t.ttl:
			delete(t.ops, id)
		default:
			ended = append(ended, o)
		}
	}
	for len(ended) > maxEndedOps {
		oldest := 0
		for i, o := range ended {
			if o.ended.Before(ended[oldest].ended) {
				oldest = i
			}
		}
		delete(t.ops, ended[oldest].id)
		ended = append(ended[:oldest], ended[oldest+1:]...)
	}
}

func (t *opTable) get(id string) *op {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sweepLocked()
	return t.ops[id]
}

// setApp names the app an operation concerns once it is known.
func (t *opTable) setApp(o *op, app string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	o.app = app
}

func (t *opTable) setKind(o *op, kind string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	o.kind = kind
}

// emit appends ev to o's events (nothing after the end event) and wakes
// the streams that follow o.
func (t *opTable) emit(o *op, ev OpEvent) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !o.ended.IsZero() {
		return
	}
	o.seq++
	ev.Seq, ev.Time = o.seq, t.now()
	if ev.App == "" {
		ev.App = o.app
	}
	if ev.Type == EventEnd {
		o.ended = ev.Time
	}
	if len(o.events) >= maxOpEvents {
		o.events = append(o.events[:0], o.events[len(o.events)-maxOpEvents+1:]...)
	}
	o.events = append(o.events, ev)
	close(o.wake)
	o.wake = make(chan struct{})
}

// since returns o's events after seq, whether o has ended, and a channel
// closed at o's next event.
func (t *opTable) since(o *op, seq uint64) ([]OpEvent, bool, <-chan struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []OpEvent
	for _, ev := range o.events {
		if ev.Seq > seq {
			out = append(out, ev)
		}
	}
	return out, !o.ended.IsZero(), o.wake
}

func (t *opTable) status(o *op) Operation {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := Operation{ID: o.id, Kind: o.kind, App: o.app, State: OpRunning, Started: o.started, Ended: o.ended,
		URL: "/api/v1/operations/" + o.id, Events: "/api/v1/operations/" + o.id + "/events"}
	if len(o.events) > 0 {
		last := o.events[len(o.events)-1]
		s.Last = &last
		if last.Type == EventEnd {
			s.State = OpFailed
			if last.OK {
				s.State = OpSucceeded
			}
		}
	}
	return s
}

type opKey struct{}

// opTrack is how an operation's work names the app it concerns, once it
// knows it (the orchestrator's progress for that app becomes the
// operation's progress events), and what the operation turned out to be.
type opTrack struct {
	app  func(app string)
	kind func(kind string)
}

// trackApp names, inside an operation, the app it concerns; outside one
// it does nothing.
func trackApp(ctx context.Context, app string) {
	if t, ok := ctx.Value(opKey{}).(opTrack); ok {
		t.app(app)
	}
}

// trackKind renames, inside an operation, its kind once the work knows
// it (POST /api/v1/apps is an update when the app is installed); outside
// one it does nothing.
func trackKind(ctx context.Context, kind string) {
	if t, ok := ctx.Value(opKey{}).(opTrack); ok {
		t.kind(kind)
	}
}

// appOp serves h as an operation on the node's apps: 503 when apps are
// off; else the request's body (bounded) is read now, h runs on the
// node's lifetime with a copy of the request carrying it, and the client
// gets 202 with the operation's URL (Location) at once. The app is the
// path's {id} when it has one; h names it with trackApp otherwise.
func (n *Node) appOp(kind string, h func(http.ResponseWriter, *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if n.orch == nil {
			http.Error(w, "apps are off: "+n.appsOff, http.StatusServiceUnavailable)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxOpBody))
		if err != nil {
			http.Error(w, fmt.Sprintf("read %s request: %v", kind, err), http.StatusRequestEntityTooLarge)
			return
		}
		o, err := n.ops.start(kind, r.PathValue("id"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		req := r.Clone(context.WithoutCancel(r.Context()))
		req.Body = io.NopCloser(bytes.NewReader(body))
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.runOp(o, func(ctx context.Context) error { return h(discardWriter{}, req.WithContext(ctx)) })
		}()
		st := n.ops.status(o)
		w.Header().Set("Location", st.URL)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_ = json.NewEncoder(w).Encode(st)
	}
}

// runOp runs fn on the node's lifetime, relays the orchestrator's
// progress on the operation's app as events, and ends the operation
// with fn's outcome.
func (n *Node) runOp(o *op, fn func(context.Context) error) {
	var (
		mu     sync.Mutex
		app    string
		reason string
		quit   = make(chan struct{})
		done   = make(chan struct{})
	)
	sub, unsubscribe := n.orch.Subscribe(64)
	relay := func(p orchestrator.Progress) {
		mu.Lock()
		defer mu.Unlock()
		if app == "" || p.App != app {
			return
		}
		if p.Reason != "" {
			reason = string(p.Reason)
		}
		n.ops.emit(o, OpEvent{Type: EventProgress, App: p.App, Op: p.Op, Stage: string(p.Stage), Fraction: p.Fraction,
			Message: p.Message, Error: p.Err, Reason: string(p.Reason)})
	}
	go func() {
		defer close(done)
		for {
			select {
			case p := <-sub:
				relay(p)
			case <-quit:
				for { // what the work reported before it returned
					select {
					case p := <-sub:
						relay(p)
					default:
						return
					}
				}
			}
		}
	}()
	track := opTrack{app: func(a string) {
		mu.Lock()
		app = a
		mu.Unlock()
		n.ops.setApp(o, a)
	}, kind: func(k string) { n.ops.setKind(o, k) }}
	st := n.ops.status(o)
	if st.App != "" {
		track.app(st.App)
	}
	n.ops.emit(o, OpEvent{Type: EventProgress, Message: st.Kind + " started"})
	err := fn(context.WithValue(n.life, opKey{}, track))
	close(quit)
	<-done
	unsubscribe()
	st = n.ops.status(o)
	end := OpEvent{Type: EventEnd, OK: err == nil, Fraction: 1, Message: st.Kind + " done"}
	if err != nil {
		end.Fraction, end.Message = 0, st.Kind+" failed"
		end.Error, end.Code, end.Reason = err.Error(), errorCode(err), reason
		n.log.Warn("operation failed", "op", st.Kind, "id", o.id, "app", st.App, "err", err)
	}
	n.ops.emit(o, end)
}

// errorCode is the HTTP status an operation's error stands for (409
// when it carries none).
func errorCode(err error) int {
	var he *httpError
	if errors.As(err, &he) {
		return he.code
	}
	return http.StatusConflict
}

// discardWriter is the ResponseWriter an operation's handler gets: its
// outcome is the error it returns, not what it writes.
type discardWriter struct{}

func (discardWriter) Header() http.Header         { return http.Header{} }
func (discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (discardWriter) WriteHeader(int)             {}

func (n *Node) opsHandlers(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/operations/{id}", func(w http.ResponseWriter, r *http.Request) {
		o := n.ops.get(r.PathValue("id"))
		if o == nil {
			n.opGone(w, r.PathValue("id"))
			return
		}
		writeJSON(w, n.ops.status(o))
	})
	mux.HandleFunc("GET /api/v1/operations/{id}/events", n.handleOpEvents)
}

func (n *Node) opGone(w http.ResponseWriter, id string) {
	http.Error(w, fmt.Sprintf("operation %s: not found (ended operations are kept %s)", id, n.cfg.API.OperationTTL), http.StatusNotFound)
}

// handleOpEvents streams an operation's events as Server-Sent Events
// from after Last-Event-ID (or ?after=), and ends after the end event.
// Each write moves the response's deadline, and a comment line keeps
// the connection alive between events: the stream lasts as long as the
// operation, whatever the API's request timeout.
func (n *Node) handleOpEvents(w http.ResponseWriter, r *http.Request) {
	o := n.ops.get(r.PathValue("id"))
	if o == nil {
		n.opGone(w, r.PathValue("id"))
		return
	}
	var after uint64
	for _, v := range []string{r.Header.Get("Last-Event-ID"), r.URL.Query().Get("after")} {
		if v == "" {
			continue
		}
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			http.Error(w, fmt.Sprintf("event id %q: not a number", v), http.StatusBadRequest)
			return
		}
		after = max(after, s)
	}
	d := n.cfg.API.RequestTimeout
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	_ = rc.SetWriteDeadline(time.Now().Add(d))
	w.WriteHeader(http.StatusOK)
	beat := time.NewTicker(min(15*time.Second, d/3))
	defer beat.Stop()
	for {
		evs, ended, wake := n.ops.since(o, after)
		_ = rc.SetWriteDeadline(time.Now().Add(d))
		for _, ev := range evs {
			data, _ := json.Marshal(ev)
			if _, err := fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", ev.Seq, ev.Type, data); err != nil {
				return
			}
			after = ev.Seq
		}
		if err := rc.Flush(); err != nil {
			return
		}
		if ended && len(evs) == 0 || len(evs) > 0 && evs[len(evs)-1].Type == EventEnd {
			return
		}
		select {
		case <-wake:
		case <-beat.C:
			_ = rc.SetWriteDeadline(time.Now().Add(d))
			if _, err := io.WriteString(w, ": keep-alive\n\n"); err != nil {
				return
			}
		case <-r.Context().Done():
			return
		case <-n.apiStop:
			return
		}
	}
}
