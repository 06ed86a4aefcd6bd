package node

import (
	"bytes"
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/archy-node/archy/p2p/discovery"
)

// TestCIDOnlyReleaseCompletedFromTheSwarm: a release announced by CID
// alone (its envelope too big for an event) is discovered on B, and B
// fetches the signed manifest from the publisher's node A over the swarm
// when asked to install it.
func TestCIDOnlyReleaseCompletedFromTheSwarm(t *testing.T) {
	a := startNode(t, nil, nil)
	boot := []string{a.P2P().AddrInfo().Addrs[0].String() + "/p2p/" + a.P2P().ID().String()}
	b := startNode(t, a.RelayURLs()[:1], boot)

	key, v, envJSON := signedRelease(t, "big")
	// The developer hands the manifest to their node, which keeps the
	// envelope and provides the CID.
	req, _ := http.NewRequest(http.MethodPost, a.APIURL()+"/api/v1/manifests", bytes.NewReader(envJSON))
	req.Header.Set("Authorization", "Bearer "+a.Token())
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("add manifest: %v %v", resp, err)
	}
	resp.Body.Close()

	evs, _ := announce(t, key, v, envJSON, time.Now(), 1) // too big for an event: CID only
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := discovery.Publish(ctx, a.RelayURLs()[:1], 5*time.Second, evs...); err != nil {
		t.Fatal(err)
	}
	for {
		var got []discovery.Release
		get(t, b.APIURL()+"/api/v1/apps/discovered", &got)
		if len(got) > 0 {
			if len(got[0].Envelope) != 0 {
				t.Fatalf("announcement carried the envelope: %s", got[0].Envelope)
			}
			break
		}
		if ctx.Err() != nil {
			t.Fatal("release not discovered")
		}
		time.Sleep(50 * time.Millisecond)
	}
	got, err := b.releaseByCID(ctx, v.CID.String())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, envJSON) {
		t.Fatalf("fetched envelope %s, want %s", got, envJSON)
	}
	// The discovered release is complete now, for the page and for C.
	for _, r := range b.store.List() {
		if r.CID.Equals(v.CID) && (r.Manifest == nil || !bytes.Equal(r.Envelope, envJSON)) {
			t.Fatalf("release not completed in the store: %+v", r)
		}
	}
}
