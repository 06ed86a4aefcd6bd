// Package paths says where archy keeps its files on this machine by
// default, so the CLI and the node agree without each deciding.
package paths

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

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
		return "", fmt.Errorf("find the data folder: %w; pass it explicitly (--data DIR)", err)
	}
	return filepath.Join(h, ".local", "share", "archy"), nil
}
