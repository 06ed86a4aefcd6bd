//go:build unix

// Package dirlock keeps two processes from writing one on-disk store: a
// store takes an exclusive flock on a LOCK file in its folder for as long
// as it is open. The kernel drops the lock when the process dies, so a
// crash never leaves a stale lock behind.
package dirlock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// ErrInUse is returned by Lock when another process (or another open of
// the store in this one) holds the folder.
var ErrInUse = errors.New("in use by another process")

// Lock takes an exclusive lock on dir/LOCK; what names the store in
// errors. The returned func releases it.
func Lock(dir, what string) (func(), error) {
	path := filepath.Join(dir, "LOCK")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", what, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s %s is %w (a running node?)", what, dir, ErrInUse)
		}
		return nil, fmt.Errorf("lock %s: %w", what, err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
