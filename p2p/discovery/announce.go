// Package discovery announces signed app releases on Nostr relays as NIP-78
// events and discovers them: it subscribes to relays, verifies every event
// (Nostr signature, DID binding, DSSE envelope, manifest CID, validation)
// before anything else sees it, and keeps the verified releases with
// NIP-01's replacement rules.
package discovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/archy-node/archy/did"
	"github.com/archy-node/archy/registry"
)

// Nostr vocabulary of archy announcements.
const (
	// KindAppData is NIP-78's addressable "arbitrary custom app data" kind.
	KindAppData = 30078
	// Topic is the indexed `t` tag every archy announcement carries, so
	// relays can filter on it.
	Topic = "archy-app"
	// BindingTag carries the DID-signed statement naming the Nostr key.
	BindingTag = "archy-binding"
	// BindingPayloadType is the DSSE payload type of that statement.
	BindingPayloadType = "application/vnd.archy.nostr-binding.v1+json"
	releasePrefix      = "archy/v1/release/"
	latestPrefix       = "archy/v1/app/"
	// DefaultMaxContent is the largest envelope put inline in an event;
	// above it the content is empty and nodes fetch the manifest by CID.
	DefaultMaxContent = 48 << 10
	// MaxFutureSkew is how far in the future created_at may be.
	MaxFutureSkew = 15 * time.Minute
)

// ReleaseD is the `d` tag of one release.
func ReleaseD(appID, version string) string { return releasePrefix + appID + "@" + version }

// LatestD is the `d` tag of an app's "latest" pointer.
func LatestD(appID string) string { return latestPrefix + appID }

// binding is the statement a DID signs to name its Nostr key.
type binding struct {
	Type        string `json:"type"`
	DID         string `json:"did"`
	NostrPubKey string `json:"nostr_pubkey"`
}

const bindingType = "archy.nostr-binding/v1"

// Binding returns the DSSE envelope JSON in which key's DID names the Nostr
// public key (hex) as its announcer.
func Binding(key *did.Key, nostrPub string) ([]byte, error) {
	if !nostr.IsValidPublicKey(nostrPub) {
		return nil, fmt.Errorf("bind nostr key: %q is not a hex x-only public key", nostrPub)
	}
	payload, err := json.Marshal(binding{Type: bindingType, DID: key.DID(), NostrPubKey: nostrPub})
	if err != nil {
		return nil, fmt.Errorf("bind nostr key: %w", err)
	}
	env, err := did.SignEnvelope(BindingPayloadType, payload, key)
	if err != nil {
		return nil, fmt.Errorf("bind nostr key: %w", err)
	}
	return env.Marshal()
}

// Announcement is what a publisher announces for one release.
type Announcement struct {
	Manifest *registry.Verified
	// Envelope is the signed manifest envelope's JSON, sent as content
	// when it fits in MaxContent.
	Envelope   []byte
	Binding    []byte
	MaxContent int
	CreatedAt  time.Time
}

// Events returns the release event and the "latest" pointer event, both
// signed with the Nostr secret key sk (hex).
func (a *Announcement) Events(sk string) ([]nostr.Event, error) {
	m := a.Manifest.Manifest
	max := a.MaxContent
	if max == 0 {
		max = DefaultMaxContent
	}
	content := string(a.Envelope)
	if len(content) > max {
		content = ""
	}
	channel := m.Channel
	if channel == "" {
		channel = "stable"
	}
	created := nostr.Timestamp(a.CreatedAt.Unix())
	var out []nostr.Event
	for _, d := range []string{ReleaseD(m.ID, m.Version), LatestD(m.ID)} {
		ev := nostr.Event{
			Kind:      KindAppData,
			CreatedAt: created,
			Content:   content,
			Tags: nostr.Tags{
				{"d", d},
				{"t", Topic},
				{"i", m.ID},
				{"version", m.Version},
				{"c", channel},
				{"cid", a.Manifest.CID.String()},
				{"did", m.Publisher},
				{BindingTag, string(a.Binding)},
				{"alt", fmt.Sprintf("archy app release: %s %s (%s)", m.ID, m.Version, m.Name)},
			},
		}
		if err := ev.Sign(sk); err != nil {
			return nil, fmt.Errorf("sign nostr event %s: %w", d, err)
		}
		out = append(out, ev)
	}
	return out, nil
}

// Withdrawal returns a NIP-09 deletion of a release (an `a` tag naming the
// release's address), signed with sk.
func Withdrawal(sk, appID, version, reason string, now time.Time) (nostr.Event, error) {
	pub, err := nostr.GetPublicKey(sk)
	if err != nil {
		return nostr.Event{}, fmt.Errorf("withdraw %s@%s: %w", appID, version, err)
	}
	ev := nostr.Event{
		Kind:      nostr.KindDeletion,
		CreatedAt: nostr.Timestamp(now.Unix()),
		Content:   reason,
		Tags: nostr.Tags{
			{"a", fmt.Sprintf("%d:%s:%s", KindAppData, pub, ReleaseD(appID, version))},
			{"k", fmt.Sprint(KindAppData)},
			{"t", Topic},
		},
	}
	if err := ev.Sign(sk); err != nil {
		return nostr.Event{}, fmt.Errorf("withdraw %s@%s: %w", appID, version, err)
	}
	return ev, nil
}

// PublishResult is the outcome of sending events to one relay.
type PublishResult struct {
	Relay string `json:"relay"`
	Err   string `json:"error,omitempty"`
}

// Publish sends events to every relay at once, each relay bounded by
// timeout, and reports per relay in the order given. It fails only if no
// relay took every event.
func Publish(ctx context.Context, relays []string, timeout time.Duration, events ...nostr.Event) ([]PublishResult, error) {
	if len(relays) == 0 {
		return nil, errors.New("publish: no relay given")
	}
	results := make([]PublishResult, len(relays))
	var wg sync.WaitGroup
	for i, url := range relays {
		results[i] = PublishResult{Relay: url}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := publishOne(ctx, url, timeout, events); err != nil {
				results[i].Err = err.Error()
			}
		}()
	}
	wg.Wait()
	var msgs []string
	for _, r := range results {
		if r.Err == "" {
			return results, nil
		}
		msgs = append(msgs, r.Relay+": "+r.Err)
	}
	return results, fmt.Errorf("publish: no relay accepted the announcement: %s", strings.Join(msgs, "; "))
}

func publishOne(ctx context.Context, url string, timeout time.Duration, events []nostr.Event) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := Dial(ctx, url, timeout)
	if err != nil {
		return err
	}
	defer c.Close()
	// Send every event before waiting, bounded, so a large batch costs
	// one round trip per window rather than one per event.
	const window = 64
	sem := make(chan struct{}, window)
	errs := make(chan error, len(events))
	var wg sync.WaitGroup
	for _, ev := range events {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := c.Publish(ctx, ev); err != nil {
				errs <- fmt.Errorf("publish event %s: %w", ev.ID, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs // nil when every event was accepted
}
