package registry

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/archy-node/archy/did"
)

func TestRotationRoundTrip(t *testing.T) {
	old, next := testKey(t, 1), testKey(t, 2)
	at := time.Date(2026, 3, 4, 5, 6, 7, 890, time.FixedZone("x", 3600))
	env, err := SignRotation("org.example.vault", old, next.DID(), at)
	if err != nil {
		t.Fatal(err)
	}
	data, err := env.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	r, err := VerifyRotation(data)
	if err != nil {
		t.Fatal(err)
	}
	if r.App != "org.example.vault" || r.From != old.DID() || r.To != next.DID() || r.Issued != "2026-03-04T04:06:07Z" {
		t.Fatalf("verified rotation: %+v", r)
	}
}

func TestRotationRefused(t *testing.T) {
	old, next, mallory := testKey(t, 1), testKey(t, 2), testKey(t, 3)
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	sign := func(payloadType string, payload []byte, keys ...*did.Key) []byte {
		env, err := did.SignEnvelope(payloadType, payload, keys...)
		if err != nil {
			t.Fatal(err)
		}
		b, err := env.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	good, err := SignRotation("vault", old, next.DID(), at)
	if err != nil {
		t.Fatal(err)
	}
	payload := good.Payload
	swapped := bytes.Replace(payload, []byte(next.DID()), []byte(mallory.DID()), 1)
	cases := map[string][]byte{
		// The stranger claims the owner's DID handed the app over.
		"signed by the new DID":      sign(RotationPayloadType, payload, next),
		"signed by a third DID":      sign(RotationPayloadType, payload, mallory),
		"payload changed after sign": func() []byte { e := *good; e.Payload = swapped; b, _ := e.Marshal(); return b }(),
		"manifest payload type":      sign(ManifestPayloadType, payload, old),
		"not canonical":              sign(RotationPayloadType, append([]byte(" "), payload...), old),
		"unknown field":              sign(RotationPayloadType, bytes.Replace(payload, []byte(`{"app"`), []byte(`{"a":1,"app"`), 1), old),
		"same DID":                   sign(RotationPayloadType, []byte(`{"app":"vault","from":"`+old.DID()+`","issued":"2026-03-04T05:06:07Z","schema":"archy.rotation/v1","to":"`+old.DID()+`"}`), old),
		"bad issued":                 sign(RotationPayloadType, []byte(`{"app":"vault","from":"`+old.DID()+`","issued":"2026-03-04","schema":"archy.rotation/v1","to":"`+next.DID()+`"}`), old),
		"bad app":                    sign(RotationPayloadType, []byte(`{"app":"Vault!","from":"`+old.DID()+`","issued":"2026-03-04T05:06:07Z","schema":"archy.rotation/v1","to":"`+next.DID()+`"}`), old),
		"not json":                   []byte("nope"),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			r, err := VerifyRotation(data)
			if !errors.Is(err, ErrInvalidRotation) {
				t.Fatalf("VerifyRotation = %+v, %v; want ErrInvalidRotation", r, err)
			}
		})
	}
	if _, err := SignRotation("vault", old, old.DID(), at); !errors.Is(err, ErrInvalidRotation) {
		t.Fatalf("sign a rotation to the same DID: %v", err)
	}
}

// FuzzVerifyRotation feeds rotation statements as they come from install
// requests: never a panic, every failure is ErrInvalidRotation, and what
// is accepted was signed by its From DID.
func FuzzVerifyRotation(f *testing.F) {
	old, next := testKey(f, 1), testKey(f, 2)
	env, err := SignRotation("vault", old, next.DID(), time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	if err != nil {
		f.Fatal(err)
	}
	good, _ := env.Marshal()
	f.Add(good)
	f.Add([]byte(`{"payloadType":"` + RotationPayloadType + `","payload":"e30=","signatures":[]}`))
	f.Add([]byte("{}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := VerifyRotation(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidRotation) {
				t.Fatalf("error %v is not ErrInvalidRotation", err)
			}
			return
		}
		e, err := did.ParseEnvelope(data)
		if err != nil {
			t.Fatalf("accepted an envelope that does not parse: %v", err)
		}
		if _, err := e.Verify(RotationPayloadType, 1, func(id string) bool { return id == r.From }); err != nil {
			t.Fatalf("accepted a statement not signed by %s: %v", r.From, err)
		}
	})
}
