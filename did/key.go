package did

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/archy-node/archy/internal/atomicfile"
)

// Key is an Ed25519 signing key and the did:key it controls.
type Key struct {
	priv ed25519.PrivateKey
	did  string
}

// Generate makes a new random key.
func Generate() (*Key, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate ed25519 key: %w", err)
	}
	return fromPrivate(priv), nil
}

// FromSeed derives a key from a 32-byte Ed25519 seed (RFC 8032).
func FromSeed(seed []byte) (*Key, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("ed25519 seed is %d bytes, want %d", len(seed), ed25519.SeedSize)
	}
	return fromPrivate(ed25519.NewKeyFromSeed(seed)), nil
}

func fromPrivate(priv ed25519.PrivateKey) *Key {
	return &Key{priv: priv, did: FromPublicKey(priv.Public().(ed25519.PublicKey))}
}

// DID returns the key's did:key.
func (k *Key) DID() string { return k.did }

// Public returns the Ed25519 public key.
func (k *Key) Public() ed25519.PublicKey { return k.priv.Public().(ed25519.PublicKey) }

// Sign signs msg with Ed25519.
func (k *Key) Sign(msg []byte) []byte { return ed25519.Sign(k.priv, msg) }

// String never prints the private key.
func (k *Key) String() string { return "did.Key(" + k.did + ")" }

// Format prints the DID only, whatever the verb (%v, %+v, %#v, %x, %d...),
// so no format string or log handler can spill the private key. It has a
// value receiver so that a dereferenced Key is covered too.
func (k Key) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, k.String()) }

// keyFile is the on-disk form: versioned, the DID beside the seed so a
// mismatched or edited file is caught on load.
type keyFile struct {
	Type string `json:"type"`
	DID  string `json:"did"`
	Seed []byte `json:"seed"`
}

const keyFileType = "archy.did-key/v1"

// ErrKeyFileMode is returned when a key file can be read by others than its
// owner. It is atomicfile.ErrNotPrivate, which every secret file shares.
var ErrKeyFileMode = atomicfile.ErrNotPrivate

// maxKeyFile bounds a key file: a few hundred bytes of JSON.
const maxKeyFile = 4096

// Save writes k to path with mode 0600 and refuses to overwrite an
// existing file, atomically on both counts: the key is written to a temp
// file in the same folder, synced, then hard-linked into place, which
// fails if path exists (even if it appeared after the check), so a reader
// never sees half a key and an existing key is never replaced.
func (k *Key) Save(path string) error {
	data, err := json.MarshalIndent(keyFile{Type: keyFileType, DID: k.did, Seed: k.priv.Seed()}, "", "  ")
	if err != nil {
		return fmt.Errorf("save key %s: %w", path, err)
	}
	err = atomicfile.WriteNew(path, append(data, '\n'), 0o600)
	if errors.Is(err, atomicfile.ErrExists) {
		return fmt.Errorf("save key %s: file exists; refusing to overwrite a key", path)
	}
	if err != nil {
		return fmt.Errorf("save key %s: %w", path, err)
	}
	return nil
}

// LoadKey reads a key file written by Save. It refuses a file that group or
// others can read, saying so, because such a key may already be copied
// (atomicfile.ReadPrivate makes the checks every secret file gets).
func LoadKey(path string) (*Key, error) {
	data, err := atomicfile.ReadPrivate(path, maxKeyFile)
	if err != nil {
		return nil, fmt.Errorf("load key %s: %w", path, err)
	}
	var kf keyFile
	if err := json.Unmarshal(data, &kf); err != nil {
		return nil, fmt.Errorf("load key %s: not an archy key file", path)
	}
	if kf.Type != keyFileType {
		return nil, fmt.Errorf("load key %s: type %q, want %q", path, kf.Type, keyFileType)
	}
	k, err := FromSeed(kf.Seed)
	if err != nil {
		return nil, fmt.Errorf("load key %s: %w", path, err)
	}
	if k.did != kf.DID {
		return nil, fmt.Errorf("load key %s: the seed does not match the recorded DID", path)
	}
	return k, nil
}
