package dirlock

import (
	"errors"
	"testing"
)

func TestLock(t *testing.T) {
	dir := t.TempDir()
	unlock, err := Lock(dir, "test store")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Lock(dir, "test store"); !errors.Is(err, ErrInUse) {
		t.Fatalf("second lock: %v", err)
	}
	unlock()
	again, err := Lock(dir, "test store")
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	again()
}
