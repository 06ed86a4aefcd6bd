package did

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"sort"
	"strconv"

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

// ParseEnvelope parses envelope JSON strictly: size-capped, no unknown or
// duplicate keys, exact key case, valid UTF-8, no trailing bytes. The
// payload is not looked at.
func ParseEnvelope(data []byte) (*Envelope, error) {
	if len(data) > MaxEnvelopeSize {
		return nil, fmt.Errorf("%w: %d bytes exceeds the %d-byte cap", ErrEnvelope, len(data), MaxEnvelopeSize)
	}
	var e Envelope
	if err := json.Unmarshal(data, &e, json.RejectUnknownMembers(true)); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrEnvelope, err)
	}
	if e.PayloadType == "" {
		return nil, fmt.Errorf("%w: payloadType is empty", ErrEnvelope)
	}
	if len(e.Signatures) == 0 {
		return nil, fmt.Errorf("%w: no signatures", ErrEnvelope)
	}
	if len(e.Signatures) > MaxSignatures {
		return nil, fmt.Errorf("%w: %d signatures exceeds the cap of %d", ErrEnvelope, len(e.Signatures), MaxSignatures)
	}
	return &e, nil
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
