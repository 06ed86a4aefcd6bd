//go:build unix

package relay

import (
	"errors"
	"fmt"

	"github.com/archy-node/archy/internal/dirlock"
)

// ErrDataDirInUse is returned by New when another relay holds the data
// folder.
var ErrDataDirInUse = errors.New("relay data folder is in use by another relay")

// lockDir takes an exclusive lock on dir/LOCK for as long as the relay
// runs, so two relays never append to one log.
func lockDir(dir string) (func(), error) {
	unlock, err := dirlock.Lock(dir, "relay data folder")
	if errors.Is(err, dirlock.ErrInUse) {
		return nil, fmt.Errorf("%w: %s", ErrDataDirInUse, dir)
	}
	return unlock, err
}
