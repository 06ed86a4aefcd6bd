package registry

import (
	"bytes"
	stdjson "encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/archy-node/archy/did"
	"github.com/archy-node/archy/internal/atomicfile"
)

// The curator's side of a registry: a working folder in which root keys
// are chosen, developer manifests are vetted into a draft catalog, the
// draft is co-signed key by key and, once a threshold has signed, checked
// as a node would and published. Every write is atomic; signed bytes never
// change under the co-signers (once version V has a signature, edits start
// version V+1).
//
// The folder holds:
//
//	draft.json     the next catalog version, unsigned (DraftFile)
//	root.json      the root nodes pin (RootFileName)
//	signed/V.json  catalog version V as its signatures accumulate
//	catalog.json   the latest catalog that reached its threshold
//	roots/R.json   the catalog that introduced root version R (R >= 2)

// Files and folders of a curator folder.
const (
	DraftFile     = "draft.json"
	PublishedFile = "catalog.json"
	SignedDir     = "signed"
	RootsDir      = "roots"
)

// DefaultValidity is how long a new catalog version stays valid.
const DefaultValidity = 30 * 24 * time.Hour

var (
	// ErrNoDraft is returned when a curator folder has no draft.json.
	ErrNoDraft = errors.New("no draft")
	// ErrCuratorExists is returned by Init on a folder that has a draft.
	ErrCuratorExists = errors.New("this folder is already a curator folder")
	// ErrDraftRoot is returned by Sign when the draft's root is neither the
	// published root nor its next version.
	ErrDraftRoot = errors.New("the draft's root is not the published root nor its next version")
	// ErrNotRootKey is returned when a key is not among the root keys the
	// operation needs it in.
	ErrNotRootKey = errors.New("not a root key")
	// ErrDraftEdited is returned by Sign when signed/V.json holds other
	// bytes for the draft's version than the draft.
	ErrDraftEdited = errors.New("the draft was edited after signing began")
)

// OptionError is an operation refusing one of its inputs. Option names the
// input ("root", "validity", "add", "remove"), so a command line can word
// the error with its own flag.
type OptionError struct {
	Option string
	Err    error
}

func (e *OptionError) Error() string { return e.Err.Error() }
func (e *OptionError) Unwrap() error { return e.Err }

// DelegationError is Add refusing a manifest whose app id is delegated to
// other developers than its signer.
type DelegationError struct {
	App     string
	Holders []string
	Signer  string
}

func (e *DelegationError) Error() string {
	return fmt.Sprintf("app %q is delegated to %v, not to its signer %s", e.App, e.Holders, e.Signer)
}

// Curator is a curator folder.
type Curator struct {
	Dir string
}

// Path is name inside the folder.
func (c Curator) Path(name ...string) string {
	return filepath.Join(append([]string{c.Dir}, name...)...)
}

// SignedPath is where catalog version v gathers its signatures.
func (c Curator) SignedPath(v int64) string {
	return c.Path(SignedDir, strconv.FormatInt(v, 10)+".json")
}

// Draft reads draft.json.
func (c Curator) Draft() (*Catalog, error) {
	path := c.Path(DraftFile)
	data, err := readFileCapped(path, MaxCatalogSize)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w in %s", ErrNoDraft, c.Dir)
	}
	if err != nil {
		return nil, err
	}
	var cat Catalog
	if err := StrictUnmarshal(data, &cat); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return &cat, nil
}

// saveDraft checks cat as a signed catalog would be checked, then writes it.
func (c Curator) saveDraft(cat *Catalog) error {
	if _, err := cat.Payload(); err != nil {
		return err
	}
	data, err := stdjson.MarshalIndent(cat, "", "  ")
	if err != nil {
		return fmt.Errorf("save draft: %w", err)
	}
	if err := atomicfile.Write(c.Path(DraftFile), append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("save draft %s: %w", c.Path(DraftFile), err)
	}
	return nil
}

// Published returns the root nodes pin now (root.json) and the registry's name.
func (c Curator) Published() (Root, string, error) {
	return ReadRootFile(c.Path(RootFileName))
}

// signing reports whether the draft's version has signatures already.
func (c Curator) signing(cat *Catalog) bool {
	_, err := os.Stat(c.SignedPath(cat.Version))
	return err == nil
}

// nextVersion moves cat to the next version, refusing past the last one.
func nextVersion(cat *Catalog) error {
	if cat.Version >= MaxCatalogVersion {
		return fmt.Errorf("draft: version %d is the last one", cat.Version)
	}
	cat.Version++
	return nil
}

// openForEdit returns the draft ready for a change: if its version has
// signatures already, the next version, valid for validity from now.
func (c Curator) openForEdit(validity time.Duration, now time.Time) (*Catalog, bool, error) {
	cat, err := c.Draft()
	if err != nil {
		return nil, false, err
	}
	if !c.signing(cat) {
		return cat, false, nil
	}
	if err := checkValidity(validity); err != nil {
		return nil, false, err
	}
	if err := nextVersion(cat); err != nil {
		return nil, false, err
	}
	cat.Expires = FormatExpires(now.Add(validity))
	return cat, true, nil
}

func checkValidity(validity time.Duration) error {
	if validity <= 0 {
		return &OptionError{Option: "validity", Err: fmt.Errorf("validity %s must be positive", validity)}
	}
	return nil
}

// Init makes dir a curator folder: root.json with root version 1 (keys,
// DIDs, and threshold) and the draft of catalog version 1, empty, valid
// for validity from now.
func (c Curator) Init(name string, keys []string, threshold int, validity time.Duration, now time.Time) (*Catalog, error) {
	root := Root{Version: 1, Keys: keys, Threshold: threshold}
	if _, err := os.Stat(c.Path(DraftFile)); err == nil {
		return nil, fmt.Errorf("%s exists: %w", c.Path(DraftFile), ErrCuratorExists)
	}
	if err := root.Check(); err != nil {
		return nil, &OptionError{Option: "root", Err: err}
	}
	if err := checkValidity(validity); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("init: %w", err)
	}
	cat := NewCatalog(name, 1, now.Add(validity), root)
	if _, err := cat.Payload(); err != nil {
		return nil, err
	}
	if err := WriteRootFile(c.Path(RootFileName), name, root); err != nil {
		return nil, err
	}
	if err := c.saveDraft(cat); err != nil {
		return nil, err
	}
	return cat, nil
}

// Added is one manifest Add put in the draft.
type Added struct {
	ID        string `json:"id"`
	Version   string `json:"version"`
	Channel   string `json:"channel"`
	CID       string `json:"cid"`
	Developer string `json:"developer"`
	// Delegated is true when Add delegated the app id to the developer.
	Delegated bool `json:"delegated"`
}

// Edit is what an operation changed in the draft.
type Edit struct {
	Draft *Catalog
	// Started is true when the change started a new catalog version
	// because the draft's version has signatures.
	Started bool
}

// Add verifies signed developer manifests (archy app sign output, one file
// each) and puts them in the draft. An app id no developer holds yet is
// delegated to the signer; one delegated to others is refused with a
// *DelegationError unless delegate is set, which adds the signer. Nothing
// is saved unless every file is added.
func (c Curator) Add(files []string, delegate bool, validity time.Duration, now time.Time) (Edit, []Added, error) {
	cat, started, err := c.openForEdit(validity, now)
	if err != nil {
		return Edit{}, nil, err
	}
	var out []Added
	for _, path := range files {
		a, err := addFile(cat, path, delegate)
		if err != nil {
			return Edit{}, nil, fmt.Errorf("add %s: %w", path, err)
		}
		out = append(out, a)
	}
	if err := c.saveDraft(cat); err != nil {
		return Edit{}, nil, err
	}
	return Edit{Draft: cat, Started: started}, out, nil
}

func addFile(cat *Catalog, path string, delegate bool) (Added, error) {
	data, err := readFileCapped(path, did.MaxEnvelopeSize)
	if err != nil {
		return Added{}, err
	}
	v, err := VerifyEnvelope(data)
	if err != nil {
		return Added{}, err
	}
	id := v.Manifest.ID
	holders := cat.Delegates(id)
	delegated := false
	switch {
	case slices.Contains(holders, v.Signer):
	case len(holders) == 0 || delegate:
		cat.Delegate(v.Signer, id)
		delegated = true
	default:
		return Added{}, &DelegationError{App: id, Holders: holders, Signer: v.Signer}
	}
	if err := cat.Put(v); err != nil {
		return Added{}, err
	}
	i := slices.IndexFunc(cat.Entries, func(e Entry) bool { return e.ID == id && e.Manifest == v.CID.String() })
	e := cat.Entries[i]
	return Added{ID: id, Version: e.Version, Channel: e.Channel, CID: e.Manifest, Developer: v.Signer, Delegated: delegated}, nil
}

// Bump sets the draft's expiry to validity from now, starting the next
// version if the draft's version has signatures: a registry re-publishes
// before its catalog expires even when no app changed.
func (c Curator) Bump(validity time.Duration, now time.Time) (Edit, error) {
	if err := checkValidity(validity); err != nil {
		return Edit{}, err
	}
	cat, err := c.Draft()
	if err != nil {
		return Edit{}, err
	}
	started := c.signing(cat)
	if started {
		if err := nextVersion(cat); err != nil {
			return Edit{}, err
		}
	}
	cat.Expires = FormatExpires(now.Add(validity))
	if err := c.saveDraft(cat); err != nil {
		return Edit{}, err
	}
	return Edit{Draft: cat, Started: started}, nil
}

// RootChange is a change of root keys: DIDs to add and to remove, and a
// new threshold (0: unchanged).
type RootChange struct {
	Add, Remove []string
	Threshold   int
}

// Rotate puts in the draft the next root version after the published one
// (or changes the one already there) with ch applied. It returns the draft
// and the published root; the catalog must then be signed by a threshold
// of both.
func (c Curator) Rotate(ch RootChange, validity time.Duration, now time.Time) (Edit, Root, error) {
	pub, _, err := c.Published()
	if err != nil {
		return Edit{}, Root{}, err
	}
	cat, started, err := c.openForEdit(validity, now)
	if err != nil {
		return Edit{}, Root{}, err
	}
	root := cat.Root
	if root.Version == pub.Version {
		root = Root{Version: pub.Version + 1, Keys: slices.Clone(pub.Keys), Threshold: pub.Threshold}
	}
	for _, id := range ch.Remove {
		i := slices.Index(root.Keys, id)
		if i < 0 {
			return Edit{}, Root{}, &OptionError{Option: "remove", Err: fmt.Errorf("%s is %w", id, ErrNotRootKey)}
		}
		root.Keys = slices.Delete(root.Keys, i, i+1)
	}
	for _, id := range ch.Add {
		if slices.Contains(root.Keys, id) {
			return Edit{}, Root{}, &OptionError{Option: "add", Err: fmt.Errorf("%s is a root key already", id)}
		}
		root.Keys = append(root.Keys, id)
	}
	if ch.Threshold != 0 {
		root.Threshold = ch.Threshold
	}
	if err := root.Check(); err != nil {
		return Edit{}, Root{}, fmt.Errorf("rotate: the new root: %w", err)
	}
	cat.Root = root
	if err := c.saveDraft(cat); err != nil {
		return Edit{}, Root{}, err
	}
	return Edit{Draft: cat, Started: started}, pub, nil
}

// Signing is where a catalog version's signatures stand after Sign.
type Signing struct {
	Draft *Catalog
	// File is signed/V.json.
	File string
	// Signatures counts the distinct keys of the draft's root that signed.
	Signatures int
	// Rotation is true when the draft introduces a new root: Previous is
	// the published root and PreviousSignatures how many of its keys signed.
	Rotation           bool
	Previous           Root
	PreviousSignatures int
	// Published lists the files written when the threshold was reached.
	Published []string
}

// Done reports whether the catalog reached its threshold (for a rotation,
// a threshold of the old root and of the new one).
func (s Signing) Done() bool {
	return s.Signatures >= s.Draft.Root.Threshold && (!s.Rotation || s.PreviousSignatures >= s.Previous.Threshold)
}

// Sign adds key's signature to the draft's version in signed/V.json. The
// payload is produced once; every later signature is over exactly those
// bytes. When a threshold has signed, the catalog is checked as a node
// would check it and published (see publish).
func (c Curator) Sign(key *did.Key, now time.Time) (Signing, error) {
	cat, err := c.Draft()
	if err != nil {
		return Signing{}, err
	}
	pub, name, err := c.Published()
	if err != nil {
		return Signing{}, err
	}
	rotation := cat.Root.Version == pub.Version+1
	if !rotation && !cat.Root.Equal(pub) {
		return Signing{}, fmt.Errorf("%w (draft root version %d, published root version %d)", ErrDraftRoot, cat.Root.Version, pub.Version)
	}
	if !cat.Root.has(key.DID()) && !(rotation && pub.has(key.DID())) {
		return Signing{}, fmt.Errorf("key %s is %w of this catalog", key.DID(), ErrNotRootKey)
	}
	payload, err := cat.Payload()
	if err != nil {
		return Signing{}, err
	}
	path := c.SignedPath(cat.Version)
	env, err := readEnvelopeFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if env, err = SignCatalog(payload, key); err != nil {
			return Signing{}, err
		}
	case err != nil:
		return Signing{}, err
	case !bytes.Equal(env.Payload, payload):
		return Signing{}, fmt.Errorf("%s holds other bytes for catalog version %d than the draft: %w; restore it or remove %s to start over",
			path, cat.Version, ErrDraftEdited, path)
	default:
		env.AddSignature(key)
	}
	if err := writeEnvelope(path, env); err != nil {
		return Signing{}, err
	}
	s := Signing{Draft: cat, File: path, Signatures: rootSigners(env, cat.Root), Rotation: rotation}
	if rotation {
		s.Previous, s.PreviousSignatures = pub, rootSigners(env, pub)
	}
	if s.Done() {
		if s.Published, err = c.publish(env, cat, pub, name, rotation, now); err != nil {
			return Signing{}, err
		}
	}
	return s, nil
}

// rootSigners counts the distinct keys of r whose signatures on env hold,
// by the rule nodes use (did.Envelope.Verify).
func rootSigners(env *did.Envelope, r Root) int {
	signers, err := env.Verify(CatalogPayloadType, 1, r.has)
	if err != nil {
		return 0
	}
	return len(signers)
}

// publish checks a fully signed catalog as a node would (VerifyCatalog
// and, for a rotation, the walk from the published root) and writes
// catalog.json and, for a rotation, roots/R.json and root.json. It
// refuses to replace a published catalog of the same or a later version.
func (c Curator) publish(env *did.Envelope, cat *Catalog, pub Root, name string, rotation bool, now time.Time) ([]string, error) {
	data, err := env.Marshal()
	if err != nil {
		return nil, err
	}
	if _, err := VerifyCatalog(bytes.NewReader(data), cat.Root, now); err != nil {
		return nil, fmt.Errorf("the signed catalog would be refused by nodes: %w", err)
	}
	if rotation {
		if _, _, _, err := readRotation(bytes.NewReader(data), pub); err != nil {
			return nil, fmt.Errorf("the signed catalog would be refused by nodes: %w", err)
		}
	}
	catalog := c.Path(PublishedFile)
	if old, err := readEnvelopeFile(catalog); err == nil {
		if prev, err := ParseCatalog(old.Payload); err == nil && prev.Version >= cat.Version && !bytes.Equal(old.Payload, env.Payload) {
			return nil, fmt.Errorf("%s already holds catalog version %d; not publishing version %d over it", catalog, prev.Version, cat.Version)
		}
	}
	out := []string{catalog}
	if rotation {
		p := c.Path(RootsDir, strconv.FormatInt(cat.Root.Version, 10)+".json")
		if err := writeEnvelope(p, env); err != nil {
			return nil, err
		}
		if err := WriteRootFile(c.Path(RootFileName), name, cat.Root); err != nil {
			return nil, err
		}
		out = append(out, p, c.Path(RootFileName))
	}
	if err := writeEnvelope(catalog, env); err != nil {
		return nil, err
	}
	return out, nil
}

// Latest is the catalog a curator looks at by default: catalog.json when
// one was published, else draft.json.
func (c Curator) Latest() string {
	if _, err := os.Stat(c.Path(PublishedFile)); err == nil {
		return c.Path(PublishedFile)
	}
	return c.Path(DraftFile)
}

// CatalogFile is a catalog file read for display: a signed catalog or a
// draft.
type CatalogFile struct {
	Catalog *Catalog
	// Signed is true for a signed catalog; KeyIDs are its signatures' key
	// ids, listed and not verified.
	Signed bool
	KeyIDs []string
}

// ReadCatalogFile reads a signed catalog or a draft without verifying
// signatures (VerifyCatalog and TrustStore do that).
func ReadCatalogFile(path string) (*CatalogFile, error) {
	data, err := readFileCapped(path, MaxCatalogSize)
	if err != nil {
		return nil, err
	}
	if env, err := did.ParseEnvelope(data); err == nil {
		if env.PayloadType != CatalogPayloadType {
			return nil, fmt.Errorf("%s: %w: %q is not a catalog", path, did.ErrPayloadType, env.PayloadType)
		}
		cat, err := ParseCatalog(env.Payload)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		f := &CatalogFile{Catalog: cat, Signed: true}
		for _, s := range env.Signatures {
			f.KeyIDs = append(f.KeyIDs, s.KeyID)
		}
		return f, nil
	}
	var cat Catalog
	if err := StrictUnmarshal(data, &cat); err != nil {
		return nil, fmt.Errorf("%s is neither a signed catalog nor a draft: %w", path, err)
	}
	return &CatalogFile{Catalog: &cat}, nil
}

// writeEnvelope writes an envelope's JSON atomically.
func writeEnvelope(path string, env *did.Envelope) error {
	data, err := env.Marshal()
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := atomicfile.Write(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// readEnvelopeFile reads and parses a catalog envelope file.
func readEnvelopeFile(path string) (*did.Envelope, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	_, env, err := ReadCatalog(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return env, nil
}

// PinnedTrustStore opens a node's trust store folder, pinning the root in
// rootFile (a curator's root.json) on first use. With a root pinned
// already, rootFile may be empty; if given, it must be that root
// (ErrPinnedRoot). Without one, rootFile is needed (ErrNoPinnedRoot).
func PinnedTrustStore(dir, rootFile string) (*TrustStore, error) {
	pinned := filepath.Join(dir, RootFileName)
	have, name, err := ReadRootFile(pinned)
	switch {
	case err == nil && rootFile != "":
		want, _, err := ReadRootFile(rootFile)
		if err != nil {
			return nil, err
		}
		if !want.Equal(have) {
			return nil, fmt.Errorf("%s %w in %s; remove that file to pin another root", rootFile, ErrPinnedRoot, pinned)
		}
	case err == nil:
	case errors.Is(err, fs.ErrNotExist) && rootFile != "":
		if have, name, err = ReadRootFile(rootFile); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("pin root: %w", err)
		}
		if err := WriteRootFile(pinned, name, have); err != nil {
			return nil, err
		}
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("%s %w", dir, ErrNoPinnedRoot)
	default:
		return nil, err
	}
	return OpenTrustStore(TrustConfig{Dir: dir, Root: have})
}

var (
	// ErrNoPinnedRoot is returned by PinnedTrustStore for a folder with no
	// pinned root when no root file is given.
	ErrNoPinnedRoot = errors.New("has no pinned root")
	// ErrPinnedRoot is returned by PinnedTrustStore when the root file
	// given is not the root pinned already.
	ErrPinnedRoot = errors.New("differs from the root pinned")
)
