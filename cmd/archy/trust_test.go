package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/archy-node/archy/p2p/discovery"
	"github.com/archy-node/archy/relay"
	"github.com/archy-node/archy/relay/relaytest"
)

// TestTrustAttestCrawlScoreExplain: a friend the owner follows endorses a
// DID with archy trust attest on a real relay; crawl gathers it into the
// data folder; score and explain show the DID and why.
func TestTrustAttestCrawlScoreExplain(t *testing.T) {
	url := relaytest.Start(t, relay.Config{DataDir: t.TempDir()})
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	ownerKey, friendKey := filepath.Join(dir, "owner.key"), filepath.Join(dir, "friend.key")
	mustArchy(t, "nostr", "new", "--out", ownerKey)
	mustArchy(t, "nostr", "new", "--out", friendKey)
	owner, err := discovery.LoadKey(ownerKey)
	if err != nil {
		t.Fatal(err)
	}
	friend, err := discovery.LoadKey(friendKey)
	if err != nil {
		t.Fatal(err)
	}
	// The owner follows the friend (any Nostr client would publish this).
	ev := nostr.Event{Kind: 3, CreatedAt: nostr.Now(), Tags: nostr.Tags{{"p", friend.PublicKey()}}}
	if err := ev.Sign(owner.SecretHex()); err != nil {
		t.Fatal(err)
	}
	if err := publishOne(context.Background(), url, ev, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	const pub = "did:key:z6MkTrustedPublisher"
	out := mustArchy(t, "trust", "attest", pub, "--key", friendKey, "--relay", url, "--comment", "ships good apps")
	if !strings.Contains(out, "relay "+url+": ok") {
		t.Fatalf("attest printed %q", out)
	}
	if _, _, err := archy(t, "trust", "attest", pub, "--key", friendKey); err == nil {
		t.Error("attest without --relay worked")
	}
	if _, _, err := archy(t, "trust", "score", "--data", data); err == nil || !strings.Contains(err.Error(), "archy trust crawl") {
		t.Errorf("score before a crawl: %v, want a hint to crawl", err)
	}
	mustArchy(t, "trust", "crawl", "--owner", owner.Npub(), "--relay", url, "--data", data)

	var score struct {
		Owner      string `json:"owner"`
		Publishers []struct {
			DID   string  `json:"did"`
			Score float64 `json:"score"`
		} `json:"publishers"`
	}
	if err := json.Unmarshal([]byte(mustArchy(t, "trust", "score", "--data", data, "--json")), &score); err != nil {
		t.Fatal(err)
	}
	if score.Owner != owner.PublicKey() || len(score.Publishers) != 1 || score.Publishers[0].DID != pub || score.Publishers[0].Score <= 0 {
		t.Fatalf("score: %+v", score)
	}
	out = mustArchy(t, "trust", "explain", pub, "--data", data)
	for _, want := range []string{"path", owner.PublicKey() + " → " + friend.PublicKey() + " → " + pub, "endorsed by " + friend.PublicKey()} {
		if !strings.Contains(out, want) {
			t.Errorf("explain lacks %q:\n%s", want, out)
		}
	}
	// Revoked: the DID loses its score after the next crawl.
	time.Sleep(1100 * time.Millisecond) // a later created_at second
	mustArchy(t, "trust", "attest", pub, "--key", friendKey, "--relay", url, "--revoke")
	mustArchy(t, "trust", "crawl", "--relay", url, "--data", data)
	if err := json.Unmarshal([]byte(mustArchy(t, "trust", "score", "--data", data, "--json")), &score); err != nil {
		t.Fatal(err)
	}
	if len(score.Publishers) != 1 || score.Publishers[0].Score != 0 {
		t.Errorf("after revoking: %+v", score.Publishers)
	}
}
