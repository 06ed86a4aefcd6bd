package did

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

const (
	manifestType = "application/vnd.archy.manifest.v1+json"
	catalogType  = "application/vnd.archy.catalog.v1+json"
)

// TestPAESpecExample checks PAE against the example in DSSE's protocol.md
// (secure-systems-lab/dsse, "Test Vectors").
func TestPAESpecExample(t *testing.T) {
	got := PAE("http://example.com/HelloWorld", []byte("hello world"))
	const want = "DSSEv1 29 http://example.com/HelloWorld 11 hello world"
	if string(got) != want {
		t.Errorf("PAE = %q, want %q", got, want)
	}
}

func TestPAE(t *testing.T) {
	tests := []struct {
		name, typ string
		body      []byte
		want      string
	}{
		{"empty", "", nil, "DSSEv1 0  0 "},
		{"lengths in bytes not runes", "é", []byte("ü"), "DSSEv1 2 é 2 ü"},
		{"body with spaces and digits", "t", []byte("1 2 3"), "DSSEv1 1 t 5 1 2 3"},
		{"binary body", "t", []byte{0, 0xff, ' '}, "DSSEv1 1 t 3 \x00\xff "},
		{"ten-byte type", "0123456789", []byte("x"), "DSSEv1 10 0123456789 1 x"},
		{"archy manifest", manifestType, []byte("{}"), "DSSEv1 38 " + manifestType + " 2 {}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := PAE(tt.typ, tt.body); string(got) != tt.want {
				t.Errorf("PAE(%q, %q) = %q, want %q", tt.typ, tt.body, got, tt.want)
			}
		})
	}
}

// TestParseSpecEnvelope parses the JSON envelope of DSSE's protocol.md
// example (an ECDSA signature without keyid): it parses, and no archy key
// vouches for it.
func TestParseSpecEnvelope(t *testing.T) {
	const spec = `{"payload": "aGVsbG8gd29ybGQ=",
 "payloadType": "http://example.com/HelloWorld",
 "signatures": [{"sig": "A3JqsQGtVsJ2O2xqrI5IcnXip5GToJ3F+FnZ+O88SjtR6rDAajabZKciJTfUiHqJPcIAriEGAHTVeCUjW2JIZA=="}]}`
	e, err := ParseEnvelope([]byte(spec))
	if err != nil {
		t.Fatal(err)
	}
	if string(e.Payload) != "hello world" || e.PayloadType != "http://example.com/HelloWorld" {
		t.Errorf("parsed %q / %q", e.PayloadType, e.Payload)
	}
	if len(e.Signatures) != 1 || len(e.Signatures[0].Sig) != 64 || e.Signatures[0].KeyID != "" {
		t.Errorf("parsed signatures %+v", e.Signatures)
	}
	if _, err := e.Verify("http://example.com/HelloWorld", 1, nil); !errors.Is(err, ErrThreshold) {
		t.Errorf("Verify = %v, want ErrThreshold", err)
	}
}

func mustSign(t testing.TB, typ string, payload []byte, keys ...*Key) *Envelope {
	t.Helper()
	e, err := SignEnvelope(typ, payload, keys...)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// roundTrip marshals and re-parses e, as a verifier receives it.
func roundTrip(t *testing.T, e *Envelope) *Envelope {
	t.Helper()
	data, err := e.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseEnvelope(data)
	if err != nil {
		t.Fatalf("ParseEnvelope(%s): %v", data, err)
	}
	return got
}

func TestSignVerifyRoundTrip(t *testing.T) {
	keys := vectorKeys(t)
	payload := []byte(`{"id":"hello","version":"1.0.0"}`)
	tests := []struct {
		name    string
		typ     string
		signers []*Key
	}{
		{"one signer, manifest", manifestType, keys[:1]},
		{"three signers, catalog", catalogType, keys[:3]},
		{"empty payload", manifestType, keys[4:]},
		{"nil payload", manifestType, keys[3:4]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := payload
			switch tt.name {
			case "empty payload":
				body = []byte{}
			case "nil payload":
				body = nil
			}
			e := roundTrip(t, mustSign(t, tt.typ, body, tt.signers...))
			if !bytes.Equal(e.Payload, body) || e.Payload == nil || e.PayloadType != tt.typ {
				t.Fatalf("round trip changed the envelope: %q %q", e.PayloadType, e.Payload)
			}
			got, err := e.Verify(tt.typ, len(tt.signers), nil)
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, k := range tt.signers {
				want = append(want, k.DID())
			}
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("signers = %v, want %v", got, want)
			}
			if _, err := e.Verify(tt.typ, len(tt.signers)+1, nil); !errors.Is(err, ErrThreshold) {
				t.Errorf("Verify with threshold %d = %v, want ErrThreshold", len(tt.signers)+1, err)
			}
		})
	}
}

func TestSignEnvelopeRefuses(t *testing.T) {
	k := vectorKeys(t)[0]
	if _, err := SignEnvelope("", []byte("x"), k); err == nil {
		t.Error("SignEnvelope accepted an empty payload type")
	}
	if _, err := SignEnvelope(manifestType, []byte("x")); err == nil {
		t.Error("SignEnvelope accepted no key")
	}
}

func TestAddSignatureOncePerKey(t *testing.T) {
	keys := vectorKeys(t)
	e := mustSign(t, manifestType, []byte("x"), keys[0], keys[0])
	e.AddSignature(keys[0])
	e.AddSignature(keys[1])
	if len(e.Signatures) != 2 {
		t.Errorf("%d signatures, want 2 (one per key)", len(e.Signatures))
	}
}

// TestVerifyPayloadTypeFirst: a mismatched payload type is reported as
// such before anything else is looked at, even a bad threshold or junk
// signatures.
func TestVerifyPayloadTypeFirst(t *testing.T) {
	k := vectorKeys(t)[0]
	good := mustSign(t, catalogType, []byte("{}"), k)
	junk := &Envelope{PayloadType: catalogType, Payload: []byte("{}"), Signatures: []Signature{{KeyID: "nonsense", Sig: []byte{1}}}}
	tests := []struct {
		name      string
		e         *Envelope
		want      string
		threshold int
	}{
		{"good signature, wrong type", good, manifestType, 1},
		{"junk signatures", junk, manifestType, 1},
		{"bad threshold too", good, manifestType, 0},
		{"case differs", good, strings.ToUpper(catalogType), 1},
		{"empty wanted type", good, "", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.e.Verify(tt.want, tt.threshold, func(string) bool {
				t.Error("trusted called before the payload type was checked")
				return true
			})
			if !errors.Is(err, ErrPayloadType) {
				t.Errorf("Verify = %v, want ErrPayloadType", err)
			}
		})
	}
}

func TestVerifyThreshold(t *testing.T) {
	keys := vectorKeys(t)
	payload := []byte(`{"catalog":1}`)
	sig := func(k *Key) Signature {
		return Signature{KeyID: k.DID(), Sig: k.Sign(PAE(catalogType, payload))}
	}
	withKeyID := func(s Signature, id string) Signature { s.KeyID = id; return s }
	fragment := func(k *Key) string { return k.DID() + "#" + strings.TrimPrefix(k.DID(), Prefix) }
	only := func(ks ...*Key) func(string) bool {
		return func(did string) bool {
			for _, k := range ks {
				if k.DID() == did {
					return true
				}
			}
			return false
		}
	}
	badSig := sig(keys[2])
	badSig.Sig = slices.Clone(badSig.Sig)
	badSig.Sig[0] ^= 1

	tests := []struct {
		name      string
		sigs      []Signature
		threshold int
		trusted   func(string) bool
		want      []*Key // nil: ErrThreshold
	}{
		{"two distinct keys, threshold 2", []Signature{sig(keys[0]), sig(keys[1])}, 2, nil, keys[:2]},
		{"same key twice counts once", []Signature{sig(keys[0]), sig(keys[0])}, 2, nil, nil},
		{"same key twice, threshold 1", []Signature{sig(keys[0]), sig(keys[0])}, 1, nil, keys[:1]},
		{"same key as did and did#fragment counts once", []Signature{sig(keys[0]), withKeyID(sig(keys[0]), fragment(keys[0]))}, 2, nil, nil},
		{"did#fragment alone counts, reported as the bare did", []Signature{withKeyID(sig(keys[0]), fragment(keys[0]))}, 1, nil, keys[:1]},
		{"bad signature does not count", []Signature{sig(keys[0]), sig(keys[1]), badSig}, 3, nil, nil},
		{"bad signature beside two good", []Signature{sig(keys[0]), badSig, sig(keys[1])}, 2, nil, keys[:2]},
		{"bad then good signature of one key", []Signature{badSig, sig(keys[2])}, 1, nil, keys[2:3]},
		{"keyid of another key", []Signature{withKeyID(sig(keys[0]), keys[1].DID())}, 1, nil, nil},
		{"keyid not a did", []Signature{withKeyID(sig(keys[0]), "key-0")}, 1, nil, nil},
		{"keyid empty", []Signature{withKeyID(sig(keys[0]), "")}, 1, nil, nil},
		{"short signature", []Signature{{KeyID: keys[0].DID(), Sig: sig(keys[0]).Sig[:63]}}, 1, nil, nil},
		{"untrusted signer filtered out", []Signature{sig(keys[0]), sig(keys[1])}, 2, only(keys[0], keys[2]), nil},
		{"trusted signers suffice", []Signature{sig(keys[0]), sig(keys[1]), sig(keys[3])}, 2, only(keys[0], keys[1]), keys[:2]},
		{"trusted sees the bare did of a fragment keyid", []Signature{withKeyID(sig(keys[0]), fragment(keys[0]))}, 1, only(keys[0]), keys[:1]},
		{"nobody trusted", []Signature{sig(keys[0])}, 1, func(string) bool { return false }, nil},
		{"no signatures", nil, 1, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &Envelope{PayloadType: catalogType, Payload: payload, Signatures: tt.sigs}
			got, err := e.Verify(catalogType, tt.threshold, tt.trusted)
			if tt.want == nil {
				if !errors.Is(err, ErrThreshold) {
					t.Errorf("Verify = %v, %v; want ErrThreshold", got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			var want []string
			for _, k := range tt.want {
				want = append(want, k.DID())
			}
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("signers = %v, want %v", got, want)
			}
		})
	}
}

func TestVerifyRefusesThresholdBelowOne(t *testing.T) {
	k := vectorKeys(t)[0]
	e := mustSign(t, manifestType, []byte("x"), k)
	for _, th := range []int{0, -1} {
		t.Run(fmt.Sprint(th), func(t *testing.T) {
			if _, err := e.Verify(manifestType, th, nil); err == nil {
				t.Errorf("Verify with threshold %d succeeded", th)
			}
		})
	}
}

// TestVerifyTampered flips every bit position's byte of the payload, every
// byte of the signature, and the payload type, each alone: all fail.
func TestVerifyTampered(t *testing.T) {
	k := vectorKeys(t)[1]
	payload := []byte(`{"id":"wallet","version":"2.0.1"}`)
	tests := []struct {
		name   string
		mutate func(e *Envelope)
	}{
		{"payload type changed", func(e *Envelope) { e.PayloadType = catalogType }},
		{"byte appended", func(e *Envelope) { e.Payload = append(e.Payload, ' ') }},
		{"last byte dropped", func(e *Envelope) { e.Payload = e.Payload[:len(e.Payload)-1] }},
	}
	for i := range payload {
		tests = append(tests, struct {
			name   string
			mutate func(e *Envelope)
		}{fmt.Sprintf("payload byte %d", i), func(e *Envelope) { e.Payload[i] ^= 0x01 }})
	}
	for i := range 64 {
		tests = append(tests, struct {
			name   string
			mutate func(e *Envelope)
		}{fmt.Sprintf("sig byte %d", i), func(e *Envelope) { e.Signatures[0].Sig[i] ^= 0x80 }})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := roundTrip(t, mustSign(t, manifestType, slices.Clone(payload), k))
			tt.mutate(e)
			typ := e.PayloadType
			if _, err := e.Verify(typ, 1, nil); !errors.Is(err, ErrThreshold) {
				t.Errorf("tampered envelope: Verify = %v, want ErrThreshold", err)
			}
		})
	}
}

func TestParseEnvelopeBase64Spellings(t *testing.T) {
	k := vectorKeys(t)[0]
	payload := []byte{0xfb, 0xff, 0xbf, 'a', 0xfe} // '+', '/' and padding in standard base64
	e := mustSign(t, manifestType, payload, k)
	for _, enc := range []struct {
		name string
		enc  *base64.Encoding
	}{
		{"standard", base64.StdEncoding},
		{"URL-safe", base64.URLEncoding},
		{"standard unpadded", base64.RawStdEncoding},
		{"URL-safe unpadded", base64.RawURLEncoding},
	} {
		t.Run(enc.name, func(t *testing.T) {
			doc := fmt.Sprintf(`{"payloadType":%q,"payload":%q,"signatures":[{"keyid":%q,"sig":%q}]}`,
				manifestType, enc.enc.EncodeToString(payload), k.DID(), enc.enc.EncodeToString(e.Signatures[0].Sig))
			got, err := ParseEnvelope([]byte(doc))
			if err != nil {
				t.Fatalf("ParseEnvelope(%s): %v", doc, err)
			}
			if !bytes.Equal(got.Payload, payload) {
				t.Errorf("payload %x, want %x", got.Payload, payload)
			}
			if _, err := got.Verify(manifestType, 1, nil); err != nil {
				t.Errorf("Verify: %v", err)
			}
		})
	}
}

func TestParseEnvelopeStrict(t *testing.T) {
	k := vectorKeys(t)[0]
	good, err := mustSign(t, manifestType, []byte("{}"), k).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	sig := base64.StdEncoding.EncodeToString(k.Sign(PAE(manifestType, []byte("{}"))))
	env := func(fields string) string { return "{" + fields + "}" }
	sigs := func(n int) string {
		s := make([]string, n)
		for i := range s {
			s[i] = fmt.Sprintf(`{"keyid":%q,"sig":%q}`, k.DID(), sig)
		}
		return `"signatures":[` + strings.Join(s, ",") + `]`
	}
	typ := `"payloadType":"` + manifestType + `"`
	tests := []struct {
		name string
		in   string
	}{
		{"empty input", ""},
		{"null", "null"},
		{"array", "[]"},
		{"unknown field", env(typ + `,"payload":"e30=",` + sigs(1) + `,"extra":1`)},
		{"unknown signature field", env(typ + `,"payload":"e30=","signatures":[{"keyid":"x","sig":"` + sig + `","cert":"x"}]`)},
		{"duplicate key", env(typ + `,"payload":"e30=","payload":"e30=",` + sigs(1))},
		{"duplicate payloadType", env(typ + `,` + typ + `,"payload":"e30=",` + sigs(1))},
		{"case-variant key", env(`"PayloadType":"` + manifestType + `","payload":"e30=",` + sigs(1))},
		{"case-variant signature key", env(typ + `,"payload":"e30=","signatures":[{"keyid":"x","Sig":"` + sig + `"}]`)},
		{"trailing bytes", string(good) + "x"},
		{"second object", string(good) + "{}"},
		{"invalid UTF-8", env(`"payloadType":"app\xff",` + `"payload":"e30=",` + sigs(1))},
		{"missing payload", env(typ + `,` + sigs(1))},
		{"null payload", env(typ + `,"payload":null,` + sigs(1))},
		{"missing payloadType", env(`"payload":"e30=",` + sigs(1))},
		{"empty payloadType", env(`"payloadType":"","payload":"e30=",` + sigs(1))},
		{"payloadType not a string", env(`"payloadType":1,"payload":"e30=",` + sigs(1))},
		{"no signatures", env(typ + `,"payload":"e30=","signatures":[]`)},
		{"signatures missing", env(typ + `,"payload":"e30="`)},
		{"too many signatures", env(typ + `,"payload":"e30=",` + sigs(MaxSignatures+1))},
		{"payload not base64", env(typ + `,"payload":"e30*",` + sigs(1))},
		{"payload mixed alphabets", env(typ + `,"payload":"+_8=",` + sigs(1))},
		{"payload with LF (JSON escape)", env(typ + `,"payload":"e3\n0=",` + sigs(1))},
		{"payload with CR (JSON escape)", env(typ + `,"payload":"e30=\r",` + sigs(1))},
		{"payload with raw LF", env(typ + ",\"payload\":\"e3\n0=\"," + sigs(1))},
		{"payload with backslash", env(typ + `,"payload":"e3\\0=",` + sigs(1))},
		{"payload non-zero trailing bits", env(typ + `,"payload":"e31=",` + sigs(1))},
		{"payload bad padding", env(typ + `,"payload":"e30==",` + sigs(1))},
		{"sig not base64", env(typ + `,"payload":"e30=","signatures":[{"keyid":"x","sig":"!!"}]`)},
		{"too large", env(typ + `,"payload":"` + strings.Repeat("A", MaxEnvelopeSize) + `",` + sigs(1))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := ParseEnvelope([]byte(tt.in))
			if !errors.Is(err, ErrEnvelope) {
				t.Errorf("ParseEnvelope = %+v, %v; want ErrEnvelope", e, err)
			}
		})
	}
	// The same envelope well-formed parses, so the cases above fail for
	// the reason they name.
	for _, in := range []string{string(good), env(typ + `,"payload":"e30=",` + sigs(MaxSignatures))} {
		if _, err := ParseEnvelope([]byte(in)); err != nil {
			t.Errorf("ParseEnvelope(well-formed) = %v", err)
		}
	}
}
