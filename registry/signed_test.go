package registry

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/archy-node/archy/cas"
	"github.com/archy-node/archy/did"
)

func canonicalGood(t testing.TB) []byte {
	t.Helper()
	b, err := Canonical(goodManifest(t))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParsePayloadAcceptsCanonical(t *testing.T) {
	b := canonicalGood(t)
	m, err := ParsePayload(b)
	if err != nil {
		t.Fatalf("canonical payload refused: %v", err)
	}
	again, err := Canonical(m)
	if err != nil || !bytes.Equal(again, b) {
		t.Fatalf("re-canonicalised payload differs (%v)", err)
	}
	if m.Containers[0].Image.CID != goodManifest(t).Containers[0].Image.CID {
		t.Fatalf("parsed image cid %q", m.Containers[0].Image.CID)
	}
}

func TestParsePayloadStrict(t *testing.T) {
	good := string(canonicalGood(t))
	if !strings.HasPrefix(good, `{"channel":"stable","containers":[`) {
		t.Fatalf("unexpected canonical prefix: %.60s", good)
	}
	replace := func(old, new string) string {
		if !strings.Contains(good, old) {
			t.Fatalf("canonical payload lacks %q", old)
		}
		return strings.Replace(good, old, new, 1)
	}
	tests := []struct {
		name    string
		payload string
		msg     string
	}{
		{"unknown top-level field", replace(`{"channel"`, `{"admin":true,"channel"`), "unknown"},
		{"unknown nested field", replace(`"name":"web"`, `"name":"web","priv":true`), "unknown"},
		{"duplicate key", replace(`{"channel":"stable"`, `{"channel":"stable","channel":"stable"`), "duplicate"},
		{"duplicate nested key", replace(`"name":"web"`, `"name":"web","name":"web"`), "duplicate"},
		{"case-variant key", replace(`"id":"org.example.notes"`, `"ID":"org.example.notes"`), "unknown"},
		{"case-variant key beside the real one", replace(`"id":"org.example.notes"`, `"ID":"x","id":"org.example.notes"`), "unknown"},
		{"trailing space", good + " ", "canonical"},
		{"trailing newline", good + "\n", "canonical"},
		{"trailing value", good + "{}", ""},
		{"trailing garbage", good + "x", ""},
		{"byte order mark", "\xEF\xBB\xBF" + good, "byte order mark"},
		{"invalid UTF-8", replace(`"name":"Notes"`, "\"name\":\"No\xfftes\""), "UTF-8"},
		{"lone surrogate escape", replace(`"name":"Notes"`, `"name":"No\ud800tes"`), ""},
		{"integer beyond 2^53 (float-equal)", replace(`"host":8080`, `"host":9007199254740993`), "2^53"},
		{"negative integer beyond 2^53", replace(`"host":8080`, `"host":-9007199254740993`), "2^53"},
		{"large integer", replace(`"host":8080`, `"host":18446744073709551616`), "2^53"},
		{"exponent beyond 2^53", replace(`"cpus":0.5`, `"cpus":1e16`), "2^53"},
		{"whitespace", replace(`{"channel":"stable"`, `{ "channel": "stable"`), "canonical"},
		{"key order", strings.Replace(replace(`{"channel":"stable","containers"`, `{"containers"`), `}],"data":`, `}],"channel":"stable","data":`, 1), "canonical"},
		{"explicit zero value", replace(`"name":"db"`, `"name":"db","privileged":false`), "canonical"},
		{"authoring-only archive", replace(`"ref":"localhost/web:1"`, `"archive":"web.tar","ref":"localhost/web:1"`), "canonical"},
		{"escaped slash", replace(`"path":"/health"`, `"path":"\/health"`), "canonical"},
		{"number form", replace(`"host":8080`, `"host":8080.0`), "/containers/0/ports/0/host"},
		{"float form", replace(`"cpus":0.5`, `"cpus":5e-1`), "canonical"},
		{"not an object", `[]`, ""},
		{"empty", ``, ""},
		{"null", `null`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParsePayload([]byte(tt.payload))
			if err == nil {
				t.Fatalf("accepted %.120q", tt.payload)
			}
			if !errors.Is(err, ErrStrictParse) {
				t.Fatalf("error %v does not match ErrStrictParse", err)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("error %q lacks %q", err, tt.msg)
			}
		})
	}
}

func TestStrictUnmarshalIntegers(t *testing.T) {
	tests := []struct {
		json string
		ok   bool
	}{
		{`{"n":9007199254740992}`, true},
		{`{"n":-9007199254740992}`, true},
		{`{"n":9007199254740991}`, true},
		{`{"n":9007199254740993}`, false},
		{`{"n":-9007199254740993}`, false},
		{`{"n":9007199254740992.5}`, false},
		{`{"n":90071992547409921e-1}`, false},
		{`{"n":9007199254740992e0}`, true},
		{`{"n":0.9007199254740992e16}`, true},
		{`{"n":0.9007199254740993e16}`, false},
		{`{"n":1e16}`, false},
		{`{"n":1E+400}`, false},
		{`{"n":1e-400}`, true},
		{`{"n":1e99999999999}`, false},
		{`{"n":1e-99999999999}`, true},
		{`{"n":0}`, true},
		{`{"n":-0.0e5}`, true},
		{`{"n":00}`, false}, // not JSON
	}
	for _, tt := range tests {
		t.Run(tt.json, func(t *testing.T) {
			var v struct {
				N float64 `json:"n"`
			}
			err := StrictUnmarshal([]byte(tt.json), &v)
			if (err == nil) != tt.ok {
				t.Fatalf("StrictUnmarshal(%s) = %v, want ok=%v", tt.json, err, tt.ok)
			}
		})
	}
}

func TestSignVerify(t *testing.T) {
	k := testKey(t, 1)
	m := goodManifest(t)
	env, c, err := Sign(m, k)
	if err != nil {
		t.Fatal(err)
	}
	if want := cas.Sum(canonicalGood(t)); !c.Equals(want) {
		t.Fatalf("cid %s, want %s", c, want)
	}
	data, err := env.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	v, err := VerifyEnvelope(data)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if v.Signer != k.DID() || !v.CID.Equals(c) || v.Manifest.ID != m.ID {
		t.Fatalf("verified %s by %s, want %s by %s", v.CID, v.Signer, c, k.DID())
	}

	t.Run("other key", func(t *testing.T) {
		if _, _, err := Sign(m, testKey(t, 2)); !errors.Is(err, ErrPublisherMismatch) {
			t.Fatalf("signing with another key: %v", err)
		}
		env, err := did.SignEnvelope(ManifestPayloadType, env.Payload, testKey(t, 2))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := VerifyParsed(env); !errors.Is(err, ErrPublisherMismatch) {
			t.Fatalf("verify envelope signed by another key: %v", err)
		}
	})
	t.Run("invalid manifest", func(t *testing.T) {
		bad := goodManifest(t)
		bad.Containers[0].Privileged = true
		if _, _, err := Sign(bad, k); !errors.Is(err, ErrInvalid) {
			t.Fatalf("signing a privileged manifest: %v", err)
		}
		payload, _ := Canonical(bad)
		env, _ := did.SignEnvelope(ManifestPayloadType, payload, k)
		if _, err := VerifyParsed(env); !errors.Is(err, ErrInvalid) {
			t.Fatalf("verifying a privileged manifest: %v", err)
		}
	})
	t.Run("unpinned archive only", func(t *testing.T) {
		bad := goodManifest(t)
		bad.Containers[0].Image = Image{Archive: "web.tar"}
		if _, _, err := Sign(bad, k); !errors.Is(err, ErrInvalid) {
			t.Fatalf("signing an image pinned by archive alone: %v", err)
		}
	})
	t.Run("non-canonical payload", func(t *testing.T) {
		payload := append(canonicalGood(t), ' ')
		env, _ := did.SignEnvelope(ManifestPayloadType, payload, k)
		if _, err := VerifyParsed(env); !errors.Is(err, ErrStrictParse) {
			t.Fatalf("verifying a non-canonical payload: %v", err)
		}
	})
	t.Run("catalog payload type", func(t *testing.T) {
		env, _ := did.SignEnvelope("application/vnd.archy.catalog.v1+json", env.Payload, k)
		if _, err := VerifyParsed(env); !errors.Is(err, did.ErrPayloadType) {
			t.Fatalf("verifying a catalog-typed envelope: %v", err)
		}
	})
	t.Run("every flipped bit", func(t *testing.T) {
		for i := range data {
			for _, mask := range []byte{0x01, 0x20} {
				b := bytes.Clone(data)
				b[i] ^= mask
				if _, err := VerifyEnvelope(b); err == nil && !sameEnvelope(t, b, data) {
					t.Fatalf("flipping byte %d (%q→%q) still verifies", i, data[i], b[i])
				}
			}
		}
	})
}

// sameEnvelope reports whether two envelope encodings carry the same
// payload type, payload, keyids and signatures (base64 has slack bits in
// its last character, which DSSE does not sign).
func sameEnvelope(t testing.TB, a, b []byte) bool {
	ea, err1 := did.ParseEnvelope(a)
	eb, err2 := did.ParseEnvelope(b)
	if err1 != nil || err2 != nil {
		return false
	}
	ma, _ := ea.Marshal()
	mb, _ := eb.Marshal()
	return bytes.Equal(ma, mb)
}
