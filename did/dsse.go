package did

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/go-json-experiment/json"
)

// Limits on envelopes from peers, relays and files.
const (
	// MaxEnvelopeSize bounds the JSON of an envelope: a 4 MiB catalog in
	// base64 plus signatures fits with room to spare.
	MaxEnvelopeSize = 6 << 20
	// MaxSignatures bounds the signatures one envelope may carry.
	MaxSignatures = 32
)

// Envelope is a DSSE v1 envelope. Payload and Sig are base64 (standard,
// padded) on the wire, as DSSE specifies.
type Envelope struct {
	PayloadType string      `json:"payloadType"`
	Payload     []byte      `json:"payload"`
	Signatures  []Signature `json:"signatures"`
}

// Signature is one DSSE signature; KeyID is the signer's DID.
type Signature struct {
	KeyID string `json:"keyid"`
	Sig   []byte `json:"sig"`
}

var (
	// ErrPayloadType is returned when an envelope carries another payload
	// type than the one asked for (a manifest presented as a catalog...).
	ErrPayloadType = errors.New("envelope payload type mismatch")
	// ErrThreshold is returned when fewer distinct trusted keys than
	// required signed the envelope.
	ErrThreshold = errors.New("not enough valid signatures")
	// ErrEnvelope is returned when envelope bytes are malformed.
	ErrEnvelope = errors.New("malformed envelope")
)

// PAE is DSSE v1's pre-authentication encoding, the exact bytes signed:
// "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body.
func PAE(payloadType string, payload []byte) []byte {
	b := make([]byte, 0, 32+len(payloadType)+len(payload))
	b = append(b, "DSSEv1 "...)
	b = strconv.AppendInt(b, int64(len(payloadType)), 10)
	b = append(b, ' ')
	b = append(b, payloadType...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(len(payload)), 10)
	b = append(b, ' ')
	return append(b, payload...)
}

// SignEnvelope makes an envelope over payload signed by every key given.
func SignEnvelope(payloadType string, payload []byte, keys ...*Key) (*Envelope, error) {
	if payloadType == "" {
		return nil, fmt.Errorf("sign envelope: empty payload type")
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("sign envelope: no key")
	}
	e := &Envelope{PayloadType: payloadType, Payload: payload}
	for _, k := range keys {
		e.AddSignature(k)
	}
	return e, nil
}

// AddSignature adds k's signature (co-signing); a key already present is
// not added twice.
func (e *Envelope) AddSignature(k *Key) {
	for _, s := range e.Signatures {
		if s.KeyID == k.DID() {
			return
		}
	}
	e.Signatures = append(e.Signatures, Signature{KeyID: k.DID(), Sig: k.Sign(PAE(e.PayloadType, e.Payload))})
}

// Marshal returns the envelope's JSON.
func (e *Envelope) Marshal() ([]byte, error) {
	return json.Marshal(e, json.Deterministic(true))
}

// wireEnvelope is an Envelope as it arrives: base64 fields kept as text so
// that ParseEnvelope can accept both alphabets DSSE allows.
type wireEnvelope struct {
	PayloadType string    `json:"payloadType"`
	Payload     *string   `json:"payload"`
	Signatures  []wireSig `json:"signatures"`
}

type wireSig struct {
	KeyID string `json:"keyid"`
	Sig   string `json:"sig"`
}

// ParseEnvelope parses envelope JSON strictly: size-capped, no unknown or
// duplicate keys, exact key case, valid UTF-8, no trailing bytes, a
// payload present, one to MaxSignatures signatures. Payload and sig are
// base64 in the standard or the URL-safe alphabet, padded or not, as DSSE
// requires verifiers to accept; bits after the last full byte must be
// zero, so each byte string has one spelling per alphabet. The payload is
// not looked at.
func ParseEnvelope(data []byte) (*Envelope, error) {
	if len(data) > MaxEnvelopeSize {
		return nil, fmt.Errorf("%w: %d bytes exceeds the %d-byte cap", ErrEnvelope, len(data), MaxEnvelopeSize)
	}
	var w wireEnvelope
	if err := json.Unmarshal(data, &w, json.RejectUnknownMembers(true)); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrEnvelope, err)
	}
	if w.PayloadType == "" {
		return nil, fmt.Errorf("%w: payloadType is empty", ErrEnvelope)
	}
	if w.Payload == nil {
		return nil, fmt.Errorf("%w: payload is missing", ErrEnvelope)
	}
	if len(w.Signatures) == 0 {
		return nil, fmt.Errorf("%w: no signatures", ErrEnvelope)
	}
	if len(w.Signatures) > MaxSignatures {
		return nil, fmt.Errorf("%w: %d signatures exceeds the cap of %d", ErrEnvelope, len(w.Signatures), MaxSignatures)
	}
	payload, err := decodeBase64(*w.Payload)
	if err != nil {
		return nil, fmt.Errorf("%w: payload: %v", ErrEnvelope, err)
	}
	e := &Envelope{PayloadType: w.PayloadType, Payload: payload, Signatures: make([]Signature, len(w.Signatures))}
	for i, s := range w.Signatures {
		sig, err := decodeBase64(s.Sig)
		if err != nil {
			return nil, fmt.Errorf("%w: signatures[%d].sig: %v", ErrEnvelope, i, err)
		}
		e.Signatures[i] = Signature{KeyID: s.KeyID, Sig: sig}
	}
	return e, nil
}

// base64Encodings are the spellings DSSE verifiers must accept, strict
// about trailing bits.
var base64Encodings = [...]*base64.Encoding{
	base64.StdEncoding.Strict(),
	base64.URLEncoding.Strict(),
	base64.RawStdEncoding.Strict(),
	base64.RawURLEncoding.Strict(),
}

func decodeBase64(s string) ([]byte, error) {
	// encoding/base64 skips CR and LF even in strict mode; DSSE has no
	// line breaks, so refuse them rather than accept a second spelling.
	if strings.ContainsAny(s, "\r\n") {
		return nil, errors.New("line break inside base64")
	}
	for _, enc := range base64Encodings {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, errors.New("not base64 (standard or URL-safe)")
}

// Verify checks the envelope's payload type first, then its signatures
// over the PAE. A signature counts when its keyid is a did:key, the
// signature holds, and trusted (if not nil) accepts the DID. Each distinct
// public key counts once, however many times it signs or under however
// many keyid spellings. It returns the distinct signer DIDs, sorted, or an
// error matching ErrPayloadType or ErrThreshold.
func (e *Envelope) Verify(payloadType string, threshold int, trusted func(did string) bool) ([]string, error) {
	if e.PayloadType != payloadType {
		return nil, fmt.Errorf("%w: got %q, want %q", ErrPayloadType, e.PayloadType, payloadType)
	}
	if threshold < 1 {
		return nil, fmt.Errorf("verify envelope: threshold %d must be at least 1", threshold)
	}
	msg := PAE(e.PayloadType, e.Payload)
	seen := make(map[string]bool)
	for _, s := range e.Signatures {
		pub, err := Parse(s.KeyID)
		if err != nil {
			continue
		}
		id := FromPublicKey(pub)
		if seen[id] || (trusted != nil && !trusted(id)) {
			continue
		}
		if len(s.Sig) == ed25519.SignatureSize && ed25519.Verify(pub, msg, s.Sig) {
			seen[id] = true
		}
	}
	if len(seen) < threshold {
		return nil, fmt.Errorf("%w: %d of %d required", ErrThreshold, len(seen), threshold)
	}
	signers := make([]string, 0, len(seen))
	for id := range seen {
		signers = append(signers, id)
	}
	sort.Strings(signers)
	return signers, nil
}
