// Package client is a running node's HTTP API as typed Go calls, for the
// CLI and the tests: one place that finds the node (its data folder's
// api.addr), reads its token (api.token, refused unless private), bounds
// every call with a deadline and every error body it reads, and follows
// operations through their Server-Sent Events.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/archy-node/archy/internal/atomicfile"
	"github.com/archy-node/archy/node"
	"github.com/archy-node/archy/orchestrator"
	"github.com/archy-node/archy/p2p/discovery"
)

// Files a node writes in its data folder for its clients (the node
// names them).
const (
	AddrFile  = node.AddrFile
	TokenFile = node.TokenFile
)

// Limits of what the client reads and how long it waits.
const (
	maxTokenFile = 4096
	// maxErrorBody is how much of a refusal's body is read into an error.
	maxErrorBody = 4096
	// DefaultTimeout bounds a plain call (a read, a request that starts an
	// operation).
	DefaultTimeout = 30 * time.Second
	// UploadTimeout bounds an upload or a download: image archives are
	// big, and the node bounds each stall of one by its own deadline.
	UploadTimeout = 30 * time.Minute
)

// ErrNoNode is returned when the data folder names no running node.
var ErrNoNode = errors.New("no running node found")

// ErrNoToken is returned by a change when the client has no token.
var ErrNoToken = errors.New("no API token")

// Client is one node's API. Token may be empty for reads.
type Client struct {
	// Base is the API's URL without a trailing slash.
	Base string
	// Token is the bearer token changes need.
	Token string
	// HTTP is the transport (default http.DefaultClient).
	HTTP *http.Client
	// Timeout bounds each plain call (default DefaultTimeout).
	Timeout time.Duration
	// tokenErr says why Token is empty, for the first change that needs it.
	tokenErr error
}

// New is the API at base with token.
func New(base, token string) *Client {
	return &Client{Base: strings.TrimRight(base, "/"), Token: token}
}

// Open finds the node of dataDir: api (a URL) when given, else the
// address the node wrote in dataDir. The token is read from tokenFile,
// else dataDir's; a missing or unreadable token fails only the changes.
func Open(dataDir, api, tokenFile string) (*Client, error) {
	if api == "" {
		b, err := os.ReadFile(filepath.Join(dataDir, AddrFile))
		if err != nil {
			return nil, fmt.Errorf("%w in %s: %w", ErrNoNode, dataDir, err)
		}
		api = strings.TrimSpace(string(b))
	}
	c := New(api, "")
	if tokenFile == "" {
		tokenFile = filepath.Join(dataDir, TokenFile)
	}
	tok, err := ReadToken(tokenFile)
	if err != nil {
		c.tokenErr = err
	}
	c.Token = tok
	return c, nil
}

// ReadToken reads an API token file, refusing one others may read.
func ReadToken(path string) (string, error) {
	b, err := atomicfile.ReadPrivate(path, maxTokenFile)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("%w: read %s: %w", ErrNoToken, path, err)
		}
		return "", fmt.Errorf("read the node's API token %s: %w", path, err)
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", fmt.Errorf("%w: %s is empty", ErrNoToken, path)
	}
	return t, nil
}

// APIError is the node's refusal: its status and what it said.
type APIError struct {
	Code    int
	Status  string
	Message string
}

func (e *APIError) Error() string {
	return "the node answers " + e.Status + ": " + e.Message
}

// readError turns a refusal into an *APIError, reading at most
// maxErrorBody of its body.
func readError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	return &APIError{Code: resp.StatusCode, Status: resp.Status, Message: strings.TrimSpace(string(b))}
}

// NeedToken says why a call that needs the token cannot be made (nil
// when the client has one).
func (c *Client) NeedToken() error {
	switch {
	case c.Token != "":
		return nil
	case c.tokenErr != nil:
		return c.tokenErr
	}
	return ErrNoToken
}

func (c *Client) http() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return http.DefaultClient
}

func (c *Client) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultTimeout
}

// request sends one request; the caller closes the body. Non-2xx
// answers are returned as *APIError. The token goes only with changes
// and the reads that need it (secret): a read of status from another
// node named with --api does not hand it this node's token.
func (c *Client) request(ctx context.Context, method, path string, body io.Reader, header http.Header, secret bool) (*http.Response, error) {
	withToken := secret || method != http.MethodGet
	if withToken {
		if err := c.NeedToken(); err != nil {
			return nil, err
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, body)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if withToken {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.http().Do(req)
	if err != nil {
		return nil, fmt.Errorf("ask the node at %s: %w", c.Base, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		return nil, readError(resp)
	}
	return resp, nil
}

// GetJSON reads path into v within the client's timeout.
func (c *Client) GetJSON(ctx context.Context, path string, v any) error {
	return c.GetJSONWithin(ctx, path, v, c.timeout())
}

// GetJSONWithin reads path into v within d.
func (c *Client) GetJSONWithin(ctx context.Context, path string, v any, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	resp, err := c.request(ctx, http.MethodGet, path, nil, nil, false)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("read the node's answer to %s: %w", path, err)
	}
	return nil
}

// post sends body to path within d and decodes a 200 answer into v.
func (c *Client) post(ctx context.Context, path string, body io.Reader, d time.Duration, v any) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	resp, err := c.request(ctx, http.MethodPost, path, body, nil, true)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if v == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("read the node's answer to %s: %w", path, err)
	}
	return nil
}

// Status is GET /api/v1/status.
func (c *Client) Status(ctx context.Context) (node.Status, error) {
	var s node.Status
	return s, c.GetJSON(ctx, "/api/v1/status", &s)
}

// Peers is GET /api/v1/peers.
func (c *Client) Peers(ctx context.Context) ([]node.Peer, error) {
	var p []node.Peer
	return p, c.GetJSON(ctx, "/api/v1/peers", &p)
}

// Apps is GET /api/v1/apps: the installed apps.
func (c *Client) Apps(ctx context.Context) ([]orchestrator.AppStatus, error) {
	var a []orchestrator.AppStatus
	return a, c.GetJSON(ctx, "/api/v1/apps", &a)
}

// Discovered is one row of GET /api/v1/apps/discovered.
type Discovered struct {
	discovery.Release
	Trust *node.TrustView `json:"trust,omitempty"`
}

// Discovered is GET /api/v1/apps/discovered: the releases the node found
// on its relays.
func (c *Client) Discovered(ctx context.Context) ([]Discovered, error) {
	var d []Discovered
	return d, c.GetJSON(ctx, "/api/v1/apps/discovered", &d)
}

// Added is what the node answers for a file handed to it: the root the
// file travels as and the BLAKE3 of its bytes.
type Added struct {
	CID string `json:"cid"`
	Sum string `json:"sum"`
}

// AddBlob hands the node a file (POST /api/v1/blobs): it keeps, pins and
// provides it.
func (c *Client) AddBlob(ctx context.Context, r io.Reader) (Added, error) {
	var a Added
	return a, c.post(ctx, "/api/v1/blobs", r, UploadTimeout, &a)
}

// AddedManifest is the node's answer to POST /api/v1/manifests.
type AddedManifest struct {
	CID     string `json:"cid"`
	App     string `json:"app"`
	Version string `json:"version"`
}

// AddManifest hands the node a signed manifest envelope.
func (c *Client) AddManifest(ctx context.Context, envelope []byte) (AddedManifest, error) {
	var a AddedManifest
	return a, c.post(ctx, "/api/v1/manifests", bytes.NewReader(envelope), c.timeout(), &a)
}

// Install asks the node to install (or update to) a release and follows
// the operation; onEvent, if not nil, sees each event.
func (c *Client) Install(ctx context.Context, req node.InstallRequest, onEvent func(node.OpEvent)) (*node.OpEvent, error) {
	return c.Do(ctx, http.MethodPost, "/api/v1/apps", req, onEvent)
}

// Uninstall asks the node to remove an app (and its data and secrets
// with purge) and follows the operation.
func (c *Client) Uninstall(ctx context.Context, id string, purge bool, onEvent func(node.OpEvent)) (*node.OpEvent, error) {
	path := "/api/v1/apps/" + url.PathEscape(id)
	if purge {
		path += "?purge=1"
	}
	return c.Do(ctx, http.MethodDelete, path, nil, onEvent)
}

// Do sends a change (body as JSON when not nil). When the node runs it as
// an operation (202), Do follows it to its end and returns the end
// event; the error is the operation's (*OpError).
func (c *Client) Do(ctx context.Context, method, path string, body any, onEvent func(node.OpEvent)) (*node.OpEvent, error) {
	loc, err := c.Start(ctx, method, path, body)
	if err != nil || loc == "" {
		return nil, err
	}
	return c.Follow(ctx, loc, onEvent)
}

// Start sends a change and returns the operation's URL path when the
// node started one (202), else "".
func (c *Client) Start(ctx context.Context, method, path string, body any) (string, error) {
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			return "", fmt.Errorf("encode %s %s: %w", method, path, err)
		}
	}
	rctx, cancel := context.WithTimeout(ctx, c.timeout())
	defer cancel()
	resp, err := c.request(rctx, method, path, bytes.NewReader(b), http.Header{"Content-Type": {"application/json"}}, true)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusAccepted {
		return "", nil
	}
	loc := resp.Header.Get("Location")
	if loc == "" {
		return "", errors.New("the node started an operation but named no Location")
	}
	return loc, nil
}

// Operation is GET /api/v1/operations/{id} (loc is its URL path).
func (c *Client) Operation(ctx context.Context, loc string) (node.Operation, error) {
	var o node.Operation
	return o, c.GetJSON(ctx, loc, &o)
}

// Download writes the bytes of a file the node holds (GET
// /api/v1/blobs/{cid}) to w, calling progress with bytes written and the
// file's size (-1 when the node did not say).
func (c *Client) Download(ctx context.Context, cid string, w io.Writer, progress func(done, total int64)) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, UploadTimeout)
	defer cancel()
	resp, err := c.request(ctx, http.MethodGet, "/api/v1/blobs/"+url.PathEscape(cid), nil, nil, true)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var r io.Reader = resp.Body
	if progress != nil {
		r = &countReader{r: resp.Body, total: resp.ContentLength, progress: progress}
	}
	n, err := io.Copy(w, r)
	if err != nil {
		return n, fmt.Errorf("download %s from the node: %w", cid, err)
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return n, fmt.Errorf("download %s from the node: got %d of %d bytes", cid, n, resp.ContentLength)
	}
	return n, nil
}

// countReader reports the bytes read through it.
type countReader struct {
	r        io.Reader
	done     int64
	total    int64
	progress func(done, total int64)
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.done += int64(n)
	if n > 0 {
		c.progress(c.done, c.total)
	}
	return n, err
}

// CountReader wraps r to call progress with the bytes read so far and
// total (for an upload's progress).
func CountReader(r io.Reader, total int64, progress func(done, total int64)) io.Reader {
	return &countReader{r: r, total: total, progress: progress}
}

// FetchBlob asks the node to fetch a file from the swarm (an operation:
// onEvent sees its progress) and returns what it fetched. The node keeps
// the file pinned; Download reads it.
func (c *Client) FetchBlob(ctx context.Context, req node.FetchRequest, onEvent func(node.OpEvent)) (node.Fetched, error) {
	return c.fetch(ctx, "/api/v1/blobs/fetch", req, onEvent)
}

// PullImage asks the node to fetch an image archive from the swarm,
// check it, and (req.Load) load it into its Podman.
func (c *Client) PullImage(ctx context.Context, req node.FetchRequest, onEvent func(node.OpEvent)) (node.Fetched, error) {
	return c.fetch(ctx, "/api/v1/images/pull", req, onEvent)
}

func (c *Client) fetch(ctx context.Context, path string, req node.FetchRequest, onEvent func(node.OpEvent)) (node.Fetched, error) {
	var f node.Fetched
	end, err := c.Do(ctx, http.MethodPost, path, req, onEvent)
	if err != nil {
		return f, err
	}
	if end == nil || len(end.Result) == 0 {
		return f, fmt.Errorf("%s: the node's operation ended without a result", path)
	}
	if err := json.Unmarshal(end.Result, &f); err != nil {
		return f, fmt.Errorf("%s: read the result: %w", path, err)
	}
	return f, nil
}

// PushImage hands the node an OCI image archive (POST /api/v1/images):
// it checks every blob, keeps, pins and provides it.
func (c *Client) PushImage(ctx context.Context, archive io.Reader) (node.PushedImage, error) {
	var p node.PushedImage
	return p, c.post(ctx, "/api/v1/images", archive, UploadTimeout, &p)
}
