package registry

import (
	"bytes"
	"context"
	stdjson "encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/archy-node/archy/cas"
	"github.com/archy-node/archy/did"
	"github.com/archy-node/archy/internal/atomicfile"
)

// DefaultMaxRootRotations is how many root rotations one update walks at
// most (TUF's max_root_rotations is 32 too).
const DefaultMaxRootRotations = 32

// Files of a trust store folder.
const (
	// StateFile holds the trusted root and the highest trusted catalog
	// version (archy.catalog-state/v1).
	StateFile = "state.json"
	// RootFileName is where the CLI keeps the root a node owner pinned.
	RootFileName = "root.json"
	// catalogPrefix names the trusted catalog's envelope:
	// catalog-<payload cid>.json, written before the state that names it.
	catalogPrefix = "catalog-"
	stateType     = "archy.catalog-state/v1"
	rootFileType  = "archy.catalog-root/v1"
	maxStateSize  = 1 << 20
)

// Rotations hands a trust store the signed catalogs that introduced each
// root version: the catalog of root version v is signed by a threshold of
// root v-1 and of root v. A node gets them from the registry's publishing
// folder or from peers.
type Rotations interface {
	// Rotation returns the signed catalog that introduced root version v,
	// or an error matching fs.ErrNotExist when there is none (yet).
	Rotation(ctx context.Context, v int64) (io.ReadCloser, error)
}

// RotationDir is the Rotations of a folder holding <v>.json for each root
// version v ≥ 2 (the curator's roots/ folder).
type RotationDir string

// Rotation opens <dir>/<v>.json.
func (d RotationDir) Rotation(ctx context.Context, v int64) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return os.Open(filepath.Join(string(d), strconv.FormatInt(v, 10)+".json"))
}

// RotationMap is an in-memory Rotations: root version → signed catalog.
type RotationMap map[int64][]byte

// Rotation returns m[v].
func (m RotationMap) Rotation(ctx context.Context, v int64) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b, ok := m[v]
	if !ok {
		return nil, fmt.Errorf("root rotation %d: %w", v, fs.ErrNotExist)
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

var (
	_ Rotations = RotationDir("")
	_ Rotations = RotationMap(nil)
)

// TrustConfig configures a node's trust store for one registry.
type TrustConfig struct {
	// Dir holds the store's state (created if missing).
	Dir string
	// Root is the registry root the node owner pinned out of band. It is
	// never learnt from the network (no trust on first use), and the store
	// falls back to it whenever its saved state is unusable.
	Root Root
	// Now is the clock expiry is judged by (default time.Now).
	Now func() time.Time
	// Logger receives the store's notices (default: discarded).
	Logger *slog.Logger
	// MaxRootRotations caps the rotations one update walks (default
	// DefaultMaxRootRotations).
	MaxRootRotations int
}

// Validate names the first bad field.
func (c *TrustConfig) Validate() error {
	if c.Dir == "" {
		return errors.New("trust store: Dir is empty")
	}
	if err := c.Root.check(); err != nil {
		return fmt.Errorf("trust store: Root: %w", err)
	}
	if c.MaxRootRotations < 0 {
		return fmt.Errorf("trust store: MaxRootRotations %d is negative", c.MaxRootRotations)
	}
	return nil
}

// TrustStore is a node's trusted view of one registry's catalog: the
// current root, the highest trusted catalog version and that catalog. An
// update either passes every rule and is persisted atomically, or changes
// nothing.
type TrustStore struct {
	dir          string
	configured   Root
	now          func() time.Time
	log          *slog.Logger
	maxRotations int

	mu    sync.Mutex
	st    trustState
	cur   *VerifiedCatalog
	reset string
	lost  string
}

// trustState is the persisted state (StateFile).
type trustState struct {
	Type string `json:"type"`
	// Configured is the fingerprint of the configured root this state grew
	// from; a state grown from another root is not used.
	Configured string `json:"configured_root"`
	Root       Root   `json:"root"`
	// Version and CID are the highest trusted catalog version under Root
	// and its payload's CID (0 and "" before the first catalog).
	Version int64  `json:"version"`
	CID     string `json:"cid,omitempty"`
}

// Status is what a node reports about its catalog.
type Status struct {
	Root    Root   `json:"root"`
	Version int64  `json:"version"`
	CID     string `json:"cid,omitempty"`
	Expires string `json:"expires,omitempty"`
	// Stale is true when there is no usable trusted catalog or it has
	// expired: nothing new is installed from it, running apps are left
	// alone, and the node says so.
	Stale  bool   `json:"stale"`
	Reason string `json:"reason,omitempty"`
	// Reset says why the saved state was discarded for the configured root.
	Reset string `json:"reset,omitempty"`
}

// UpdateResult says what an accepted update did.
type UpdateResult struct {
	Catalog *VerifiedCatalog
	// Changed is false when the catalog was the trusted one already.
	Changed bool
	// Rotations is the number of root rotations applied.
	Rotations int
	// Links are the signed catalogs that introduced each new root
	// version, in order (the last may be the catalog itself): a node keeps
	// them to pass on to followers that missed the rotation.
	Links []Link
}

// OpenTrustStore opens (creating if needed) the trust store in cfg.Dir. A
// missing, unreadable or corrupt state file, or one grown from another
// configured root, fails closed: the store starts again from cfg.Root, and
// Status().Reset says why.
func OpenTrustStore(cfg TrustConfig) (*TrustStore, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("open trust store: %w", err)
	}
	s := &TrustStore{
		dir:          cfg.Dir,
		configured:   cfg.Root,
		now:          cfg.Now,
		log:          cfg.Logger,
		maxRotations: cfg.MaxRootRotations,
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.maxRotations == 0 {
		s.maxRotations = DefaultMaxRootRotations
	}
	s.load()
	return s, nil
}

func (s *TrustStore) fresh() trustState {
	return trustState{Type: stateType, Configured: rootFingerprint(s.configured), Root: s.configured}
}

// rootFingerprint names a root by the CID of its canonical form.
func rootFingerprint(r Root) string {
	r.Keys = slices.Clone(r.Keys)
	slices.Sort(r.Keys)
	b, _ := stdjson.Marshal(r)
	return cas.Sum(b).String()
}

// load reads the saved state, falling back to the configured root.
func (s *TrustStore) load() {
	s.st = s.fresh()
	data, err := os.ReadFile(filepath.Join(s.dir, StateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	st, err := parseState(data, err)
	if err == nil && st.Configured != s.st.Configured {
		err = errors.New("it was made for another configured root")
	}
	if err == nil && st.Root.Version < s.configured.Version {
		err = fmt.Errorf("its root version %d is older than the configured root's %d", st.Root.Version, s.configured.Version)
	}
	if err != nil {
		s.reset = fmt.Sprintf("state file %s unusable (%v); trusting the configured root only", filepath.Join(s.dir, StateFile), err)
		s.log.Warn("catalog trust state reset to the configured root", "dir", s.dir, "err", err)
		return
	}
	s.st = st
	if st.Version == 0 {
		return
	}
	cur, err := s.loadCatalog(st)
	if err != nil {
		// The version floor still holds; only the catalog's content is gone.
		s.lost = fmt.Sprintf("trusted catalog %d unreadable (%v); waiting for the next one", st.Version, err)
		s.log.Warn("trusted catalog unreadable", "dir", s.dir, "version", st.Version, "err", err)
		return
	}
	s.cur = cur
}

func parseState(data []byte, err error) (trustState, error) {
	var st trustState
	if err != nil {
		return st, err
	}
	if len(data) > maxStateSize {
		return st, fmt.Errorf("%d bytes is too large", len(data))
	}
	if err := StrictUnmarshal(data, &st); err != nil {
		return st, err
	}
	if st.Type != stateType {
		return st, fmt.Errorf("type %q, want %q", st.Type, stateType)
	}
	if err := st.Root.check(); err != nil {
		return st, err
	}
	if st.Version < 0 || st.Version > MaxCatalogVersion {
		return st, fmt.Errorf("version %d out of range", st.Version)
	}
	if st.Version > 0 {
		if _, err := cas.Parse(st.CID); err != nil {
			return st, err
		}
	}
	return st, nil
}

// loadCatalog re-reads the trusted catalog and checks it against the state.
// Expiry is not checked here: Status reports it.
func (s *TrustStore) loadCatalog(st trustState) (*VerifiedCatalog, error) {
	f, err := os.Open(filepath.Join(s.dir, catalogPrefix+st.CID+".json"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	_, env, err := ReadCatalog(f)
	if err != nil {
		return nil, err
	}
	if got := cas.Sum(env.Payload).String(); got != st.CID {
		return nil, fmt.Errorf("%w: %s", cas.ErrMismatch, got)
	}
	c, signers, err := verifySigned(env, st.Root)
	if err != nil {
		return nil, err
	}
	if c.Version != st.Version || !c.Root.Equal(st.Root) {
		return nil, errors.New("it is not the catalog the state names")
	}
	entries, err := verifyEntries(c)
	if err != nil {
		return nil, err
	}
	return &VerifiedCatalog{Catalog: c, Payload: env.Payload, CID: cas.Sum(env.Payload), Signers: signers, Envelope: env, Entries: entries}, nil
}

// Current returns the trusted catalog, or nil if there is none. It may be
// expired: check Status().Stale before installing anything new from it.
func (s *TrustStore) Current() *VerifiedCatalog {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

// Root returns the trusted root.
func (s *TrustStore) Root() Root {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.Root
}

// Stale reports whether the node has no current catalog to install from.
func (s *TrustStore) Stale() bool { return s.Status().Stale }

// Status reports the trusted root, version, expiry and staleness.
func (s *TrustStore) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{Root: s.st.Root, Version: s.st.Version, CID: s.st.CID, Reset: s.reset}
	st.Root.Keys = slices.Clone(st.Root.Keys)
	switch {
	case s.cur == nil && s.lost != "":
		st.Stale, st.Reason = true, s.lost
	case s.cur == nil:
		st.Stale, st.Reason = true, "no trusted catalog yet"
	default:
		st.Expires = s.cur.Catalog.Expires
		if err := checkExpiry(s.cur.Catalog, s.now()); err != nil {
			st.Stale, st.Reason = true, fmt.Sprintf("catalog version %d expired at %s; running apps are left alone until a newer catalog arrives", s.cur.Catalog.Version, s.cur.Catalog.Expires)
		}
	}
	return st
}

// Update reads a signed catalog from r (at most MaxCatalogSize bytes) and
// makes it the trusted catalog if every rule holds:
//
//   - the envelope's payload type is a catalog's (before anything is parsed);
//   - root rotations from rot are walked first, one version at a time, each
//     signed by a threshold of the old and of the new root, at most
//     MaxRootRotations of them (ErrRootRotation, ErrRootChain);
//   - a threshold of distinct keys of the resulting root signed it
//     (ErrThreshold), and only then is the payload parsed strictly
//     (ErrInvalidCatalog);
//   - its root is the trusted root (ErrRootRotation; an older root is ErrRollback);
//   - its version is not below the trusted one, and the trusted version
//     only with identical bytes (ErrRollback); a rotation starts the floor
//     again from the rotating catalog, which is how a registry recovers
//     from a fast-forward attack;
//   - it has not expired by the store's clock (ErrExpired);
//   - every entry's manifest verifies, hashes to its pinned CID
//     (ErrCIDMismatch), is the entry's app (ErrMixAndMatch) and is signed
//     by a developer delegated that app (ErrUntrustedSigner).
//
// The identical catalog is a no-op. On any error nothing changes, in
// memory or on disk. rot may be nil when no rotation is expected.
func (s *TrustStore) Update(ctx context.Context, r io.Reader, rot Rotations) (UpdateResult, error) {
	raw, env, err := ReadCatalog(r)
	if err != nil {
		return UpdateResult{}, fmt.Errorf("update catalog: %w", err)
	}
	if env.PayloadType != CatalogPayloadType {
		return UpdateResult{}, fmt.Errorf("update catalog: %w: got %q, want %q", did.ErrPayloadType, env.PayloadType, CatalogPayloadType)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	root, floor, floorCID := s.st.Root, s.st.Version, s.st.CID
	rotated := 0
	var links []Link
	for rot != nil {
		next := root.Version + 1
		rc, err := rot.Rotation(ctx, next)
		if errors.Is(err, fs.ErrNotExist) {
			break
		}
		if err != nil {
			return UpdateResult{}, fmt.Errorf("update catalog: fetch root rotation %d: %w", next, err)
		}
		if rotated == s.maxRotations {
			rc.Close()
			return UpdateResult{}, fmt.Errorf("update catalog: %w: more than %d rotations after root version %d", ErrRootChain, s.maxRotations, s.st.Root.Version)
		}
		c, env, linkRaw, err := readRotation(rc, root)
		rc.Close()
		if err != nil {
			return UpdateResult{}, fmt.Errorf("update catalog: %w", err)
		}
		root, floor, floorCID = c.Root, c.Version, cas.Sum(env.Payload).String()
		links = append(links, Link{Version: c.Root.Version, Catalog: linkRaw})
		rotated++
	}

	c, signers, err := verifySigned(env, root)
	if err != nil {
		return UpdateResult{}, fmt.Errorf("update catalog: root version %d: %w", root.Version, err)
	}
	if c.Root.Version == root.Version+1 {
		// The catalog introduces the next root itself: it is its own
		// rotation, checked as a chain link is.
		if rotated == s.maxRotations {
			return UpdateResult{}, fmt.Errorf("update catalog: %w: more than %d rotations after root version %d", ErrRootChain, s.maxRotations, s.st.Root.Version)
		}
		if signers, err = env.Verify(CatalogPayloadType, c.Root.Threshold, c.Root.has); err != nil {
			return UpdateResult{}, fmt.Errorf("update catalog %d: %w: root rotation %d not signed by a threshold of the new root: %w", c.Version, ErrRootRotation, c.Root.Version, err)
		}
		root, floor, floorCID = c.Root, c.Version, cas.Sum(env.Payload).String()
		links = append(links, Link{Version: c.Root.Version, Catalog: raw})
		rotated++
	}
	switch {
	case c.Root.Version < root.Version:
		return UpdateResult{}, fmt.Errorf("update catalog %d: %w: root version %d is older than the trusted %d", c.Version, ErrRollback, c.Root.Version, root.Version)
	case c.Root.Version > root.Version:
		return UpdateResult{}, fmt.Errorf("update catalog %d: %w: root version %d without the rotation from %d", c.Version, ErrRotationMissing, c.Root.Version, root.Version)
	case !c.Root.Equal(root):
		return UpdateResult{}, fmt.Errorf("update catalog %d: %w: its root differs from the trusted root version %d", c.Version, ErrRootRotation, root.Version)
	}
	sum := cas.Sum(env.Payload)
	switch {
	case c.Version < floor:
		return UpdateResult{}, fmt.Errorf("update catalog: %w: version %d is older than the trusted %d", ErrRollback, c.Version, floor)
	case c.Version == floor && sum.String() != floorCID:
		return UpdateResult{}, fmt.Errorf("update catalog: %w: version %d with other bytes than the trusted one", ErrRollback, c.Version)
	}
	if err := checkExpiry(c, s.now()); err != nil {
		return UpdateResult{}, fmt.Errorf("update catalog: %w", err)
	}
	if c.Version == floor && rotated == 0 && s.cur != nil {
		return UpdateResult{Catalog: s.cur}, nil
	}
	entries, err := verifyEntries(c)
	if err != nil {
		return UpdateResult{}, fmt.Errorf("update catalog %d: %w", c.Version, err)
	}
	vc := &VerifiedCatalog{Catalog: c, Payload: env.Payload, CID: sum, Signers: signers, Envelope: env, Entries: entries}
	st := trustState{Type: stateType, Configured: s.st.Configured, Root: root, Version: c.Version, CID: sum.String()}
	if err := s.persist(st, raw); err != nil {
		return UpdateResult{}, fmt.Errorf("update catalog %d: %w", c.Version, err)
	}
	s.st, s.cur, s.lost = st, vc, ""
	s.log.Info("catalog updated", "version", c.Version, "root_version", root.Version, "rotations", rotated, "cid", sum.String())
	return UpdateResult{Catalog: vc, Changed: true, Rotations: rotated, Links: links}, nil
}

// readRotation checks the catalog that introduces root version old+1:
// payload type, a threshold of the old root (before parsing), a root
// version of exactly old+1, and a threshold of the new root. Its expiry
// does not matter: only the last catalog's does.
func readRotation(r io.Reader, old Root) (*Catalog, *did.Envelope, []byte, error) {
	next := old.Version + 1
	raw, env, err := ReadCatalog(r)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("root rotation %d: %w", next, err)
	}
	if _, err := env.Verify(CatalogPayloadType, old.Threshold, old.has); err != nil {
		if errors.Is(err, did.ErrPayloadType) {
			return nil, nil, nil, fmt.Errorf("root rotation %d: %w", next, err)
		}
		return nil, nil, nil, fmt.Errorf("root rotation %d: %w: not signed by a threshold of root version %d: %w", next, ErrRootRotation, old.Version, err)
	}
	c, err := ParseCatalog(env.Payload)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("root rotation %d: %w", next, err)
	}
	if c.Root.Version != next {
		return nil, nil, nil, fmt.Errorf("root rotation %d: %w: the catalog names root version %d", next, ErrRootRotation, c.Root.Version)
	}
	if _, err := env.Verify(CatalogPayloadType, c.Root.Threshold, c.Root.has); err != nil {
		return nil, nil, nil, fmt.Errorf("root rotation %d: %w: not signed by a threshold of the new root: %w", next, ErrRootRotation, err)
	}
	return c, env, raw, nil
}

// persist writes the catalog, then the state naming it, each atomically;
// a crash in between leaves the old state, which names the old catalog.
func (s *TrustStore) persist(st trustState, raw []byte) error {
	name := catalogPrefix + st.CID + ".json"
	if err := atomicfile.Write(filepath.Join(s.dir, name), raw, 0o644); err != nil {
		return fmt.Errorf("save catalog: %w", err)
	}
	data, err := stdjson.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("save trust state: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(s.dir, StateFile), append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("save trust state: %w", err)
	}
	ents, _ := os.ReadDir(s.dir)
	for _, e := range ents {
		if n := e.Name(); strings.HasPrefix(n, catalogPrefix) && strings.HasSuffix(n, ".json") && n != name {
			_ = os.Remove(filepath.Join(s.dir, n))
		}
	}
	return nil
}

// rootFile is the on-disk form of a pinned root (RootFileName).
type rootFile struct {
	Type string `json:"type"`
	Name string `json:"name,omitempty"`
	Root Root   `json:"root"`
}

// ReadRootFile reads a root written by WriteRootFile and checks it.
func ReadRootFile(path string) (Root, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return Root{}, "", fmt.Errorf("read root: %w", err)
	}
	defer f.Close()
	data, err := readCapped(f, maxStateSize)
	if err != nil {
		return Root{}, "", fmt.Errorf("read root %s: %w", path, err)
	}
	var rf rootFile
	if err := StrictUnmarshal(data, &rf); err != nil {
		return Root{}, "", fmt.Errorf("read root %s: %w", path, err)
	}
	if rf.Type != rootFileType {
		return Root{}, "", fmt.Errorf("read root %s: type %q, want %q", path, rf.Type, rootFileType)
	}
	if err := rf.Root.check(); err != nil {
		return Root{}, "", fmt.Errorf("read root %s: %w", path, err)
	}
	return rf.Root, rf.Name, nil
}

// WriteRootFile writes root (and the registry's name) for node owners to pin.
func WriteRootFile(path, name string, root Root) error {
	if err := root.check(); err != nil {
		return fmt.Errorf("write root %s: %w", path, err)
	}
	data, err := stdjson.MarshalIndent(rootFile{Type: rootFileType, Name: name, Root: root}, "", "  ")
	if err != nil {
		return fmt.Errorf("write root %s: %w", path, err)
	}
	if err := atomicfile.Write(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write root %s: %w", path, err)
	}
	return nil
}
