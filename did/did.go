// Package did owns archy's identities: did:key DIDs over Ed25519 keys
// (create, store 0600, load, parse, resolve to a DID document) and the DSSE
// envelopes those keys sign, so every signed thing in archy names its signer
// by DID and can be checked without any outside service.
package did

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"

	"filippo.io/edwards25519"
	"github.com/mr-tron/base58"
	"github.com/multiformats/go-varint"
)

// Prefix starts every DID this package handles.
const Prefix = "did:key:"

// Multicodec codes of the keys did:key carries for archy.
const (
	codecEd25519Pub = 0xed
	codecX25519Pub  = 0xec
)

// maxDIDLen bounds input before any decoding: an Ed25519 did:key is 56
// characters; anything much longer is refused without work.
const maxDIDLen = 128

// Error is a DID resolution error; Code is the did:key method's error name
// (invalidDid, invalidPublicKeyLength, invalidPublicKey), so callers and
// JSON output can report it verbatim.
type Error struct {
	Code   string
	Reason string
}

func (e *Error) Error() string { return e.Code + ": " + e.Reason }

// Is makes errors.Is(err, ErrInvalidDID) match any error with that code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && t.Reason == ""
}

var (
	// ErrInvalidDID is returned when a string is not a well-formed Ed25519 did:key.
	ErrInvalidDID = &Error{Code: "invalidDid"}
	// ErrInvalidPublicKeyLength is returned when the key inside a did:key has the wrong length.
	ErrInvalidPublicKeyLength = &Error{Code: "invalidPublicKeyLength"}
	// ErrInvalidPublicKey is returned when the 32 bytes inside a did:key are
	// not a usable Ed25519 public key: not a point on the curve, a
	// non-canonical encoding of one, or a point of small order (which
	// anyone can forge signatures for).
	ErrInvalidPublicKey = &Error{Code: "invalidPublicKey"}
)

func invalid(format string, a ...any) error {
	return &Error{Code: "invalidDid", Reason: fmt.Sprintf(format, a...)}
}

// FromPublicKey returns the did:key of an Ed25519 public key.
func FromPublicKey(pub ed25519.PublicKey) string {
	return Prefix + multibaseKey(codecEd25519Pub, pub)
}

func multibaseKey(codec uint64, key []byte) string {
	buf := append(varint.ToUvarint(codec), key...)
	return "z" + base58.Encode(buf)
}

// Parse returns the Ed25519 public key named by a did:key. A key-id form
// with a fragment ("did:key:z…#z…") is accepted when the fragment names the
// same key. Errors match ErrInvalidDID, ErrInvalidPublicKeyLength or
// ErrInvalidPublicKey.
func Parse(s string) (ed25519.PublicKey, error) {
	if len(s) > maxDIDLen*2+1 {
		return nil, invalid("too long (%d bytes)", len(s))
	}
	id, frag, hasFrag := strings.Cut(s, "#")
	if !strings.HasPrefix(id, Prefix) {
		return nil, invalid("must start with %q", Prefix)
	}
	mb := id[len(Prefix):]
	if hasFrag && frag != mb {
		return nil, invalid("fragment does not name the DID's own key")
	}
	if len(mb) > maxDIDLen {
		return nil, invalid("method-specific id too long")
	}
	return parseMultibaseKey(mb, codecEd25519Pub, ed25519.PublicKeySize)
}

func parseMultibaseKey(mb string, wantCodec uint64, size int) ([]byte, error) {
	if mb == "" || mb[0] != 'z' {
		return nil, invalid("multibase prefix must be 'z' (base58btc)")
	}
	raw, err := base58.Decode(mb[1:])
	if err != nil || len(mb) == 1 {
		return nil, invalid("not base58btc")
	}
	codec, n, err := varint.FromUvarint(raw)
	if err != nil {
		return nil, invalid("multicodec varint: %v", err)
	}
	if codec != wantCodec {
		return nil, invalid("multicodec 0x%x is not an Ed25519 public key (0x%x)", codec, wantCodec)
	}
	key := raw[n:]
	if len(key) != size {
		return nil, &Error{Code: "invalidPublicKeyLength", Reason: fmt.Sprintf("%d bytes, want %d", len(key), size)}
	}
	if codec == codecEd25519Pub {
		if err := checkEd25519(key); err != nil {
			return nil, err
		}
	}
	return key, nil
}

// checkEd25519 refuses what the did:key method calls an invalidPublicKey.
// Off-curve bytes can never verify. A non-canonical encoding (y >= p, or
// x = 0 with the sign bit set) names the same point as its canonical
// form, so one key holder could appear as two DIDs and count twice
// towards a threshold. A small-order point (the identity among them) has
// signatures anyone can forge.
func checkEd25519(key []byte) error {
	p, err := new(edwards25519.Point).SetBytes(key)
	if err != nil {
		return &Error{Code: "invalidPublicKey", Reason: "not a point on the Ed25519 curve"}
	}
	if string(p.Bytes()) != string(key) {
		return &Error{Code: "invalidPublicKey", Reason: "not the canonical encoding of an Ed25519 point"}
	}
	if new(edwards25519.Point).MultByCofactor(p).Equal(edwards25519.NewIdentityPoint()) == 1 {
		return &Error{Code: "invalidPublicKey", Reason: "an Ed25519 point of small order"}
	}
	return nil
}

// Valid reports whether s is a well-formed Ed25519 did:key.
func Valid(s string) bool {
	_, err := Parse(s)
	return err == nil
}

// Document is a W3C DID Core document as the did:key method resolves it.
type Document struct {
	Context              []string             `json:"@context"`
	ID                   string               `json:"id"`
	VerificationMethod   []VerificationMethod `json:"verificationMethod"`
	Authentication       []string             `json:"authentication"`
	AssertionMethod      []string             `json:"assertionMethod"`
	CapabilityDelegation []string             `json:"capabilityDelegation"`
	CapabilityInvocation []string             `json:"capabilityInvocation"`
	KeyAgreement         []string             `json:"keyAgreement,omitempty"`
}

// VerificationMethod is one key of a Document.
type VerificationMethod struct {
	ID                 string `json:"id"`
	Type               string `json:"type"`
	Controller         string `json:"controller"`
	PublicKeyMultibase string `json:"publicKeyMultibase"`
}

// Resolve returns the DID document of a did:key: the Ed25519 key as the
// verification, assertion, authentication and capability method, and the
// X25519 key derived from it for key agreement, as the method specifies.
func Resolve(s string) (*Document, error) {
	pub, err := Parse(s)
	if err != nil {
		return nil, err
	}
	id := FromPublicKey(pub)
	mb := id[len(Prefix):]
	vmID := id + "#" + mb
	doc := &Document{
		Context: []string{
			"https://www.w3.org/ns/did/v1",
			"https://w3id.org/security/suites/ed25519-2020/v1",
			"https://w3id.org/security/suites/x25519-2020/v1",
		},
		ID: id,
		VerificationMethod: []VerificationMethod{{
			ID: vmID, Type: "Ed25519VerificationKey2020", Controller: id, PublicKeyMultibase: mb,
		}},
		Authentication:       []string{vmID},
		AssertionMethod:      []string{vmID},
		CapabilityDelegation: []string{vmID},
		CapabilityInvocation: []string{vmID},
	}
	if x, err := X25519FromEd25519(pub); err == nil {
		xmb := multibaseKey(codecX25519Pub, x)
		doc.VerificationMethod = append(doc.VerificationMethod, VerificationMethod{
			ID: id + "#" + xmb, Type: "X25519KeyAgreementKey2020", Controller: id, PublicKeyMultibase: xmb,
		})
		doc.KeyAgreement = []string{id + "#" + xmb}
	}
	return doc, nil
}

// X25519FromEd25519 maps an Ed25519 public key to its X25519 (Montgomery)
// form, as did:key derives its key-agreement key.
func X25519FromEd25519(pub ed25519.PublicKey) ([]byte, error) {
	p, err := new(edwards25519.Point).SetBytes(pub)
	if err != nil {
		return nil, errors.New("public key is not a valid Ed25519 point")
	}
	return p.BytesMontgomery(), nil
}
