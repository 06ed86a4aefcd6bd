package registry

import (
	"bytes"
	stdjson "encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

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
// within ±2^53, and the bytes must be exactly the manifest's canonical
// form (RFC 8785, no authoring-only fields, no explicit zero values), so
// that whatever is accepted has one CID. Call it only after the signature
// over these bytes holds.
func ParsePayload(b []byte) (*Manifest, error) {
	if len(b) > MaxManifestSize {
		return nil, fmt.Errorf("%w: %d bytes exceeds the %d-byte cap", ErrStrictParse, len(b), MaxManifestSize)
	}
	var m Manifest
	if err := StrictUnmarshal(b, &m); err != nil {
		return nil, err
	}
	canon, err := Canonical(&m)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrStrictParse, err)
	}
	if !bytes.Equal(canon, b) {
		return nil, fmt.Errorf("%w: payload is not the canonical form of its manifest (at byte %d)", ErrStrictParse, firstDiff(canon, b))
	}
	return &m, nil
}

func firstDiff(a, b []byte) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// StrictUnmarshal decodes signed JSON bytes into v strictly: no BOM, valid
// UTF-8, no unknown, duplicate or case-variant keys, no trailing bytes,
// every number within ±2^53 exactly. The catalog uses it too.
func StrictUnmarshal(b []byte, v any) error {
	if len(b) >= 3 && b[0] == 0xEF && b[1] == 0xBB && b[2] == 0xBF {
		return fmt.Errorf("%w: byte order mark", ErrStrictParse)
	}
	if !utf8.Valid(b) {
		return fmt.Errorf("%w: invalid UTF-8", ErrStrictParse)
	}
	if err := checkIntegers(b); err != nil {
		return err
	}
	// json v2 refuses duplicate names, invalid UTF-8 and trailing data by
	// default and matches names case-sensitively, so "ID" is an unknown
	// member, not an alias of "id".
	if err := json.Unmarshal(b, v, json.RejectUnknownMembers(true), json.MatchCaseInsensitiveNames(false)); err != nil {
		return fmt.Errorf("%w: %v", ErrStrictParse, err)
	}
	return nil
}

// maxSafeInteger is 2^53, the largest magnitude every IEEE-double reader
// holds exactly.
const maxSafeInteger = "9007199254740992"

// checkIntegers refuses numbers whose magnitude is beyond 2^53, so every
// verifier, in any language, reads the same value. The comparison is done
// on the decimal text, exactly: 9007199254740993 (which a float64 rounds
// to 2^53) is refused.
func checkIntegers(b []byte) error {
	dec := jsontext.NewDecoder(bytes.NewReader(b))
	for {
		tok, err := dec.ReadToken()
		if err != nil {
			return nil // syntax errors are reported by the decoder proper
		}
		if tok.Kind() == '0' && beyondSafe(tok.String()) {
			return fmt.Errorf("%w: number %.40s at %s is beyond ±2^53", ErrStrictParse, tok.String(), dec.StackPointer())
		}
	}
}

// beyondSafe reports whether the JSON number literal n has a magnitude
// greater than 2^53, without floating-point rounding.
func beyondSafe(n string) bool {
	n = strings.TrimPrefix(n, "-")
	mant, expStr, hasExp := strings.Cut(strings.ToLower(n), "e")
	intPart, frac, _ := strings.Cut(mant, ".")
	digits := strings.TrimLeft(intPart+frac, "0")
	if digits == "" {
		return false // zero
	}
	// value = 0.digits × 10^pos, where pos counts the integer digits.
	pos := int64(len(intPart)) - int64(len(intPart+frac)-len(digits))
	if hasExp {
		expStr = strings.TrimPrefix(expStr, "+")
		neg := strings.HasPrefix(expStr, "-")
		expStr = strings.TrimLeft(strings.TrimPrefix(expStr, "-"), "0")
		if len(expStr) > 9 {
			return !neg // astronomically large or small
		}
		var e int64
		if expStr != "" {
			e, _ = strconv.ParseInt(expStr, 10, 64) // at most 9 digits: cannot fail
		}
		if neg {
			e = -e
		}
		pos += e
	}
	digits = strings.TrimRight(digits, "0")
	switch {
	case pos > int64(len(maxSafeInteger)):
		return true
	case pos < int64(len(maxSafeInteger)):
		return false
	}
	head := digits
	if len(head) > len(maxSafeInteger) {
		head = head[:len(maxSafeInteger)]
	}
	head += strings.Repeat("0", len(maxSafeInteger)-len(head))
	if head != maxSafeInteger {
		return head > maxSafeInteger
	}
	return len(digits) > len(maxSafeInteger) // 2^53 plus a fraction
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
	if err := m.validate(true); err != nil {
		return nil, cid.Undef, fmt.Errorf("sign manifest %s: %w", m.ID, err)
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
	if err := m.validate(true); err != nil {
		return nil, fmt.Errorf("verify manifest %s: %w", m.ID, err)
	}
	return &Verified{Manifest: m, Payload: env.Payload, CID: cas.Sum(env.Payload), Signer: signer, Envelope: env}, nil
}
