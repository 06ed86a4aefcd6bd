package registry

import (
	stdjson "encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/archy-node/archy/did"
)

// A rotation statement moves an installed app's pin from one publisher DID
// to another: the old DID signs "app A is now published by DID B". A node
// that installed A from the old DID accepts releases from the new one only
// with such a statement; without it a release from another DID is a
// different app, never an update.
const (
	// RotationSchema is the only rotation statement schema this version
	// reads and writes.
	RotationSchema = "archy.rotation/v1"
	// RotationPayloadType is the DSSE payload type of a rotation statement.
	RotationPayloadType = "application/vnd.archy.rotation.v1+json"
	// MaxRotationSize caps a rotation statement's envelope as it travels.
	MaxRotationSize = 16 << 10
)

// ErrInvalidRotation is returned when a rotation statement does not parse
// strictly, names a bad app id or DID, or is not signed by the DID it
// rotates away from.
var ErrInvalidRotation = errors.New("invalid rotation statement")

// Rotation is the payload of a rotation statement.
type Rotation struct {
	Schema string `json:"schema"`
	// App is the app id whose publisher changes.
	App string `json:"app"`
	// From is the DID the app was published by; it signs the statement.
	From string `json:"from"`
	// To is the DID that publishes the app from now on.
	To string `json:"to"`
	// Issued is when the statement was made (UTC, whole seconds, the
	// ExpiresLayout form). A node applies a chain of statements only in
	// increasing issue order, so an old statement cannot be replayed to
	// move a pin back.
	Issued string `json:"issued"`
}

// IssuedAt parses Issued.
func (r *Rotation) IssuedAt() (time.Time, error) {
	t, err := time.Parse(ExpiresLayout, r.Issued)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: issued %q is not a UTC time such as 2026-01-02T15:04:05Z", ErrInvalidRotation, r.Issued)
	}
	return t, nil
}

func (r *Rotation) validate() error {
	if r.Schema != RotationSchema {
		return fmt.Errorf("%w: schema %q, want %q", ErrInvalidRotation, r.Schema, RotationSchema)
	}
	if msg := checkID(r.App); msg != "" {
		return fmt.Errorf("%w: app: %s", ErrInvalidRotation, msg)
	}
	if !did.Valid(r.From) {
		return fmt.Errorf("%w: from %q is not a did:key", ErrInvalidRotation, clip(r.From))
	}
	if !did.Valid(r.To) {
		return fmt.Errorf("%w: to %q is not a did:key", ErrInvalidRotation, clip(r.To))
	}
	if r.From == r.To {
		return fmt.Errorf("%w: from and to are the same DID", ErrInvalidRotation)
	}
	_, err := r.IssuedAt()
	return err
}

// SignRotation makes the rotation statement of app from key's DID to the
// DID to, issued at issued (rounded down to the second, in UTC).
func SignRotation(app string, key *did.Key, to string, issued time.Time) (*did.Envelope, error) {
	r := &Rotation{Schema: RotationSchema, App: app, From: key.DID(), To: to, Issued: issued.UTC().Truncate(time.Second).Format(ExpiresLayout)}
	if err := r.validate(); err != nil {
		return nil, fmt.Errorf("sign rotation of %s: %w", app, err)
	}
	raw, err := stdjson.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("sign rotation of %s: %w", app, err)
	}
	payload, err := canonicalJSON(raw)
	if err != nil {
		return nil, fmt.Errorf("sign rotation of %s: %w", app, err)
	}
	env, err := did.SignEnvelope(RotationPayloadType, payload, key)
	if err != nil {
		return nil, fmt.Errorf("sign rotation of %s: %w", app, err)
	}
	return env, nil
}

// VerifyRotation checks a rotation statement (DSSE JSON): size, payload
// type, a strict canonical parse, the fields, and a valid signature by
// its From DID (other signatures do not count).
func VerifyRotation(data []byte) (*Rotation, error) {
	if len(data) > MaxRotationSize {
		return nil, fmt.Errorf("verify rotation: %w: %d bytes exceeds the %d-byte cap", ErrInvalidRotation, len(data), MaxRotationSize)
	}
	env, err := did.ParseEnvelope(data)
	if err != nil {
		return nil, fmt.Errorf("verify rotation: %w: %w", ErrInvalidRotation, err)
	}
	if env.PayloadType != RotationPayloadType {
		return nil, fmt.Errorf("verify rotation: %w: %w: got %q", ErrInvalidRotation, did.ErrPayloadType, env.PayloadType)
	}
	var r Rotation
	if err := StrictUnmarshal(env.Payload, &r); err != nil {
		return nil, fmt.Errorf("verify rotation: %w: %w", ErrInvalidRotation, err)
	}
	raw, err := stdjson.Marshal(&r)
	if err != nil {
		return nil, fmt.Errorf("verify rotation: %w", err)
	}
	canon, err := canonicalJSON(raw)
	if err != nil || string(canon) != string(env.Payload) {
		return nil, fmt.Errorf("verify rotation: %w: payload is not canonical", ErrInvalidRotation)
	}
	if err := r.validate(); err != nil {
		return nil, fmt.Errorf("verify rotation: %w", err)
	}
	// Only the old DID's signature counts: the statement is its word.
	if _, err := env.Verify(RotationPayloadType, 1, func(id string) bool { return id == r.From }); err != nil {
		return nil, fmt.Errorf("verify rotation of %s: %w: not signed by %s: %w", r.App, ErrInvalidRotation, r.From, err)
	}
	return &r, nil
}
