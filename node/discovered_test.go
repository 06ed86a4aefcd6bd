package node

import "testing"

// TestDiscoveryKeepsPublishedManifests checks the node tells its
// discovery store to keep the releases it published (their envelopes
// under manifests/), whatever the store's caps say.
func TestDiscoveryKeepsPublishedManifests(t *testing.T) {
	n := startNode(t, nil, nil)
	_, v, envJSON := signedRelease(t, "kept")
	if n.keptManifests()[v.CID] {
		t.Fatal("kept before it was published")
	}
	if err := n.keepEnvelope(v.CID, envJSON); err != nil {
		t.Fatal(err)
	}
	if !n.keptManifests()[v.CID] {
		t.Fatalf("published manifest %s not kept by discovery", v.CID)
	}
}
