package trust

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/archy-node/archy/p2p/discovery"
)

// Nostr vocabulary of the trust graph.
//
// An endorsement is a NIP-32 label event (kind 1985) signed by the
// endorsing Nostr key:
//
//	{"kind":1985, "content":"<optional comment>", "tags":[
//	  ["L","archy.trust"],
//	  ["l","endorse","archy.trust"],      // or "revoke" to withdraw it
//	  ["r","did:key:z6Mk…"]               // the publisher DID endorsed, or
//	  ["p","<64-hex Nostr key>"]          // a Nostr key endorsed
//	]}
//
// Labels are not replaceable events, so the graph keeps, per author and
// target, the newest label (created_at, then the lowest id, as NIP-01
// orders replaceable events): a later "revoke" withdraws an endorsement.
// An endorsement counts as a trust edge from the author, like a follow.
// A label made by a key bound to a DID is the DID's.
//
// A report is NIP-56 (kind 1984): ["p","<key>","malware"] or
// ["p","<key>","impersonation"] (other types are kept and shown, not
// counted), and, archy's extension for publishers, ["r","did:…","malware"].
// A follow list is kind 3 (p tags). Bindings come from archy announcements
// (kind 30078), checked by discovery.Verify.
const (
	KindFollows   = 3
	KindReport    = 1984
	KindLabel     = 1985
	Namespace     = "archy.trust"
	LabelEndorse  = "endorse"
	LabelRevoke   = "revoke"
	maxTagTargets = 5000 // follows and labels past this many targets are cut
)

// ErrEvent is returned for an event the graph cannot use.
var ErrEvent = errors.New("trust: unusable event")

// Endorsement returns the unsigned label event in which its signer
// endorses target (a DID or a hex Nostr key), or revokes an endorsement.
func Endorsement(target, comment string, revoke bool, at time.Time) (nostr.Event, error) {
	l := LabelEndorse
	if revoke {
		l = LabelRevoke
	}
	tags := nostr.Tags{{"L", Namespace}, {"l", l, Namespace}}
	switch {
	case strings.HasPrefix(target, "did:"):
		tags = append(tags, nostr.Tag{"r", target})
	case nostr.IsValidPublicKey(target):
		tags = append(tags, nostr.Tag{"p", target})
	default:
		return nostr.Event{}, fmt.Errorf("endorse %q: not a DID or a hex Nostr public key", target)
	}
	return nostr.Event{Kind: KindLabel, CreatedAt: nostr.Timestamp(at.Unix()), Tags: tags, Content: comment}, nil
}

// Ingest checks ev's id and signature and adds what it says to g. It
// returns whether the graph changed.
func Ingest(g *Graph, ev *nostr.Event, now time.Time) (bool, error) {
	// go-nostr's CheckID indexes the id without checking its length.
	if !isHex64(ev.ID) {
		return false, fmt.Errorf("%w: id is not 64 hex digits", ErrEvent)
	}
	if ev.Kind == discovery.KindAppData {
		r, err := discovery.Verify(ev, now)
		if err != nil {
			return false, fmt.Errorf("%w: announcement %s: %w", ErrEvent, ev.ID, err)
		}
		v := g.version
		g.Bind(r.Publisher, r.NostrPubKey, int64(ev.CreatedAt))
		g.AddRelease(r.AppID, r.Publisher)
		return g.version != v, nil
	}
	if !ev.CheckID() {
		return false, fmt.Errorf("%w: event %s: bad id", ErrEvent, ev.ID)
	}
	if ok, _ := ev.CheckSignature(); !ok {
		return false, fmt.Errorf("%w: event %s: bad signature", ErrEvent, ev.ID)
	}
	if ev.CreatedAt.Time().After(now.Add(discovery.MaxFutureSkew)) {
		return false, fmt.Errorf("%w: event %s: created_at in the future", ErrEvent, ev.ID)
	}
	at := int64(ev.CreatedAt)
	switch ev.Kind {
	case KindFollows:
		var ts []string
		for _, t := range ev.Tags {
			if len(t) >= 2 && t[0] == "p" && nostr.IsValidPublicKey(t[1]) && len(ts) < maxTagTargets {
				ts = append(ts, t[1])
			}
		}
		return g.SetFollows(ev.PubKey, at, ev.ID, ts), nil
	case KindLabel:
		l := ""
		for _, t := range ev.Tags {
			if len(t) >= 3 && t[0] == "l" && t[2] == Namespace {
				l = t[1]
			}
		}
		if l != LabelEndorse && l != LabelRevoke {
			return false, fmt.Errorf("%w: label %s: not an %s endorse or revoke", ErrEvent, ev.ID, Namespace)
		}
		changed := false
		n := 0
		for _, t := range ev.Tags {
			if len(t) < 2 || n >= maxTagTargets {
				continue
			}
			if (t[0] == "r" && strings.HasPrefix(t[1], "did:")) || (t[0] == "p" && nostr.IsValidPublicKey(t[1])) {
				n++
				if g.SetLabel(ev.PubKey, t[1], at, ev.ID, l == LabelRevoke) {
					changed = true
				}
			}
		}
		return changed, nil
	case KindReport:
		changed := false
		for _, t := range ev.Tags {
			if len(t) < 3 {
				continue
			}
			if (t[0] == "p" && nostr.IsValidPublicKey(t[1])) || (t[0] == "r" && strings.HasPrefix(t[1], "did:")) {
				if g.AddReport(Report{Reporter: ev.PubKey, Target: t[1], Type: t[2], EventID: ev.ID, At: at}) {
					changed = true
				}
			}
		}
		return changed, nil
	}
	return false, fmt.Errorf("%w: event %s: kind %d", ErrEvent, ev.ID, ev.Kind)
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
