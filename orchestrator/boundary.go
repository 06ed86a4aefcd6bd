package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/archy-node/archy/internal/ociimage"
	"github.com/archy-node/archy/registry"
)

// The container boundary at every start: the data folders a container
// mounts are checked again without following symlinks, and containers are
// made from, and started only on, the image the manifest pins.

// ErrUnsafeData is returned when a data folder a container mounts is a
// symlink, passes through one, or is not a folder: the container is not
// started. A container that can write a folder's parent (volumes d and
// d/sub) can swap d/sub for a symlink to any host path its user reaches.
var ErrUnsafeData = errors.New("unsafe data folder")

// prepareData makes pc's data folders and checks them: a path a container
// turned into a symlink is refused before anything is created through it.
func (o *Orchestrator) prepareData(ctx context.Context, app string, dirs []DataDir) error {
	if err := o.checkData(app, dirs, true); err != nil {
		return err
	}
	if err := o.dataDirs(ctx, app, dirs); err != nil {
		return err
	}
	return o.checkData(app, dirs, false)
}

// checkData opens each data folder beneath the data base without following
// any symlink (openat2 RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS): the app's
// folder and every path element down to the mounted folder must be real
// folders. With missingOK, a folder not made yet passes.
func (o *Orchestrator) checkData(app string, dirs []DataDir, missingOK bool) error {
	if len(dirs) == 0 {
		return nil
	}
	base, err := os.Open(o.dataBase())
	if err != nil {
		if missingOK && errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("check data folders of %s: %w", app, err)
	}
	defer base.Close()
	for _, d := range dirs {
		rel := filepath.Join(app, d.Rel)
		err := openBeneath(int(base.Fd()), rel)
		switch {
		case err == nil:
		case missingOK && errors.Is(err, unix.ENOENT):
		case errors.Is(err, unix.ELOOP):
			return fmt.Errorf("data folder %s of %s is a symlink or passes through one (a container may have replaced it): refusing to mount it: %w", d.Rel, app, ErrUnsafeData)
		case errors.Is(err, unix.EXDEV):
			return fmt.Errorf("data folder %s of %s leads out of the app's data folder: refusing to mount it: %w", d.Rel, app, ErrUnsafeData)
		case errors.Is(err, unix.ENOTDIR):
			return fmt.Errorf("data folder %s of %s is not a folder: refusing to mount it: %w", d.Rel, app, ErrUnsafeData)
		default:
			return fmt.Errorf("check data folder %s of %s: %w", d.Rel, app, err)
		}
	}
	return nil
}

// openBeneath opens rel under dirfd as a folder, refusing every symlink.
func openBeneath(dirfd int, rel string) error {
	fd, err := unix.Openat2(dirfd, rel, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	})
	if errors.Is(err, unix.ENOSYS) {
		return openEach(dirfd, rel) // kernels before 5.6
	}
	if err == nil {
		unix.Close(fd)
	}
	return err
}

// openEach is openBeneath one path element at a time, each opened with
// O_NOFOLLOW; a symlink element is ELOOP.
func openEach(dirfd int, rel string) error {
	cur := dirfd
	defer func() {
		if cur != dirfd {
			unix.Close(cur)
		}
	}()
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		if part == ".." {
			return unix.EXDEV
		}
		fd, err := unix.Openat(cur, part, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.ENOTDIR) {
			var st unix.Stat_t
			if unix.Fstatat(cur, part, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
				err = unix.ELOOP
			}
		}
		if err != nil {
			return err
		}
		if cur != dirfd {
			unix.Close(cur)
		}
		cur = fd
	}
	return nil
}

// pinnedImageID returns the engine's ID of the image pc's manifest pins
// (name@digest: the verified archive's image, whichever image its tag
// names now).
func (o *Orchestrator) pinnedImageID(ctx context.Context, pc PlannedContainer) (string, error) {
	ref := pc.Image.Ref
	if pc.Image.Digest != "" {
		ref = refDigest(pc.Image.Ref, pc.Image.Digest)
	}
	o.mu.Lock()
	id, ok := o.imageIDs[ref]
	o.mu.Unlock()
	if ok {
		return id, nil
	}
	id, err := o.rt.ImageID(ctx, ref)
	if err != nil {
		return "", fmt.Errorf("container %s: image %s: %w", pc.Name, ref, err)
	}
	if pc.Image.Digest != "" {
		o.mu.Lock()
		if o.imageIDs == nil {
			o.imageIDs = map[string]string{}
		}
		o.imageIDs[ref] = id
		o.mu.Unlock()
	}
	return id, nil
}

// createContainer makes pc's data folders, checks them, and creates the
// container from the pinned image's ID (never its tag, which another
// load may have moved), then checks the engine holds that image.
func (o *Orchestrator) createContainer(ctx context.Context, a *app, pc PlannedContainer) error {
	if err := o.prepareData(ctx, a.id, pc.Data); err != nil {
		return err
	}
	id, err := o.pinnedImageID(ctx, pc)
	if err != nil {
		return err
	}
	spec := pc.Spec
	spec.Image = id
	if _, err := o.rt.CreateContainer(ctx, spec); err != nil {
		return err
	}
	c, err := o.rt.Inspect(ctx, spec.Name)
	if err == nil && c.ImageID != id {
		err = fmt.Errorf("container %s was made from image %s, not the verified %s (%s): %w", spec.Name, shortID(c.ImageID), shortID(id), pc.Spec.Image, ErrImageMismatch)
	}
	if err != nil {
		if rerr := o.rt.Remove(ctx, spec.Name); rerr != nil && !errors.Is(rerr, ErrNotFound) {
			err = errors.Join(err, fmt.Errorf("remove %s: %w", spec.Name, rerr))
		}
		return err
	}
	return nil
}

// startChecked starts pc's container after checking its data folders
// again (a container may have swapped one for a symlink since its last
// start) and that it holds the pinned image. Every start goes through it:
// install, start, restart, update, rollback, the reconciler's starts of
// adopted or exited containers, and restarts of unhealthy ones.
func (o *Orchestrator) startChecked(ctx context.Context, a *app, pc PlannedContainer) error {
	if err := o.prepareData(ctx, a.id, pc.Data); err != nil {
		return fmt.Errorf("start %s: %w", pc.Spec.Name, err)
	}
	want, err := o.pinnedImageID(ctx, pc)
	if err != nil {
		return err
	}
	c, err := o.rt.Inspect(ctx, pc.Spec.Name)
	if err != nil {
		return err
	}
	if c.ImageID != want {
		return fmt.Errorf("start %s: it holds image %s, not the verified %s (%s): %w", pc.Spec.Name, shortID(c.ImageID), shortID(want), pc.Spec.Image, ErrImageMismatch)
	}
	return o.rt.Start(ctx, pc.Spec.Name)
}

// checkImageName refuses an archive whose image name is not the one its
// manifest signs, or is one another installed app's image holds: loading
// it would move that app's tag to this app's image.
func (o *Orchestrator) checkImageName(app string, c registry.Container, archive string) error {
	names, err := ociimage.Names(archive)
	if err != nil {
		return fmt.Errorf("container %s: %w", c.Name, err)
	}
	want := normalRef(c.Image.Ref)
	for _, n := range names {
		if normalRef(n) != want {
			return fmt.Errorf("container %s: the archive names its image %s, the manifest %s: %w", c.Name, n, c.Image.Ref, ErrImageMismatch)
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for id, other := range o.apps {
		if id == app || other.state == nil {
			continue
		}
		for _, rel := range []*Release{other.state.Current, other.state.Previous} {
			if rel == nil {
				continue
			}
			m, err := rel.Manifest()
			if err != nil {
				continue
			}
			for _, oc := range m.Containers {
				if normalRef(oc.Image.Ref) == want && oc.Image.Digest != c.Image.Digest {
					return fmt.Errorf("container %s: image name %s is app %s's (another image): loading this one would move it: %w", c.Name, c.Image.Ref, id, ErrImageMismatch)
				}
			}
		}
	}
	return nil
}

// normalRef spells an image name as Podman stores a loaded one: a name
// without a registry host is under localhost/.
func normalRef(ref string) string {
	first, _, found := strings.Cut(ref, "/")
	if !found || (!strings.ContainsAny(first, ".:") && first != "localhost") {
		return "localhost/" + ref
	}
	return ref
}

// wrongImage reports whether a running container (one adopted from before
// images were pinned by ID, say) holds another image than pc's pinned
// one. An engine that cannot say is not a reason to recreate.
func (o *Orchestrator) wrongImage(ctx context.Context, pc PlannedContainer, c Container) bool {
	want, err := o.pinnedImageID(ctx, pc)
	return err == nil && c.ImageID != "" && c.ImageID != want
}
