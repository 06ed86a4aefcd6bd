package orchestrator

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"

	"github.com/archy-node/archy/internal/atomicfile"
	"github.com/archy-node/archy/registry"
)

// Secret charsets (registry.Secret.Charset).
var charsets = map[string]string{
	"":          "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
	"alnum":     "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
	"hex":       "0123456789abcdef",
	"base64url": "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
}

// secrets keeps each app's generated secrets, one 0600 file per secret in
// a 0700 folder per app. A secret is generated once and then read back
// byte for byte: across reconciles, restarts, updates and reinstalls. Only
// a purge removes it. Values never reach a log line or an error.
type secrets struct {
	dir  string
	rand io.Reader
}

func (s *secrets) appDir(app string) string { return filepath.Join(s.dir, app) }

// ensure returns the app's secrets, generating the missing ones.
func (s *secrets) ensure(app string, decl []registry.Secret) (map[string]string, error) {
	out := make(map[string]string, len(decl))
	if len(decl) == 0 {
		return out, nil
	}
	dir := s.appDir(app)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("secrets of %s: %w", app, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("secrets of %s: %w", app, err)
	}
	for _, d := range decl {
		v, err := s.read(app, d.Name)
		switch {
		case err == nil:
			out[d.Name] = v
			continue
		case !errors.Is(err, os.ErrNotExist):
			return nil, err
		}
		v, err = generate(s.rand, d)
		if err != nil {
			return nil, fmt.Errorf("generate secret %s of %s: %w", d.Name, app, err)
		}
		if err := atomicfile.Write(filepath.Join(dir, d.Name), []byte(v), 0o600); err != nil {
			return nil, fmt.Errorf("store secret %s of %s: %w", d.Name, app, err)
		}
		out[d.Name] = v
	}
	return out, nil
}

func (s *secrets) read(app, name string) (string, error) {
	p := filepath.Join(s.appDir(app), name)
	fi, err := os.Lstat(p)
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("secret %s of %s: %s is not a private regular file (want mode 0600)", name, app, p)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return "", fmt.Errorf("read secret %s of %s: %w", name, app, err)
	}
	return string(b), nil
}

func (s *secrets) purge(app string) error {
	if err := os.RemoveAll(s.appDir(app)); err != nil {
		return fmt.Errorf("purge secrets of %s: %w", app, err)
	}
	return nil
}

// generate draws Length characters uniformly from the charset.
func generate(r io.Reader, d registry.Secret) (string, error) {
	cs, ok := charsets[d.Charset]
	if !ok {
		return "", fmt.Errorf("unknown charset %q", d.Charset)
	}
	if d.Length <= 0 || d.Length > 4096 {
		return "", fmt.Errorf("length %d out of range", d.Length)
	}
	b := make([]byte, d.Length)
	max := big.NewInt(int64(len(cs)))
	for i := range b {
		n, err := rand.Int(r, max)
		if err != nil {
			return "", err
		}
		b[i] = cs[n.Int64()]
	}
	return string(b), nil
}
