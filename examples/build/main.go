// Command build makes the OCI image archives of archy's sample apps, offline
// and deterministically: for every container of every release under
// examples/apps it assembles a root filesystem (busybox-static and its
// applets, /etc/passwd, /etc/app-version, and the app's own files from
// apps/<id>/src/<container>/) and writes it as an OCI archive at the path the
// manifest's image.archive names, tagged with image.ref.
//
//	go run ./examples/build [-apps DIR] [-busybox PATH] [-json] [APP...]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"

	"github.com/archy-node/archy/examples"
	"github.com/archy-node/archy/internal/ociimage"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "build:", err)
		os.Exit(1)
	}
}

// Built is one image archive written.
type Built struct {
	App       string `json:"app"`
	Version   string `json:"version"`
	Release   string `json:"release"`
	Container string `json:"container"`
	Ref       string `json:"ref"`
	Archive   string `json:"archive"`
	Digest    string `json:"digest"`
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("build", flag.ContinueOnError)
	appsDir := fs.String("apps", examples.AppsDir(), "folder of sample apps")
	busybox := fs.String("busybox", "/bin/busybox", "a statically linked busybox (Debian: busybox-static)")
	asJSON := fs.Bool("json", false, "print what was built as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	built, err := Build(ctx, *appsDir, *busybox, fs.Args())
	if err != nil {
		return err
	}
	// git keeps no file modes: give the example key the 0600 that
	// did.LoadKey insists on, so `archy app sign --key` works on the samples.
	if err := os.Chmod(examples.KeyFile(), 0o600); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("chmod the example key: %w", err)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(built)
	}
	for _, b := range built {
		fmt.Fprintf(stdout, "%s %s %s\n", b.Digest, b.Ref, b.Archive)
	}
	return nil
}

// Build writes the image archives of the named apps (all when ids is empty).
func Build(ctx context.Context, appsDir, busybox string, ids []string) ([]Built, error) {
	bb, err := newBusybox(busybox)
	if err != nil {
		return nil, err
	}
	apps, err := examples.Apps(appsDir)
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		if !slices.ContainsFunc(apps, func(a examples.App) bool { return a.ID == id }) {
			return nil, fmt.Errorf("no sample app %q in %s", id, appsDir)
		}
	}
	tmp, err := os.MkdirTemp("", "archy-example-rootfs-")
	if err != nil {
		return nil, fmt.Errorf("build images: %w", err)
	}
	defer os.RemoveAll(tmp)

	var built []Built
	for _, app := range apps {
		if len(ids) > 0 && !slices.Contains(ids, app.ID) {
			continue
		}
		for _, rel := range app.Releases {
			m := rel.Manifest
			for _, c := range m.Containers {
				if err := ctx.Err(); err != nil {
					return nil, err
				}
				if c.Image.Archive == "" {
					continue
				}
				if c.Image.Ref == "" {
					return nil, fmt.Errorf("%s: container %s: image.archive needs an image.ref to tag it with", rel.Dir, c.Name)
				}
				rootfs := filepath.Join(tmp, fmt.Sprintf("%s-%s-%s", app.ID, rel.Kind, c.Name))
				img := imageSpec{
					busybox: bb,
					src:     filepath.Join(app.Dir, "src", c.Name),
					appID:   m.ID,
					version: m.Version,
				}
				if err := img.assemble(rootfs); err != nil {
					return nil, fmt.Errorf("%s: container %s: %w", rel.Dir, c.Name, err)
				}
				out := filepath.Join(rel.Dir, filepath.FromSlash(c.Image.Archive))
				if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
					return nil, fmt.Errorf("build images: %w", err)
				}
				digest, err := ociimage.Build(ctx, rootfs, out, c.Image.Ref, ociimage.WithConfig(ociimage.Config{
					Cmd:        c.Command,
					Env:        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
					WorkingDir: "/",
					Labels:     map[string]string{"org.opencontainers.image.title": m.Name, "org.opencontainers.image.version": m.Version},
				}))
				if err != nil {
					return nil, fmt.Errorf("%s: container %s: %w", rel.Dir, c.Name, err)
				}
				if err := os.RemoveAll(rootfs); err != nil {
					return nil, fmt.Errorf("build images: %w", err)
				}
				built = append(built, Built{
					App: m.ID, Version: m.Version, Release: rel.Kind, Container: c.Name,
					Ref: c.Image.Ref, Archive: out, Digest: digest,
				})
			}
		}
	}
	if len(built) == 0 {
		return nil, errors.New("no image archives to build")
	}
	return built, nil
}
