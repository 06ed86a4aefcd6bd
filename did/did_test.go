package did

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"maps"
	"math/big"
	"os"
	"slices"
	"strings"
	"testing"

	"filippo.io/edwards25519"
	"github.com/mr-tron/base58"
	"github.com/multiformats/go-varint"
)

// vectorFile is the shape of w3c-ccg/did-method-key's
// test-vectors/ed25519-x25519.json, keyed by DID.
type vectorFile map[string]struct {
	Seed                string `json:"seed"`
	VerificationKeyPair struct {
		ID              string `json:"id"`
		Controller      string `json:"controller"`
		PublicKeyBase58 string `json:"publicKeyBase58"`
	} `json:"verificationKeyPair"`
	KeyAgreementKeyPair struct {
		ID              string `json:"id"`
		Controller      string `json:"controller"`
		PublicKeyBase58 string `json:"publicKeyBase58"`
	} `json:"keyAgreementKeyPair"`
	DIDDocument struct {
		ID                 string `json:"id"`
		VerificationMethod []struct {
			ID              string `json:"id"`
			Controller      string `json:"controller"`
			PublicKeyBase58 string `json:"publicKeyBase58"`
		} `json:"verificationMethod"`
		AssertionMethod      []string `json:"assertionMethod"`
		Authentication       []string `json:"authentication"`
		CapabilityInvocation []string `json:"capabilityInvocation"`
		CapabilityDelegation []string `json:"capabilityDelegation"`
		KeyAgreement         []string `json:"keyAgreement"`
	} `json:"didDocument"`
}

func loadVectors(t testing.TB) vectorFile {
	t.Helper()
	data, err := os.ReadFile("testdata/ed25519-x25519.json")
	if err != nil {
		t.Fatal(err)
	}
	var v vectorFile
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("parse vectors: %v", err)
	}
	if len(v) != 5 {
		t.Fatalf("vectors: %d entries, want the 5 published ones", len(v))
	}
	return v
}

// vectorKeys returns the keys of the published vectors, in seed order.
func vectorKeys(t testing.TB) []*Key {
	t.Helper()
	v := loadVectors(t)
	var keys []*Key
	for _, id := range slices.Sorted(maps.Keys(v)) {
		seed, err := hex.DecodeString(v[id].Seed)
		if err != nil {
			t.Fatal(err)
		}
		k, err := FromSeed(seed)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b *Key) int { return bytes.Compare(a.priv.Seed(), b.priv.Seed()) })
	return keys
}

// decodeMultibase undoes multibaseKey for a test: it returns the codec and
// the raw key.
func decodeMultibase(t *testing.T, mb string) (uint64, []byte) {
	t.Helper()
	if !strings.HasPrefix(mb, "z") {
		t.Fatalf("multibase %q does not start with z", mb)
	}
	raw, err := base58.Decode(mb[1:])
	if err != nil {
		t.Fatalf("multibase %q: %v", mb, err)
	}
	codec, n, err := varint.FromUvarint(raw)
	if err != nil {
		t.Fatalf("multibase %q: %v", mb, err)
	}
	return codec, raw[n:]
}

func TestDIDKeyVectors(t *testing.T) {
	vectors := loadVectors(t)
	for _, id := range slices.Sorted(maps.Keys(vectors)) {
		v := vectors[id]
		t.Run(v.Seed[56:], func(t *testing.T) {
			seed, err := hex.DecodeString(v.Seed)
			if err != nil {
				t.Fatal(err)
			}
			k, err := FromSeed(seed)
			if err != nil {
				t.Fatal(err)
			}
			// seed → public key → DID
			if got := base58.Encode(k.Public()); got != v.VerificationKeyPair.PublicKeyBase58 {
				t.Errorf("public key = %s, want %s", got, v.VerificationKeyPair.PublicKeyBase58)
			}
			if k.DID() != id {
				t.Errorf("DID = %s, want %s", k.DID(), id)
			}
			if got := FromPublicKey(k.Public()); got != id {
				t.Errorf("FromPublicKey = %s, want %s", got, id)
			}
			if "#"+strings.TrimPrefix(id, Prefix) != v.VerificationKeyPair.ID {
				t.Errorf("vector key id %s does not match the DID", v.VerificationKeyPair.ID)
			}
			// DID → public key
			pub, err := Parse(id)
			if err != nil {
				t.Fatalf("Parse(%s): %v", id, err)
			}
			if base58.Encode(pub) != v.VerificationKeyPair.PublicKeyBase58 {
				t.Errorf("Parse(%s) = %s, want %s", id, base58.Encode(pub), v.VerificationKeyPair.PublicKeyBase58)
			}

			// DID → document, with the X25519 key-agreement key.
			doc, err := Resolve(id)
			if err != nil {
				t.Fatalf("Resolve(%s): %v", id, err)
			}
			want := v.DIDDocument
			if doc.ID != want.ID {
				t.Errorf("doc.id = %s, want %s", doc.ID, want.ID)
			}
			if len(doc.VerificationMethod) != len(want.VerificationMethod) {
				t.Fatalf("%d verification methods, want %d", len(doc.VerificationMethod), len(want.VerificationMethod))
			}
			wantCodecs := []uint64{codecEd25519Pub, codecX25519Pub}
			for i, vm := range doc.VerificationMethod {
				w := want.VerificationMethod[i]
				if vm.ID != w.ID {
					t.Errorf("verificationMethod[%d].id = %s, want %s", i, vm.ID, w.ID)
				}
				if vm.Controller != w.Controller {
					t.Errorf("verificationMethod[%d].controller = %s, want %s", i, vm.Controller, w.Controller)
				}
				codec, raw := decodeMultibase(t, vm.PublicKeyMultibase)
				if codec != wantCodecs[i] {
					t.Errorf("verificationMethod[%d] codec 0x%x, want 0x%x", i, codec, wantCodecs[i])
				}
				if got := base58.Encode(raw); got != w.PublicKeyBase58 {
					t.Errorf("verificationMethod[%d] key = %s, want %s", i, got, w.PublicKeyBase58)
				}
			}
			xmb := doc.VerificationMethod[1].PublicKeyMultibase
			if "#"+xmb != v.KeyAgreementKeyPair.ID {
				t.Errorf("X25519 key id #%s, want %s", xmb, v.KeyAgreementKeyPair.ID)
			}
			if _, raw := decodeMultibase(t, xmb); base58.Encode(raw) != v.KeyAgreementKeyPair.PublicKeyBase58 {
				t.Errorf("X25519 key = %s, want %s", base58.Encode(raw), v.KeyAgreementKeyPair.PublicKeyBase58)
			}
			for _, rel := range []struct {
				name      string
				got, want []string
			}{
				{"assertionMethod", doc.AssertionMethod, want.AssertionMethod},
				{"authentication", doc.Authentication, want.Authentication},
				{"capabilityInvocation", doc.CapabilityInvocation, want.CapabilityInvocation},
				{"capabilityDelegation", doc.CapabilityDelegation, want.CapabilityDelegation},
				{"keyAgreement", doc.KeyAgreement, want.KeyAgreement},
			} {
				if !slices.Equal(rel.got, rel.want) {
					t.Errorf("%s = %v, want %v", rel.name, rel.got, rel.want)
				}
			}
		})
	}
}

// didOf builds "did:key:z" + base58(prefix || key) for malformed-input tests.
func didOf(prefix, key []byte) string {
	return Prefix + "z" + base58.Encode(append(slices.Clone(prefix), key...))
}

// leBytes encodes n as 32 little-endian bytes, as Ed25519 points are.
func leBytes(n *big.Int) []byte {
	be := n.FillBytes(make([]byte, 32))
	slices.Reverse(be)
	return be
}

// nonCanonicalKey returns the encoding y+p of a point whose canonical y is
// below 19 and which is not of small order, so it differs from
// the canonical encoding only in being non-canonical.
func nonCanonicalKey(t *testing.T) []byte {
	t.Helper()
	p := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))
	for y := int64(2); y < 19; y++ {
		enc := leBytes(new(big.Int).Add(p, big.NewInt(y)))
		pt, err := new(edwards25519.Point).SetBytes(enc)
		if err != nil {
			continue
		}
		if new(edwards25519.Point).MultByCofactor(pt).Equal(edwards25519.NewIdentityPoint()) == 1 {
			continue
		}
		if bytes.Equal(pt.Bytes(), enc) {
			t.Fatalf("y=%d+p encodes canonically; the test's premise is wrong", y)
		}
		return enc
	}
	t.Fatal("no non-canonical encoding of a large-order point below y=19")
	return nil
}

// offCurveKey returns 32 bytes that decode to no Ed25519 point.
func offCurveKey(t *testing.T) []byte {
	t.Helper()
	for y := int64(2); y < 100; y++ {
		enc := leBytes(big.NewInt(y))
		if _, err := new(edwards25519.Point).SetBytes(enc); err != nil {
			return enc
		}
	}
	t.Fatal("no off-curve y below 100")
	return nil
}

func TestParseErrors(t *testing.T) {
	keys := vectorKeys(t)
	good := keys[0].DID()
	pub := keys[0].Public()
	mb := strings.TrimPrefix(good, Prefix)
	ed := varint.ToUvarint(codecEd25519Pub)

	identity := leBytes(big.NewInt(1))                                                          // the neutral element
	orderTwo := leBytes(new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(20))) // y = -1
	negZero := slices.Clone(identity)
	negZero[31] |= 0x80 // x = 0 with the sign bit set

	tests := []struct {
		name string
		in   string
		want *Error
	}{
		{"empty", "", ErrInvalidDID},
		{"prefix alone", "did:key:", ErrInvalidDID},
		{"did alone", "did:", ErrInvalidDID},
		{"other method", "did:web:example.com", ErrInvalidDID},
		{"other method same key", "did:peer:" + mb, ErrInvalidDID},
		{"upper-case scheme", "DID:KEY:" + mb, ErrInvalidDID},
		{"leading space", " " + good, ErrInvalidDID},
		{"trailing newline", good + "\n", ErrInvalidDID},
		{"multibase z alone", "did:key:z", ErrInvalidDID},
		{"multibase base32 prefix", "did:key:b" + mb[1:], ErrInvalidDID},
		{"multibase base64url prefix", "did:key:u" + mb[1:], ErrInvalidDID},
		{"multibase hex", "did:key:f" + hex.EncodeToString(append(slices.Clone(ed), pub...)), ErrInvalidDID},
		{"upper-case Z", "did:key:Z" + mb[1:], ErrInvalidDID},
		{"base58 zero digit", "did:key:" + mb[:10] + "0" + mb[11:], ErrInvalidDID},
		{"base58 capital O", "did:key:" + mb[:10] + "O" + mb[11:], ErrInvalidDID},
		{"base58 capital I", "did:key:" + mb[:10] + "I" + mb[11:], ErrInvalidDID},
		{"base58 small l", "did:key:" + mb[:10] + "l" + mb[11:], ErrInvalidDID},
		{"base58 plus", "did:key:" + mb[:10] + "+" + mb[11:], ErrInvalidDID},
		{"non-ASCII", "did:key:" + mb[:10] + "é" + mb[12:], ErrInvalidDID},
		{"path", good + "/path", ErrInvalidDID},
		{"query", good + "?service=x", ErrInvalidDID},
		{"secp256k1 key", didOf(varint.ToUvarint(0xe7), append([]byte{0x02}, pub...)), ErrInvalidDID},
		{"x25519 key", didOf(varint.ToUvarint(codecX25519Pub), pub), ErrInvalidDID},
		{"p-256 key", didOf(varint.ToUvarint(0x1200), append([]byte{0x03}, pub...)), ErrInvalidDID},
		{"ed25519 private key codec", didOf(varint.ToUvarint(0x1300), pub), ErrInvalidDID},
		{"no multicodec (leading zero byte)", didOf([]byte{0}, pub), ErrInvalidDID},
		{"raw key without multicodec", didOf(nil, pub), ErrInvalidDID},
		{"non-minimal varint ed 81 00", didOf([]byte{0xed, 0x81, 0x00}, pub), ErrInvalidDID},
		{"non-minimal varint ed 81 80 00", didOf([]byte{0xed, 0x81, 0x80, 0x00}, pub), ErrInvalidDID},
		{"truncated varint", didOf([]byte{0xed}, nil), ErrInvalidDID},
		{"overlong varint", didOf(bytes.Repeat([]byte{0xff}, 11), pub), ErrInvalidDID},
		{"key 31 bytes", didOf(ed, pub[:31]), ErrInvalidPublicKeyLength},
		{"key 33 bytes", didOf(ed, append(slices.Clone([]byte(pub)), 0)), ErrInvalidPublicKeyLength},
		{"key 64 bytes", didOf(ed, append(slices.Clone([]byte(pub)), pub...)), ErrInvalidPublicKeyLength},
		{"key empty", didOf(ed, nil), ErrInvalidPublicKeyLength},
		{"key off the curve", didOf(ed, offCurveKey(t)), ErrInvalidPublicKey},
		{"key non-canonical y >= p", didOf(ed, nonCanonicalKey(t)), ErrInvalidPublicKey},
		{"key x=0 with sign bit", didOf(ed, negZero), ErrInvalidPublicKey},
		{"key identity point", didOf(ed, identity), ErrInvalidPublicKey},
		{"key of order 2", didOf(ed, orderTwo), ErrInvalidPublicKey},
		{"key all zero (order 4)", didOf(ed, make([]byte, 32)), ErrInvalidPublicKey},
		{"fragment of another key", good + "#" + strings.TrimPrefix(keys[1].DID(), Prefix), ErrInvalidDID},
		{"fragment of the X25519 key", good + "#z6LShs9GGnqk85isEBzzshkuVWrVKsRp24GnDuHk8QWkARMW", ErrInvalidDID},
		{"empty fragment", good + "#", ErrInvalidDID},
		{"fragment with did prefix", good + "#" + good, ErrInvalidDID},
		{"two fragments", good + "#" + mb + "#" + mb, ErrInvalidDID},
		{"too long", "did:key:z" + strings.Repeat("2", 300), ErrInvalidDID},
		{"long method-specific id", "did:key:z" + strings.Repeat("2", 129), ErrInvalidDID},
	}
	sentinels := []*Error{ErrInvalidDID, ErrInvalidPublicKeyLength, ErrInvalidPublicKey}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, err := Parse(tt.in)
			if err == nil {
				t.Fatalf("Parse(%q) = %x, want %s", tt.in, key, tt.want.Code)
			}
			for _, s := range sentinels {
				if got := errors.Is(err, s); got != (s == tt.want) {
					t.Errorf("Parse(%q) = %v; errors.Is(%s) = %v", tt.in, err, s.Code, got)
				}
			}
			var de *Error
			if !errors.As(err, &de) || de.Code != tt.want.Code || de.Reason == "" {
				t.Errorf("Parse(%q) = %#v, want code %s with a reason", tt.in, err, tt.want.Code)
			}
			if Valid(tt.in) {
				t.Errorf("Valid(%q) = true", tt.in)
			}
			if _, err := Resolve(tt.in); !errors.Is(err, tt.want) {
				t.Errorf("Resolve(%q) = %v, want %s", tt.in, err, tt.want.Code)
			}
		})
	}
}

func TestParseAccepts(t *testing.T) {
	keys := vectorKeys(t)
	k := keys[2]
	mb := strings.TrimPrefix(k.DID(), Prefix)
	tests := []struct {
		name string
		in   string
	}{
		{"did", k.DID()},
		{"key id with its own fragment", k.DID() + "#" + mb},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pub, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if !pub.Equal(k.Public()) {
				t.Errorf("Parse(%q) = %x, want %x", tt.in, pub, k.Public())
			}
			if !Valid(tt.in) {
				t.Errorf("Valid(%q) = false", tt.in)
			}
			doc, err := Resolve(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if doc.ID != k.DID() {
				t.Errorf("Resolve(%q).id = %s, want the bare DID %s", tt.in, doc.ID, k.DID())
			}
		})
	}
}

func TestErrorIs(t *testing.T) {
	err := error(&Error{Code: "invalidPublicKeyLength", Reason: "31 bytes"})
	tests := []struct {
		target error
		want   bool
	}{
		{ErrInvalidPublicKeyLength, true},
		{ErrInvalidDID, false},
		{ErrInvalidPublicKey, false},
		{&Error{Code: "invalidPublicKeyLength", Reason: "other"}, false}, // only the sentinels match by code
		{errors.New("invalidPublicKeyLength"), false},
	}
	for _, tt := range tests {
		t.Run(tt.target.Error(), func(t *testing.T) {
			if got := errors.Is(err, tt.target); got != tt.want {
				t.Errorf("errors.Is(%v, %v) = %v, want %v", err, tt.target, got, tt.want)
			}
		})
	}
	if got := err.Error(); got != "invalidPublicKeyLength: 31 bytes" {
		t.Errorf("Error() = %q", got)
	}
}

func TestX25519FromEd25519Refuses(t *testing.T) {
	if _, err := X25519FromEd25519(ed25519.PublicKey(offCurveKey(t))); err == nil {
		t.Error("X25519FromEd25519 accepted an off-curve key")
	}
}
