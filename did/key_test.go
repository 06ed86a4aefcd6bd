package did

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestSaveLoadRoundTrip(t *testing.T) {
	k, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "publisher.key")
	if err := k.Save(path); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %04o, want 0600", st.Mode().Perm())
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("folder holds %d entries after Save, want only the key (no temp files)", len(entries))
	}
	got, err := LoadKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.DID() != k.DID() {
		t.Errorf("loaded DID %s, want %s", got.DID(), k.DID())
	}
	msg := []byte("archy")
	if !ed25519.Verify(k.Public(), msg, got.Sign(msg)) {
		t.Error("loaded key signs differently from the saved one")
	}
}

func TestSaveRefusesOverwrite(t *testing.T) {
	tests := []struct {
		name     string
		existing func(t *testing.T, path string)
	}{
		{"another key", func(t *testing.T, path string) {
			k, err := Generate()
			if err != nil {
				t.Fatal(err)
			}
			if err := k.Save(path); err != nil {
				t.Fatal(err)
			}
		}},
		{"any file", func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte("not a key, but mine"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"a dangling symlink", func(t *testing.T, path string) {
			if err := os.Symlink(filepath.Join(filepath.Dir(path), "nowhere"), path); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "k.key")
			tt.existing(t, path)
			before, _ := os.Readlink(path)
			beforeData, _ := os.ReadFile(path)
			k, err := Generate()
			if err != nil {
				t.Fatal(err)
			}
			err = k.Save(path)
			if err == nil || !strings.Contains(err.Error(), "refusing to overwrite") {
				t.Fatalf("Save over an existing file = %v, want a refusal", err)
			}
			after, _ := os.Readlink(path)
			afterData, _ := os.ReadFile(path)
			if before != after || !bytes.Equal(beforeData, afterData) {
				t.Error("Save changed the existing file")
			}
			entries, _ := os.ReadDir(filepath.Dir(path))
			if len(entries) != 1 {
				t.Errorf("folder holds %d entries after a refused Save, want 1", len(entries))
			}
		})
	}
}

func TestSaveMissingFolder(t *testing.T) {
	k, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "missing", "k.key")
	if err := k.Save(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("Save into a missing folder = %v, want an error naming the path", err)
	}
}

func TestLoadKeyRefusesReadableByOthers(t *testing.T) {
	for _, mode := range []os.FileMode{0o640, 0o644, 0o604, 0o660, 0o666, 0o700 | 0o004, 0o620} {
		t.Run(fmt.Sprintf("%04o", mode), func(t *testing.T) {
			k, err := Generate()
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "k.key")
			if err := k.Save(path); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, mode); err != nil {
				t.Fatal(err)
			}
			_, err = LoadKey(path)
			if !errors.Is(err, ErrKeyFileMode) {
				t.Fatalf("LoadKey of a %04o file = %v, want ErrKeyFileMode", mode, err)
			}
			msg := err.Error()
			for _, want := range []string{path, fmt.Sprintf("%04o", mode), "readable by group or others", "chmod 600"} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not say %q", msg, want)
				}
			}
		})
	}
}

// keyFileWith saves a key and rewrites its file through edit.
func keyFileWith(t *testing.T, edit func(m map[string]any)) string {
	t.Helper()
	k, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "k.key")
	if err := k.Save(path); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	data, err = json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadKeyRefusesBadFiles(t *testing.T) {
	keys := vectorKeys(t)
	otherSeed := keys[1].priv.Seed()
	tests := []struct {
		name string
		path func(t *testing.T) string
		want string
	}{
		{"DID of another key", func(t *testing.T) string {
			return keyFileWith(t, func(m map[string]any) { m["did"] = keys[0].DID() })
		}, "does not match"},
		{"seed of another key", func(t *testing.T) string {
			return keyFileWith(t, func(m map[string]any) { m["seed"] = otherSeed })
		}, "does not match"},
		{"DID removed", func(t *testing.T) string {
			return keyFileWith(t, func(m map[string]any) { delete(m, "did") })
		}, "does not match"},
		{"short seed", func(t *testing.T) string {
			return keyFileWith(t, func(m map[string]any) { m["seed"] = otherSeed[:31] })
		}, "seed is 31 bytes"},
		{"other type", func(t *testing.T) string {
			return keyFileWith(t, func(m map[string]any) { m["type"] = "archy.did-key/v2" })
		}, "type"},
		{"not JSON", func(t *testing.T) string {
			path := filepath.Join(t.TempDir(), "k.key")
			if err := os.WriteFile(path, []byte(hex.EncodeToString(otherSeed)), 0o600); err != nil {
				t.Fatal(err)
			}
			return path
		}, "not an archy key file"},
		{"empty", func(t *testing.T) string {
			path := filepath.Join(t.TempDir(), "k.key")
			if err := os.WriteFile(path, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			return path
		}, "not an archy key file"},
		{"too large", func(t *testing.T) string {
			path := filepath.Join(t.TempDir(), "k.key")
			if err := os.WriteFile(path, bytes.Repeat([]byte(" "), 5000), 0o600); err != nil {
				t.Fatal(err)
			}
			return path
		}, "too large"},
		{"missing", func(t *testing.T) string {
			return filepath.Join(t.TempDir(), "k.key")
		}, "no such file"},
		{"a folder", func(t *testing.T) string {
			path := filepath.Join(t.TempDir(), "k.key")
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
			return path
		}, "not a regular file"},
		{"a FIFO (must not block)", func(t *testing.T) string {
			path := filepath.Join(t.TempDir(), "k.key")
			if err := syscall.Mkfifo(path, 0o600); err != nil {
				t.Skipf("mkfifo: %v", err)
			}
			return path
		}, "not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.path(t)
			k, err := LoadKey(path)
			if err == nil {
				t.Fatalf("LoadKey accepted it: %v", k)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("LoadKey = %v, want an error saying %q", err, tt.want)
			}
		})
	}
}

func TestFromSeedLength(t *testing.T) {
	for _, n := range []int{0, 31, 33, 64} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			if _, err := FromSeed(make([]byte, n)); err == nil {
				t.Errorf("FromSeed accepted a %d-byte seed", n)
			}
		})
	}
}

func TestKeyNeverPrintsSecret(t *testing.T) {
	k := vectorKeys(t)[3]
	seed := k.priv.Seed()
	secrets := []string{
		hex.EncodeToString(seed), hex.EncodeToString(k.priv),
		fmt.Sprint([]byte(seed)), fmt.Sprint([]byte(k.priv))[1:20],
	}
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("key", "k", k, "deref", *k)
	var jsonOut bytes.Buffer
	_ = json.NewEncoder(&jsonOut).Encode(k)
	outputs := map[string]string{"slog": logged.String(), "json": jsonOut.String()}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%d", "%q"} {
		outputs[verb] = fmt.Sprintf(verb, k)
		outputs["deref "+verb] = fmt.Sprintf(verb, *k)
	}
	for name, out := range outputs {
		t.Run(name, func(t *testing.T) {
			for _, s := range secrets {
				if strings.Contains(out, s) {
					t.Errorf("%s printed the private key: %s", name, out)
				}
			}
		})
	}
	if got := fmt.Sprint(k); got != "did.Key("+k.DID()+")" {
		t.Errorf("Sprint(key) = %q, want the DID", got)
	}
}
