package orchestrator

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
)

func TestCheckSocketOwner(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := CheckSocketOwner("unix://" + path); err != nil {
		t.Fatalf("own socket: %v", err)
	}
	if err := CheckSocketOwner("unix://" + path + ".missing"); err != nil {
		t.Fatalf("missing socket (its connection says why): %v", err)
	}
	if os.Geteuid() == 0 {
		return // everything root can name is checked by cmd/archy's test
	}
	var oe *OwnerError
	if err := CheckSocketOwner("unix:///"); !errors.As(err, &oe) || oe.Owner != 0 || oe.Caller != os.Geteuid() {
		t.Fatalf("root-owned path: %v", err)
	}
}
