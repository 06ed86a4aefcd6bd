package node

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"strings"
	"time"

	blocks "github.com/ipfs/go-block-format"
	cid "github.com/ipfs/go-cid"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/archy-node/archy/did"
	"github.com/archy-node/archy/internal/atomicfile"
	"github.com/archy-node/archy/page"
	"github.com/archy-node/archy/registry"
)

// Status is what GET /api/v1/status reports.
type Status struct {
	PeerID     string    `json:"peer_id"`
	Addrs      []string  `json:"addrs"`
	Peers      int       `json:"peers"`
	Relays     []string  `json:"relays"`
	Discovered int       `json:"discovered"`
	Apps       int       `json:"apps"`
	AppsOff    string    `json:"apps_off,omitempty"`
	Started    time.Time `json:"started"`
	DataDir    string    `json:"data_dir"`
	// DiskBytes is what the data folder holds (blocks, images, state).
	DiskBytes int64 `json:"disk_bytes"`
	// ReadOnly is set on the browse listener, which changes nothing.
	ReadOnly bool `json:"read_only,omitempty"`
	// Trust is the owner key, the graph and the auto policies.
	Trust TrustStatus `json:"trust"`
}

// Peer is one connected peer in GET /api/v1/peers.
type Peer struct {
	ID    string   `json:"id"`
	Addrs []string `json:"addrs"`
}

// Status reports the node's state.
func (n *Node) Status() Status {
	s := Status{PeerID: n.p2p.ID().String(), Relays: n.relayURLs, Started: n.started, DataDir: n.cfg.DataDir,
		Discovered: len(n.store.List()), Peers: len(n.p2p.Host().Network().Peers()), AppsOff: n.appsOff,
		DiskBytes: n.disk.get(n.cfg.DataDir), Trust: n.trustStatus()}
	if n.orch != nil {
		s.Apps = len(n.orch.Apps())
	}
	for _, a := range n.p2p.Addrs() {
		s.Addrs = append(s.Addrs, a.String())
	}
	return s
}

// Peers lists the connected peers.
func (n *Node) Peers() []Peer {
	h := n.p2p.Host()
	var out []Peer
	for _, id := range h.Network().Peers() {
		p := Peer{ID: id.String()}
		for _, c := range h.Network().ConnsToPeer(id) {
			p.Addrs = append(p.Addrs, c.RemoteMultiaddr().String())
		}
		out = append(out, p)
	}
	return out
}

func (n *Node) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/status", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, n.Status()) })
	n.marketHandlers(mux)
	n.trustHandlers(mux)
	mux.HandleFunc("POST /api/v1/catalogs/{name}", n.handlePublishCatalog)
	n.appsHandlers(mux)
	mux.HandleFunc("POST /api/v1/blobs", n.handleAddBlob)
	mux.HandleFunc("POST /api/v1/manifests", n.handleAddManifest)
	n.blobHandlers(mux)
	n.opsHandlers(mux)
	mux.HandleFunc("GET /api/v1/apps/{id}/credentials", n.handleCredentials)
	mux.Handle("GET /metrics", promhttp.HandlerFor(n.reg, promhttp.HandlerOpts{}))
	return n.guard(mux)
}

// marketHandlers registers the reads the page needs that both the API and
// the browse listener serve: peers, discovered releases with their trust
// (not the trust graph's paths, which name the owner's follows), catalogs
// and the page itself.
func (n *Node) marketHandlers(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/peers", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, n.Peers()) })
	mux.HandleFunc("GET /api/v1/apps/discovered", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, n.discoveredRows()) })
	mux.HandleFunc("GET /api/v1/catalogs", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, n.catalogs()) })
	mux.Handle("GET /", page.Handler())
}

// APIConfig tunes the HTTP API. Zero values take the defaults.
type APIConfig struct {
	// AllowedHosts are the host names, beside localhost, that a request's
	// Host header may name. A page a browser loaded from any other name
	// is refused, even once its DNS name points at this node (DNS
	// rebinding). IP literals are always allowed: rebinding needs a name.
	AllowedHosts []string
	// RemoteChanges lets clients on other machines change the node (with
	// the token). By default only clients on loopback may: a listener
	// beyond 127.0.0.1 serves reads only.
	RemoteChanges bool
	// RequestTimeout bounds reading a request and writing its answer
	// (default 60 s). An upload or an event stream extends it while its
	// bytes keep moving; long operations run on the node, not a request.
	RequestTimeout time.Duration
	// OperationTTL is how long an ended operation's result stays readable
	// (default 15 min).
	OperationTTL time.Duration
}

func (c *APIConfig) setDefaults() {
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = time.Minute
	}
	if c.OperationTTL <= 0 {
		c.OperationTTL = 15 * time.Minute
	}
}

// guard refuses requests whose Host names a host the node does not
// answer as (DNS rebinding from a browser), changes from other machines
// unless allowed, and changes without the token; reads pass.
func (n *Node) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !n.hostAllowed(r.Host) {
			http.Error(w, fmt.Sprintf("unexpected Host header %q: add the name to the node's allowed API hosts to use it", r.Host), http.StatusForbidden)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if !n.cfg.API.RemoteChanges && !loopbackClient(r) {
				http.Error(w, "this call changes the node, which only clients on this machine may do (the node's API remote-changes setting allows others)", http.StatusForbidden)
				return
			}
			got := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
			if subtle.ConstantTimeCompare([]byte(got), []byte(n.token)) != 1 {
				http.Error(w, "this call changes the node: send Authorization: Bearer <token from the data folder's api.token>", http.StatusUnauthorized)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// hostAllowed accepts a Host header naming localhost, an IP address, or
// one of the configured allowed hosts, whatever address the API listens
// on: a web page a browser loaded from elsewhere cannot reach the API by
// rebinding its DNS name to the node's address.
func (n *Node) hostAllowed(hostport string) bool {
	if hostport == "" {
		return true // HTTP/1.0 without Host: no browser sends that
	}
	h, _, err := net.SplitHostPort(hostport)
	if err != nil {
		h = hostport
	}
	h = strings.TrimSuffix(strings.ToLower(strings.Trim(h, "[]")), ".")
	if h == "localhost" || net.ParseIP(h) != nil {
		return true
	}
	for _, a := range n.cfg.API.AllowedHosts {
		if strings.TrimSuffix(strings.ToLower(a), ".") == h {
			return true
		}
	}
	return false
}

// loopbackClient reports whether the request came from this machine.
func loopbackClient(r *http.Request) bool {
	h, _, err := net.SplitHostPort(r.RemoteAddr)
	ip := net.ParseIP(h)
	return err == nil && ip != nil && ip.IsLoopback()
}

// warnExposedAPI says so when the API listens beyond loopback.
func (n *Node) warnExposedAPI() {
	if la, ok := n.apiLn.Addr().(*net.TCPAddr); ok && la.IP.IsLoopback() {
		return
	}
	n.log.Warn("the API listens beyond this machine: anyone who reaches it can read the node's state",
		"addr", n.apiLn.Addr().String(), "remote_changes", n.cfg.API.RemoteChanges, "allowed_hosts", n.cfg.API.AllowedHosts)
}

func (n *Node) serveAPI(ctx context.Context) error {
	d := n.cfg.API.RequestTimeout
	srv := &http.Server{Handler: n.handler(), ReadHeaderTimeout: min(10*time.Second, d), ReadTimeout: d,
		WriteTimeout: d, IdleTimeout: 2 * time.Minute}
	// Event streams end when the server shuts down, or it would wait on them.
	n.apiStop = make(chan struct{})
	srv.RegisterOnShutdown(func() { close(n.apiStop) })
	return n.serveHTTP(ctx, "API", srv, n.apiLn)
}

// serveHTTP serves srv on ln until ctx ends, then shuts it down within
// ShutdownTimeout.
func (n *Node) serveHTTP(ctx context.Context, what string, srv *http.Server, ln net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("%s: %w", what, err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), n.cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// Limits on what a client may hand the node in one request, and on the
// token file.
const (
	maxTokenFile      = 4096
	maxBlobUpload     = 16 << 30
	maxManifestUpload = did.MaxEnvelopeSize
)

// handleAddBlob imports the request body (an image archive, any file) into
// the block store, pins it and provides it: the publisher's node serves it
// to the swarm.
//
// The answer names the file twice: cid is the root it travels as, sum the
// BLAKE3 of its bytes (what a manifest pins an image archive by); the
// node answers peers that know only the sum.
func (n *Node) handleAddBlob(w http.ResponseWriter, r *http.Request) {
	// Nothing written from here is collected before the pin holds it.
	end := n.p2p.Store().Session()
	defer end()
	// However long the upload takes, it goes on while its bytes keep
	// coming: each read gets RequestTimeout, the answer too.
	rc := http.NewResponseController(w)
	body := &deadlineReader{r: http.MaxBytesReader(w, r.Body, maxBlobUpload), rc: rc, d: n.cfg.API.RequestTimeout}
	root, sum, err := n.p2p.AddNamed(r.Context(), body)
	_ = rc.SetWriteDeadline(time.Now().Add(n.cfg.API.RequestTimeout))
	if err == nil {
		err = n.p2p.Pin(r.Context(), root)
	}
	if err == nil {
		err = n.markPublished(sum.String())
	}
	if err != nil {
		http.Error(w, "add blob: "+err.Error(), http.StatusBadRequest)
		return
	}
	n.provide(root)
	n.provide(sum)
	writeJSON(w, map[string]string{"cid": root.String(), "sum": sum.String()})
}

// handleAddManifest takes a signed manifest envelope, verifies it, and
// keeps its payload as one raw block named by the manifest CID (pinned and
// provided), so nodes that saw only the CID in an announcement can fetch it.
func (n *Node) handleAddManifest(w http.ResponseWriter, r *http.Request) {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxManifestUpload))
	if err != nil {
		http.Error(w, "read manifest: "+err.Error(), http.StatusRequestEntityTooLarge)
		return
	}
	v, err := registry.VerifyEnvelope(data)
	if err != nil {
		http.Error(w, "verify manifest: "+err.Error(), http.StatusBadRequest)
		return
	}
	// The envelope too, for nodes that saw a CID-only announcement.
	err = n.keepEnvelope(v.CID, data)
	var b blocks.Block
	if err == nil {
		b, err = blocks.NewBlockWithCid(v.Payload, v.CID)
	}
	if err == nil {
		err = n.p2p.Store().Put(r.Context(), b)
	}
	if err == nil {
		err = n.p2p.Pin(r.Context(), v.CID)
	}
	if err != nil {
		http.Error(w, "store manifest: "+err.Error(), http.StatusInternalServerError)
		return
	}
	n.provide(v.CID)
	writeJSON(w, map[string]string{"cid": v.CID.String(), "app": v.Manifest.ID, "version": v.Manifest.Version})
}

// deadlineReader moves the request's read deadline before every read, so
// a long upload is bounded by its stalls, not by its length.
type deadlineReader struct {
	r  io.Reader
	rc *http.ResponseController
	d  time.Duration
}

func (d *deadlineReader) Read(p []byte) (int, error) {
	_ = d.rc.SetReadDeadline(time.Now().Add(d.d))
	return d.r.Read(p)
}

// provide announces c in the DHT in the background, bounded, on the
// node's lifetime.
func (n *Node) provide(c cid.Cid) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		ctx, cancel := context.WithTimeout(n.life, 2*time.Minute)
		defer cancel()
		if err := n.p2p.Provide(ctx, c); err != nil {
			n.log.Debug("provide failed", "cid", c, "err", err)
		}
	}()
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// loadOrCreateToken reads the API token, making one (0600) on first start.
// The token is a secret like the others: a file its group or others may
// read is refused.
func loadOrCreateToken(path string) (string, error) {
	if b, err := atomicfile.ReadPrivate(path, maxTokenFile); err == nil {
		if t := strings.TrimSpace(string(b)); len(t) >= 32 {
			return t, nil
		}
		return "", fmt.Errorf("API token %s is too short; remove it to make a new one", path)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("read API token %s: %w", path, err)
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("make API token: %w", err)
	}
	t := hex.EncodeToString(b[:])
	if err := atomicfile.Write(path, []byte(t+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write API token: %w", err)
	}
	return t, nil
}

func atomicWriteAddr(path, url string) error {
	if err := atomicfile.Write(path, []byte(url+"\n"), 0o644); err != nil {
		return fmt.Errorf("write API address: %w", err)
	}
	return nil
}
