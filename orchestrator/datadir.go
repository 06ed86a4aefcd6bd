package orchestrator

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// IDMapper gives data folders to a container's user. Rootless containers
// run in a user namespace: uid 1000 inside is some subordinate uid
// outside, which only that namespace can chown to.
type IDMapper interface {
	// HostID maps a container uid (or gid, with gid true) to the host.
	HostID(ctx context.Context, id int, gid bool) (int, error)
	// Chown gives path and everything under it to uid:gid inside the
	// containers' user namespace.
	Chown(ctx context.Context, path string, uid, gid int) error
	// RemoveAll removes path, whoever owns it inside the namespace.
	RemoveAll(ctx context.Context, path string) error
}

// PodmanUnshare is the IDMapper of a local rootless Podman: it reads the
// ID mapping Podman uses (`podman unshare cat /proc/self/uid_map`) and
// changes ownership inside that namespace (`podman unshare chown`). The
// node runs as the same user as its Podman service, so this is the
// mapping every container of the node gets.
type PodmanUnshare struct {
	Bin     string        // default "podman"
	Timeout time.Duration // per command; default 30 s

	once       sync.Once
	uids, gids [][3]int
	err        error
}

var _ IDMapper = (*PodmanUnshare)(nil)

func (p *PodmanUnshare) run(ctx context.Context, args ...string) ([]byte, error) {
	bin := p.Bin
	if bin == "" {
		bin = "podman"
	}
	d := p.Timeout
	if d <= 0 {
		d = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"unshare"}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("podman unshare %s: %w: %s", args[0], err, strings.TrimSpace(errb.String()))
	}
	return out.Bytes(), nil
}

func (p *PodmanUnshare) load(ctx context.Context) error {
	p.once.Do(func() {
		var u, g []byte
		if u, p.err = p.run(ctx, "cat", "/proc/self/uid_map"); p.err != nil {
			return
		}
		if g, p.err = p.run(ctx, "cat", "/proc/self/gid_map"); p.err != nil {
			return
		}
		if p.uids, p.err = parseIDMap(u); p.err == nil {
			p.gids, p.err = parseIDMap(g)
		}
	})
	return p.err
}

// HostID maps id through Podman's user namespace mapping.
func (p *PodmanUnshare) HostID(ctx context.Context, id int, gid bool) (int, error) {
	if err := p.load(ctx); err != nil {
		return 0, err
	}
	m := p.uids
	if gid {
		m = p.gids
	}
	return mapID(m, id)
}

// Chown runs chown -R inside Podman's user namespace.
func (p *PodmanUnshare) Chown(ctx context.Context, path string, uid, gid int) error {
	_, err := p.run(ctx, "chown", "-R", "-P", strconv.Itoa(uid)+":"+strconv.Itoa(gid), "--", path)
	return err
}

// RemoveAll runs rm -rf inside Podman's user namespace.
func (p *PodmanUnshare) RemoveAll(ctx context.Context, path string) error {
	_, err := p.run(ctx, "rm", "-rf", "--", path)
	return err
}

// parseIDMap reads /proc/<pid>/uid_map lines: inside outside count.
func parseIDMap(b []byte) ([][3]int, error) {
	var out [][3]int
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 {
			continue
		}
		var r [3]int
		for i := range f {
			n, err := strconv.Atoi(f[i])
			if err != nil {
				return nil, fmt.Errorf("id map line %q: %w", sc.Text(), err)
			}
			r[i] = n
		}
		out = append(out, r)
	}
	if len(out) == 0 {
		return nil, errors.New("empty id map")
	}
	return out, nil
}

func mapID(m [][3]int, id int) (int, error) {
	for _, r := range m {
		if id >= r[0] && id < r[0]+r[2] {
			return r[1] + id - r[0], nil
		}
	}
	return 0, fmt.Errorf("id %d is not mapped in the containers' user namespace", id)
}

// dataDirs makes an app's data folders under base/<app>, through os.Root
// so that no symlink inside the data can lead outside it, and gives each
// to its container user.
func (o *Orchestrator) dataDirs(ctx context.Context, app string, dirs []DataDir) error {
	base := o.dataBase()
	if err := os.MkdirAll(base, 0o700); err != nil {
		return fmt.Errorf("data folder: %w", err)
	}
	root, err := os.OpenRoot(base)
	if err != nil {
		return fmt.Errorf("data folder: %w", err)
	}
	defer root.Close()
	if err := root.Mkdir(app, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("data folder of %s: %w", app, err)
	}
	appRoot, err := root.OpenRoot(app)
	if err != nil {
		return fmt.Errorf("data folder of %s: %w", app, err)
	}
	defer appRoot.Close()
	for _, d := range dirs {
		if err := appRoot.MkdirAll(d.Rel, 0o755); err != nil {
			return fmt.Errorf("data folder %s of %s: %w", d.Rel, app, err)
		}
		fi, err := appRoot.Lstat(d.Rel)
		if err != nil {
			return fmt.Errorf("data folder %s of %s: %w", d.Rel, app, err)
		}
		if !fi.IsDir() {
			return fmt.Errorf("data folder %s of %s: not a folder", d.Rel, app)
		}
		if d.UID < 0 || o.cfg.IDMapper == nil {
			continue
		}
		hu, err := o.cfg.IDMapper.HostID(ctx, d.UID, false)
		if err != nil {
			return fmt.Errorf("data folder %s of %s: %w", d.Rel, app, err)
		}
		hg, err := o.cfg.IDMapper.HostID(ctx, d.GID, true)
		if err != nil {
			return fmt.Errorf("data folder %s of %s: %w", d.Rel, app, err)
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) == hu && int(st.Gid) == hg {
			continue
		}
		if err := o.cfg.IDMapper.Chown(ctx, filepath.Join(base, app, d.Rel), d.UID, d.GID); err != nil {
			return fmt.Errorf("give data folder %s of %s to uid %d: %w", d.Rel, app, d.UID, err)
		}
	}
	return nil
}

func (o *Orchestrator) dataBase() string { return filepath.Join(o.cfg.Dir, "data") }

// DataDir returns the app's data folder.
func (o *Orchestrator) DataDir(app string) string { return AppDataDir(o.cfg.Dir, app) }

// AppDataDir is the data folder of app for an orchestrator on dir
// (Config.Dir), for tools that name it without running one.
func AppDataDir(dir, app string) string { return filepath.Join(dir, "data", app) }

func (o *Orchestrator) purgeData(ctx context.Context, app string) error {
	dir := o.DataDir(app)
	err := os.RemoveAll(dir)
	if err != nil && o.cfg.IDMapper != nil {
		err = o.cfg.IDMapper.RemoveAll(ctx, dir)
	}
	if err != nil {
		return fmt.Errorf("purge data of %s: %w", app, err)
	}
	if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("purge data of %s: %s still exists", app, dir)
	}
	return nil
}
