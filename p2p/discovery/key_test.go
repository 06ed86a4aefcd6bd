package discovery

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/archy-node/archy/internal/atomicfile"
)

// The examples of NIP-19 (github.com/nostr-protocol/nips/blob/master/19.md);
// the npub is the nsec's public key.
const (
	nip19Nsec   = "nsec1vl029mgpspedva04g90vltkh6fvh240zqtv9k0t9af8935ke9laqsnlfe5"
	nip19SkHex  = "67dea2ed018072d675f5415ecfaed7d2597555e202d85b3d65ea4e58d2d92ffa"
	nip19Npub   = "npub10elfcs4fr0l0r8af98jlmgdh9c8tcxjvz9qkw038js35mp4dma8qzvjptg"
	nip19PubHex = "7e7e9c42a91bfef19fa929e5fda1b72e0ebc1a4c1141673e2794234d86addf4e"
)

func TestParseKey(t *testing.T) {
	tests := []struct {
		name, in string
		ok       bool
	}{
		{"hex", nip19SkHex, true},
		{"upper-case hex", strings.ToUpper(nip19SkHex), true},
		{"nsec", nip19Nsec, true},
		{"nsec with newline", nip19Nsec + "\n", true},
		{"nsec with a wrong checksum", nip19Nsec[:len(nip19Nsec)-1] + "6", false},
		{"npub is not a secret", nip19Npub, false},
		{"short hex", nip19SkHex[:62], false},
		{"zero", strings.Repeat("0", 64), false},
		{"curve order", "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141", false},
		{"two keys", nip19SkHex + "\n" + nip19SkHex, false},
		{"empty", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := ParseKey(tt.in)
			if !tt.ok {
				if err == nil {
					t.Fatalf("ParseKey accepted %q", tt.in)
				}
				if !errors.Is(err, ErrBadKey) {
					t.Errorf("error %v is not ErrBadKey", err)
				}
				if tt.in != "" && strings.Contains(err.Error(), strings.TrimSpace(tt.in)) {
					t.Errorf("error repeats the input: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if k.SecretHex() != nip19SkHex || k.PublicKey() != nip19PubHex || k.Npub() != nip19Npub {
				t.Fatalf("key %s / %s, want %s / %s", k.PublicKey(), k.Npub(), nip19PubHex, nip19Npub)
			}
		})
	}
}

func TestKeySaveLoad(t *testing.T) {
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "nostr.key")
	if err := k.Save(path); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, mode %v", err, st.Mode())
	}
	data, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(data), "nsec1") {
		t.Fatalf("key file does not hold an nsec")
	}
	back, err := LoadKey(path)
	if err != nil || back.SecretHex() != k.SecretHex() {
		t.Fatalf("LoadKey: %v", err)
	}

	other, _ := GenerateKey()
	if err := other.Save(path); err == nil || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Fatalf("Save over an existing key = %v", err)
	}
	if again, _ := os.ReadFile(path); string(again) != string(data) {
		t.Fatal("Save changed an existing key file")
	}

	// A hex key file written by hand loads too.
	hexPath := filepath.Join(dir, "hex.key")
	if err := os.WriteFile(hexPath, []byte(nip19SkHex+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if k, err := LoadKey(hexPath); err != nil || k.PublicKey() != nip19PubHex {
		t.Fatalf("LoadKey(hex): %v", err)
	}
	for _, mode := range []os.FileMode{0o640, 0o644, 0o604} {
		t.Run(fmt.Sprintf("%04o", mode), func(t *testing.T) {
			if err := os.Chmod(hexPath, mode); err != nil {
				t.Fatal(err)
			}
			_, err := LoadKey(hexPath)
			if !errors.Is(err, atomicfile.ErrNotPrivate) || !strings.Contains(err.Error(), "chmod 600") {
				t.Fatalf("LoadKey of a %04o file = %v", mode, err)
			}
		})
	}
	bad := filepath.Join(dir, "bad.key")
	if err := os.WriteFile(bad, []byte("not a key "+nip19SkHex[:10]), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKey(bad); !errors.Is(err, ErrBadKey) || strings.Contains(err.Error(), nip19SkHex[:10]) {
		t.Fatalf("LoadKey(bad) = %v", err)
	}
}

// TestKeyNeverPrintsSecret formats a key every way a log line might.
func TestKeyNeverPrintsSecret(t *testing.T) {
	k, err := ParseKey(nip19SkHex)
	if err != nil {
		t.Fatal(err)
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%q", "%d"} {
		for name, v := range map[string]any{"pointer": k, "value": *k} {
			out := fmt.Sprintf(verb, v)
			if strings.Contains(out, nip19SkHex) || strings.Contains(strings.ToLower(out), nip19SkHex[:16]) {
				t.Errorf("%s %s printed the secret: %s", name, verb, out)
			}
			if !strings.Contains(out, nip19PubHex) {
				t.Errorf("%s %s = %q, want the public key", name, verb, out)
			}
		}
	}
}
