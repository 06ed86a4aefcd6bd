package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/archy-node/archy/did"
	"github.com/archy-node/archy/orchestrator"
	"github.com/archy-node/archy/orchestrator/podman"
	"github.com/archy-node/archy/registry"
)

// PodmanConfig says where the node's rootless Podman answers.
type PodmanConfig struct {
	// Socket is the API socket URL (unix:///run/user/UID/podman/podman.sock).
	// Empty: $ARCHY_PODMAN_SOCKET, else $XDG_RUNTIME_DIR/podman/podman.sock
	// if it exists; with none the node runs without apps and says so.
	Socket string
	// Off runs the node without apps, whatever socket there is.
	Off bool
	// Runtime, if set, is used instead of connecting to a socket (tests
	// and the simulator pass the in-memory twin), with IDMapper.
	Runtime  orchestrator.Runtime
	IDMapper orchestrator.IDMapper
}

func (c PodmanConfig) socket() string {
	if c.Off {
		return ""
	}
	if c.Socket != "" {
		return c.Socket
	}
	return DefaultPodmanSocket()
}

// DefaultPodmanSocket is the Podman socket a node and the CLI use when
// none is given: $ARCHY_PODMAN_SOCKET, else this user's rootless socket
// ($XDG_RUNTIME_DIR/podman/podman.sock) when it exists, else "".
func DefaultPodmanSocket() string {
	if s := os.Getenv("ARCHY_PODMAN_SOCKET"); s != "" {
		return s
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		p := filepath.Join(d, "podman", "podman.sock")
		if _, err := os.Stat(p); err == nil {
			return "unix://" + p
		}
	}
	return ""
}

// ErrNoPodmanSocket is why apps are off when no Podman socket is given
// nor found (see AppsOff).
var ErrNoPodmanSocket = errors.New("no Podman socket: start `podman system service` for this user, or give the node its socket")

// AppsOff is why the node runs without apps (ErrNoPodmanSocket, or the
// socket's owner refused), nil when they are on.
func (n *Node) AppsOff() error { return n.appsOffErr }

// startApps connects to Podman and opens the reconciler; without a socket
// the node runs without apps and reports why.
func (n *Node) startApps(ctx context.Context) error {
	rt, mapper := n.cfg.Podman.Runtime, n.cfg.Podman.IDMapper
	if rt == nil {
		sock := n.cfg.Podman.socket()
		if sock == "" {
			n.appsOffErr = ErrNoPodmanSocket
			n.appsOff = n.appsOffErr.Error()
			n.log.Warn("apps are off", "why", n.appsOff)
			return nil
		}
		if err := orchestrator.CheckSocketOwner(sock); err != nil {
			// Installs would fail midway (data folders are prepared as
			// the socket's owner): say so up front instead.
			n.appsOffErr = err
			n.appsOff = err.Error()
			n.log.Warn("apps are off", "why", n.appsOff)
			return nil
		}
		p, err := podman.New(ctx, podman.Config{Socket: sock, Logger: n.log.With("part", "podman")})
		if err != nil {
			return fmt.Errorf("connect to Podman at %s: %w", sock, err)
		}
		rt, mapper = p, &orchestrator.PodmanUnshare{}
	}
	var err error
	n.orch, err = orchestrator.New(orchestrator.Config{Runtime: rt, Dir: AppsDir(n.cfg.DataDir),
		Logger: n.log.With("part", "orchestrator"), IDMapper: mapper,
		// Images come from the swarm; the fetch stage's deadline covers a
		// large image on a slow link (a stalled fetch fails sooner, after
		// the p2p request timeout).
		Images: swarmImages{n}, FetchTimeout: 30 * time.Minute})
	if err != nil {
		return fmt.Errorf("open the app reconciler: %w", err)
	}
	n.rt = rt
	return nil
}

// InstallRequest asks the node to install (or update to) a signed
// release: the envelope itself, or the CID of one the node discovered or
// found in a followed catalog. Images the engine lacks and no archive is
// given for are fetched from the swarm by the CID the manifest pins.
type InstallRequest struct {
	// Envelope is the signed manifest (DSSE JSON).
	Envelope json.RawMessage `json:"envelope,omitempty"`
	// CID names a known release instead of Envelope.
	CID string `json:"cid,omitempty"`
	// Archives maps containers to OCI archive paths on this machine
	// (optional).
	Archives map[string]string `json:"archives,omitempty"`
	// AllowDowngrade is the owner forcing a release whose version is not
	// above the installed one.
	AllowDowngrade bool `json:"allow_downgrade,omitempty"`
	// Rotations are rotation statements (DSSE JSON, oldest first) signed
	// by the installed app's publisher that name the release's publisher
	// as its successor.
	Rotations []json.RawMessage `json:"rotations,omitempty"`
}

// maxRotations caps the rotation statements one install request carries.
const maxRotations = 32

// options turns the request's owner choices into orchestrator options:
// the same authority rules hold whether the release came as an envelope
// or by CID from discovery or a catalog.
func (req *InstallRequest) options() []orchestrator.Option {
	var opts []orchestrator.Option
	if req.AllowDowngrade {
		opts = append(opts, orchestrator.AllowDowngrade())
	}
	for _, r := range req.Rotations {
		opts = append(opts, orchestrator.WithRotations(r))
	}
	return opts
}

func (n *Node) appsHandlers(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/apps", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, n.appViews()) })
	// Installs, updates, uninstalls, starts, stops and restarts are
	// operations (ops.go): 202 at once, progress and result as events.
	mux.HandleFunc("POST /api/v1/apps", n.appOp("install", func(w http.ResponseWriter, r *http.Request) error {
		var req InstallRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, did.MaxEnvelopeSize+1<<20)).Decode(&req); err != nil {
			return badRequest(fmt.Errorf("read install request: %w", err))
		}
		if len(req.Rotations) > maxRotations {
			return badRequest(fmt.Errorf("install request: %d rotation statements, at most %d", len(req.Rotations), maxRotations))
		}
		if len(req.Envelope) == 0 {
			if req.CID == "" {
				return badRequest(errors.New("install request: give envelope or cid"))
			}
			env, err := n.releaseByCID(r.Context(), req.CID)
			if err != nil {
				return notFound(err)
			}
			req.Envelope = env
		}
		// Nothing unverified reaches Podman: the envelope is verified here,
		// and the reconciler checks each archive's CID and digest before
		// loading it.
		v, err := registry.VerifyEnvelope(req.Envelope)
		if err != nil {
			return badRequest(err)
		}
		if req.CID != "" && v.CID.String() != req.CID {
			return badRequest(fmt.Errorf("install request: envelope signs manifest %s, not cid %s", v.CID, req.CID))
		}
		trackApp(r.Context(), v.Manifest.ID)
		defer n.kickTrust() // the pin may have moved
		n.imgMu.RLock()
		defer n.imgMu.RUnlock()
		// The orchestrator refuses a release from another publisher than
		// the installed app's (or its kept data's) and a version that does
		// not go up: 409 with the reason.
		if _, err := n.orch.Status(v.Manifest.ID); err == nil {
			trackKind(r.Context(), "update")
			err := n.orch.Update(r.Context(), v, req.Archives, req.options()...)
			if err == nil {
				n.pruneLater()
			}
			return err
		}
		return n.orch.Install(r.Context(), v, req.Archives, req.options()...)
	}))
	for _, op := range []struct {
		name string
		fn   func(context.Context, string) error
	}{{"start", func(ctx context.Context, id string) error { return n.orch.Start(ctx, id) }},
		{"stop", func(ctx context.Context, id string) error { return n.orch.Stop(ctx, id) }},
		{"restart", func(ctx context.Context, id string) error { return n.orch.Restart(ctx, id) }}} {
		mux.HandleFunc("POST /api/v1/apps/{id}/"+op.name, n.appOp(op.name, func(w http.ResponseWriter, r *http.Request) error {
			return op.fn(r.Context(), r.PathValue("id"))
		}))
	}
	mux.HandleFunc("DELETE /api/v1/apps/{id}", n.appOp("uninstall", func(w http.ResponseWriter, r *http.Request) error {
		err := n.orch.Uninstall(r.Context(), r.PathValue("id"), r.URL.Query().Get("purge") == "1")
		if err == nil {
			// Auto-install does not bring back what the owner removed.
			if derr := n.decline(r.PathValue("id")); derr != nil {
				n.log.Warn("auto-install may bring the app back", "app", r.PathValue("id"), "err", derr)
			}
			n.kickTrust()
			n.pruneLater()
		}
		return err
	}))
}

// pruneLater prunes unused images in the background, on the node's
// lifetime, bounded.
func (n *Node) pruneLater() {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		ctx, cancel := context.WithTimeout(n.life, 5*time.Minute)
		defer cancel()
		if err := n.pruneImages(ctx); err != nil {
			n.log.Warn("prune images failed", "err", err)
		}
	}()
}

// httpError carries the status an API error answers with (409 when an
// error carries none).
type httpError struct {
	code int
	err  error
}

func (e *httpError) Error() string { return e.err.Error() }
func (e *httpError) Unwrap() error { return e.err }

func badRequest(err error) error { return &httpError{http.StatusBadRequest, err} }
func notFound(err error) error   { return &httpError{http.StatusNotFound, err} }

// AppsDir is where a node on dataDir keeps its apps' state, secrets and
// data (the orchestrator's folder).
func AppsDir(dataDir string) string { return filepath.Join(dataDir, "apps") }
