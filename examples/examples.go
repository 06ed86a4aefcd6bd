// Package examples holds archy's sample apps and finds them for tests and for
// the image build. The apps themselves are data: apps/<id>/manifest.yaml is
// the current release, apps/<id>/update/ the next one and apps/<id>/broken/ a
// release whose health check never passes (see README.md). Nothing in the
// node imports this package; tests and tools do.
package examples

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"github.com/archy-node/archy/registry"
)

// Release kinds, one folder each inside an app folder.
const (
	Current = "current" // apps/<id>/
	Update  = "update"  // apps/<id>/update/
	Broken  = "broken"  // apps/<id>/broken/
)

// Kinds lists the release kinds in lifecycle order.
var Kinds = []string{Current, Update, Broken}

// Release is one version of a sample app.
type Release struct {
	Kind     string
	Dir      string // the folder holding manifest.yaml; archive paths are relative to it
	Manifest *registry.Manifest
}

// App is a sample app with its releases, Current first.
type App struct {
	ID       string
	Dir      string
	Releases []Release
}

// Release returns the release of the given kind, or nil.
func (a *App) Release(kind string) *Release {
	for i := range a.Releases {
		if a.Releases[i].Kind == kind {
			return &a.Releases[i]
		}
	}
	return nil
}

// Root returns the examples folder of this source tree.
func Root() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "examples"
	}
	return filepath.Dir(file)
}

// AppsDir returns the folder holding the sample apps.
func AppsDir() string { return filepath.Join(Root(), "apps") }

// KeyFile returns the path of the committed example publisher key (a public
// test key: never use it for anything real).
func KeyFile() string { return filepath.Join(Root(), "keys", "example-publisher.key") }

// Apps loads every app under dir (one folder per app), sorted by id.
func Apps(dir string) ([]App, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list sample apps: %w", err)
	}
	var apps []App
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		appDir := filepath.Join(dir, e.Name())
		app := App{ID: e.Name(), Dir: appDir}
		for _, kind := range Kinds {
			relDir := appDir
			if kind != Current {
				relDir = filepath.Join(appDir, kind)
			}
			path := filepath.Join(relDir, "manifest.yaml")
			if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) && kind != Current {
				continue
			}
			m, err := LoadManifest(path)
			if err != nil {
				return nil, err
			}
			app.Releases = append(app.Releases, Release{Kind: kind, Dir: relDir, Manifest: m})
		}
		apps = append(apps, app)
	}
	sort.Slice(apps, func(i, j int) bool { return apps[i].ID < apps[j].ID })
	return apps, nil
}

// LoadManifest reads an authoring manifest (YAML or JSON) strictly with the
// registry's parser, without resolving image archives (they may not be
// built yet).
func LoadManifest(path string) (*registry.Manifest, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	format := "yaml"
	if strings.HasSuffix(path, ".json") {
		format = "json"
	}
	m, err := registry.ParseManifest(data, format)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", path, err)
	}
	return m, nil
}
