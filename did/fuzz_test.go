package did

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// FuzzParseEnvelope feeds arbitrary bytes to ParseEnvelope and Verify, as
// peers and relays may: nothing panics, errors are the documented ones, a
// parsed envelope survives Marshal and ParseEnvelope unchanged, and
// Verify's answer holds up (distinct sorted signers, each with a
// signature that verifies under its key).
func FuzzParseEnvelope(f *testing.F) {
	keys := vectorKeys(f)
	payload := []byte(`{"id":"notes","name":"Notes","version":"1.2.3"}`)
	add := func(e *Envelope) {
		data, err := e.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for i := range keys {
		add(mustSign(f, manifestType, payload, keys[:i+1]...))
	}
	add(mustSign(f, catalogType, []byte{}, keys[0]))
	frag := mustSign(f, manifestType, payload, keys[0])
	frag.Signatures = append(frag.Signatures, frag.Signatures[0])
	frag.Signatures[1].KeyID += "#" + strings.TrimPrefix(keys[0].DID(), Prefix)
	add(frag)
	e := mustSign(f, manifestType, []byte{0xfb, 0xff}, keys[1])
	f.Add([]byte(fmt.Sprintf(`{"payloadType":%q,"payload":%q,"signatures":[{"keyid":%q,"sig":%q}]}`,
		e.PayloadType, base64.RawURLEncoding.EncodeToString(e.Payload), e.Signatures[0].KeyID,
		base64.RawURLEncoding.EncodeToString(e.Signatures[0].Sig))))
	f.Add([]byte(`{"payload": "aGVsbG8gd29ybGQ=", "payloadType": "http://example.com/HelloWorld", "signatures": [{"sig": "A3JqsQGtVsJ2O2xqrI5IcnXip5GToJ3F+FnZ+O88SjtR6rDAajabZKciJTfUiHqJPcIAriEGAHTVeCUjW2JIZA=="}]}`))
	f.Add([]byte(`{"payloadType":"t","payload":"","signatures":[{"keyid":"did:key:z","sig":""}]}`))
	f.Add([]byte(`{}`))
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := ParseEnvelope(data)
		if err != nil {
			if !errors.Is(err, ErrEnvelope) {
				t.Fatalf("ParseEnvelope error %v is not ErrEnvelope", err)
			}
			return
		}
		if e.PayloadType == "" || len(e.Signatures) == 0 || len(e.Signatures) > MaxSignatures || e.Payload == nil {
			t.Fatalf("ParseEnvelope accepted %+v", e)
		}

		signers, err := e.Verify(e.PayloadType, 1, nil)
		switch {
		case err == nil:
			checkSigners(t, e, signers)
		case !errors.Is(err, ErrThreshold):
			t.Fatalf("Verify error %v is not ErrThreshold", err)
		}
		if _, err := e.Verify(e.PayloadType+"x", 1, nil); !errors.Is(err, ErrPayloadType) {
			t.Fatalf("Verify of another type = %v, want ErrPayloadType", err)
		}
		if _, err := e.Verify(e.PayloadType, 1, func(string) bool { return false }); !errors.Is(err, ErrThreshold) {
			t.Fatalf("Verify trusting nobody = %v, want ErrThreshold", err)
		}
		if len(signers) > 0 {
			trusted := signers[len(signers)-1]
			got, err := e.Verify(e.PayloadType, 1, func(d string) bool { return d == trusted })
			if err != nil || !slices.Equal(got, []string{trusted}) {
				t.Fatalf("Verify trusting %s = %v, %v", trusted, got, err)
			}
		}

		out, err := e.Marshal()
		if err != nil {
			t.Fatalf("Marshal of a parsed envelope: %v", err)
		}
		if len(out) > MaxEnvelopeSize {
			return // re-padding base64 can grow a near-cap input past the cap
		}
		e2, err := ParseEnvelope(out)
		if err != nil {
			t.Fatalf("ParseEnvelope(Marshal(e)) = %v for %s", err, out)
		}
		if e2.PayloadType != e.PayloadType || !bytes.Equal(e2.Payload, e.Payload) || len(e2.Signatures) != len(e.Signatures) {
			t.Fatalf("round trip changed the envelope: %+v != %+v", e2, e)
		}
		for i := range e.Signatures {
			if e2.Signatures[i].KeyID != e.Signatures[i].KeyID || !bytes.Equal(e2.Signatures[i].Sig, e.Signatures[i].Sig) {
				t.Fatalf("round trip changed signature %d", i)
			}
		}
	})
}

// checkSigners asserts that signers are distinct, sorted, bare DIDs, each
// backed by a signature in e that verifies under its key.
func checkSigners(t *testing.T, e *Envelope, signers []string) {
	t.Helper()
	if len(signers) == 0 || !slices.IsSorted(signers) || len(slices.Compact(slices.Clone(signers))) != len(signers) {
		t.Fatalf("signers %v: want distinct and sorted", signers)
	}
	msg := PAE(e.PayloadType, e.Payload)
	for _, s := range signers {
		pub, err := Parse(s)
		if err != nil || strings.Contains(s, "#") {
			t.Fatalf("signer %q is not a bare did:key: %v", s, err)
		}
		backed := false
		for _, sig := range e.Signatures {
			if p, err := Parse(sig.KeyID); err == nil && p.Equal(pub) && len(sig.Sig) == 64 {
				backed = backed || ed25519.Verify(pub, msg, sig.Sig)
			}
		}
		if !backed {
			t.Fatalf("signer %s has no signature that verifies", s)
		}
	}
}
