package discovery

import (
	"errors"
	"fmt"
	"time"

	cid "github.com/ipfs/go-cid"
	"github.com/nbd-wtf/go-nostr"

	"github.com/archy-node/archy/cas"
	"github.com/archy-node/archy/did"
	"github.com/archy-node/archy/registry"
)

// Reasons an event is dropped, in the order they are checked. Log lines
// and metrics name the reason, never the event's own text.
var (
	ErrSignature = errors.New("bad event id or signature")
	ErrFuture    = errors.New("created_at too far in the future")
	ErrNotArchy  = errors.New("not an archy announcement")
	ErrTags      = errors.New("inconsistent or missing tags")
	ErrBinding   = errors.New("DID binding does not name this Nostr key")
	ErrEnvelope  = errors.New("manifest envelope signature invalid")
	ErrCID       = errors.New("manifest does not hash to the announced cid")
	ErrManifest  = errors.New("manifest invalid or inconsistent with the event")
)

// Release is a verified announcement.
type Release struct {
	AppID       string    `json:"app_id"`
	Version     string    `json:"version"`
	Channel     string    `json:"channel"`
	Publisher   string    `json:"publisher"`
	NostrPubKey string    `json:"nostr_pubkey"`
	EventID     string    `json:"event_id"`
	D           string    `json:"d"`
	CID         cid.Cid   `json:"cid"`
	CreatedAt   time.Time `json:"created_at"`
	Latest      bool      `json:"latest"`
	// Envelope is the signed manifest's JSON; empty when the event carried
	// only the CID (the manifest is then fetched from the swarm).
	Envelope []byte             `json:"envelope,omitempty"`
	Manifest *registry.Verified `json:"-"`
}

// Verify checks an event in this order: id and Schnorr signature; created_at
// at most MaxFutureSkew ahead of now; kind and tags, the `d` tag consistent
// with `i` and `version`; the DID binding naming the event's key; the
// manifest envelope's signature by that DID; the manifest CID; strict parse
// and validation, and that the manifest is the one the tags name.
func Verify(ev *nostr.Event, now time.Time) (*Release, error) {
	if !ev.CheckID() {
		return nil, ErrSignature
	}
	if ok, _ := ev.CheckSignature(); !ok {
		return nil, ErrSignature
	}
	if ev.CreatedAt.Time().After(now.Add(MaxFutureSkew)) {
		return nil, ErrFuture
	}
	if ev.Kind != KindAppData || !hasTag(ev, "t", Topic) {
		return nil, ErrNotArchy
	}
	r := &Release{
		AppID: tag(ev, "i"), Version: tag(ev, "version"), Channel: tag(ev, "c"),
		Publisher: tag(ev, "did"), NostrPubKey: ev.PubKey, EventID: ev.ID, D: tag(ev, "d"),
		CreatedAt: ev.CreatedAt.Time(),
	}
	switch r.D {
	case "":
		return nil, fmt.Errorf("%w: no d tag", ErrTags)
	case ReleaseD(r.AppID, r.Version):
	case LatestD(r.AppID):
		r.Latest = true
	default:
		return nil, fmt.Errorf("%w: d tag does not match i and version", ErrTags)
	}
	if r.AppID == "" || r.Version == "" || r.Publisher == "" {
		return nil, fmt.Errorf("%w: i, version and did are required", ErrTags)
	}
	c, err := cas.Parse(tag(ev, "cid"))
	if err != nil {
		return nil, fmt.Errorf("%w: cid: %v", ErrTags, err)
	}
	r.CID = c
	if err := checkBinding(tag(ev, BindingTag), r.Publisher, ev.PubKey); err != nil {
		return nil, err
	}
	if ev.Content == "" {
		return r, nil // CID-only announcement: the envelope comes from the swarm (Complete)
	}
	if err := r.attach([]byte(ev.Content)); err != nil {
		return nil, err
	}
	return r, nil
}

// Complete returns r with the signed manifest of a CID-only announcement
// attached, after the checks Verify makes of an envelope in an event: the
// publisher's signature, the CID, and that the manifest is the one the
// tags name. The envelope may come from anyone.
func (r *Release) Complete(envelope []byte) (*Release, error) {
	c := *r
	if err := c.attach(envelope); err != nil {
		return nil, err
	}
	return &c, nil
}

func (r *Release) attach(content []byte) error {
	env, err := did.ParseEnvelope(content)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrEnvelope, err)
	}
	// The tags' publisher must sign it: checked here by key ID alone, and
	// cryptographically once, by VerifyParsed (which also wants the
	// manifest's publisher among the signers; the two are compared below).
	// Verifying the publisher's signature here as well doubled a node's
	// ed25519 work for every announcement.
	if !claimsSigner(env, r.Publisher) {
		return fmt.Errorf("%w: not signed by %s", ErrEnvelope, r.Publisher)
	}
	if err := cas.Verify(r.CID, env.Payload); err != nil {
		return ErrCID
	}
	v, err := registry.VerifyParsed(env)
	if err != nil {
		if errors.Is(err, did.ErrThreshold) || errors.Is(err, did.ErrPayloadType) || errors.Is(err, registry.ErrPublisherMismatch) {
			return fmt.Errorf("%w: %v", ErrEnvelope, err)
		}
		return fmt.Errorf("%w: %v", ErrManifest, err)
	}
	m := v.Manifest
	channel := m.Channel
	if channel == "" {
		channel = "stable"
	}
	if m.ID != r.AppID || m.Version != r.Version || m.Publisher != r.Publisher || (r.Channel != "" && r.Channel != channel) {
		return fmt.Errorf("%w: manifest names %s@%s by another publisher or channel than the tags", ErrManifest, m.ID, m.Version)
	}
	r.Channel = channel
	r.Envelope = content
	r.Manifest = v
	return nil
}

// claimsSigner reports whether env carries a signature under the key of
// DID id (not whether it verifies).
func claimsSigner(env *did.Envelope, id string) bool {
	for _, sg := range env.Signatures {
		if pub, err := did.Parse(sg.KeyID); err == nil && did.FromPublicKey(pub) == id {
			return true
		}
	}
	return false
}

func checkBinding(raw, publisher, nostrPub string) error {
	if raw == "" {
		return fmt.Errorf("%w: no binding", ErrBinding)
	}
	env, err := did.ParseEnvelope([]byte(raw))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBinding, err)
	}
	if _, err := env.Verify(BindingPayloadType, 1, func(id string) bool { return id == publisher }); err != nil {
		return fmt.Errorf("%w: %v", ErrBinding, err)
	}
	var b binding
	if err := registry.StrictUnmarshal(env.Payload, &b); err != nil {
		return fmt.Errorf("%w: %v", ErrBinding, err)
	}
	if b.Type != bindingType || b.DID != publisher || b.NostrPubKey != nostrPub {
		return ErrBinding
	}
	return nil
}

func tag(ev *nostr.Event, name string) string {
	for _, t := range ev.Tags {
		if len(t) >= 2 && t[0] == name {
			return t[1]
		}
	}
	return ""
}

func hasTag(ev *nostr.Event, name, value string) bool {
	for _, t := range ev.Tags {
		if len(t) >= 2 && t[0] == name && t[1] == value {
			return true
		}
	}
	return false
}
