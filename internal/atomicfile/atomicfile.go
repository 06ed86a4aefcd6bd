// Package atomicfile writes files so that nothing is ever half-written: a
// reader sees the old content or the whole new one, never a torn mix.
package atomicfile

import (
	"io/fs"
	"os"
	"path/filepath"
)

// Write writes data to path so that a reader sees either the old
// file or the whole new one: temp file in the same folder, fsync, rename,
// fsync of the folder.
func Write(path string, data []byte, perm fs.FileMode) error {
	return WriteWith(path, perm, func(f *os.File) error {
		_, err := f.Write(data)
		return err
	})
}

// WriteWith is Write for content that fill writes to the temp file (a
// stream): path gets it only if fill returns nil.
func WriteWith(path string, perm fs.FileMode, fill func(*os.File) error) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	name := tmp.Name()
	defer os.Remove(name) // no-op after a successful rename
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if err := fill(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(name, path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
