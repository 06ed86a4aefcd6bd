package registry

import (
	"bytes"
	"errors"
	"testing"

	"github.com/archy-node/archy/cas"
)

// FuzzLoadManifest feeds the authoring parser (YAML and JSON): it must
// never panic, must fail only with a *ValidationError, and whatever it
// accepts and validates must canonicalise to bytes that parse back
// strictly to the same CID.
func FuzzLoadManifest(f *testing.F) {
	f.Add([]byte(yamlManifest(f)), false)
	f.Add([]byte(jsonManifest(f)), true)
	f.Add([]byte(archiveManifest(f, "      archive: web.tar\n")), false)
	f.Add([]byte("a: &a [*a]\n"), false)
	f.Add([]byte("x: !!binary aGVsbG8=\nid: 0x1F\n"), false)
	f.Add([]byte(`{"id":"a","id":"b"}`), true)
	f.Fuzz(func(t *testing.T, data []byte, asJSON bool) {
		format := "yaml"
		if asJSON {
			format = "json"
		}
		m, err := ParseManifest(data, format)
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) || len(ve.Problems) == 0 {
				t.Fatalf("parse error %v (%T) is not a *ValidationError with problems", err, err)
			}
			return
		}
		if err := m.Validate(); err != nil {
			return
		}
		canon, err := Canonical(m)
		if err != nil {
			t.Fatalf("valid manifest does not canonicalise: %v", err)
		}
		back, err := ParsePayload(canon)
		if err != nil {
			t.Fatalf("canonical bytes of a valid manifest do not parse strictly: %v\n%s", err, canon)
		}
		again, err := Canonical(back)
		if err != nil || !cas.Sum(again).Equals(cas.Sum(canon)) {
			t.Fatalf("re-canonicalised manifest has another CID (%v)", err)
		}
	})
}

// FuzzParsePayload feeds the strict parser of signed payloads: it must
// never panic, and anything it accepts is already canonical, so it
// re-canonicalises to the same bytes and CID.
func FuzzParsePayload(f *testing.F) {
	f.Add(canonicalGood(f))
	min, _ := Canonical(&Manifest{Schema: Schema, ID: "ab", Name: "A", Version: "0.0.1", Publisher: testKey(f, 2).DID(),
		Containers: []Container{{Name: "a", Image: testImage("a")}}})
	f.Add(min)
	f.Add([]byte(`{"containers":null,"id":"","name":"","publisher":"","schema":"","version":""}`))
	f.Add([]byte(`{"containers":[{"image":{},"name":"a","ports":[{"container":9007199254740993,"host":1}]}]}`))
	f.Add([]byte("\xEF\xBB\xBF{}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParsePayload(data)
		if err != nil {
			if !errors.Is(err, ErrStrictParse) {
				t.Fatalf("error %v does not match ErrStrictParse", err)
			}
			return
		}
		_ = m.Validate() // must not panic
		canon, err := Canonical(m)
		if err != nil {
			t.Fatalf("accepted payload does not re-canonicalise: %v", err)
		}
		if !bytes.Equal(canon, data) || !cas.Sum(canon).Equals(cas.Sum(data)) {
			t.Fatalf("accepted payload re-canonicalises to other bytes:\n%s\n%s", data, canon)
		}
	})
}
