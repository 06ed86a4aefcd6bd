package p2p

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/archy-node/archy/internal/atomicfile"
)

// keyFile is the identity key's name in the data folder; maxKeyFile
// bounds what is read of it (an Ed25519 key is 68 bytes).
const (
	keyFile    = "identity.key"
	maxKeyFile = 16 << 10
)

// loadOrCreateKey reads the node's Ed25519 identity from dir, creating it
// (0600, written atomically) on first start.
func loadOrCreateKey(dir string) (crypto.PrivKey, error) {
	p := filepath.Join(dir, keyFile)
	// A secret like the others: refused if its group or others may read it.
	raw, err := atomicfile.ReadPrivate(p, maxKeyFile)
	if err == nil {
		k, err := crypto.UnmarshalPrivateKey(raw)
		if err != nil {
			return nil, fmt.Errorf("read identity key %s: %w", p, err)
		}
		return k, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read identity key %s: %w", p, err)
	}
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate identity key: %w", err)
	}
	raw, err = crypto.MarshalPrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("encode identity key: %w", err)
	}
	if err := writeFileAtomic(p, raw, 0o600); err != nil {
		return nil, fmt.Errorf("write identity key: %w", err)
	}
	return k, nil
}

// writeFileAtomic writes data to a temp file beside p, syncs it, renames it
// over p and syncs the directory: p is either the old or the new content.
func writeFileAtomic(p string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(p)
	f, err := os.CreateTemp(dir, "."+filepath.Base(p)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			_ = os.Remove(tmp)
		}
	}()
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, p); err != nil {
		return err
	}
	ok = true
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
