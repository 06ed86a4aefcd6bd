package node

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/archy-node/archy/orchestrator"
)

// AppView is an installed app as GET /api/v1/apps lists it: its status,
// and what the page shows beside it.
type AppView struct {
	orchestrator.AppStatus
	Name string `json:"name,omitempty"`
	// UIURL is where the app's web page answers on this machine.
	UIURL string `json:"ui_url,omitempty"`
	// Credentials names the secrets the manifest marks for display; their
	// values come only from GET /api/v1/apps/{id}/credentials, with the
	// token.
	Credentials []string `json:"credentials,omitempty"`
	// Previous is the version an update replaced (the way back).
	Previous string `json:"previous,omitempty"`
}

func (n *Node) appViews() []AppView {
	out := []AppView{}
	if n.orch == nil {
		return out
	}
	for _, st := range n.orch.Apps() {
		v := AppView{AppStatus: st}
		cur, prev := n.orch.Releases(st.ID)
		if prev != nil {
			v.Previous = prev.Version
		}
		if cur != nil {
			if m, err := cur.Manifest(); err == nil {
				v.Name = m.Name
				for _, s := range m.GeneratedSecrets {
					if s.Display {
						v.Credentials = append(v.Credentials, s.Name)
					}
				}
				if m.UI != nil {
					for _, c := range m.Containers {
						if c.Name != m.UI.Container {
							continue
						}
						for _, p := range c.Ports {
							if p.Container == m.UI.Port && p.Host != 0 {
								v.UIURL = "http://127.0.0.1:" + strconv.Itoa(p.Host) + "/" + strings.TrimPrefix(m.UI.Path, "/")
							}
						}
					}
				}
			}
		}
		out = append(out, v)
	}
	return out
}

// handleCredentials shows an app's displayed credentials. It reads a
// secret, so it needs the token like a change does, and a client on this
// machine (or remote changes allowed); the browse listener never has it.
func (n *Node) handleCredentials(w http.ResponseWriter, r *http.Request) {
	if !n.cfg.API.RemoteChanges && !loopbackClient(r) {
		http.Error(w, "credentials are shown only to clients on this machine", http.StatusForbidden)
		return
	}
	got := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	if subtle.ConstantTimeCompare([]byte(got), []byte(n.token)) != 1 {
		http.Error(w, "credentials need the API token: send Authorization: Bearer <token from the data folder's api.token>", http.StatusUnauthorized)
		return
	}
	if n.orch == nil {
		http.Error(w, "apps are off: "+n.appsOff, http.StatusNotFound)
		return
	}
	secrets, err := n.orch.DisplayedSecrets(r.PathValue("id"))
	if errors.Is(err, orchestrator.ErrNotInstalled) {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, secrets)
}

// diskUsage is the bytes under the data folder, recounted at most every
// 30 s (a walk of the block store's packs is cheap, but not free).
type diskUsage struct {
	mu    sync.Mutex
	at    time.Time
	bytes int64
}

func (d *diskUsage) get(dir string) int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	if time.Since(d.at) < 30*time.Second {
		return d.bytes
	}
	var total int64
	_ = filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
		if err == nil && e.Type().IsRegular() {
			if fi, err := e.Info(); err == nil {
				total += fi.Size()
			}
		}
		return nil
	})
	d.bytes, d.at = total, time.Now()
	return total
}

// browseHandler serves the marketplace read-only, for other machines
// (BrowseListen): the page and the reads it needs, nothing that changes
// the node or shows a secret.
func (n *Node) browseHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/status", func(w http.ResponseWriter, r *http.Request) {
		s := n.Status()
		s.ReadOnly, s.DataDir = true, ""
		writeJSON(w, s)
	})
	n.marketHandlers(mux)
	mux.HandleFunc("GET /api/v1/apps", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, n.appViews()) })
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "this address serves the marketplace read-only: nothing can be changed from here", http.StatusForbidden)
			return
		}
		if !n.hostAllowed(r.Host) {
			http.Error(w, fmt.Sprintf("unexpected Host header %q: add the name to the node's allowed API hosts to use it", r.Host), http.StatusForbidden)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// serveBrowse serves browseHandler on ln until ctx ends.
func (n *Node) serveBrowse(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: n.browseHandler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute,
		WriteTimeout: time.Minute, IdleTimeout: 2 * time.Minute}
	return n.serveHTTP(ctx, "browse", srv, ln)
}
