// Package relay owns archy's embedded Nostr relay: a NIP-01 relay (EVENT,
// REQ, CLOSE; OK, EOSE, CLOSED, NOTICE) with replaceable and addressable
// events, ephemeral events, NIP-09 deletions and a NIP-11 information
// document, that verifies every event, keeps what it accepts in an
// append-only log on disk, and bounds what each client may cost it
// (message size, subscriptions, filters, limits, event and REQ rates, send
// buffer). `archy relay run` serves one on its own; `archy node run`
// embeds one so a single machine works without any outside relay.
//
// The relay is a library: New builds it from a Config, then Run or Serve
// runs it until the context ends.
//
// Persistence: every accepted event is appended to one log file in the
// data folder (CRC-framed records, fsync before the client hears OK; see
// journal.go) and held in memory with its indexes (by id, author, kind,
// single-letter tag, and replaceable address). On start the log is
// replayed through the same accept logic, so replacement and deletion come
// out as they were; a torn end is cut off and kept aside; the log is
// rewritten (temporary file, fsync, rename) when more of it is dead than
// alive. A LOCK file keeps a second relay off the same folder.
//
// Memory is bounded: stored events and NIP-09 tombstones by MaxEvents and
// MaxStoredBytes; each connection by about 2*SendBuffer + MaxMessageSize
// (a client that does not read is dropped); connections by MaxConnections,
// MaxConnectionsPerIP and MaxConnectionsPerOrigin.
//
// Browser pages: a websocket upgrade from a page (one with an Origin
// header) is refused unless its origin is in AllowedOrigins; by default
// only the relay's own loopback address is, so a web page open on the
// machine cannot take the slots of a relay listening on 127.0.0.1.
package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip11"
)

// Version is the relay software version shown in NIP-11.
var Version = "dev"

// ErrServed is returned by Serve and Run when the relay has already been
// served: a Relay runs once.
var ErrServed = errors.New("relay has already been served")

// Relay is an embedded Nostr relay. Build it with New, run it once with
// Run or Serve.
type Relay struct {
	cfg     Config
	log     *slog.Logger
	store   *store
	metrics *metrics
	info    []byte // NIP-11 document

	served atomic.Bool
	addr   atomic.Pointer[net.Addr]

	allowAnyOrigin bool
	allowedOrigins map[string]bool // normalized AllowedOrigins

	mu        sync.Mutex
	conns     map[*conn]struct{}
	perIP     map[string]int // open connections by clientKey
	perOrigin map[string]int // open connections by normalized browser origin
	closing   bool
	handler   sync.WaitGroup // websocket handlers still running
}

// New validates cfg, opens the event log in cfg.DataDir (replaying it) and
// returns a relay ready to Run or Serve. Close releases the log if the
// relay is never served.
func New(cfg Config, logger *slog.Logger) (*Relay, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	st, err := openStore(cfg.DataDir, cfg.MaxEvents, cfg.MaxStoredBytes, logger)
	if err != nil {
		return nil, fmt.Errorf("open relay store: %w", err)
	}
	m, err := newMetrics(cfg.Metrics, st)
	if err != nil {
		st.close()
		return nil, err
	}
	r := &Relay{
		cfg:     cfg,
		log:     logger,
		store:   st,
		metrics: m,
		conns:   make(map[*conn]struct{}),

		allowedOrigins: make(map[string]bool),
		perIP:          make(map[string]int),
		perOrigin:      make(map[string]int),
	}
	for _, o := range cfg.AllowedOrigins {
		if o == "*" {
			r.allowAnyOrigin = true
		} else if n, err := normalizeOrigin(o); err == nil {
			r.allowedOrigins[n] = true
		}
	}
	r.info, err = json.Marshal(r.informationDocument())
	if err != nil {
		st.close()
		return nil, fmt.Errorf("encode relay information: %w", err)
	}
	logger.Info("relay store open", "events", st.len(), "data", cfg.DataDir)
	return r, nil
}

// Run listens on cfg.Listen and serves until ctx ends.
func (r *Relay) Run(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", r.cfg.Listen)
	if err != nil {
		r.Close()
		return fmt.Errorf("relay listen on %s: %w", r.cfg.Listen, err)
	}
	return r.Serve(ctx, ln)
}

// Serve serves websocket clients and NIP-11 requests on ln until ctx ends,
// then closes ln and every connection, waits for them (at most
// ShutdownTimeout for the HTTP side), and closes the event log.
func (r *Relay) Serve(ctx context.Context, ln net.Listener) error {
	if !r.served.CompareAndSwap(false, true) {
		ln.Close()
		return ErrServed
	}
	defer r.Close()
	a := ln.Addr()
	r.addr.Store(&a)
	// Connections live in a context of their own: when ctx ends they are
	// first told to go away, and only then cut.
	connCtx, endConns := context.WithCancel(context.WithoutCancel(ctx))
	defer endConns()
	srv := &http.Server{
		Handler:           r,
		ReadHeaderTimeout: r.cfg.WriteTimeout,
		IdleTimeout:       time.Minute,
		BaseContext:       func(net.Listener) context.Context { return connCtx },
		ErrorLog:          slog.NewLogLogger(r.log.Handler(), slog.LevelDebug),
	}
	r.log.Info("relay listening", "url", r.URL())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	var err error
	select {
	case <-ctx.Done():
	case err = <-served:
		err = fmt.Errorf("relay serve: %w", err)
	}
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.ShutdownTimeout)
	defer cancel()
	r.goAway(shutCtx)
	r.mu.Lock()
	for c := range r.conns {
		c.kill()
	}
	r.mu.Unlock()
	endConns()
	if e := srv.Shutdown(shutCtx); e != nil && err == nil {
		err = fmt.Errorf("relay shutdown: %w", e)
	}
	if err == nil {
		<-served // http.ErrServerClosed
	}
	r.handler.Wait()
	r.log.Info("relay stopped")
	return err
}

// goAway refuses new clients and tells every connected one, with a close
// frame (1001, going away), that the relay is stopping; it waits for them
// until ctx ends.
func (r *Relay) goAway(ctx context.Context) {
	r.mu.Lock()
	r.closing = true
	conns := make([]*conn, 0, len(r.conns))
	for c := range r.conns {
		conns = append(conns, c)
	}
	r.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.goAway()
		}()
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		// The caller kills what is left, which ends the waits above.
		r.mu.Lock()
		for _, c := range conns {
			c.kill()
		}
		r.mu.Unlock()
		<-done
	}
}

// Close closes the event log. Serve calls it when it returns; call it only
// for a relay that is never served. It is safe to call more than once.
func (r *Relay) Close() error {
	return r.store.close()
}

// Addr is the address the relay serves on, or nil before Serve starts.
func (r *Relay) Addr() net.Addr {
	if a := r.addr.Load(); a != nil {
		return *a
	}
	return nil
}

// URL is the relay's websocket URL (ws://host:port), or "" before Serve
// starts.
func (r *Relay) URL() string {
	a := r.Addr()
	if a == nil {
		return ""
	}
	return "ws://" + a.String()
}

// Stats is a snapshot of a relay's load.
type Stats struct {
	Connections int // websocket clients connected
	Events      int // events stored
	Tombstones  int // deleted ids and addresses remembered (NIP-09)
	StoredBytes int // bytes charged against MaxStoredBytes
}

// Stats returns the relay's current load.
func (r *Relay) Stats() Stats {
	r.mu.Lock()
	n := len(r.conns)
	r.mu.Unlock()
	events, tombs, bytes := r.store.usage()
	return Stats{Connections: n, Events: events, Tombstones: tombs, StoredBytes: bytes}
}

// ServeHTTP upgrades websocket requests, answers NIP-11 requests and
// tells anything else what this is.
func (r *Relay) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	switch {
	case strings.EqualFold(req.Header.Get("Upgrade"), "websocket"):
		r.serveWebsocket(w, req)
	case req.Method == http.MethodOptions:
		setCORS(w)
		w.WriteHeader(http.StatusNoContent)
	case req.Method == http.MethodGet && strings.Contains(req.Header.Get("Accept"), "application/nostr+json"):
		setCORS(w)
		w.Header().Set("Content-Type", "application/nostr+json")
		_, _ = w.Write(r.info)
	case req.Method == http.MethodGet || req.Method == http.MethodHead:
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = fmt.Fprintln(w, "This is an archy Nostr relay. Connect to it with a Nostr client over a websocket.")
	default:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

func setCORS(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Headers", "*")
	h.Set("Access-Control-Allow-Methods", "GET, OPTIONS")
}

func (r *Relay) serveWebsocket(w http.ResponseWriter, req *http.Request) {
	// Browsers always send Origin with a websocket upgrade, and a page
	// cannot forge it: it tells pages (which may be any site open on this
	// machine) from other clients.
	origin := req.Header.Get("Origin")
	if origin != "" {
		var ok bool
		if origin, ok = r.originAllowed(origin, req.Host); !ok {
			r.refuse(w, req, refusedOrigin, http.StatusForbidden, "this relay does not serve pages from your origin")
			return
		}
	}
	ip := clientKey(req.RemoteAddr)
	r.mu.Lock()
	var refused string
	switch {
	case r.closing || len(r.conns) >= r.cfg.MaxConnections:
		refused = refusedFull
	case r.perIP[ip] >= r.cfg.MaxConnectionsPerIP:
		refused = refusedIP
	case origin != "" && r.perOrigin[origin] >= r.cfg.MaxConnectionsPerOrigin:
		refused = refusedOriginLimit
	}
	if refused != "" {
		r.mu.Unlock()
		if refused == refusedFull {
			r.refuse(w, req, refused, http.StatusServiceUnavailable, "relay is full or shutting down; try again later")
		} else {
			r.refuse(w, req, refused, http.StatusTooManyRequests, "too many connections from your address or origin; close some and try again")
		}
		return
	}
	c := newConn(r, req.RemoteAddr)
	r.conns[c] = struct{}{}
	r.perIP[ip]++
	if origin != "" {
		r.perOrigin[origin]++
	}
	r.handler.Add(1)
	r.mu.Unlock()
	r.metrics.connections.Inc()
	defer func() {
		r.mu.Lock()
		delete(r.conns, c)
		decrement(r.perIP, ip)
		if origin != "" {
			decrement(r.perOrigin, origin)
		}
		r.mu.Unlock()
		r.metrics.connections.Dec()
		r.handler.Done()
	}()

	ws, err := websocket.Accept(w, req, &websocket.AcceptOptions{
		// The origin was checked above, against AllowedOrigins.
		InsecureSkipVerify: true,
		CompressionMode:    websocket.CompressionDisabled,
	})
	if err != nil {
		r.log.Debug("websocket upgrade failed", "remote", req.RemoteAddr, "err", err)
		return
	}
	ws.SetReadLimit(r.cfg.MaxMessageSize)
	c.serve(req.Context(), ws)
}

// refuse answers a websocket upgrade that may not go on with status and
// text, and counts it.
func (r *Relay) refuse(w http.ResponseWriter, req *http.Request, reason string, status int, text string) {
	r.metrics.refused.WithLabelValues(reason).Inc()
	r.log.Debug("websocket upgrade refused", "remote", req.RemoteAddr, "reason", reason, "origin", req.Header.Get("Origin"))
	http.Error(w, text, status)
}

func decrement(m map[string]int, k string) {
	if m[k] <= 1 {
		delete(m, k)
	} else {
		m[k]--
	}
}

// originAllowed reports whether a page from origin may connect, and
// returns origin normalized. Allowed are the origins of AllowedOrigins
// (any with "*"), and the relay's own address when it is loopback: origin
// equals host (the Host header) and names localhost or a loopback IP.
func (r *Relay) originAllowed(origin, host string) (string, bool) {
	n, err := normalizeOrigin(origin)
	if err != nil { // "null" (a sandboxed or file page), or junk
		return strings.ToLower(origin), r.allowAnyOrigin
	}
	if r.allowAnyOrigin || r.allowedOrigins[n] {
		return n, true
	}
	_, h, _ := strings.Cut(n, "://")
	if !strings.EqualFold(h, host) {
		return n, false
	}
	hostname := h
	if hn, _, err := net.SplitHostPort(h); err == nil {
		hostname = hn
	}
	hostname = strings.Trim(hostname, "[]")
	if hostname == "localhost" {
		return n, true
	}
	ip, err := netip.ParseAddr(hostname)
	return n, err == nil && ip.IsLoopback()
}

// clientKey is what MaxConnectionsPerIP counts by: the client's IPv4
// address, or the /64 of its IPv6 address.
func clientKey(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return remote
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.WithZone("").Prefix(64)
		return p.String()
	}
	return ip.String()
}

// broadcast hands ev to every live subscription that matches it.
func (r *Relay) broadcast(ev *nostr.Event, raw []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for c := range r.conns {
		c.deliver(ev, raw)
	}
}

// informationDocument is the NIP-11 document, with the limitation fields
// go-nostr's type lacks.
func (r *Relay) informationDocument() any {
	type limitation struct {
		nip11.RelayLimitationDocument
		DefaultLimit        int   `json:"default_limit"`
		CreatedAtUpperLimit int64 `json:"created_at_upper_limit"`
	}
	type document struct {
		nip11.RelayInformationDocument
		Limitation limitation `json:"limitation"`
	}
	return document{
		RelayInformationDocument: nip11.RelayInformationDocument{
			Name:          r.cfg.Name,
			Description:   r.cfg.Description,
			PubKey:        r.cfg.PubKey,
			Contact:       r.cfg.Contact,
			SupportedNIPs: []int{1, 9, 11},
			Software:      "https://github.com/archy-node/archy",
			Version:       Version,
		},
		Limitation: limitation{
			RelayLimitationDocument: nip11.RelayLimitationDocument{
				MaxMessageLength: int(r.cfg.MaxMessageSize),
				MaxSubscriptions: r.cfg.MaxSubscriptions,
				MaxFilters:       r.cfg.MaxFilters,
				MaxLimit:         r.cfg.MaxLimit,
				MaxSubidLength:   r.cfg.MaxSubIDLength,
				MaxEventTags:     r.cfg.MaxEventTags,
			},
			DefaultLimit:        r.cfg.MaxLimit,
			CreatedAtUpperLimit: int64(r.cfg.MaxFutureSkew.Seconds()),
		},
	}
}
