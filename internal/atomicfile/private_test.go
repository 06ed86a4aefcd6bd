package atomicfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestReadPrivate(t *testing.T) {
	tests := []struct {
		name string
		make func(t *testing.T, path string)
		want string // "" means it reads "secret"
		is   error
	}{
		{"0600", func(t *testing.T, p string) { write(t, p, "secret", 0o600) }, "", nil},
		{"0400", func(t *testing.T, p string) { write(t, p, "secret", 0o400) }, "", nil},
		{"0640", func(t *testing.T, p string) { write(t, p, "secret", 0o640) }, "mode 0640", ErrNotPrivate},
		{"0604", func(t *testing.T, p string) { write(t, p, "secret", 0o604) }, "chmod 600", ErrNotPrivate},
		{"0620", func(t *testing.T, p string) { write(t, p, "secret", 0o620) }, "readable by group or others", ErrNotPrivate},
		{"too large", func(t *testing.T, p string) { write(t, p, strings.Repeat("x", 65), 0o600) }, "too large", nil},
		{"missing", func(t *testing.T, p string) {}, "no such file", os.ErrNotExist},
		{"folder", func(t *testing.T, p string) {
			if err := os.Mkdir(p, 0o700); err != nil {
				t.Fatal(err)
			}
		}, "not a regular file", nil},
		{"FIFO (must not block)", func(t *testing.T, p string) {
			if err := syscall.Mkfifo(p, 0o600); err != nil {
				t.Skipf("mkfifo: %v", err)
			}
		}, "not a regular file", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "secret")
			tt.make(t, path)
			data, err := ReadPrivate(path, 64)
			if tt.want == "" {
				if err != nil || string(data) != "secret" {
					t.Fatalf("ReadPrivate = %q, %v", data, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ReadPrivate = %v, want an error saying %q", err, tt.want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Fatalf("ReadPrivate = %v, want errors.Is %v", err, tt.is)
			}
			if strings.Contains(err.Error(), "secret\"") || strings.Contains(err.Error(), "xxxx") {
				t.Fatalf("error shows the content: %v", err)
			}
		})
	}
}

func write(t *testing.T, path, data string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func TestWriteNew(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "key")
	if err := WriteNew(path, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("stat: %v %v", st, err)
	}
	if err := WriteNew(path, []byte("two"), 0o600); !errors.Is(err, ErrExists) {
		t.Fatalf("second WriteNew = %v, want ErrExists", err)
	}
	if data, _ := os.ReadFile(path); string(data) != "one" {
		t.Fatalf("file holds %q after a refused WriteNew", data)
	}
	// A dangling symlink counts as existing: never write through it.
	link := filepath.Join(dir, "link")
	if err := os.Symlink(filepath.Join(dir, "elsewhere"), link); err != nil {
		t.Fatal(err)
	}
	if err := WriteNew(link, []byte("x"), 0o600); !errors.Is(err, ErrExists) {
		t.Fatalf("WriteNew over a symlink = %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Fatalf("folder holds %d entries, want 2 (no temp files left)", len(entries))
	}
	if err := WriteNew(filepath.Join(dir, "missing", "k"), nil, 0o600); err == nil {
		t.Fatal("WriteNew into a missing folder succeeded")
	}
}

// TestWriteNewRace has many writers race for one path: exactly one wins.
func TestWriteNewRace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "key")
	const n = 16
	errs := make(chan error, n)
	for i := range n {
		go func() { errs <- WriteNew(path, []byte(fmt.Sprint(i)), 0o600) }()
	}
	won := 0
	for range n {
		err := <-errs
		switch {
		case err == nil:
			won++
		case !errors.Is(err, ErrExists):
			t.Errorf("WriteNew: %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d writers won, want 1", won)
	}
}
