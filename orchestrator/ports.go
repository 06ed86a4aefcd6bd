package orchestrator

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrPortTaken is returned (inside a *PortError) when a host port an app
// needs is already held by another listener on the machine.
var ErrPortTaken = errors.New("port taken")

// PortError names the port and, when it can be found, its holder.
type PortError struct {
	Port   uint16
	Holder string // "pid 1234 (nginx)" or ""
}

func (e *PortError) Error() string {
	if e.Holder != "" {
		return fmt.Sprintf("host port %d is already in use by %s: free it or uninstall what holds it", e.Port, e.Holder)
	}
	return fmt.Sprintf("host port %d is already in use by another program: free it or uninstall what holds it", e.Port)
}

// Unwrap makes errors.Is(err, ErrPortTaken) hold.
func (e *PortError) Unwrap() error { return ErrPortTaken }

// checkPorts tries to bind every TCP port on 127.0.0.1 and 0.0.0.0 (and
// UDP ports likewise); a port that cannot be bound is taken, and
// /proc/net/tcp{,6} names the holder when this user may see it.
func checkPorts(ports []HostPort) error {
	var errs []error
	for _, p := range ports {
		if err := probePort(p); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func probePort(p HostPort) error {
	for _, host := range []string{"127.0.0.1", "0.0.0.0"} {
		addr := net.JoinHostPort(host, strconv.Itoa(int(p.Port)))
		if p.Protocol == "udp" {
			c, err := net.ListenPacket("udp4", addr)
			if err != nil {
				return &PortError{Port: p.Port}
			}
			c.Close()
			continue
		}
		l, err := net.Listen("tcp4", addr)
		if err != nil {
			return &PortError{Port: p.Port, Holder: portHolder(p.Port)}
		}
		l.Close()
	}
	return nil
}

// portHolder finds a listening socket on port in /proc/net/tcp{,6} and the
// process holding its inode. Best effort: "" when unknown.
func portHolder(port uint16) string {
	inode := ""
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		if inode = listeningInode(f, port); inode != "" {
			break
		}
	}
	if inode == "" {
		return ""
	}
	target := "socket:[" + inode + "]"
	procs, _ := filepath.Glob("/proc/[0-9]*/fd")
	for _, fdDir := range procs {
		fds, err := os.ReadDir(fdDir)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			if l, err := os.Readlink(filepath.Join(fdDir, fd.Name())); err == nil && l == target {
				pidDir := filepath.Dir(fdDir)
				comm, _ := os.ReadFile(filepath.Join(pidDir, "comm"))
				return fmt.Sprintf("pid %s (%s)", filepath.Base(pidDir), strings.TrimSpace(string(comm)))
			}
		}
	}
	return "socket inode " + inode + " (process not visible to this user)"
}

// listeningInode reads a /proc/net/tcp table for a LISTEN (0A) socket on
// port.
func listeningInode(file string, port uint16) string {
	f, err := os.Open(file)
	if err != nil {
		return ""
	}
	defer f.Close()
	want := fmt.Sprintf(":%04X", port)
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 10 {
			continue
		}
		if strings.HasSuffix(fs[1], want) && fs[3] == "0A" {
			return fs[9]
		}
	}
	return ""
}
