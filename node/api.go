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
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	blocks "github.com/ipfs/go-block-format"
	cid "github.com/ipfs/go-cid"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/archy-node/archy/did"
	"github.com/archy-node/archy/internal/atomicfile"
	"github.com/archy-node/archy/p2p/discovery"
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
}

// Peer is one connected peer in GET /api/v1/peers.
type Peer struct {
	ID    string   `json:"id"`
	Addrs []string `json:"addrs"`
}

// Status reports the node's state.
func (n *Node) Status() Status {
	s := Status{PeerID: n.p2p.ID().String(), Relays: n.relayURLs, Started: n.started, DataDir: n.cfg.DataDir,
		Discovered: len(n.store.List()), Peers: len(n.p2p.Host().Network().Peers()), AppsOff: n.appsOff}
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
	mux.HandleFunc("GET /api/v1/peers", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, n.Peers()) })
	mux.HandleFunc("GET /api/v1/apps/discovered", func(w http.ResponseWriter, r *http.Request) {
		list := n.store.List()
		if list == nil {
			list = []*discovery.Release{}
		}
		writeJSON(w, list)
	})
	mux.HandleFunc("GET /api/v1/catalogs", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, n.catalogs()) })
	mux.HandleFunc("POST /api/v1/catalogs/{name}", n.handlePublishCatalog)
	n.appsHandlers(mux)
	mux.HandleFunc("POST /api/v1/blobs", n.handleAddBlob)
	mux.HandleFunc("POST /api/v1/manifests", n.handleAddManifest)
	mux.Handle("GET /metrics", promhttp.HandlerFor(n.reg, promhttp.HandlerOpts{}))
	return n.guard(mux)
}

// guard lets reads through and requires the token for anything that
// changes the node; it also refuses requests whose Host is not the
// listener's (DNS rebinding from a browser).
func (n *Node) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			got := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
			if subtle.ConstantTimeCompare([]byte(got), []byte(n.token)) != 1 {
				http.Error(w, "this call changes the node: send Authorization: Bearer <token from the data folder's api.token>", http.StatusUnauthorized)
				return
			}
		}
		if !n.hostAllowed(r.Host) {
			http.Error(w, "unexpected Host header", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// hostAllowed refuses, on a loopback listener, Host headers naming
// another host: a web page a browser loaded from elsewhere cannot reach
// the API by rebinding its DNS name to 127.0.0.1.
func (n *Node) hostAllowed(hostport string) bool {
	la, ok := n.apiLn.Addr().(*net.TCPAddr)
	if !ok || !la.IP.IsLoopback() {
		return true
	}
	h, _, err := net.SplitHostPort(hostport)
	if err != nil {
		h = hostport
	}
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(h, "[]"))
	return ip != nil && ip.IsLoopback()
}

func (n *Node) serveAPI(ctx context.Context) error {
	srv := &http.Server{Handler: n.handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute,
		WriteTimeout: time.Minute, IdleTimeout: 2 * time.Minute}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(n.apiLn) }()
	select {
	case err := <-errc:
		return fmt.Errorf("API: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), n.cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("API: %w", err)
	}
	return nil
}

// Limits on what a client may hand the node in one request.
const (
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
	root, sum, err := n.p2p.AddNamed(r.Context(), http.MaxBytesReader(w, r.Body, maxBlobUpload))
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
func loadOrCreateToken(path string) (string, error) {
	if b, err := os.ReadFile(path); err == nil {
		if t := strings.TrimSpace(string(b)); len(t) >= 32 {
			return t, nil
		}
		return "", fmt.Errorf("API token %s is too short; remove it to make a new one", path)
	} else if !os.IsNotExist(err) {
		return "", fmt.Errorf("read API token: %w", err)
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
