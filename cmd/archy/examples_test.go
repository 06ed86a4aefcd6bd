package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/archy-node/archy/examples"
)

// TestSampleAppsValidateSignVerify is the foundation's promise on the
// sample apps: `archy app validate examples/apps/*` passes, and a signed
// sample with any payload byte flipped fails `archy app verify`. The images
// must have been built (`make images`, which `make test` runs first).
func TestSampleAppsValidateSignVerify(t *testing.T) {
	apps, err := filepath.Glob(filepath.Join(examples.AppsDir(), "*"))
	if err != nil || len(apps) < 6 {
		t.Fatalf("sample apps: %v (%d found)", err, len(apps))
	}
	if _, err := os.Stat(filepath.Join(examples.AppsDir(), "hello", "images", "web.oci.tar")); err != nil {
		t.Fatalf("sample images are not built: run `make images` first (%v)", err)
	}
	out, errOut, err := execArchy(t, append([]string{"app", "validate"}, apps...)...)
	if err != nil {
		t.Fatalf("validate: %v\n%s", err, errOut)
	}
	if n := strings.Count(out, ": ok "); n != len(apps) {
		t.Fatalf("validate printed %d ok lines for %d apps:\n%s", n, len(apps), out)
	}

	// git does not keep the key's 0600 mode; use a private copy.
	key := filepath.Join(t.TempDir(), "publisher.key")
	b, err := os.ReadFile(examples.KeyFile())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, b, 0o600); err != nil {
		t.Fatal(err)
	}
	signed := filepath.Join(t.TempDir(), "vault.signed.json")
	if _, errOut, err := execArchy(t, "app", "sign", filepath.Join(examples.AppsDir(), "vault"), "--key", key, "--out", signed); err != nil {
		t.Fatalf("sign: %v\n%s", err, errOut)
	}
	data, err := os.ReadFile(signed)
	if err != nil {
		t.Fatal(err)
	}
	if _, errOut, err := execArchy(t, "app", "verify", signed); err != nil {
		t.Fatalf("verify untouched: %v\n%s", err, errOut)
	}
	tampered := filepath.Join(t.TempDir(), "tampered.json")
	for i := range data {
		c := append([]byte(nil), data...)
		c[i] ^= 0x01
		if err := os.WriteFile(tampered, c, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, _, err := execArchy(t, "app", "verify", tampered); err == nil {
			t.Fatalf("byte %d flipped (%q) still verifies", i, data[i])
		}
	}
}
