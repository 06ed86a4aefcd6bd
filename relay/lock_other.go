//go:build !unix

package relay

import "errors"

// ErrDataDirInUse is returned by New when another relay holds the data
// folder.
var ErrDataDirInUse = errors.New("relay data folder is in use by another relay")

// lockDir does nothing where flock is not available.
func lockDir(string) (func(), error) { return func() {}, nil }
