package orchestrator

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/archy-node/archy/internal/atomicfile"
	"github.com/archy-node/archy/registry"
)

// StateFormat is the version of the on-disk desired state. A file with
// another version is refused with a clear error, never guessed at.
const StateFormat = 1

// Intent is what the owner wants of an installed app.
type Intent string

// Owner intents.
const (
	IntentRunning Intent = "running"
	IntentStopped Intent = "stopped"
	// IntentRemoved marks an uninstall in progress: the app stays listed
	// until its containers are verified gone.
	IntentRemoved Intent = "removed"
)

// Release is one verified version of an app as the node keeps it: the
// signed envelope and the exact payload bytes it verified, and where each
// container's image archive was.
type Release struct {
	Version  string            `json:"version"`
	CID      string            `json:"cid"`
	Envelope []byte            `json:"envelope,omitempty"` // the DSSE envelope, as received
	Payload  []byte            `json:"payload"`            // the canonical manifest bytes (CID is over them)
	Archives map[string]string `json:"archives,omitempty"` // container name → archive path

	manifest *registry.Manifest
}

// Manifest parses the release's payload (strictly) once.
func (r *Release) Manifest() (*registry.Manifest, error) {
	if r.manifest != nil {
		return r.manifest, nil
	}
	m, err := registry.ParsePayload(r.Payload)
	if err != nil {
		return nil, fmt.Errorf("release %s: %w", r.CID, err)
	}
	r.manifest = m
	return m, nil
}

// Pending is an operation that was under way when the state was written:
// if the node dies mid-operation, the next start resolves it (see
// Orchestrator.Run).
type Pending struct {
	Op      string    `json:"op"` // install, update, uninstall, ...
	Started time.Time `json:"started"`
	Purge   bool      `json:"purge,omitempty"`
}

// AppState is one app's desired state on disk.
type AppState struct {
	Format   int      `json:"format"`
	ID       string   `json:"id"`
	Intent   Intent   `json:"intent"`
	Current  *Release `json:"current"`
	Previous *Release `json:"previous,omitempty"` // the way back of the last update
	Pending  *Pending `json:"pending,omitempty"`
	// Pin is the publisher the app is pinned to (see Install and Update).
	// A state written before pins existed is pinned to its current
	// release's publisher when read.
	Pin *Pin `json:"pin,omitempty"`
}

// store keeps the desired state, one JSON file per app, written atomically.
type store struct{ dir string }

func newStore(dir string) (*store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state folder: %w", err)
	}
	return &store{dir: dir}, nil
}

func (s *store) path(id string) string { return filepath.Join(s.dir, id+".json") }

func (s *store) save(a *AppState) error {
	if !validAppID(a.ID) {
		return fmt.Errorf("save state: invalid app id %q", a.ID)
	}
	a.Format = StateFormat
	b, err := json.MarshalIndent(a, "", "  ")
	if err != nil {
		return fmt.Errorf("save state of %s: %w", a.ID, err)
	}
	if err := atomicfile.Write(s.path(a.ID), b, 0o600); err != nil {
		return fmt.Errorf("save state of %s: %w", a.ID, err)
	}
	return nil
}

func (s *store) remove(id string) error {
	if err := os.Remove(s.path(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove state of %s: %w", id, err)
	}
	return nil
}

// load reads every app's state. A file that cannot be read is an error
// naming it: the node must not silently forget an installed app.
func (s *store) load() ([]*AppState, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("read state folder: %w", err)
	}
	var out []*AppState
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".json") || strings.HasPrefix(name, ".") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(s.dir, name))
		if err != nil {
			return nil, fmt.Errorf("read state %s: %w", name, err)
		}
		var a AppState
		if err := json.Unmarshal(b, &a); err != nil {
			return nil, fmt.Errorf("read state %s: %w", name, err)
		}
		if a.Format != StateFormat {
			return nil, fmt.Errorf("read state %s: format %d, this node reads %d", name, a.Format, StateFormat)
		}
		if a.ID+".json" != name || a.Current == nil {
			return nil, fmt.Errorf("read state %s: bad id or no release", name)
		}
		if a.Pin == nil {
			m, err := a.Current.Manifest()
			if err != nil {
				return nil, fmt.Errorf("read state %s: %w", name, err)
			}
			a.Pin = &Pin{Publisher: m.Publisher}
		}
		out = append(out, &a)
	}
	slices.SortFunc(out, func(a, b *AppState) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// keptPin is the pin of an app as it goes with the app's data and
// secrets: written whenever the pin is set, left by an uninstall that
// keeps them, removed by a purge. It keeps another publisher's release
// from taking over the data of an uninstalled app.
type keptPin struct {
	Format  int    `json:"format"`
	ID      string `json:"id"`
	Version string `json:"version"` // the version the data was last used by
	Pin     *Pin   `json:"pin"`
}

func (s *store) pinPath(id string) string { return filepath.Join(s.dir, "pins", id+".json") }

// savePin records the pin that goes with app id's data.
func (s *store) savePin(id, version string, pin *Pin) error {
	if !validAppID(id) {
		return fmt.Errorf("save pin: invalid app id %q", id)
	}
	b, err := json.MarshalIndent(keptPin{Format: StateFormat, ID: id, Version: version, Pin: pin}, "", "  ")
	if err != nil {
		return fmt.Errorf("save pin of %s: %w", id, err)
	}
	if err := os.MkdirAll(filepath.Dir(s.pinPath(id)), 0o700); err != nil {
		return fmt.Errorf("save pin of %s: %w", id, err)
	}
	if err := atomicfile.Write(s.pinPath(id), b, 0o600); err != nil {
		return fmt.Errorf("save pin of %s: %w", id, err)
	}
	return nil
}

// keptPin reads the pin that goes with app id's data, or nil.
func (s *store) keptPin(id string) (*keptPin, error) {
	b, err := os.ReadFile(s.pinPath(id))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read pin of %s: %w", id, err)
	}
	var k keptPin
	if err := json.Unmarshal(b, &k); err != nil {
		return nil, fmt.Errorf("read pin of %s: %w", id, err)
	}
	if k.Format != StateFormat || k.ID != id || k.Pin == nil || k.Pin.Publisher == "" {
		return nil, fmt.Errorf("read pin of %s: %s is not a pin of this app (format %d)", id, s.pinPath(id), k.Format)
	}
	return &k, nil
}

func (s *store) dropPin(id string) error {
	if err := os.Remove(s.pinPath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove pin of %s: %w", id, err)
	}
	return nil
}

// validAppID keeps ids usable in file and container names.
func validAppID(id string) bool {
	if id == "" || len(id) > 100 || id[0] == '.' || id[0] == '-' {
		return false
	}
	for _, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '.':
		default:
			return false
		}
	}
	return true
}
