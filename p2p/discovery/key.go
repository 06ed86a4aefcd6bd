package discovery

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"

	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip19"

	"github.com/archy-node/archy/internal/atomicfile"
)

// Key is a publisher's Nostr secret key (secp256k1, BIP-340). It never
// prints its secret: String and every fmt verb show the public key only.
type Key struct {
	sk, pk string // lower-case hex
}

// curveOrder is secp256k1's group order n (SEC 2, section 2.4.1); a secret
// key is an integer in [1, n-1].
var curveOrder, _ = new(big.Int).SetString("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141", 16)

// maxKeyFile bounds a Nostr key file: one nsec or hex key and a newline.
const maxKeyFile = 1024

// ErrBadKey is returned when text is not a Nostr secret key.
var ErrBadKey = errors.New("not a Nostr secret key (64 hex digits or nsec1…)")

// GenerateKey makes a new random Nostr key.
func GenerateKey() (*Key, error) {
	sk := nostr.GeneratePrivateKey()
	if sk == "" {
		return nil, errors.New("generate nostr key: no randomness")
	}
	return ParseKey(sk)
}

// ParseKey reads a secret key written as 64 hex digits or as a NIP-19
// nsec. Errors never repeat the text.
func ParseKey(s string) (*Key, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "nsec1") {
		prefix, v, err := nip19.Decode(s)
		sk, ok := v.(string)
		if err != nil || prefix != "nsec" || !ok {
			return nil, fmt.Errorf("%w: bad nsec encoding", ErrBadKey)
		}
		s = sk
	}
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 32 {
		return nil, ErrBadKey
	}
	if n := new(big.Int).SetBytes(b); n.Sign() == 0 || n.Cmp(curveOrder) >= 0 {
		return nil, fmt.Errorf("%w: out of the secp256k1 range", ErrBadKey)
	}
	sk := hex.EncodeToString(b)
	pk, err := nostr.GetPublicKey(sk)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	return &Key{sk: sk, pk: pk}, nil
}

// LoadKey reads a key file (hex or nsec, surrounding whitespace ignored),
// refusing, like every secret file, one that its group or others can read
// (atomicfile.ErrNotPrivate).
func LoadKey(path string) (*Key, error) {
	data, err := atomicfile.ReadPrivate(path, maxKeyFile)
	if err != nil {
		return nil, fmt.Errorf("load nostr key %s: %w", path, err)
	}
	k, err := ParseKey(string(data))
	if err != nil {
		return nil, fmt.Errorf("load nostr key %s: %w", path, err)
	}
	return k, nil
}

// Save writes the key to a new file (mode 0600, as an nsec line),
// atomically, and never over an existing file.
func (k *Key) Save(path string) error {
	nsec, err := nip19.EncodePrivateKey(k.sk)
	if err != nil {
		return fmt.Errorf("save nostr key %s: %w", path, err)
	}
	if err := atomicfile.WriteNew(path, []byte(nsec+"\n"), 0o600); err != nil {
		if errors.Is(err, atomicfile.ErrExists) {
			return fmt.Errorf("save nostr key %s: file exists; refusing to overwrite a key", path)
		}
		return fmt.Errorf("save nostr key %s: %w", path, err)
	}
	return nil
}

// PublicKey returns the x-only public key in hex, as events carry it.
func (k *Key) PublicKey() string { return k.pk }

// Npub returns the public key as a NIP-19 npub.
func (k *Key) Npub() string {
	npub, _ := nip19.EncodePublicKey(k.pk) // pk is valid hex by construction
	return npub
}

// SecretHex returns the secret key in hex, the form go-nostr signs with.
// Never print or log it.
func (k *Key) SecretHex() string { return k.sk }

// String shows the public key only.
func (k *Key) String() string { return "nostr.Key(" + k.pk + ")" }

// Format prints the public key only, whatever the verb, so no format
// string or log handler can spill the secret; a value receiver covers a
// dereferenced Key too.
func (k Key) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, k.String()) }
