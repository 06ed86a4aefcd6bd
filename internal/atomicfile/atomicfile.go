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
	return publish(path, perm, fill, os.Rename)
}

// publish writes a synced temp file beside path with fill, gives it the
// name path with place (rename: replace; link: never replace), and syncs
// the folder.
func publish(path string, perm fs.FileMode, fill func(*os.File) error, place func(tmp, path string) error) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	name := tmp.Name()
	defer os.Remove(name) // no-op after a rename; the spare name after a link
	err = tmp.Chmod(perm)
	if err == nil {
		err = fill(tmp)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := place(name, path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
