package node

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	cid "github.com/ipfs/go-cid"

	"github.com/archy-node/archy/cas"
	"github.com/archy-node/archy/internal/ociimage"
	"github.com/archy-node/archy/p2p/dag"
)

// The CLI's blob and image commands go through the node, which owns the
// block store and the swarm: a second process opening the store would
// run a second peer with the same ID and race the node's writes. Fetches
// are operations (progress as events, the result in the end event); the
// fetched file is then read back with GET /api/v1/blobs/{cid}.

// FetchRequest asks the node to fetch a file from the swarm (POST
// /api/v1/blobs/fetch) or an image (POST /api/v1/images/pull).
type FetchRequest struct {
	// CID is the file's root (bafyb4i…) or the BLAKE3 of its bytes
	// (bafkr4i…): peers then name the root, and the file is kept only if
	// it hashes to the CID.
	CID string `json:"cid"`
	// Size is the file's size when the caller knows it (a manifest pins
	// it); 0 or less: unknown, at most p2p.MaxUnpinnedSize.
	Size int64 `json:"size,omitempty"`
	// Load loads a pulled image into the node's Podman.
	Load bool `json:"load,omitempty"`
}

// Fetched is the result of a fetch or a pull: the end event's Result.
type Fetched struct {
	CID  string `json:"cid"`           // the root the file travels as
	Sum  string `json:"sum,omitempty"` // the BLAKE3 of its bytes, when known
	Size int64  `json:"size"`
	// Image is what a pulled image archive holds; Loaded the names
	// Podman loaded it as.
	Image  *ociimage.Image `json:"image,omitempty"`
	Loaded []string        `json:"loaded,omitempty"`
}

// PushedImage is the answer to POST /api/v1/images.
type PushedImage struct {
	CID string `json:"cid"`
	Sum string `json:"sum"`
	ociimage.Image
}

func (n *Node) blobHandlers(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/blobs/{cid}", n.handleReadBlob)
	mux.HandleFunc("POST /api/v1/blobs/fetch", n.fetchOp("fetch", false))
	mux.HandleFunc("POST /api/v1/images/pull", n.fetchOp("pull", true))
	mux.HandleFunc("POST /api/v1/images", n.handleAddImage)
}

// handleReadBlob sends the bytes of a file the node holds whole, by its
// root or its sum. The guard lets reads pass without the token; this one
// needs it, as the files a node fetched for its owner are the owner's.
func (n *Node) handleReadBlob(w http.ResponseWriter, r *http.Request) {
	got := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	if subtle.ConstantTimeCompare([]byte(got), []byte(n.token)) != 1 {
		http.Error(w, "reading a file needs the token: send Authorization: Bearer <token from the data folder's api.token>", http.StatusUnauthorized)
		return
	}
	root, err := n.rootOf(r.PathValue("cid"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	_, size, err := dag.Leaves(r.Context(), root, n.p2p.Store().GetRaw)
	if err != nil {
		http.Error(w, fmt.Sprintf("file %s: not held whole here: %v", root, err), http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatUint(size, 10))
	rc := http.NewResponseController(w)
	// However big the file, the answer goes on while its bytes keep moving.
	if _, err := n.p2p.ReadFile(r.Context(), root, &deadlineWriter{w: w, rc: rc, d: n.cfg.API.RequestTimeout}); err != nil {
		n.log.Warn("read blob", "cid", root, "err", err) // the client sees a short body
	}
}

// rootOf parses c and maps a sum to the root recorded for it.
func (n *Node) rootOf(s string) (cid.Cid, error) {
	c, err := cas.Parse(s)
	if err != nil {
		return cid.Undef, fmt.Errorf("cid %q: %w", s, err)
	}
	if c.Type() == cas.Raw {
		if root, ok := n.p2p.Root(c); ok {
			return root, nil
		}
	}
	return c, nil
}

// fetchOp serves a fetch (or, image, a pull) as an operation: the file
// is fetched into the block store and pinned, the image checked as an
// OCI archive and loaded into Podman when asked.
func (n *Node) fetchOp(kind string, image bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req FetchRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&req); err != nil {
			http.Error(w, fmt.Sprintf("read %s request: %v", kind, err), http.StatusBadRequest)
			return
		}
		c, err := cas.Parse(req.CID)
		if err != nil {
			http.Error(w, fmt.Sprintf("%s: cid %q: %v", kind, req.CID, err), http.StatusBadRequest)
			return
		}
		if req.Load && n.rt == nil {
			http.Error(w, "load the image: apps are off: "+n.appsOff, http.StatusServiceUnavailable)
			return
		}
		o, err := n.ops.start(kind, "")
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			res, err := n.fetch(n.life, o, c, req, image)
			n.endOp(o, res, err)
		}()
		st := n.ops.status(o)
		w.Header().Set("Location", st.URL)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_ = json.NewEncoder(w).Encode(st)
	}
}

// fetch is the work of a fetch or pull operation.
func (n *Node) fetch(ctx context.Context, o *op, c cid.Cid, req FetchRequest, image bool) (*Fetched, error) {
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	n.ops.emit(o, OpEvent{Type: EventProgress, Message: o.kind + " started"})
	dir := filepath.Join(n.cfg.DataDir, "images")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create image folder: %w", err)
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	out := filepath.Join(dir, ".fetch-"+hex.EncodeToString(b[:]))
	defer os.Remove(out)
	// Nothing fetched from here is collected before the pin holds it.
	end := n.p2p.Store().Session()
	defer end()
	size := req.Size
	if size <= 0 {
		size = -1
	}
	res := &Fetched{}
	root := c
	var err error
	lastPct := -1
	progress := func(done, total int64) {
		pct := -1
		if total > 0 {
			pct = int(done * 100 / total)
		}
		if pct == lastPct && done != total {
			return // an event per percent is enough
		}
		lastPct = pct
		ev := OpEvent{Type: EventProgress, Stage: "fetch", Message: fmt.Sprintf("%d of %d bytes", done, total)}
		if total > 0 {
			ev.Fraction = float64(done) / float64(total)
		}
		n.ops.emit(o, ev)
	}
	n.ops.emit(o, OpEvent{Type: EventProgress, Stage: "fetch", Message: "asking peers for " + c.String()})
	switch {
	case c.Type() == cas.Raw:
		res.Sum = c.String()
		root, err = n.p2p.GetNamed(ctx, c, size, out, progress)
	case size >= 0:
		err = n.p2p.GetFileSized(ctx, c, size, out)
	default:
		err = n.p2p.GetFile(ctx, c, out)
	}
	if err != nil {
		return nil, err
	}
	res.CID = root.String()
	if res.Sum == "" {
		for _, s := range n.p2p.Sums(root) {
			res.Sum = s.String()
		}
	}
	if fi, err := os.Stat(out); err == nil {
		res.Size = fi.Size()
	}
	if image {
		n.ops.emit(o, OpEvent{Type: EventProgress, Stage: "verify", Fraction: 1, Message: "checking the OCI archive"})
		img, err := ociimage.VerifyFile(out)
		if err != nil {
			return nil, fmt.Errorf("pull image %s: %w", c, err)
		}
		res.Image = &img
	}
	if err := n.p2p.Pin(ctx, root); err != nil {
		return nil, fmt.Errorf("pin %s: %w", root, err)
	}
	n.provide(root)
	if s, err := cas.Parse(res.Sum); err == nil && res.Sum != "" {
		n.provide(s)
	}
	if image && req.Load {
		n.ops.emit(o, OpEvent{Type: EventProgress, Stage: "load", Fraction: 1, Message: "loading into Podman"})
		if res.Loaded, err = n.rt.LoadImage(ctx, out); err != nil {
			return nil, fmt.Errorf("load image %s into Podman: %w", root, err)
		}
	}
	return res, nil
}

// fetchTimeout bounds a fetch or pull operation: a large file on a slow
// link (a stalled fetch fails sooner, after the p2p request timeout).
const fetchTimeout = 30 * time.Minute

// endOp ends an operation that is not an app's with its result or error.
func (n *Node) endOp(o *op, result any, err error) {
	end := OpEvent{Type: EventEnd, OK: err == nil, Fraction: 1, Message: o.kind + " done"}
	if err != nil {
		end.Fraction, end.Message = 0, o.kind+" failed"
		end.Error, end.Code = err.Error(), errorCode(err)
		n.log.Warn("operation failed", "op", o.kind, "id", o.id, "err", err)
	} else if result != nil {
		end.Result, _ = json.Marshal(result)
	}
	n.ops.emit(o, end)
}

// handleAddImage imports an OCI image archive (the request body) into
// the block store after checking every blob against its digest, pins it
// and provides it under its root and its sum.
func (n *Node) handleAddImage(w http.ResponseWriter, r *http.Request) {
	dir := filepath.Join(n.cfg.DataDir, "images")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		http.Error(w, "create image folder: "+err.Error(), http.StatusInternalServerError)
		return
	}
	f, err := os.CreateTemp(dir, ".push-*")
	if err != nil {
		http.Error(w, "push image: "+err.Error(), http.StatusInternalServerError)
		return
	}
	defer os.Remove(f.Name())
	rc := http.NewResponseController(w)
	body := &deadlineReader{r: http.MaxBytesReader(w, r.Body, maxBlobUpload), rc: rc, d: n.cfg.API.RequestTimeout}
	_, err = io.Copy(f, body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		http.Error(w, "push image: receive the archive: "+err.Error(), http.StatusBadRequest)
		return
	}
	_ = rc.SetWriteDeadline(time.Now().Add(n.cfg.API.RequestTimeout))
	end := n.p2p.Store().Session()
	defer end()
	root, img, err := n.p2p.PushImage(r.Context(), f.Name())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	res := PushedImage{CID: root.String(), Image: img}
	sums := n.p2p.Sums(root)
	for _, s := range sums {
		res.Sum = s.String()
	}
	err = n.p2p.Pin(r.Context(), root)
	if err == nil && res.Sum != "" {
		err = n.markPublished(res.Sum)
	}
	if err != nil {
		http.Error(w, "push image: "+err.Error(), http.StatusInternalServerError)
		return
	}
	n.provide(root)
	for _, s := range sums {
		n.provide(s)
	}
	writeJSON(w, res)
}

// deadlineWriter moves the response's write deadline before every
// write, so a long download is bounded by its stalls, not its length.
type deadlineWriter struct {
	w  io.Writer
	rc *http.ResponseController
	d  time.Duration
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	_ = d.rc.SetWriteDeadline(time.Now().Add(d.d))
	return d.w.Write(p)
}
