package orchestrator

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/user"
	"strconv"
	"syscall"
)

// OwnerError is returned by CheckSocketOwner when the process is not the
// owner of the rootless Podman socket it was given. Rootless containers
// write an app's data as the socket's owner (and the IDs it maps), and the
// orchestrator prepares that data with `podman unshare`, which only the
// owner can run: such a process would fail midway, so it is refused first.
type OwnerError struct {
	Socket string // the socket's path
	Owner  int    // its owner's UID
	Caller int    // this process's effective UID
}

func (e *OwnerError) Error() string {
	return fmt.Sprintf("the Podman socket %s belongs to %s, but this process runs as %s: "+
		"rootless containers own an app's data as the socket's owner, so run as that user",
		e.Socket, uidName(e.Owner), uidName(e.Caller))
}

// OwnerName returns the socket owner's user name, or its UID.
func (e *OwnerError) OwnerName() string {
	if u, err := user.LookupId(strconv.Itoa(e.Owner)); err == nil {
		return u.Username
	}
	return strconv.Itoa(e.Owner)
}

func uidName(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return fmt.Sprintf("%s (uid %d)", u.Username, uid)
	}
	return fmt.Sprintf("uid %d", uid)
}

// CheckSocketOwner returns an *OwnerError when socketURL is a unix socket
// owned by another user than this process. A socket that cannot be
// examined (not a unix:// URL, missing) passes: connecting to it reports
// its own error.
func CheckSocketOwner(socketURL string) error {
	u, err := url.Parse(socketURL)
	if err != nil || u.Scheme != "unix" {
		return nil
	}
	path := u.Path
	if path == "" {
		path = u.Opaque
	}
	fi, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("examine the Podman socket %s: %w", path, err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if owner, caller := int(st.Uid), os.Geteuid(); owner != caller {
		return &OwnerError{Socket: path, Owner: owner, Caller: caller}
	}
	return nil
}
