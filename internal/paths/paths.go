// Package paths says where archy keeps its files on this machine by
// default, so the CLI and the node agree without each deciding.
package paths

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Env is the environment variable naming the data folder.
const Env = "ARCHY_DATA"

// ErrNoDataDir is returned when no data folder is given and none can be
// derived (no $HOME): the caller must name one.
var ErrNoDataDir = errors.New("cannot find a default data folder")

// Resolve is the one answer to "which data folder": dir when given, else
// $ARCHY_DATA, else DataDir; the result is absolute.
func Resolve(dir string) (string, error) {
	return resolve(dir, os.Getenv, os.UserHomeDir)
}

func resolve(dir string, getenv func(string) string, home func() (string, error)) (string, error) {
	if dir == "" {
		dir = getenv(Env)
	}
	if dir == "" {
		return dataDir(getenv, home)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("data folder %s: %w", dir, err)
	}
	return abs, nil
}

// DataDir returns archy's default data folder: $XDG_DATA_HOME/archy when
// XDG_DATA_HOME is set to an absolute path (the XDG Base Directory spec
// says to ignore a relative one), else ~/.local/share/archy. It does not
// create the folder.
func DataDir() (string, error) {
	return dataDir(os.Getenv, os.UserHomeDir)
}

func dataDir(getenv func(string) string, home func() (string, error)) (string, error) {
	if x := getenv("XDG_DATA_HOME"); x != "" && filepath.IsAbs(x) {
		return filepath.Join(x, "archy"), nil
	}
	h, err := home()
	if err != nil || h == "" {
		if err == nil {
			err = errors.New("$HOME is not set")
		}
		return "", fmt.Errorf("%w: %w", ErrNoDataDir, err)
	}
	return filepath.Join(h, ".local", "share", "archy"), nil
}
