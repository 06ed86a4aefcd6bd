package main

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// busybox is the static binary every sample image is built on.
type busybox struct {
	path    string
	applets []string
}

func newBusybox(path string) (*busybox, error) {
	out, err := exec.Command(path, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("list the applets of %s (install busybox-static): %w", path, err)
	}
	var applets []string
	for _, a := range strings.Fields(string(out)) {
		// "[" and "[[" are applets too; nothing here may escape /bin.
		if a == "busybox" || strings.ContainsAny(a, "/\x00") || a == "." || a == ".." {
			continue
		}
		applets = append(applets, a)
	}
	sort.Strings(applets)
	for _, need := range []string{"sh", "httpd", "nc", "sleep", "wget"} {
		if _, ok := sort.Find(len(applets), func(i int) int { return strings.Compare(need, applets[i]) }); !ok {
			return nil, fmt.Errorf("%s has no %s applet", path, need)
		}
	}
	return &busybox{path: path, applets: applets}, nil
}

// imageSpec is what goes into one sample image.
type imageSpec struct {
	busybox *busybox
	src     string // the app's files for this container, copied to / (may be absent)
	appID   string
	version string
}

const (
	passwd = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
	group  = "root:x:0:\napp:x:1000:\nnogroup:x:65534:\n"
)

// assemble writes the image's root filesystem into dir. Modes are set
// explicitly (0755 for folders and executables, 0644 for other files, 1777
// for /tmp) so that the result does not depend on the umask or the checkout.
func (s *imageSpec) assemble(dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	for _, d := range []string{"bin", "etc", "root", "home/app", "tmp", "data", "proc", "sys", "dev", "run"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	bin, err := os.ReadFile(s.busybox.path)
	if err != nil {
		return fmt.Errorf("read busybox: %w", err)
	}
	if err := writeFile(filepath.Join(dir, "bin", "busybox"), bin, 0o755); err != nil {
		return err
	}
	for _, a := range s.busybox.applets {
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", a)); err != nil {
			return err
		}
	}
	files := map[string]string{
		"etc/passwd":      passwd,
		"etc/group":       group,
		"etc/app-id":      s.appID + "\n",
		"etc/app-version": s.version + "\n",
	}
	for name, content := range files {
		if err := writeFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	if err := copyTree(s.src, dir); err != nil {
		return err
	}
	if err := os.Chmod(filepath.Join(dir, "root"), 0o700); err != nil {
		return err
	}
	return os.Chmod(filepath.Join(dir, "tmp"), 0o1777)
}

// copyTree copies regular files and folders of src into dst, keeping only
// the executable bit of each file's mode. A missing src copies nothing.
func copyTree(src, dst string) error {
	if _, err := os.Stat(src); os.IsNotExist(err) {
		return nil
	}
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
			return os.Chmod(target, 0o755)
		case d.Type().IsRegular():
			info, err := d.Info()
			if err != nil {
				return err
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if bytes.HasPrefix(data, []byte("#!")) && info.Mode()&0o111 == 0 {
				return fmt.Errorf("%s starts with #! but is not executable (chmod +x it and commit the mode)", path)
			}
			mode := os.FileMode(0o644)
			if info.Mode()&0o111 != 0 {
				mode = 0o755
			}
			return writeFile(target, data, mode)
		default:
			return fmt.Errorf("%s: only regular files and folders may go into a sample image", path)
		}
	})
}

func writeFile(path string, data []byte, mode os.FileMode) error {
	if err := os.WriteFile(path, data, mode); err != nil {
		return err
	}
	return os.Chmod(path, mode) // WriteFile's mode is filtered by the umask
}
