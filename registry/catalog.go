package registry

import (
	"bytes"
	stdjson "encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	cid "github.com/ipfs/go-cid"

	"github.com/archy-node/archy/cas"
	"github.com/archy-node/archy/did"
)

// The catalog of a curated registry: a versioned, expiring list of vetted
// app manifests, signed in a DSSE envelope by a threshold of the registry's
// root keys. It is TUF's protections folded into one document: the catalog
// carries its root (keys, threshold, root version), so one signed file is
// root, timestamp and targets at once. A root rotation is a catalog whose
// root version is the previous one plus one, signed by a threshold of both
// roots; nodes that missed rotations walk them one version at a time
// (TrustStore.Update with a Rotations source), like TUF's root chain.
const (
	// CatalogSchema is the only catalog schema this version reads and writes.
	CatalogSchema = "archy.catalog/v1"
	// CatalogPayloadType is the DSSE payload type of a signed catalog.
	CatalogPayloadType = "application/vnd.archy.catalog.v1+json"
	// MaxCatalogSize caps a signed catalog as it travels (the DSSE envelope
	// JSON read from a peer, a file or a relay). Readers stop at the first
	// byte past it.
	MaxCatalogSize = 4 << 20
	// MaxCatalogVersion is the highest catalog or root version: 2^53, the
	// largest integer every JSON reader holds exactly.
	MaxCatalogVersion = 1 << 53
	// ExpiresLayout is the only accepted form of a catalog's expiry: UTC,
	// whole seconds, as TUF writes it.
	ExpiresLayout = "2006-01-02T15:04:05Z"
	// DefaultChannel is the channel of an entry that names none.
	DefaultChannel = "stable"
)

var (
	// ErrThreshold is returned when fewer distinct root keys than the
	// root's threshold signed a catalog. It is did.ErrThreshold, so either
	// matches.
	ErrThreshold = did.ErrThreshold
	// ErrRollback is returned when a catalog is older than the trusted one:
	// a lower catalog version, a lower root version, or the trusted version
	// with different bytes.
	ErrRollback = errors.New("catalog rollback")
	// ErrExpired is returned when a catalog's expiry has passed.
	ErrExpired = errors.New("catalog expired")
	// ErrRootRotation is returned when a catalog changes the root without a
	// valid rotation: a skipped or repeated root version, a rotation not
	// signed by a threshold of both the old and the new keys, or a catalog
	// whose root differs from the trusted root of the same version.
	ErrRootRotation = errors.New("invalid root rotation")
	// ErrRotationMissing is returned when a catalog names a newer root
	// than the trusted one and the rotations leading to it were not
	// offered: the node cannot check it yet (it matches ErrRootRotation).
	ErrRotationMissing = fmt.Errorf("%w: rotation missing", ErrRootRotation)
	// ErrRootChain is returned when more root rotations are offered than
	// the trust store walks in one update.
	ErrRootChain = errors.New("root rotation chain too long")
	// ErrUntrustedSigner is returned when a catalog entry's manifest is
	// signed by a DID the catalog does not delegate that app id to.
	ErrUntrustedSigner = errors.New("manifest signer not delegated for the app")
	// ErrCIDMismatch is returned when an entry's embedded manifest does not
	// hash to the CID the entry pins.
	ErrCIDMismatch = errors.New("manifest does not match the pinned cid")
	// ErrMixAndMatch is returned when an entry's embedded manifest is
	// another app, version, channel or image set than the entry says.
	ErrMixAndMatch = errors.New("catalog entry does not match its manifest")
	// ErrTooLarge is returned when a catalog exceeds MaxCatalogSize.
	ErrTooLarge = errors.New("over the size cap")
	// ErrInvalidCatalog is returned when signed catalog bytes do not parse
	// strictly or break a rule of the schema.
	ErrInvalidCatalog = errors.New("invalid catalog")
)

// Catalog is the signed payload of a curated registry (archy.catalog/v1).
type Catalog struct {
	Schema string `json:"schema"`
	// Name is the registry's human name.
	Name string `json:"name,omitempty"`
	// Version increases with every published catalog (1..2^53).
	Version int64 `json:"version"`
	// Expires is when nodes stop trusting this catalog (ExpiresLayout).
	Expires string `json:"expires"`
	// Root names the keys that sign this catalog.
	Root Root `json:"root"`
	// Delegations say which developer may publish which app ids.
	Delegations []Delegation `json:"delegations,omitempty"`
	// Entries are the vetted apps.
	Entries []Entry `json:"entries,omitempty"`
}

// Root is the registry's signing authority: a threshold of distinct keys.
// Version increases by exactly one at each rotation.
type Root struct {
	Version   int64    `json:"version"`
	Keys      []string `json:"keys"`
	Threshold int      `json:"threshold"`
}

// Delegation lets one developer DID publish the listed app ids.
type Delegation struct {
	Developer string   `json:"developer"`
	Apps      []string `json:"apps"`
}

// Entry is one vetted app in a catalog. The full signed manifest travels
// inside, so one fetch carries everything a node needs to verify it.
type Entry struct {
	ID      string `json:"id"`
	Version string `json:"version"`
	Channel string `json:"channel"`
	// Manifest is the CID of the manifest's signed payload.
	Manifest string `json:"manifest"`
	// Images are the CIDs of the app's image archives, in container order.
	Images   []string      `json:"images,omitempty"`
	Envelope *did.Envelope `json:"envelope"`
}

// ExpiresAt returns the catalog's expiry as a time.
func (c *Catalog) ExpiresAt() (time.Time, error) {
	t, err := time.Parse(ExpiresLayout, c.Expires)
	if err != nil || t.Format(ExpiresLayout) != c.Expires {
		return time.Time{}, fmt.Errorf("%w: expires %q is not of the form %s", ErrInvalidCatalog, c.Expires, ExpiresLayout)
	}
	return t, nil
}

// FormatExpires formats t as a catalog expiry (UTC, whole seconds).
func FormatExpires(t time.Time) string { return t.UTC().Truncate(time.Second).Format(ExpiresLayout) }

// NewCatalog starts an empty catalog.
func NewCatalog(name string, version int64, expires time.Time, root Root) *Catalog {
	return &Catalog{Schema: CatalogSchema, Name: name, Version: version, Expires: FormatExpires(expires), Root: root}
}

// Delegate lets developer publish apps; app ids already delegated to it
// are kept once.
func (c *Catalog) Delegate(developer string, apps ...string) {
	for i := range c.Delegations {
		if c.Delegations[i].Developer == developer {
			for _, a := range apps {
				if !slices.Contains(c.Delegations[i].Apps, a) {
					c.Delegations[i].Apps = append(c.Delegations[i].Apps, a)
				}
			}
			slices.Sort(c.Delegations[i].Apps)
			return
		}
	}
	d := Delegation{Developer: developer, Apps: slices.Clone(apps)}
	slices.Sort(d.Apps)
	c.Delegations = append(c.Delegations, d)
	slices.SortFunc(c.Delegations, func(a, b Delegation) int { return cmpString(a.Developer, b.Developer) })
}

// Delegated reports whether developer may publish app.
func (c *Catalog) Delegated(developer, app string) bool {
	for _, d := range c.Delegations {
		if d.Developer == developer && slices.Contains(d.Apps, app) {
			return true
		}
	}
	return false
}

// Delegates returns the developers the catalog delegates app to.
func (c *Catalog) Delegates(app string) []string {
	var out []string
	for _, d := range c.Delegations {
		if slices.Contains(d.Apps, app) {
			out = append(out, d.Developer)
		}
	}
	return out
}

// Put adds a verified manifest as an entry, replacing the entry of the same
// app id and channel. The signer must already be delegated the app id.
func (c *Catalog) Put(v *Verified) error {
	m := v.Manifest
	if !c.Delegated(v.Signer, m.ID) {
		return fmt.Errorf("add %s to catalog: %w: %s is not delegated %q", m.ID, ErrUntrustedSigner, v.Signer, m.ID)
	}
	e := Entry{
		ID:       m.ID,
		Version:  m.Version,
		Channel:  channelOf(m),
		Manifest: v.CID.String(),
		Images:   imageCIDs(m),
		Envelope: v.Envelope,
	}
	for i := range c.Entries {
		if c.Entries[i].ID == e.ID && c.Entries[i].Channel == e.Channel {
			c.Entries[i] = e
			return nil
		}
	}
	c.Entries = append(c.Entries, e)
	slices.SortFunc(c.Entries, func(a, b Entry) int {
		if a.ID != b.ID {
			return cmpString(a.ID, b.ID)
		}
		return cmpString(a.Channel, b.Channel)
	})
	return nil
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func channelOf(m *Manifest) string {
	if m.Channel == "" {
		return DefaultChannel
	}
	return m.Channel
}

// imageCIDs lists a manifest's image CIDs in container order, each once.
func imageCIDs(m *Manifest) []string {
	var out []string
	for _, c := range m.Containers {
		if c.Image.CID != "" && !slices.Contains(out, c.Image.CID) {
			out = append(out, c.Image.CID)
		}
	}
	return out
}

// Payload returns the catalog's RFC 8785 (JCS) bytes: the exact bytes that
// are signed and hashed. Produce them once and keep them; verifiers never
// re-serialise. The catalog is checked first, so nothing malformed is
// signed.
func (c *Catalog) Payload() ([]byte, error) {
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("catalog payload: %w", err)
	}
	raw, err := stdjson.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("catalog payload: %w", err)
	}
	v := jsontext.Value(raw)
	if err := v.Canonicalize(); err != nil {
		return nil, fmt.Errorf("catalog payload: canonicalise: %w", err)
	}
	return []byte(v), nil
}

// SignCatalog makes a catalog envelope over payload (from Payload) signed
// by keys. More signatures are added with (*did.Envelope).AddSignature.
func SignCatalog(payload []byte, keys ...*did.Key) (*did.Envelope, error) {
	env, err := did.SignEnvelope(CatalogPayloadType, payload, keys...)
	if err != nil {
		return nil, fmt.Errorf("sign catalog: %w", err)
	}
	return env, nil
}

// ParseCatalog parses signed catalog bytes strictly (no unknown, duplicate
// or case-variant keys, no trailing bytes, integers within 2^53) and checks
// the schema's structural rules. It does not check signatures, expiry or
// the embedded manifests: call it only after the envelope's threshold
// holds. Errors match ErrInvalidCatalog.
func ParseCatalog(payload []byte) (*Catalog, error) {
	if len(payload) > MaxCatalogSize {
		return nil, fmt.Errorf("parse catalog: %w: %d bytes exceeds the %d-byte cap", ErrTooLarge, len(payload), MaxCatalogSize)
	}
	var c Catalog
	if err := StrictUnmarshal(payload, &c); err != nil {
		return nil, fmt.Errorf("parse catalog: %w: %w", ErrInvalidCatalog, err)
	}
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("parse catalog: %w", err)
	}
	return &c, nil
}

func invalidf(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidCatalog, fmt.Sprintf(format, a...))
}

// check applies the structural rules of the schema; every error names the
// field.
func (c *Catalog) check() error {
	if c.Schema != CatalogSchema {
		return invalidf("schema %q, want %q", c.Schema, CatalogSchema)
	}
	if c.Version < 1 || c.Version > MaxCatalogVersion {
		return invalidf("version %d is outside 1..2^53", c.Version)
	}
	if _, err := c.ExpiresAt(); err != nil {
		return err
	}
	if err := c.Root.check(); err != nil {
		return err
	}
	devs := make(map[string]bool)
	for i, d := range c.Delegations {
		if err := checkDID(d.Developer); err != nil {
			return invalidf("delegations[%d].developer: %v", i, err)
		}
		if devs[d.Developer] {
			return invalidf("delegations[%d].developer %s is delegated twice", i, d.Developer)
		}
		devs[d.Developer] = true
		if len(d.Apps) == 0 {
			return invalidf("delegations[%d].apps is empty", i)
		}
		for j, a := range d.Apps {
			if a == "" {
				return invalidf("delegations[%d].apps[%d] is empty", i, j)
			}
		}
	}
	type key struct{ id, channel string }
	seen := make(map[key]bool)
	for i, e := range c.Entries {
		if e.ID == "" {
			return invalidf("entries[%d].id is empty", i)
		}
		if e.Channel == "" {
			return invalidf("entries[%d].channel is empty", i)
		}
		if e.Version == "" {
			return invalidf("entries[%d].version is empty", i)
		}
		if seen[key{e.ID, e.Channel}] {
			return invalidf("entries[%d]: %s is listed twice on channel %s", i, e.ID, e.Channel)
		}
		seen[key{e.ID, e.Channel}] = true
		if _, err := cas.Parse(e.Manifest); err != nil {
			return invalidf("entries[%d].manifest: %v", i, err)
		}
		for j, im := range e.Images {
			if _, err := cas.Parse(im); err != nil {
				return invalidf("entries[%d].images[%d]: %v", i, j, err)
			}
		}
		if e.Envelope == nil {
			return invalidf("entries[%d].envelope is missing", i)
		}
		if n := len(e.Envelope.Signatures); n == 0 || n > did.MaxSignatures {
			return invalidf("entries[%d].envelope has %d signatures (1..%d)", i, n, did.MaxSignatures)
		}
	}
	return nil
}

func (r Root) check() error {
	if r.Version < 1 || r.Version > MaxCatalogVersion {
		return invalidf("root.version %d is outside 1..2^53", r.Version)
	}
	if len(r.Keys) == 0 || len(r.Keys) > did.MaxSignatures {
		return invalidf("root.keys has %d keys (1..%d)", len(r.Keys), did.MaxSignatures)
	}
	seen := make(map[string]bool)
	for i, k := range r.Keys {
		if err := checkDID(k); err != nil {
			return invalidf("root.keys[%d]: %v", i, err)
		}
		if seen[k] {
			return invalidf("root.keys[%d]: %s is listed twice", i, k)
		}
		seen[k] = true
	}
	if r.Threshold < 1 || r.Threshold > len(r.Keys) {
		return invalidf("root.threshold %d is outside 1..%d", r.Threshold, len(r.Keys))
	}
	return nil
}

// Check reports whether r is a usable root: a version in 1..2^53, distinct
// canonical did:key keys and a threshold between 1 and their number.
func (r Root) Check() error { return r.check() }

// Equal reports whether two roots are the same version, key set and threshold.
func (r Root) Equal(o Root) bool {
	if r.Version != o.Version || r.Threshold != o.Threshold || len(r.Keys) != len(o.Keys) {
		return false
	}
	a, b := slices.Clone(r.Keys), slices.Clone(o.Keys)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// has reports whether did is one of the root's keys.
func (r Root) has(id string) bool { return slices.Contains(r.Keys, id) }

// checkDID accepts only the canonical spelling of an Ed25519 did:key, so
// one key has exactly one name in a root or a delegation.
func checkDID(s string) error {
	pub, err := did.Parse(s)
	if err != nil {
		return err
	}
	if did.FromPublicKey(pub) != s {
		return fmt.Errorf("%q is not the canonical form of its did:key", s)
	}
	return nil
}

// ReadCatalog reads a signed catalog (DSSE envelope JSON) from r, stopping
// at the first byte past MaxCatalogSize, and parses the envelope. The
// payload is not looked at.
func ReadCatalog(r io.Reader) (raw []byte, env *did.Envelope, err error) {
	raw, err = readCapped(r, MaxCatalogSize)
	if err != nil {
		return nil, nil, fmt.Errorf("read catalog: %w", err)
	}
	env, err = did.ParseEnvelope(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("read catalog: %w", err)
	}
	return raw, env, nil
}

// readCapped reads all of r but never more than max+1 bytes: memory stays
// bounded however much a peer or a file holds. Callers say what was read.
func readCapped(r io.Reader, max int64) ([]byte, error) {
	var buf bytes.Buffer
	n, err := buf.ReadFrom(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if n > max {
		return nil, fmt.Errorf("%w: more than %d bytes (the cap)", ErrTooLarge, max)
	}
	return buf.Bytes(), nil
}

// readFileCapped reads a file but no more than max bytes of it.
func readFileCapped(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := readCapped(f, max)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return data, nil
}

// VerifiedCatalog is a catalog whose signatures, strict parse, expiry and
// every entry held.
type VerifiedCatalog struct {
	Catalog *Catalog
	// Payload is the exact signed bytes; CID is computed over them.
	Payload []byte
	CID     cid.Cid
	// Signers are the distinct root keys whose signatures held.
	Signers  []string
	Envelope *did.Envelope
	// Entries pairs each entry with its verified manifest, in catalog order.
	Entries []VerifiedEntry
}

// VerifiedEntry is a catalog entry and its verified manifest.
type VerifiedEntry struct {
	Entry    Entry
	Manifest *Verified
}

// verifySigned checks env's payload type, then a threshold of root's keys,
// then parses the payload strictly. Nothing is parsed unless the threshold
// holds.
func verifySigned(env *did.Envelope, root Root) (*Catalog, []string, error) {
	signers, err := env.Verify(CatalogPayloadType, root.Threshold, root.has)
	if err != nil {
		return nil, nil, err
	}
	c, err := ParseCatalog(env.Payload)
	if err != nil {
		return nil, nil, err
	}
	return c, signers, nil
}

// verifyEntries checks every entry against its embedded manifest: the
// manifest envelope verifies, hashes to the pinned CID, is the entry's app,
// version, channel and images, and is signed by a delegated developer.
func verifyEntries(c *Catalog) ([]VerifiedEntry, error) {
	out := make([]VerifiedEntry, 0, len(c.Entries))
	for i, e := range c.Entries {
		v, err := VerifyParsed(e.Envelope)
		if err != nil {
			return nil, fmt.Errorf("entries[%d] (%s): %w", i, e.ID, err)
		}
		if v.CID.String() != e.Manifest {
			return nil, fmt.Errorf("entries[%d] (%s): %w: manifest is %s, the entry pins %s", i, e.ID, ErrCIDMismatch, v.CID, e.Manifest)
		}
		m := v.Manifest
		switch {
		case m.ID != e.ID:
			return nil, fmt.Errorf("entries[%d] (%s): %w: the manifest is app %q", i, e.ID, ErrMixAndMatch, m.ID)
		case m.Version != e.Version:
			return nil, fmt.Errorf("entries[%d] (%s): %w: the manifest is version %q, the entry says %q", i, e.ID, ErrMixAndMatch, m.Version, e.Version)
		case channelOf(m) != e.Channel:
			return nil, fmt.Errorf("entries[%d] (%s): %w: the manifest is channel %q, the entry says %q", i, e.ID, ErrMixAndMatch, channelOf(m), e.Channel)
		case !slices.Equal(imageCIDs(m), e.Images):
			return nil, fmt.Errorf("entries[%d] (%s): %w: the manifest's images are %v, the entry says %v", i, e.ID, ErrMixAndMatch, imageCIDs(m), e.Images)
		}
		if !c.Delegated(v.Signer, e.ID) {
			return nil, fmt.Errorf("entries[%d] (%s): %w: signed by %s", i, e.ID, ErrUntrustedSigner, v.Signer)
		}
		out = append(out, VerifiedEntry{Entry: e, Manifest: v})
	}
	return out, nil
}

// VerifyCatalog checks one signed catalog read from r against root, with
// no trusted state: size, envelope, payload type (before anything is
// parsed), a threshold of root's keys, strict parse, the catalog's root
// being root, expiry at now, and every entry. Nodes follow a registry
// through a TrustStore, which adds rollback protection and root rotation.
func VerifyCatalog(r io.Reader, root Root, now time.Time) (*VerifiedCatalog, error) {
	if err := root.check(); err != nil {
		return nil, fmt.Errorf("verify catalog: trusted root: %w", err)
	}
	_, env, err := ReadCatalog(r)
	if err != nil {
		return nil, err
	}
	c, signers, err := verifySigned(env, root)
	if err != nil {
		return nil, fmt.Errorf("verify catalog: %w", err)
	}
	if !c.Root.Equal(root) {
		return nil, fmt.Errorf("verify catalog: %w: the catalog names root version %d, the trusted root is version %d", ErrRootRotation, c.Root.Version, root.Version)
	}
	if err := checkExpiry(c, now); err != nil {
		return nil, err
	}
	entries, err := verifyEntries(c)
	if err != nil {
		return nil, fmt.Errorf("verify catalog %d: %w", c.Version, err)
	}
	return &VerifiedCatalog{Catalog: c, Payload: env.Payload, CID: cas.Sum(env.Payload), Signers: signers, Envelope: env, Entries: entries}, nil
}

func checkExpiry(c *Catalog, now time.Time) error {
	exp, err := c.ExpiresAt()
	if err != nil {
		return err
	}
	if !now.Before(exp) {
		return fmt.Errorf("verify catalog %d: %w at %s", c.Version, ErrExpired, c.Expires)
	}
	return nil
}
