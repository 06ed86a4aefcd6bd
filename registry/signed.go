package registry

import (
	"bytes"
	stdjson "encoding/json"
	"errors"
	"fmt"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	cid "github.com/ipfs/go-cid"

	"github.com/archy-node/archy/cas"
	"github.com/archy-node/archy/did"
)

// MaxManifestSize caps a manifest's canonical bytes (and any authoring file).
const MaxManifestSize = 256 << 10

var (
	// ErrPublisherMismatch is returned when a manifest is signed by a DID
	// other than its publisher.
	ErrPublisherMismatch = errors.New("manifest is not signed by its publisher")
	// ErrStrictParse is returned when signed payload bytes are not strict
	// JSON of the schema.
	ErrStrictParse = errors.New("payload does not parse strictly")
)

// Canonical returns the manifest's RFC 8785 (JCS) bytes: the payload that is
// signed and hashed for its CID. Authoring-only fields are dropped.
func Canonical(m *Manifest) ([]byte, error) {
	c := *m
	c.Containers = append([]Container(nil), m.Containers...)
	for i := range c.Containers {
		c.Containers[i].Image.Archive = ""
	}
	raw, err := stdjson.Marshal(&c)
	if err != nil {
		return nil, fmt.Errorf("canonicalise manifest: %w", err)
	}
	return canonicalJSON(raw)
}

func canonicalJSON(raw []byte) ([]byte, error) {
	v := jsontext.Value(raw)
	if err := v.Canonicalize(); err != nil {
		return nil, fmt.Errorf("canonicalise: %w", err)
	}
	return []byte(v), nil
}

// ParsePayload parses signed manifest bytes strictly: no unknown, duplicate
// or case-variant keys, valid UTF-8, no BOM, no trailing bytes, integers
// within ±2^53. Call it only after the signature over these bytes holds.
func ParsePayload(b []byte) (*Manifest, error) {
	var m Manifest
	if err := StrictUnmarshal(b, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// StrictUnmarshal decodes signed JSON bytes into v with the rules of
// ParsePayload; the catalog uses it too.
func StrictUnmarshal(b []byte, v any) error {
	if len(b) >= 3 && b[0] == 0xEF && b[1] == 0xBB && b[2] == 0xBF {
		return fmt.Errorf("%w: byte order mark", ErrStrictParse)
	}
	if err := checkIntegers(b); err != nil {
		return err
	}
	if err := json.Unmarshal(b, v, json.RejectUnknownMembers(true)); err != nil {
		return fmt.Errorf("%w: %v", ErrStrictParse, err)
	}
	return nil
}

// checkIntegers refuses numbers that cannot round-trip through an IEEE
// double (|n| > 2^53), so every verifier, in any language, reads the same value.
func checkIntegers(b []byte) error {
	dec := jsontext.NewDecoder(bytes.NewReader(b))
	for {
		tok, err := dec.ReadToken()
		if err != nil {
			return nil // syntax errors are reported by the decoder proper
		}
		if tok.Kind() == '0' {
			if f, _ := tok.Float(); f > 1<<53 || f < -(1<<53) {
				return fmt.Errorf("%w: number %s at %s is beyond ±2^53", ErrStrictParse, tok.String(), dec.StackPointer())
			}
		}
	}
}

// Verified is a manifest whose envelope signature, publisher binding and
// strict parse all held.
type Verified struct {
	Manifest *Manifest
	// Payload is the exact signed bytes; CID is computed over them.
	Payload  []byte
	CID      cid.Cid
	Signer   string
	Envelope *did.Envelope
}

// Sign signs a manifest's canonical bytes with key, which must be the
// manifest's publisher.
func Sign(m *Manifest, key *did.Key) (*did.Envelope, cid.Cid, error) {
	if m.Publisher != key.DID() {
		return nil, cid.Undef, fmt.Errorf("sign manifest %s: key %s is not the publisher %s: %w", m.ID, key.DID(), m.Publisher, ErrPublisherMismatch)
	}
	payload, err := Canonical(m)
	if err != nil {
		return nil, cid.Undef, err
	}
	if len(payload) > MaxManifestSize {
		return nil, cid.Undef, fmt.Errorf("sign manifest %s: %d bytes exceeds the %d-byte cap", m.ID, len(payload), MaxManifestSize)
	}
	env, err := did.SignEnvelope(ManifestPayloadType, payload, key)
	if err != nil {
		return nil, cid.Undef, fmt.Errorf("sign manifest %s: %w", m.ID, err)
	}
	return env, cas.Sum(payload), nil
}

// VerifyEnvelope checks a signed manifest in this order: envelope syntax,
// payload type (before anything else is read), size, signature by the DID
// in the keyid, strict parse, publisher == signer, and validation.
func VerifyEnvelope(data []byte) (*Verified, error) {
	env, err := did.ParseEnvelope(data)
	if err != nil {
		return nil, fmt.Errorf("verify manifest: %w", err)
	}
	return VerifyParsed(env)
}

// VerifyParsed is VerifyEnvelope for an envelope already parsed (as one
// embedded in a catalog).
func VerifyParsed(env *did.Envelope) (*Verified, error) {
	if env.PayloadType != ManifestPayloadType {
		return nil, fmt.Errorf("verify manifest: %w: got %q", did.ErrPayloadType, env.PayloadType)
	}
	if len(env.Payload) > MaxManifestSize {
		return nil, fmt.Errorf("verify manifest: payload of %d bytes exceeds the %d-byte cap", len(env.Payload), MaxManifestSize)
	}
	signers, err := env.Verify(ManifestPayloadType, 1, nil)
	if err != nil {
		return nil, fmt.Errorf("verify manifest: %w", err)
	}
	m, err := ParsePayload(env.Payload)
	if err != nil {
		return nil, fmt.Errorf("verify manifest: %w", err)
	}
	signer := ""
	for _, s := range signers {
		if s == m.Publisher {
			signer = s
		}
	}
	if signer == "" {
		return nil, fmt.Errorf("verify manifest %s: %w (publisher %s)", m.ID, ErrPublisherMismatch, m.Publisher)
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("verify manifest %s: %w", m.ID, err)
	}
	return &Verified{Manifest: m, Payload: env.Payload, CID: cas.Sum(env.Payload), Signer: signer, Envelope: env}, nil
}
