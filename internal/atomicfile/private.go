package atomicfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// ErrNotPrivate is returned by ReadPrivate when the file can be read by
// its group or by others: a secret in such a file may already be copied.
var ErrNotPrivate = errors.New("readable by group or others")

// ErrExists is returned by WriteNew when path already exists.
var ErrExists = errors.New("file exists")

// ReadPrivate reads a secret file of at most max bytes. It refuses what
// is not a regular file (checked before opening, so a FIFO cannot block
// it, and again on the open file), a file whose mode lets its group or
// others read or write it (ErrNotPrivate, with a chmod hint), and a file
// larger than max. Errors never hold the file's content.
func ReadPrivate(path string, max int64) ([]byte, error) {
	if st, err := os.Stat(path); err == nil && !st.Mode().IsRegular() {
		return nil, errors.New("not a regular file")
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, errors.New("not a regular file")
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("mode %04o: %w; run chmod 600 %s and consider the secret exposed", perm, ErrNotPrivate, path)
	}
	if st.Size() > max {
		return nil, fmt.Errorf("file too large for a secret (%d bytes, at most %d)", st.Size(), max)
	}
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("file too large for a secret (over %d bytes)", max)
	}
	return data, nil
}

// WriteNew creates path holding data with mode perm, atomically, and never
// replaces an existing file: the data goes to a temp file in the same
// folder, is synced, then hard-linked into place, which fails with
// ErrExists if path exists (even if it appeared after a check), so a
// reader never sees half a file and an existing one is never replaced.
func WriteNew(path string, data []byte, perm fs.FileMode) error {
	if _, err := os.Lstat(path); err == nil {
		return ErrExists
	}
	err := publish(path, perm, func(f *os.File) error {
		_, err := f.Write(data)
		return err
	}, os.Link)
	if errors.Is(err, fs.ErrExist) {
		return ErrExists
	}
	return err
}
