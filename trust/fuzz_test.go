package trust

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
)

// FuzzIngest feeds relay input (an event's JSON) to Ingest: it must never
// panic, and whatever it accepts must leave a graph that scores.
func FuzzIngest(f *testing.F) {
	sk := nostr.GeneratePrivateKey()
	now := time.Unix(1_800_000_000, 0)
	for _, ev := range []nostr.Event{
		{Kind: KindFollows, Tags: nostr.Tags{{"p", "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"}}},
		{Kind: KindLabel, Tags: nostr.Tags{{"L", Namespace}, {"l", LabelEndorse, Namespace}, {"r", "did:key:z6Mk"}}},
		{Kind: KindReport, Tags: nostr.Tags{{"r", "did:key:z6Mk", ReportMalware}}},
		{Kind: 30078, Tags: nostr.Tags{{"d", "archy/v1/app/x"}, {"t", "archy-app"}}},
	} {
		ev.CreatedAt = nostr.Timestamp(now.Unix())
		_ = ev.Sign(sk)
		b, _ := json.Marshal(ev)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var ev nostr.Event
		if json.Unmarshal(data, &ev) != nil {
			return
		}
		g := NewGraph()
		if _, err := Ingest(g, &ev, now); err != nil {
			return
		}
		s := NewScorer(g, ev.PubKey, Params{})
		for _, d := range g.DIDs() {
			s.Decide(Policy{}, "x", []Candidate{{DID: d}})
			s.Explain(d)
		}
	})
}
