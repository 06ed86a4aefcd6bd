package registry

import (
	"bytes"
	"context"
	stdjson "encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/archy-node/archy/cas"
)

// A catalog travels between nodes as one of three messages: the signed
// catalog alone (its DSSE envelope), a bundle (the signed catalog with the
// root rotation chain that leads to its root, so a node that missed a
// rotation can follow), or a pointer to a bundle stored as a blob in the
// swarm (for bundles larger than a gossip message). Nothing in a bundle or
// a pointer is trusted: every chain link is checked against the root
// before it (TrustStore.Update), and a pointer only says what to fetch.
const (
	// BundleType is the type of a catalog bundle.
	BundleType = "archy.catalog-bundle/v1"
	// PointerType is the type of a pointer to a bundle blob.
	PointerType = "archy.catalog-pointer/v1"
	// MaxBundleSize caps a bundle's JSON: a catalog and its chain.
	MaxBundleSize = 16 << 20
	// maxPointerSize caps a pointer's JSON.
	maxPointerSize = 4 << 10
)

// Bundle is a signed catalog with the rotation chain a follower needs to
// reach its root.
type Bundle struct {
	Type string `json:"type"`
	// Chain holds, in root version order with none skipped, the signed
	// catalogs that introduced root versions; it may start anywhere and
	// need not reach back to version 2 (a follower uses what it lacks).
	Chain []Link `json:"chain,omitempty"`
	// Catalog is the signed catalog (DSSE envelope JSON), base64 in JSON.
	Catalog []byte `json:"catalog"`
}

// Link is the signed catalog that introduced one root version: signed by a
// threshold of root Version-1 and of root Version.
type Link struct {
	Version int64  `json:"version"`
	Catalog []byte `json:"catalog"`
}

// Pointer names a bundle stored as a blob in the swarm: the file whose
// BLAKE3 DAG root is CID, Size bytes long, carrying catalog Version of
// registry Registry under root RootVersion. Receivers use the versions to
// skip fetching what they have, and check them against the fetched bundle.
type Pointer struct {
	Type        string `json:"type"`
	Registry    string `json:"registry"`
	Version     int64  `json:"version"`
	RootVersion int64  `json:"root_version"`
	CID         string `json:"cid"`
	Size        int64  `json:"size"`
}

// MessageType returns the type a catalog message declares: BundleType,
// PointerType, or "" for a bare signed catalog (or anything else, which
// the parsers then refuse).
func MessageType(data []byte) string {
	var probe struct {
		Type string `json:"type"`
	}
	if len(data) > MaxBundleSize || stdjson.Unmarshal(data, &probe) != nil {
		return ""
	}
	switch probe.Type {
	case BundleType, PointerType:
		return probe.Type
	}
	return ""
}

// ParseBundle parses bundle bytes strictly and checks their shape: the
// size cap, a catalog, at most DefaultMaxRootRotations links in
// consecutive root versions from 2 up, each within MaxCatalogSize. The
// signatures are not looked at. Errors match ErrInvalidCatalog or
// ErrTooLarge.
func ParseBundle(data []byte) (*Bundle, error) {
	if len(data) > MaxBundleSize {
		return nil, fmt.Errorf("parse catalog bundle: %w: %d bytes exceeds the %d-byte cap", ErrTooLarge, len(data), MaxBundleSize)
	}
	var b Bundle
	if err := StrictUnmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("parse catalog bundle: %w: %w", ErrInvalidCatalog, err)
	}
	if err := b.check(); err != nil {
		return nil, fmt.Errorf("parse catalog bundle: %w", err)
	}
	if len(b.Chain) == 0 {
		b.Chain = nil // "chain": [] and no chain are one bundle
	}
	return &b, nil
}

func (b *Bundle) check() error {
	if b.Type != BundleType {
		return invalidf("type %q, want %q", b.Type, BundleType)
	}
	if len(b.Catalog) == 0 {
		return invalidf("catalog is missing")
	}
	if len(b.Catalog) > MaxCatalogSize {
		return fmt.Errorf("%w: catalog of %d bytes", ErrTooLarge, len(b.Catalog))
	}
	if len(b.Chain) > DefaultMaxRootRotations {
		return fmt.Errorf("%w: %w: %d links, at most %d", ErrInvalidCatalog, ErrRootChain, len(b.Chain), DefaultMaxRootRotations)
	}
	for i, l := range b.Chain {
		if l.Version < 2 || l.Version > MaxCatalogVersion {
			return invalidf("chain[%d].version %d is outside 2..2^53", i, l.Version)
		}
		if i > 0 && l.Version != b.Chain[i-1].Version+1 {
			return invalidf("chain[%d].version %d does not follow %d", i, l.Version, b.Chain[i-1].Version)
		}
		if len(l.Catalog) == 0 {
			return invalidf("chain[%d].catalog is missing", i)
		}
		if len(l.Catalog) > MaxCatalogSize {
			return fmt.Errorf("%w: chain[%d].catalog of %d bytes", ErrTooLarge, i, len(l.Catalog))
		}
	}
	return nil
}

// Marshal returns the bundle's JSON after checking its shape.
func (b *Bundle) Marshal() ([]byte, error) {
	b.Type = BundleType
	if err := b.check(); err != nil {
		return nil, fmt.Errorf("marshal catalog bundle: %w", err)
	}
	data, err := stdjson.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("marshal catalog bundle: %w", err)
	}
	if len(data) > MaxBundleSize {
		return nil, fmt.Errorf("marshal catalog bundle: %w: %d bytes", ErrTooLarge, len(data))
	}
	return data, nil
}

// Rotation returns the chain's link for root version v: the bundle is a
// Rotations source for TrustStore.Update.
func (b *Bundle) Rotation(ctx context.Context, v int64) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(b.Chain) > 0 {
		if i := v - b.Chain[0].Version; i >= 0 && i < int64(len(b.Chain)) {
			return io.NopCloser(bytes.NewReader(b.Chain[i].Catalog)), nil
		}
	}
	return nil, fmt.Errorf("root rotation %d: %w", v, fs.ErrNotExist)
}

// ParsePointer parses pointer bytes strictly and checks their fields.
func ParsePointer(data []byte) (*Pointer, error) {
	if len(data) > maxPointerSize {
		return nil, fmt.Errorf("parse catalog pointer: %w: %d bytes", ErrTooLarge, len(data))
	}
	var p Pointer
	if err := StrictUnmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("parse catalog pointer: %w: %w", ErrInvalidCatalog, err)
	}
	if err := p.check(); err != nil {
		return nil, fmt.Errorf("parse catalog pointer: %w", err)
	}
	return &p, nil
}

func (p *Pointer) check() error {
	switch {
	case p.Type != PointerType:
		return invalidf("type %q, want %q", p.Type, PointerType)
	case p.Registry == "":
		return invalidf("registry is empty")
	case p.Version < 1 || p.Version > MaxCatalogVersion:
		return invalidf("version %d is outside 1..2^53", p.Version)
	case p.RootVersion < 1 || p.RootVersion > MaxCatalogVersion:
		return invalidf("root_version %d is outside 1..2^53", p.RootVersion)
	case p.Size < 1 || p.Size > MaxBundleSize:
		return invalidf("size %d is outside 1..%d", p.Size, MaxBundleSize)
	}
	if _, err := cas.Parse(p.CID); err != nil {
		return invalidf("cid: %v", err)
	}
	return nil
}

// Marshal returns the pointer's JSON after checking its fields.
func (p *Pointer) Marshal() ([]byte, error) {
	p.Type = PointerType
	if err := p.check(); err != nil {
		return nil, fmt.Errorf("marshal catalog pointer: %w", err)
	}
	return stdjson.Marshal(p)
}

// AnyRotations asks each source in turn for a rotation: the first that has
// it answers. Every link is verified by the trust store whichever source
// gave it.
type AnyRotations []Rotations

// Rotation returns the first source's rotation v.
func (a AnyRotations) Rotation(ctx context.Context, v int64) (io.ReadCloser, error) {
	for _, r := range a {
		if r == nil {
			continue
		}
		rc, err := r.Rotation(ctx, v)
		if err == nil {
			return rc, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	return nil, fmt.Errorf("root rotation %d: %w", v, fs.ErrNotExist)
}

var (
	_ Rotations = (*Bundle)(nil)
	_ Rotations = AnyRotations(nil)
)
